#include "db/tokens.h"

#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "util/buf.h"
#include "util/error.h"

int hub_db_tokens_lookup(PGconn *c, const char *token_id, char role[16], char name[128],
                         uint8_t hash[32])
{
    const char *p[] = {token_id};
    PGresult *r;
    int rc = hub_db_exec_row(c, &r,
                             "UPDATE api_tokens SET last_used_at = now() WHERE token_id = $1"
                             " AND revoked_at IS NULL RETURNING role, name, secret_hash",
                             1, p);
    if (rc != 0)
        return rc;
    hub_db_get_text(r, 0, 0, role, 16);
    hub_db_get_text(r, 0, 1, name, 128);
    hub_buf_t h = HUB_BUF_INIT;
    rc = hub_db_get_bytea(r, 0, 2, &h);
    if (rc == 0 && h.len == 32)
        memcpy(hash, h.data, 32);
    else if (rc == 0)
        rc = HUB_EINVAL;
    hub_buf_free(&h);
    PQclear(r);
    return rc;
}

int hub_db_tokens_list(PGconn *c, json_t **out)
{
    return hub_db_query_json(
        c,
        "SELECT coalesce(json_agg(json_build_object('token_id', token_id, 'name', name,"
        " 'role', role, 'created_at', rfc3339(created_at), 'last_used_at',"
        " rfc3339(last_used_at), 'revoked_at', rfc3339(revoked_at)) ORDER BY id), '[]')"
        " FROM api_tokens",
        0, NULL, out);
}

int hub_db_tokens_insert(PGconn *c, const char *token_id, const char *name, const char *role,
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

int hub_db_tokens_count(PGconn *c, const char *role, int *count)
{
    const char *p[] = {role};
    PGresult *r;
    int rc = hub_db_exec(
        c, &r, "SELECT count(*) FROM api_tokens WHERE role = $1 AND revoked_at IS NULL", 1, p);
    if (rc != 0)
        return rc;
    *count = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int hub_db_tokens_revoke(PGconn *c, const char *token_id, char *name, char *role)
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
    hub_db_get_text(r, 0, 0, name, 101);
    hub_db_get_text(r, 0, 1, role, 16);
    int revoked = PQgetvalue(r, 0, 2)[0] == 't';
    PQclear(r);
    if (revoked)
        return HUB_EEXIST;
    if (strcmp(role, "admin") == 0 && active_admins <= 1)
        return HUB_ERANGE;
    return hub_db_exec(c, NULL, "UPDATE api_tokens SET revoked_at = now() WHERE token_id = $1", 1,
                       p);
}
