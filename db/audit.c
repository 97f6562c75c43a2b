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

int hub_db_audit_aggregate(PGconn *c, const char *source, long long minute, unsigned unauthorized,
                           unsigned forbidden, unsigned throttled, unsigned other)
{
    char m[24], n[4][16], key[96];
    unsigned v[4] = {unauthorized, forbidden, throttled, other};
    snprintf(m, sizeof m, "%lld", minute);
    for (int i = 0; i < 4; i++)
        snprintf(n[i], sizeof n[i], "%u", v[i]);
    snprintf(key, sizeof key, "%s@%lld", source, minute);
    const char *p[] = {m, source, n[0], n[1], n[2], n[3], key};
    return hub_db_exec(
        c, NULL,
        "INSERT INTO audit_log (at, actor, role, action, source, result, details, count,"
        " aggregate_key) VALUES (to_timestamp($1::bigint * 60), 'anonymous:-', 'anonymous',"
        " 'auth.refused', $2, 'refused', jsonb_build_object('unauthorized', $3::int,"
        " 'forbidden', $4::int, 'throttled', $5::int, 'other', $6::int),"
        " $3::int + $4::int + $5::int + $6::int, $7)"
        " ON CONFLICT (aggregate_key) WHERE aggregate_key IS NOT NULL DO UPDATE SET"
        " count = audit_log.count + EXCLUDED.count, details = jsonb_build_object("
        "'unauthorized', (audit_log.details->>'unauthorized')::int + $3::int,"
        " 'forbidden', (audit_log.details->>'forbidden')::int + $4::int,"
        " 'throttled', (audit_log.details->>'throttled')::int + $5::int,"
        " 'other', (audit_log.details->>'other')::int + $6::int)",
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
        " 'source', source, 'result', result, 'details', details, 'count', count)"
        " ORDER BY id DESC),"
        " '[]') FROM (SELECT * FROM audit_log WHERE $1::bigint = 0 OR id < $1::bigint"
        " ORDER BY id DESC LIMIT $2) a",
        2, p, out);
}
