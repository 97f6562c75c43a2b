#include "db/tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "util/error.h"
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

int hub_db_token_revoke(PGconn *c, const char *token_id, char *name, char *role)
{
    PGresult *admins, *r;
    int rc = hub_db_exec(c, &admins,
                         "SELECT token_id FROM api_tokens WHERE role = 'admin'"
                         " AND revoked_at IS NULL ORDER BY id FOR UPDATE",
                         0, NULL);
    if (rc != 0)
        return rc;
    int active_admins = PQntuples(admins);
    PQclear(admins);
    const char *p[] = {token_id};
    rc = hub_db_exec_row(c, &r,
                         "SELECT name, role, revoked_at IS NOT NULL FROM api_tokens"
                         " WHERE token_id = $1 FOR UPDATE",
                         1, p);
    if (rc != 0)
        return rc;
    snprintf(name, 101, "%s", PQgetvalue(r, 0, 0));
    snprintf(role, 16, "%s", PQgetvalue(r, 0, 1));
    int revoked = PQgetvalue(r, 0, 2)[0] == 't';
    PQclear(r);
    if (revoked)
        return HUB_EEXIST;
    if (strcmp(role, "admin") == 0 && active_admins <= 1)
        return HUB_ERANGE;
    return hub_db_exec(c, NULL, "UPDATE api_tokens SET revoked_at = now() WHERE token_id = $1",
                       1, p);
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
