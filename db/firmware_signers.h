/* Rows of firmware_signers: the certificates whose keys sign firmware images (issue 16).
 * Blocking calls on a caller-owned connection, from an API thread. */
#ifndef HUB_DB_FIRMWARE_SIGNERS_H
#define HUB_DB_FIRMWARE_SIGNERS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "util/buf.h"

/* What hub_db_firmware_signers_insert stores (not_before/not_after: Unix seconds). */
struct hub_db_signer_row {
    const char *name, *subject, *key_type, *fingerprint, *created_by;
    const uint8_t *der;
    size_t der_len;
    long long not_before, not_after;
};
/* Inserts a signer; *out gets its JSON (the caller json_decref()s it). HUB_EEXIST when the
 * name or the certificate is registered already. */
int hub_db_firmware_signers_insert(PGconn *c, const struct hub_db_signer_row *row, json_t **out);
/* Every signer as a JSON array, oldest first. */
int hub_db_firmware_signers_list(PGconn *c, json_t **out);
/* One signer by id (uuid) as JSON with its certificate PEM; HUB_ENOTFOUND. */
int hub_db_firmware_signers_get(PGconn *c, const char *id, json_t **out);
/* Sets status ('active' or 'disabled'); *out gets the row's JSON. HUB_ENOTFOUND. */
int hub_db_firmware_signers_set_status(PGconn *c, const char *id, const char *status,
                                       json_t **out);
/* The certificate DER of every active signer, as a JSON array of hex strings. */
int hub_db_firmware_signers_active(PGconn *c, json_t **out);
/* An active signer by id (uuid) or fingerprint (64 hex, either case) whose certificate is
 * within its validity now: its id into id_out (37 bytes) and its certificate DER appended to
 * der. HUB_ENOTFOUND when unknown, disabled or expired. */
int hub_db_firmware_signers_lookup(PGconn *c, const char *ref, char *id_out, hub_buf_t *der);

#endif
