#include "db/pending.h"

#include <string.h>

#include "db/db.h"
#include "util/error.h"

int hub_db_pending_put(PGconn *c, const char *role, const char *key_type,
                       const hub_buf_t *key_sealed, const hub_buf_t *csr_der)
{
    hub_buf_t key_hex = HUB_BUF_INIT, csr_hex = HUB_BUF_INIT;
    int rc = hub_db_bytea_param(key_sealed->data, key_sealed->len, &key_hex);
    if (rc == 0)
        rc = hub_db_bytea_param(csr_der->data, csr_der->len, &csr_hex);
    if (rc == 0) {
        const char *p[] = {role, key_type, (char *)key_hex.data, (char *)csr_hex.data};
        rc = hub_db_exec(c, NULL,
                         "INSERT INTO pending_keys (role, key_type, key_sealed, csr_der)"
                         " VALUES ($1, $2, $3, $4) ON CONFLICT (role) DO UPDATE SET"
                         " key_type = EXCLUDED.key_type, key_sealed = EXCLUDED.key_sealed,"
                         " key_uri = NULL, csr_der = EXCLUDED.csr_der, created_at = now()",
                         4, p);
    }
    hub_buf_free(&key_hex);
    hub_buf_free(&csr_hex);
    return rc;
}

int hub_db_pending_put_token(PGconn *c, const char *role, const char *key_type, const char *key_uri,
                             const hub_buf_t *csr_der)
{
    hub_buf_t csr_hex = HUB_BUF_INIT;
    int rc = hub_db_bytea_param(csr_der->data, csr_der->len, &csr_hex);
    if (rc == 0) {
        const char *p[] = {role, key_type, key_uri, (char *)csr_hex.data};
        rc = hub_db_exec(c, NULL,
                         "INSERT INTO pending_keys (role, key_type, key_uri, csr_der)"
                         " VALUES ($1, $2, $3, $4) ON CONFLICT (role) DO UPDATE SET"
                         " key_type = EXCLUDED.key_type, key_sealed = NULL,"
                         " key_uri = EXCLUDED.key_uri, csr_der = EXCLUDED.csr_der,"
                         " created_at = now()",
                         4, p);
    }
    hub_buf_free(&csr_hex);
    return rc;
}

int hub_db_pending_get(PGconn *c, const char *role, struct hub_db_pending *out)
{
    memset(out, 0, sizeof *out);
    const char *p[] = {role};
    PGresult *r;
    int rc = hub_db_exec_row(c, &r,
                             "SELECT key_type, key_sealed, csr_der, key_uri FROM pending_keys"
                             " WHERE role = $1",
                             1, p);
    if (rc != 0)
        return rc;
    hub_db_get_text(r, 0, 0, out->key_type, sizeof out->key_type);
    rc = hub_db_get_bytea(r, 0, 1, &out->key_sealed);
    if (rc == 0)
        rc = hub_db_get_bytea(r, 0, 2, &out->csr_der);
    if (rc == 0)
        hub_db_get_text(r, 0, 3, out->key_uri, sizeof out->key_uri);
    PQclear(r);
    if (rc != 0)
        hub_db_pending_free(out);
    return rc;
}

int hub_db_pending_delete(PGconn *c, const char *role)
{
    const char *p[] = {role};
    return hub_db_exec(c, NULL, "DELETE FROM pending_keys WHERE role = $1", 1, p);
}

int hub_db_pending_list_sealed(PGconn *c, struct hub_db_sealed **list, size_t *n)
{
    return hub_db_query_sealed(c,
                               "SELECT 0, 'pending-' || role, role, key_sealed FROM pending_keys"
                               " WHERE key_sealed IS NOT NULL ORDER BY role FOR UPDATE",
                               list, n);
}

int hub_db_pending_set_sealed(PGconn *c, const char *role, const hub_buf_t *blob)
{
    hub_buf_t hex = HUB_BUF_INIT;
    char back[16];
    int rc = hub_db_bytea_param(blob->data, blob->len, &hex);
    if (rc == 0) {
        const char *p[] = {(char *)hex.data, role};
        rc = hub_db_query_text(c,
                               "UPDATE pending_keys SET key_sealed = $1 WHERE role = $2"
                               " RETURNING role",
                               2, p, back, sizeof back);
    }
    hub_buf_free(&hex);
    return rc;
}

void hub_db_pending_free(struct hub_db_pending *p)
{
    hub_buf_free(&p->key_sealed);
    hub_buf_free(&p->csr_der);
}
