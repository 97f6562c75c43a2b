#include "db/nodes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "util/error.h"

#define LOCK_S "19019" /* HUB_DB_NODE_LOCK */

int hub_db_nodes_register(PGconn *c, const char *name, const char *api_address,
                          const char *mqtt_address, const char *version, int fresh, int *id,
                          int *locked)
{
    const char *p[] = {name, api_address, mqtt_address};
    PGresult *r;
    int rc = hub_db_exec_row(c, &r,
                             "WITH n AS (INSERT INTO nodes (name, api_address, mqtt_address)"
                             " VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET name ="
                             " EXCLUDED.name RETURNING id)"
                             " SELECT id, pg_try_advisory_lock(" LOCK_S ", id) FROM n",
                             3, p);
    if (rc != 0)
        return rc;
    *id = atoi(PQgetvalue(r, 0, 0));
    *locked = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    PQclear(r);
    if (!*locked)
        return 0;
    char ids[16];
    snprintf(ids, sizeof ids, "%d", *id);
    const char *q[] = {ids, api_address, mqtt_address, fresh ? "t" : "f", version};
    rc = hub_db_exec(c, NULL,
                     "UPDATE nodes SET api_address = $2, mqtt_address = $3, heartbeat_at = now(),"
                     " stopped_at = NULL, started_at = CASE WHEN $4::bool THEN now() ELSE"
                     " started_at END, version = left($5, 64) WHERE id = $1::int",
                     5, q);
    if (rc == 0 && fresh)
        rc = hub_db_exec(c, NULL,
                         "UPDATE devices SET connected_node = NULL WHERE connected_node = $1::int",
                         1, q);
    return rc;
}

int hub_db_nodes_heartbeat(PGconn *c, int id, long long connections, long long sessions,
                           int *peers)
{
    char ids[16], conns[24], sess[24], out[24];
    snprintf(ids, sizeof ids, "%d", id);
    snprintf(conns, sizeof conns, "%lld", connections < 0 ? 0 : connections);
    snprintf(sess, sizeof sess, "%lld", sessions < 0 ? 0 : sessions);
    const char *p[] = {ids, conns, sess};
    int rc = hub_db_query_text(c,
                               "UPDATE nodes SET heartbeat_at = now(), connections = least($2::bigint,"
                               " 2147483647), sessions = least($3::bigint, 2147483647) WHERE id ="
                               " $1::int RETURNING (SELECT count(*) FROM nodes WHERE id <> $1::int"
                               " AND stopped_at IS NULL)",
                               3, p, out, sizeof out);
    *peers = rc == 0 ? atoi(out) : 0;
    return rc;
}

int hub_db_nodes_alive(PGconn *c, int id)
{
    char ids[16];
    snprintf(ids, sizeof ids, "%d", id);
    const char *p[] = {ids};
    PGresult *r;
    int rc = hub_db_exec_row(c, &r,
                             "SELECT CASE WHEN pg_try_advisory_lock(" LOCK_S ", $1::int) THEN"
                             " NOT pg_advisory_unlock(" LOCK_S ", $1::int) ELSE true END",
                             1, p);
    if (rc != 0)
        return rc;
    int alive = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return alive;
}

int hub_db_nodes_reap(PGconn *c, int self, char *names, size_t cap, int *n)
{
    char ids[16];
    snprintf(ids, sizeof ids, "%d", self);
    const char *p[] = {ids};
    PGresult *r;
    *n = 0;
    names[0] = 0;
    int rc = hub_db_exec(c, &r,
                         "SELECT id, name FROM nodes WHERE id <> $1::int AND stopped_at IS NULL",
                         1, p);
    if (rc != 0)
        return rc;
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        int id = atoi(PQgetvalue(r, i, 0));
        PGresult *l;
        const char *q[] = {PQgetvalue(r, i, 0)};
        /* Taken only if the node is dead; given back at once below. */
        rc = hub_db_exec_row(c, &l, "SELECT pg_try_advisory_lock(" LOCK_S ", $1::int)", 1, q);
        if (rc != 0)
            break;
        int dead = strcmp(PQgetvalue(l, 0, 0), "t") == 0;
        PQclear(l);
        if (!dead || id == self)
            continue;
        rc = hub_db_exec(c, NULL,
                         "UPDATE devices SET connected_node = NULL WHERE connected_node = $1::int",
                         1, q);
        if (rc == 0)
            rc = hub_db_exec(c, NULL, "UPDATE nodes SET stopped_at = now() WHERE id = $1::int", 1,
                             q);
        hub_db_exec(c, NULL, "SELECT pg_advisory_unlock(" LOCK_S ", $1::int)", 1, q);
        if (rc == 0) {
            size_t used = strlen(names);
            snprintf(names + used, cap - used, "%s%s", used ? ", " : "", PQgetvalue(r, i, 1));
            (*n)++;
        }
    }
    PQclear(r);
    return rc;
}

int hub_db_nodes_alive_name(PGconn *c, const char *name)
{
    const char *p[] = {name};
    PGresult *r;
    int rc = hub_db_exec(c, &r, "SELECT id FROM nodes WHERE name = $1", 1, p);
    if (rc != 0)
        return rc;
    int id = PQntuples(r) == 1 ? atoi(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    return id > 0 ? hub_db_nodes_alive(c, id) : 0;
}

int hub_db_nodes_list(PGconn *c, json_t **out)
{
    /* Alive: the node's advisory lock is held (by its LISTEN connection), in this database
     * (pg_locks lists every database's locks). */
    return hub_db_query_json(
        c,
        "SELECT coalesce(json_agg(json_build_object('name', n.name, 'alive', EXISTS (SELECT 1"
        " FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.classid = " LOCK_S
        " AND l.objid = n.id::oid AND l.objsubid = 2 AND l.database = (SELECT oid FROM"
        " pg_database WHERE datname = current_database())), 'version', n.version,"
        " 'started_at', rfc3339(n.started_at), 'heartbeat_at', rfc3339(n.heartbeat_at),"
        " 'stopped_at', rfc3339(n.stopped_at), 'connections', n.connections, 'sessions',"
        " n.sessions, 'api_address', n.api_address, 'mqtt_address', n.mqtt_address) ORDER BY"
        " n.name), '[]') FROM nodes n",
        0, NULL, out);
}
