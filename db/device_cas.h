/* Rows of device_ca_codes and device_cas (factory device CAs, issue 15), and the pending
 * devices they registered. Blocking calls on a caller-owned connection (an API thread, the
 * CRL fetcher's thread). Read functions return JSON built by PostgreSQL in the shape the
 * API answers with (the caller json_decref()s it). */
#ifndef HUB_DB_DEVICE_CAS_H
#define HUB_DB_DEVICE_CAS_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "db/db.h"
#include "util/buf.h"

/* The channel every change of a device CA is announced on, payload = its id. */
#define HUB_DB_DEVICE_CAS_CHANNEL "iothub_device_cas"
/* The channel of POST /v1/devices/{id}/approve, payload = the device id. */
#define HUB_DB_DEVICE_APPROVED_CHANNEL "iothub_device_approved"

/* Stores a registration code valid for ttl_s seconds; *out gets {code, expires_at}. */
int hub_db_device_cas_code_insert(PGconn *c, const char *code, const char *created_by, int ttl_s,
                                  json_t **out);
/* Locks code for the transaction and marks it used. Returns 0, HUB_ENOTFOUND (unknown),
 * HUB_EEXIST (already used) or HUB_ERANGE (expired); the code is left untouched then. */
int hub_db_device_cas_code_take(PGconn *c, const char *code);
/* Enabled device CAs of a product (for the per-product cap). */
int hub_db_device_cas_count(PGconn *c, long long product_id, long long *n);
/* A device CA to insert. */
struct hub_db_device_ca {
    long long product_id;
    const char *subject, *serial, *fingerprint, *registration, *crl_url, *created_by;
    const uint8_t *der;
    size_t der_len;
    time_t not_before, not_after;
};
/* Inserts a device CA; *out gets its JSON. HUB_EEXIST when the fingerprint is taken. */
int hub_db_device_cas_insert(PGconn *c, const struct hub_db_device_ca *ca, json_t **out);
/* Every device CA (with_pem: its certificate and CRL as PEM), newest last. */
int hub_db_device_cas_list(PGconn *c, int with_pem, json_t **out);
/* One device CA with its PEMs; HUB_ENOTFOUND. */
int hub_db_device_cas_get(PGconn *c, const char *id, json_t **out);
/* Locks a device CA's row; copies its product id and status (16 bytes). HUB_ENOTFOUND. */
int hub_db_device_cas_lock(PGconn *c, const char *id, long long *product_id, char status[16]);
/* Sets status and/or registration (NULL: unchanged) of a locked row; *out gets its JSON. */
int hub_db_device_cas_update(PGconn *c, const char *id, const char *status,
                             const char *registration, json_t **out);
/* Locks a device CA's row and appends its certificate DER to der. HUB_ENOTFOUND. */
int hub_db_device_cas_lock_cert(PGconn *c, const char *id, hub_buf_t *der);
/* Stores a CRL whose number is greater than the stored one. HUB_ERANGE when it is not. */
int hub_db_device_cas_set_crl(PGconn *c, const char *id, const hub_buf_t *der, const char *number,
                              time_t this_update, time_t next_update);
/* Device CAs whose CRL is due for a fetch: crl_url set, enabled, not checked for refresh_s
 * seconds (or never), or nextUpdate within refresh_s. *out gets [{id, crl_url}], at most
 * limit; each returned row is marked checked now. */
int hub_db_device_cas_crl_due(PGconn *c, int refresh_s, int limit, json_t **out);
/* Enabled device CAs as what the handshake trusts: [{id, product_id, registration,
 * cert_pem, crl_pem}] (crl_pem null when none). */
int hub_db_device_cas_get_trust(PGconn *c, json_t **out);
/* Devices waiting for approval, ordered by id after `after` (NULL: from the start). */
int hub_db_device_cas_pending(PGconn *c, const char *after, int limit, json_t **out);

#endif
