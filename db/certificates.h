/* Rows of certificates: every certificate the CA issued (device, service and server
 * certificates), their revocations, and the JSON the REST API answers with. Blocking calls on
 * a caller-owned connection, from a worker thread or a command. */
#ifndef HUB_DB_CERTIFICATES_H
#define HUB_DB_CERTIFICATES_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "db/db.h"
#include "util/buf.h"

/* A certificate to record. All pointers are borrowed; device_id/service_id/key_sealed may be
 * NULL. */
struct hub_db_cert {
    const char *serial;
    int ca_id;
    const char *kind; /* "device", "service", "server" */
    const char *device_id;
    const char *service_id;
    const char *subject;
    const uint8_t *der;
    size_t der_len;
    const uint8_t *key_sealed;
    size_t key_sealed_len;
    time_t not_before;
    time_t not_after;
};

/* One entry of a CRL as stored. */
struct hub_db_revoked {
    char serial[HUB_SERIAL_HEX];
    time_t revoked_at;
    int reason;
};

/* Records an issued certificate (status valid). HUB_EEXIST on a duplicate serial or a second
 * valid certificate for one device. */
int hub_db_certificates_insert(PGconn *c, const struct hub_db_cert *cert);
/* One certificate as JSON (with PEM; the caller json_decref()s it); HUB_ENOTFOUND. */
int hub_db_certificates_get(PGconn *c, const char *serial, json_t **out);
/* Certificates of a device (or all when device_id is NULL), newest first, at most limit, as
 * a JSON array (the caller json_decref()s it). */
int hub_db_certificates_list(PGconn *c, const char *device_id, int limit, json_t **out);
/* Loads the newest valid server certificate that expires after min_not_after; HUB_ENOTFOUND
 * when there is none. */
int hub_db_certificates_get_server(PGconn *c, time_t min_not_after, char serial[HUB_SERIAL_HEX],
                                   hub_buf_t *der, hub_buf_t *key_sealed);
/* Marks a valid certificate revoked now with reason; *ca_id (if not NULL) gets the CA that
 * issued it, and is left as it was for a certificate a device CA signed (ca_id NULL: the
 * maker's CA publishes its CRL, not us). HUB_ENOTFOUND if no such serial, HUB_EEXIST if it
 * was already revoked. */
int hub_db_certificates_revoke(PGconn *c, const char *serial, int reason, int *ca_id);
/* Lists revoked certificates of a CA that have not expired (an expired one leaves the CRL,
 * RFC 5280 §3.3). *out is malloc'ed (caller frees); *n its length. */
int hub_db_certificates_revoked_list(PGconn *c, int ca_id, struct hub_db_revoked **out, size_t *n);
/* Lists revoked certificates of a CA with revoked_at >= since (expired ones too: the list
 * only grows), ordered as a CRL lists them: what a delta CRL holds. *out as above. */
int hub_db_certificates_revoked_since(PGconn *c, int ca_id, time_t since,
                                      struct hub_db_revoked **out, size_t *n);
/* Serials of every revoked certificate that has not expired, of any CA (the set MQTT
 * listeners refuse). *out is malloc'ed (caller frees); *n its length. */
int hub_db_certificates_revoked_serials(PGconn *c, char (**out)[HUB_SERIAL_HEX], size_t *n);
/* Valid certificate serials of a device or service (owner_column "device_id" or
 * "service_id"), as a malloc'ed array of HUB_SERIAL_HEX strings. */
int hub_db_certificates_valid_serials(PGconn *c, const char *owner_column, const char *owner_id,
                                      char (**serials)[HUB_SERIAL_HEX], size_t *n);
/* Starts listening for revocations (channel iothub_revocation, payload = serial). */
int hub_db_certificates_listen_revoked(PGconn *c);
/* Appends the sealed keys of server certificates to *list (row-locked; call inside a
 * transaction), as hub_db_query_sealed does. */
int hub_db_certificates_list_sealed(PGconn *c, struct hub_db_sealed **list, size_t *n);
/* Replaces the sealed key of the certificate serial. HUB_ENOTFOUND when there is none. */
int hub_db_certificates_set_sealed(PGconn *c, const char *serial, const hub_buf_t *blob);

#endif
