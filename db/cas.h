/* Rows of cas: the root and issuing CAs (certificate and sealed key), active or retired by a
 * rotation. Blocking calls on a caller-owned connection, from a command or a worker thread. */
#ifndef HUB_DB_CAS_H
#define HUB_DB_CAS_H

#include <stddef.h>
#include <time.h>

#include <libpq-fe.h>

#include "db/db.h"
#include "util/buf.h"

/* A CA row. The buffers are owned by the struct: release with hub_db_cas_free. */
struct hub_db_ca {
    int id;
    char serial[HUB_SERIAL_HEX];
    char key_type[16];
    hub_buf_t cert_der;
    hub_buf_t key_sealed;
    char key_uri[1024]; /* PKCS#11 URI of a key kept in a token (key_sealed empty), or "" */
};

/* Loads the active CA with role "root" or "issuing". Returns 0 or HUB_ENOTFOUND/HUB_EDB. */
int hub_db_cas_get(PGconn *c, const char *role, struct hub_db_ca *out);
/* Releases the buffers of a CA row (not the struct itself). */
void hub_db_cas_free(struct hub_db_ca *ca);
/* Loads the retired issuing CAs (replaced by a rotation) that have not expired, oldest
 * first: their certificates are still trusted and their CRLs still published. Free each
 * with hub_db_cas_free, then the array. */
int hub_db_cas_list_retired(PGconn *c, struct hub_db_ca **out, size_t *n);
/* Retires the active issuing CA (call in the transaction that creates its successor) and
 * sets *generation to its successor's number (2 at the first rotation). */
int hub_db_cas_retire_issuing(PGconn *c, int *generation);
/* Records a new active CA (key_sealed NULL: an external root); *id_out gets its id. */
int hub_db_cas_insert(PGconn *c, const char *role, const char *subject, const char *key_type,
                      const char *serial, const hub_buf_t *der, const hub_buf_t *key_sealed,
                      time_t not_before, time_t not_after, int *id_out);
/* Records a new active CA whose key lives in a PKCS#11 token named by key_uri (no PIN in
 * it); key_sealed stays NULL. *id_out gets its id. */
int hub_db_cas_insert_token(PGconn *c, const char *role, const char *subject,
                            const char *key_type, const char *serial, const hub_buf_t *der,
                            const char *key_uri, time_t not_before, time_t not_after,
                            int *id_out);
/* Appends the sealed keys of every CA to *list (row-locked; call inside a transaction), as
 * hub_db_query_sealed does. */
int hub_db_cas_list_sealed(PGconn *c, struct hub_db_sealed **list, size_t *n);
/* Replaces the sealed key of the CA ca_id. HUB_ENOTFOUND when there is none. */
int hub_db_cas_set_sealed(PGconn *c, int ca_id, const hub_buf_t *blob);

#endif
