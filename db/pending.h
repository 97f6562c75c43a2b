/* Rows of pending_keys: the issuing CA and server keys of an external root (sealed, or the
 * issuing key in a PKCS#11 token), with their CSRs, between `iothubd init --external-root`
 * and `iothubd ca import`. Blocking calls on a caller-owned connection, from a command. */
#ifndef HUB_DB_PENDING_H
#define HUB_DB_PENDING_H

#include <stddef.h>

#include <libpq-fe.h>

#include "db/db.h"

#include "util/buf.h"

/* A pending key. The buffers are owned by the struct: release with hub_db_pending_free. */
struct hub_db_pending {
    char key_type[16];
    hub_buf_t key_sealed; /* empty when the key is in a token */
    hub_buf_t csr_der;
    char key_uri[1024]; /* PKCS#11 URI (no PIN) of an issuing key kept in a token, or "" */
};

/* Records (or replaces) the pending key of role "issuing" or "server". */
int hub_db_pending_put(PGconn *c, const char *role, const char *key_type,
                       const hub_buf_t *key_sealed, const hub_buf_t *csr_der);
/* Records (or replaces) the pending issuing key kept in a PKCS#11 token: key_uri (no PIN)
 * instead of a sealed key. */
int hub_db_pending_put_token(PGconn *c, const char *role, const char *key_type, const char *key_uri,
                             const hub_buf_t *csr_der);
/* Loads the pending key of a role into *out (zeroed first). Returns 0, HUB_ENOTFOUND or
 * HUB_EDB. */
int hub_db_pending_get(PGconn *c, const char *role, struct hub_db_pending *out);
/* Deletes the pending key of a role (no error when there is none). */
int hub_db_pending_delete(PGconn *c, const char *role);
/* Appends the sealed pending keys (not those in a token) to *list (row-locked; call inside
 * a transaction) as hub_db_query_sealed does: ca_id 0, role "pending-<role>", serial "<role>". */
int hub_db_pending_list_sealed(PGconn *c, struct hub_db_sealed **list, size_t *n);
/* Replaces the sealed key of the pending role. HUB_ENOTFOUND when there is none. */
int hub_db_pending_set_sealed(PGconn *c, const char *role, const hub_buf_t *blob);
/* Releases the buffers of a pending key (not the struct itself). */
void hub_db_pending_free(struct hub_db_pending *p);

#endif
