#include "db/devices.h"

#include <stdio.h>

#define DEVICE_JSON                                                                                \
    "json_build_object('device_id', d.id, 'product_key', p.product_key,"                           \
    " 'serial_number', d.serial_number, 'status', d.status, 'connected', false,"                   \
    " 'device_ca_id', d.device_ca_id,"                                                             \
    " 'created_at', rfc3339(d.created_at), 'activated_at', rfc3339(d.activated_at),"               \
    " 'last_seen', rfc3339(d.last_seen),"                                                        \
    " 'node', (SELECT n.name FROM nodes n WHERE n.id = d.connected_node)"

/* Tags, reported firmware version and the device's latest rollout row (db/rollouts.c). */
#define DEVICE_ROLLOUT_JSON                                                                        \
    ", 'tags', to_json(d.tags), 'firmware_version', d.firmware_version, 'rollout', (SELECT"        \
    " json_build_object('rollout_id', x.rollout_id, 'rollout_state', r.state, 'wave', x.wave,"     \
    " 'state', x.state, 'reason', x.reason, 'progress', x.progress, 'version', f.version,"         \
    " 'updated_at', rfc3339(x.updated_at)) FROM rollout_devices x JOIN rollouts r ON"              \
    " r.id = x.rollout_id JOIN firmware f ON f.id = r.firmware_id WHERE x.device_id = d.id"        \
    " ORDER BY x.updated_at DESC LIMIT 1)"

int hub_db_devices_secret(PGconn *c, const char *device_id, struct hub_db_secret *out)
{
    return hub_db_query_secret(c,
                               "SELECT 0, d.secret_hash, d.status, p.product_key FROM devices d"
                               " JOIN products p ON p.id = d.product_id WHERE d.id = $1::uuid",
                               device_id, out);
}

int hub_db_devices_insert(PGconn *c, long long product_id, const char *serial,
                          const char *secret_hash, char device_id[37])
{
    char pid[24];
    snprintf(pid, sizeof pid, "%lld", product_id);
    const char *p[] = {pid, serial, secret_hash};
    return hub_db_query_text(c,
                             "INSERT INTO devices (product_id, serial_number, secret_hash)"
                             " VALUES ($1, $2, $3) RETURNING id",
                             3, p, device_id, 37);
}

int hub_db_devices_get(PGconn *c, const char *device_id, json_t **out)
{
    const char *p[] = {device_id};
    return hub_db_query_json(c,
                             "SELECT " DEVICE_JSON ", 'certificates', (SELECT coalesce(json_agg("
                             "certificate_json(x, false) ORDER BY x.created_at DESC), '[]')"
                             " FROM certificates x WHERE x.device_id = d.id)" DEVICE_ROLLOUT_JSON ")"
                             " FROM devices d JOIN products p ON p.id = d.product_id"
                             " WHERE d.id = $1::uuid",
                             1, p, out);
}

int hub_db_devices_list(PGconn *c, const char *after, int limit, json_t **out)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {after, lim};
    return hub_db_query_json(
        c,
        "SELECT coalesce(json_agg(j ORDER BY id), '[]') FROM (SELECT d.id, " DEVICE_JSON
        ") AS j FROM devices d JOIN products p ON p.id = d.product_id"
        " WHERE $1::uuid IS NULL OR d.id > $1::uuid ORDER BY d.id LIMIT $2) s",
        2, p, out);
}

int hub_db_devices_set_status(PGconn *c, const char *device_id, const char *status)
{
    const char *p[] = {device_id, status};
    return hub_db_exec_one(c,
                           "UPDATE devices SET status = $2, activated_at = CASE WHEN $2 = 'active'"
                           " THEN now() ELSE activated_at END WHERE id = $1::uuid",
                           2, p);
}

int hub_db_devices_set_secret(PGconn *c, const char *device_id, const char *secret_hash)
{
    const char *p[] = {device_id, secret_hash};
    return hub_db_exec_one(c,
                           "UPDATE devices SET secret_hash = $2, status = 'provisioned',"
                           " activated_at = NULL WHERE id = $1::uuid",
                           2, p);
}

int hub_db_devices_lock(PGconn *c, const char *device_id, char status[16])
{
    const char *p[] = {device_id};
    return hub_db_query_text(c, "SELECT status FROM devices WHERE id = $1::uuid FOR UPDATE", 1, p,
                             status, 16);
}

int hub_db_devices_mark_seen(PGconn *c, const char *ids_json)
{
    const char *p[] = {ids_json};
    return hub_db_exec(c, NULL,
                       "UPDATE devices SET last_seen = now() WHERE id = ANY"
                       " (ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::uuid))",
                       1, p);
}

/* Several nodes (migration 019): which node holds each device's connection. */
int hub_db_devices_mark_presence(PGconn *c, int node, const char *on_json, const char *off_json)
{
    char ids[16];
    snprintf(ids, sizeof ids, "%d", node);
    const char *p[] = {ids, on_json, off_json};
    int rc = hub_db_exec(c, NULL,
                         "UPDATE devices SET last_seen = now(), connected_node ="
                         " COALESCE(NULLIF($1::int, 0), connected_node) WHERE id = ANY"
                         " (ARRAY(SELECT jsonb_array_elements_text($2::jsonb)::uuid))",
                         2, p);
    if (rc == 0)
        rc = hub_db_exec(c, NULL,
                         "UPDATE devices SET last_seen = now(), connected_node = CASE WHEN"
                         " connected_node = $1::int THEN NULL ELSE connected_node END WHERE id ="
                         " ANY (ARRAY(SELECT jsonb_array_elements_text($2::jsonb)::uuid))",
                         2, (const char *[]){ids, off_json});
    return rc;
}

int hub_db_devices_connected_node(PGconn *c, const char *device_id, char *name, size_t cap)
{
    const char *p[] = {device_id};
    return hub_db_query_text(c,
                             "SELECT n.name FROM devices d JOIN nodes n ON n.id = d.connected_node"
                             " WHERE d.id = $1::uuid",
                             1, p, name, cap);
}

int hub_db_devices_set_tags(PGconn *c, const char *device_id, const char *tags_json,
                            json_t **previous)
{
    const char *p[] = {device_id, tags_json};
    return hub_db_query_json(c,
                             "UPDATE devices d SET tags = ARRAY(SELECT jsonb_array_elements_text("
                             "$2::jsonb)) FROM devices o WHERE d.id = $1::uuid AND o.id = d.id"
                             " RETURNING to_json(o.tags)",
                             2, p, previous);
}

int hub_db_devices_set_firmware_versions(PGconn *c, const char *versions_json)
{
    const char *p[] = {versions_json};
    return hub_db_exec(c, NULL,
                       "UPDATE devices d SET firmware_version = j.version FROM"
                       " jsonb_to_recordset($1::jsonb) AS j(device_id uuid, version text)"
                       " WHERE d.id = ANY (ARRAY(SELECT (e->>'device_id')::uuid FROM"
                       " jsonb_array_elements($1::jsonb) e)) AND d.id = j.device_id"
                       " AND d.firmware_version IS DISTINCT FROM j.version",
                       1, p);
}
