#include "db/tokens.h"

#include <stdlib.h>

#include "db/db.h"
#include "util/buf.h"

int hub_db_token_insert(PGconn *c, const char *token_id, const char *name, const char *role,
                        const uint8_t secret_hash[32])
{
    hub_buf_t hash_hex = HUB_BUF_INIT;
    int rc = hub_db_bytea_param(secret_hash, 32, &hash_hex);
    if (rc == 0) {
        const char *p[] = {token_id, name, role, (char *)hash_hex.data};
        rc = hub_db_exec(c, NULL,
                         "INSERT INTO api_tokens (token_id, name, role, secret_hash)"
                         " VALUES ($1, $2, $3, $4)",
                         4, p);
    }
    hub_buf_free(&hash_hex);
    return rc;
}

int hub_db_token_count(PGconn *c, const char *role, int *count)
{
    const char *p[] = {role};
    PGresult *r;
    int rc = hub_db_exec(c, &r,
                         "SELECT count(*) FROM api_tokens WHERE role = $1 AND revoked_at IS NULL",
                         1, p);
    if (rc != 0)
        return rc;
    *count = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int hub_db_audit(PGconn *c, const char *actor, const char *role, const char *action,
                 const char *target, const char *source, const char *result,
                 const char *details)
{
    const char *p[] = {actor, role, action, target, source, result, details};
    return hub_db_exec(c, NULL,
                       "INSERT INTO audit_log (actor, role, action, target, source, result,"
                       " details) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
                       7, p);
}
