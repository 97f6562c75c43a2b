#include "db/audit.h"

#include <stdio.h>

#include "db/db.h"

int hub_db_audit_insert(PGconn *c, const char *actor, const char *role, const char *action,
                        const char *target, const char *source, const char *result,
                        const char *details)
{
    const char *p[] = {actor, role, action, target, source, result, details};
    return hub_db_exec(c, NULL,
                       "INSERT INTO audit_log (actor, role, action, target, source, result,"
                       " details) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
                       7, p);
}

int hub_db_audit_list(PGconn *c, long long before, int limit, json_t **out)
{
    char b[24], lim[16];
    snprintf(b, sizeof b, "%lld", before);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {b, lim};
    return hub_db_query_json(
        c,
        "SELECT coalesce(json_agg(json_build_object('id', id, 'at', rfc3339(at),"
        " 'actor', actor, 'role', role, 'action', action, 'target', target,"
        " 'source', source, 'result', result, 'details', details) ORDER BY id DESC),"
        " '[]') FROM (SELECT * FROM audit_log WHERE $1::bigint = 0 OR id < $1::bigint"
        " ORDER BY id DESC LIMIT $2) a",
        2, p, out);
}
