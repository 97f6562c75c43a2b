/* Persistence of the certificate authority: CA rows, issued certificates, revocations and
 * published CRLs. Blocking calls on a connection owned by the caller. */
#ifndef HUB_DB_CA_STORE_H
#define HUB_DB_CA_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <libpq-fe.h>

#include "util/buf.h"

#define HUB_SERIAL_HEX 41 /* up to 20 bytes as hex, NUL */

/* A CA row. The buffers are owned by the struct: release with hub_db_ca_free. */
struct hub_db_ca {
    int id;
    char serial[HUB_SERIAL_HEX];
    char key_type[16];
    hub_buf_t cert_der;
    hub_buf_t key_sealed;
};

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

/* A sealed private key at rest: a CA's (table cas) or a server certificate's. */
struct hub_db_sealed {
    int ca_id;                    /* cas.id, or 0 for a certificates row */
    char role[16];                /* cas.role, or "server" */
    char serial[HUB_SERIAL_HEX];  /* the certificate's serial (cas or certificates) */
    hub_buf_t blob;               /* owned: release with hub_db_sealed_free */
};
/* Loads and row-locks every sealed key, CAs first (call inside a transaction). */
int hub_db_sealed_list(PGconn *c, struct hub_db_sealed **out, size_t *n);
void hub_db_sealed_free(struct hub_db_sealed *list, size_t n);
/* Replaces the blob of one sealed key from hub_db_sealed_list. */
int hub_db_sealed_update(PGconn *c, const struct hub_db_sealed *key, const hub_buf_t *blob);

/* Loads the active CA with role "root" or "issuing". Returns 0 or HUB_ENOTFOUND/HUB_EDB. */
int hub_db_ca_get(PGconn *c, const char *role, struct hub_db_ca *out);
void hub_db_ca_free(struct hub_db_ca *ca);
/* Loads the retired issuing CAs (replaced by a rotation) that have not expired, oldest
 * first: their certificates are still trusted and their CRLs still published. Free each
 * with hub_db_ca_free, then the array. */
int hub_db_ca_list_retired(PGconn *c, struct hub_db_ca **out, size_t *n);
/* Retires the active issuing CA (call in the transaction that creates its successor) and
 * sets *generation to its successor's number (2 at the first rotation). */
int hub_db_ca_retire_issuing(PGconn *c, int *generation);
/* Records a new active CA; *id_out gets its id. */
int hub_db_ca_insert(PGconn *c, const char *role, const char *subject, const char *key_type,
                     const char *serial, const hub_buf_t *der, const hub_buf_t *key_sealed,
                     time_t not_before, time_t not_after, int *id_out);

/* Records an issued certificate (status valid). HUB_EEXIST on a duplicate serial or a second
 * valid certificate for one device. */
int hub_db_cert_insert(PGconn *c, const struct hub_db_cert *cert);
/* Loads the newest valid server certificate that expires after min_not_after; HUB_ENOTFOUND
 * when there is none. */
int hub_db_server_cert_get(PGconn *c, time_t min_not_after, char serial[HUB_SERIAL_HEX],
                           hub_buf_t *der, hub_buf_t *key_sealed);
/* Marks a valid certificate revoked now with reason; *ca_id (if not NULL) gets the CA that
 * issued it. HUB_ENOTFOUND if no such serial, HUB_EEXIST if it was already revoked. */
int hub_db_cert_revoke(PGconn *c, const char *serial, int reason, int *ca_id);
/* Lists revoked certificates of a CA that have not expired (an expired one leaves the CRL,
 * RFC 5280 §3.3). *out is malloc'ed (caller frees); *n its length. */
int hub_db_revoked_list(PGconn *c, int ca_id, struct hub_db_revoked **out, size_t *n);

/* Serials of every revoked certificate that has not expired, of any CA (the set MQTT
 * listeners refuse). *out is malloc'ed (caller frees); *n its length. */
int hub_db_revoked_serials(PGconn *c, char (**out)[HUB_SERIAL_HEX], size_t *n);
/* Valid certificate serials of a device or service (owner_column "device_id" or
 * "service_id"), as a malloc'ed array of HUB_SERIAL_HEX strings. */
int hub_db_valid_serials(PGconn *c, const char *owner_column, const char *owner_id,
                         char (**serials)[HUB_SERIAL_HEX], size_t *n);
/* Starts listening for revocations (channel iothub_revocation, payload = serial). */
int hub_db_listen_revocations(PGconn *c);

/* Takes the next cRLNumber of a CA (row-locked until the transaction ends). */
int hub_db_crl_next_number(PGconn *c, int ca_id, uint64_t *number);
/* Records a published CRL. */
int hub_db_crl_insert(PGconn *c, int ca_id, uint64_t number, time_t this_update,
                      time_t next_update, size_t entries, const hub_buf_t *der);
/* Loads the newest CRL of a CA (der may be NULL to skip it). HUB_ENOTFOUND if none. */
int hub_db_crl_latest(PGconn *c, int ca_id, hub_buf_t *der, uint64_t *number,
                      time_t *this_update, time_t *next_update);

#endif
