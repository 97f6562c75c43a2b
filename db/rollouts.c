#include "db/rollouts.h"

#include <stdio.h>
#include <stdlib.h>

#include "db/db.h"
#include "util/error.h"

/* The target's devices: $1 product id, $2 the device ids (JSON array) or the tag. */
#define T_PRODUCT "d.product_id = $1 AND d.status <> 'revoked'"
#define T_DEVICES                                                                                  \
    "d.id = ANY (ARRAY(SELECT jsonb_array_elements_text($2::jsonb)::uuid))"                        \
    " AND d.product_id = $1 AND d.status <> 'revoked'"
#define T_TAG "d.tags @> ARRAY[$2::text] AND d.product_id = $1 AND d.status <> 'revoked'"

#define FINAL "('installed', 'failed', 'rolled_back', 'skipped')"

#define ROLLOUT_JSON                                                                               \
    "json_build_object('rollout_id', r.id, 'firmware_id', r.firmware_id, 'version', f.version,"    \
    " 'product_key', p.product_key, 'target', r.target, 'waves', r.waves,"                         \
    " 'wave_count', r.wave_count, 'wave_pause_s', r.wave_pause_s,"                                 \
    " 'wave_timeout_s', r.wave_timeout_s, 'failure_threshold',"                                    \
    " coalesce(to_json(r.failure_count), to_json(r.failure_percent || '%')),"                      \
    " 'state', r.state, 'reason', r.reason, 'current_wave', r.current_wave,"                       \
    " 'device_count', r.total, 'created_by', r.created_by, 'created_at', rfc3339(r.created_at),"        \
    " 'updated_at', rfc3339(r.updated_at)"

static void lltoa(long long v, char *buf, size_t n)
{
    snprintf(buf, n, "%lld", v);
}

static int count_of(PGconn *c, const char *sql, int n, const char *const *p, long long *out)
{
    char text[24];
    int rc = hub_db_query_text(c, sql, n, p, text, sizeof text);
    if (rc == 0)
        *out = strtoll(text, NULL, 10);
    return rc;
}

int hub_db_rollouts_firmware(PGconn *c, const char *firmware_id, long long *product_id,
                             char status[16])
{
    const char *p[] = {firmware_id};
    PGresult *res;
    int rc = hub_db_exec_row(c, &res, "SELECT product_id, status FROM firmware WHERE id = $1::uuid",
                             1, p);
    if (rc != 0)
        return rc;
    *product_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    hub_db_get_text(res, 0, 1, status, 16);
    PQclear(res);
    return 0;
}

int hub_db_rollouts_target_count(PGconn *c, long long product_id, enum hub_rollout_target kind,
                                 const char *value, long long *n)
{
    char pid[24];
    lltoa(product_id, pid, sizeof pid);
    const char *p[] = {pid, value};
    switch (kind) {
    case HUB_TARGET_DEVICES:
        return count_of(c, "SELECT count(*) FROM devices d WHERE " T_DEVICES, 2, p, n);
    case HUB_TARGET_TAG:
        return count_of(c, "SELECT count(*) FROM devices d WHERE " T_TAG, 2, p, n);
    default:
        return count_of(c, "SELECT count(*) FROM devices d WHERE " T_PRODUCT, 1, p, n);
    }
}

int hub_db_rollouts_target_busy(PGconn *c, long long product_id, enum hub_rollout_target kind,
                                const char *value, char device_id[37], char rollout_id[37])
{
    char pid[24];
    lltoa(product_id, pid, sizeof pid);
    const char *p[] = {pid, value};
    PGresult *res;
    int rc;
    switch (kind) {
    case HUB_TARGET_DEVICES:
        rc = hub_db_exec_row(c, &res,
                             "SELECT x.device_id, x.rollout_id FROM rollout_devices x"
                             " JOIN devices d ON d.id = x.device_id WHERE x.active AND " T_DEVICES
                             " LIMIT 1",
                             2, p);
        break;
    case HUB_TARGET_TAG:
        rc = hub_db_exec_row(c, &res,
                             "SELECT x.device_id, x.rollout_id FROM rollout_devices x"
                             " JOIN devices d ON d.id = x.device_id WHERE x.active AND " T_TAG
                             " LIMIT 1",
                             2, p);
        break;
    default:
        rc = hub_db_exec_row(c, &res,
                             "SELECT x.device_id, x.rollout_id FROM rollout_devices x"
                             " JOIN devices d ON d.id = x.device_id WHERE x.active AND " T_PRODUCT
                             " LIMIT 1",
                             1, p);
    }
    if (rc != 0)
        return rc;
    hub_db_get_text(res, 0, 0, device_id, 37);
    hub_db_get_text(res, 0, 1, rollout_id, 37);
    PQclear(res);
    return 0;
}

int hub_db_rollouts_insert(PGconn *c, const char *firmware_id, const char *target_json,
                           const char *waves_json, int wave_count, int wave_pause_s,
                           int wave_timeout_s, int failure_count, int failure_percent,
                           const char *created_by, char id[37])
{
    char wc[16], wp[16], wt[16], fc[16], fp[16];
    snprintf(wc, sizeof wc, "%d", wave_count);
    snprintf(wp, sizeof wp, "%d", wave_pause_s);
    snprintf(wt, sizeof wt, "%d", wave_timeout_s);
    snprintf(fc, sizeof fc, "%d", failure_count);
    snprintf(fp, sizeof fp, "%d", failure_percent);
    const char *p[] = {firmware_id, target_json, waves_json, wc, wp, wt,
                       failure_count ? fc : NULL, failure_percent ? fp : NULL, created_by};
    return hub_db_query_text(c,
                             "INSERT INTO rollouts (firmware_id, target, waves, wave_count,"
                             " wave_pause_s, wave_timeout_s, failure_count, failure_percent,"
                             " created_by) VALUES ($1::uuid, $2::jsonb, $3::jsonb, $4, $5, $6,"
                             " $7, $8, $9) RETURNING id",
                             9, p, id, 37);
}

int hub_db_rollouts_materialize(PGconn *c, const char *id, long long product_id,
                                enum hub_rollout_target kind, const char *value,
                                const char *bounds_text, long long *n)
{
    char pid[24];
    lltoa(product_id, pid, sizeof pid);
    const char *p[] = {pid, value, id, bounds_text};
    PGresult *res;
    int rc;
    /* The wave of the rn-th device: how many wave ends lie before it. */
    switch (kind) {
    case HUB_TARGET_DEVICES:
        rc = hub_db_exec(c, &res,
                         "INSERT INTO rollout_devices (rollout_id, device_id, wave)"
                         " SELECT $3::uuid, s.id, (SELECT count(*) FROM unnest($4::int[]) b"
                         " WHERE b < s.rn) FROM (SELECT d.id, row_number() OVER (ORDER BY d.id)"
                         " AS rn FROM devices d WHERE " T_DEVICES ") s",
                         4, p);
        break;
    case HUB_TARGET_TAG:
        rc = hub_db_exec(c, &res,
                         "INSERT INTO rollout_devices (rollout_id, device_id, wave)"
                         " SELECT $3::uuid, s.id, (SELECT count(*) FROM unnest($4::int[]) b"
                         " WHERE b < s.rn) FROM (SELECT d.id, row_number() OVER (ORDER BY d.id)"
                         " AS rn FROM devices d WHERE " T_TAG ") s",
                         4, p);
        break;
    default:
        rc = hub_db_exec(c, &res,
                         "INSERT INTO rollout_devices (rollout_id, device_id, wave)"
                         " SELECT $3::uuid, s.id, (SELECT count(*) FROM unnest($4::int[]) b"
                         " WHERE b < s.rn) FROM (SELECT d.id, row_number() OVER (ORDER BY d.id)"
                         " AS rn FROM devices d WHERE " T_PRODUCT " AND $2::text IS NULL) s",
                         4, p);
    }
    if (rc != 0)
        return rc;
    *n = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    char total[24];
    lltoa(*n, total, sizeof total);
    const char *q[] = {id, total};
    return hub_db_exec_one(c, "UPDATE rollouts SET total = $2 WHERE id = $1::uuid", 2, q);
}

int hub_db_rollouts_list(PGconn *c, const char *before, int limit, json_t **out)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {before, lim};
    return hub_db_query_json(
        c,
        "SELECT coalesce(json_agg(j ORDER BY created_at DESC, id DESC), '[]') FROM (SELECT r.id,"
        " r.created_at, " ROLLOUT_JSON ") AS j FROM rollouts r"
        " JOIN firmware f ON f.id = r.firmware_id JOIN products p ON p.id = f.product_id"
        " WHERE $1::uuid IS NULL OR (r.created_at, r.id) < (SELECT created_at, id FROM rollouts"
        " WHERE id = $1::uuid) ORDER BY r.created_at DESC, r.id DESC LIMIT $2) s",
        2, p, out);
}

int hub_db_rollouts_get(PGconn *c, const char *id, json_t **out)
{
    const char *p[] = {id};
    return hub_db_query_json(
        c,
        "SELECT " ROLLOUT_JSON ", 'counts', (SELECT coalesce(json_object_agg(state, n), '{}')"
        " FROM (SELECT state, count(*) AS n FROM rollout_devices WHERE rollout_id = r.id"
        " GROUP BY state) s), 'per_wave', (SELECT coalesce(json_agg(json_build_object('wave',"
        " wave, 'devices', n, 'counts', counts) ORDER BY wave), '[]') FROM (SELECT wave,"
        " sum(n) AS n, json_object_agg(state, n) AS counts FROM (SELECT wave, state,"
        " count(*) AS n FROM rollout_devices WHERE rollout_id = r.id GROUP BY wave, state) w"
        " GROUP BY wave) v)) FROM rollouts r JOIN firmware f ON f.id = r.firmware_id"
        " JOIN products p ON p.id = f.product_id WHERE r.id = $1::uuid",
        1, p, out);
}

int hub_db_rollouts_devices(PGconn *c, const char *id, const char *after, const char *state,
                            int limit, json_t **out)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {id, after, state, lim};
    return hub_db_query_json(
        c,
        "SELECT coalesce(json_agg(json_build_object('device_id', device_id, 'wave', wave,"
        " 'state', state, 'reason', reason, 'progress', progress, 'updated_at',"
        " rfc3339(updated_at)) ORDER BY device_id), '[]') FROM (SELECT * FROM rollout_devices"
        " WHERE rollout_id = $1::uuid AND ($2::uuid IS NULL OR device_id > $2::uuid)"
        " AND ($3::text IS NULL OR state = $3) ORDER BY device_id LIMIT $4) x",
        4, p, out);
}

int hub_db_rollouts_lock(PGconn *c, const char *id, char state[16])
{
    const char *p[] = {id};
    return hub_db_query_text(c, "SELECT state FROM rollouts WHERE id = $1::uuid FOR UPDATE", 1, p,
                             state, 16);
}

int hub_db_rollouts_set_state(PGconn *c, const char *id, const char *state)
{
    const char *p[] = {id, state};
    return hub_db_exec_one(c,
                           "UPDATE rollouts SET state = $2, updated_at = now(), generation ="
                           " generation + CASE WHEN $2 = 'running' THEN 1 ELSE 0 END"
                           " WHERE id = $1::uuid",
                           2, p);
}

int hub_db_rollouts_finish(PGconn *c, const char *id, const char *state, const char *reason)
{
    const char *p[] = {id, state, reason};
    int rc = hub_db_exec_one(c,
                             "UPDATE rollouts SET state = $2, reason = $3, updated_at = now()"
                             " WHERE id = $1::uuid",
                             3, p);
    if (rc == 0)
        rc = hub_db_exec(c, NULL,
                         "UPDATE rollout_devices SET active = false, state = CASE WHEN $2 ="
                         " 'cancelled' AND state IN ('pending', 'notified') THEN 'skipped'"
                         " ELSE state END, reason = CASE WHEN $2 = 'cancelled' AND state IN"
                         " ('pending', 'notified') THEN 'rollout cancelled' ELSE reason END"
                         " WHERE rollout_id = $1::uuid AND active",
                         2, p);
    return rc;
}

int hub_db_rollouts_active(PGconn *c, json_t **out)
{
    return hub_db_query_json(c,
                             "SELECT coalesce(json_agg(json_build_object('rollout_id', id, 'state',"
                             " state, 'current_wave', current_wave, 'generation', generation)),"
                             " '[]') FROM rollouts WHERE state IN ('running', 'paused')",
                             0, NULL, out);
}

int hub_db_rollouts_progress(PGconn *c, const char *id, json_t **out)
{
    const char *p[] = {id};
    return hub_db_query_json(
        c,
        "SELECT json_build_object('current_wave', r.current_wave, 'wave_count', r.wave_count,"
        " 'failure_count', r.failure_count, 'failure_percent', r.failure_percent,"
        " 'settled', r.wave_settled_at IS NOT NULL, 'timed_out', now() >= r.wave_started_at +"
        " r.wave_timeout_s * interval '1 second', 'pause_over', r.wave_settled_at IS NOT NULL"
        " AND now() >= r.wave_settled_at + r.wave_pause_s * interval '1 second',"
        " 'failures', (SELECT count(*) FROM rollout_devices x WHERE x.rollout_id = r.id"
        " AND x.state IN ('failed', 'rolled_back')), 'started', (SELECT count(*) FROM"
        " rollout_devices x WHERE x.rollout_id = r.id AND x.wave <= r.current_wave),"
        " 'open', (SELECT count(*) FROM rollout_devices x WHERE x.rollout_id = r.id"
        " AND x.wave = r.current_wave AND x.state NOT IN " FINAL "))"
        " FROM rollouts r WHERE r.id = $1::uuid AND r.state = 'running' FOR UPDATE SKIP LOCKED",
        1, p, out);
}

int hub_db_rollouts_settle(PGconn *c, const char *id)
{
    const char *p[] = {id};
    return hub_db_exec_one(c,
                           "UPDATE rollouts SET wave_settled_at = now(), updated_at = now()"
                           " WHERE id = $1::uuid",
                           1, p);
}

int hub_db_rollouts_next_wave(PGconn *c, const char *id)
{
    const char *p[] = {id};
    return hub_db_exec_one(c,
                           "UPDATE rollouts SET current_wave = current_wave + 1, wave_started_at"
                           " = now(), wave_settled_at = NULL, updated_at = now()"
                           " WHERE id = $1::uuid",
                           1, p);
}

int hub_db_rollouts_notice(PGconn *c, const char *id, json_t **out)
{
    const char *p[] = {id};
    return hub_db_query_json(
        c,
        "SELECT json_build_object('rollout_id', r.id, 'firmware_id', f.id, 'version', f.version,"
        " 'size', f.size, 'sha256', encode(f.sha256, 'hex'), 'signature',"
        " translate(encode(f.signature, 'base64'), E'\\n', ''), 'signer', s.fingerprint,"
        " 'hardware', to_json(f.hardware), 'min_version', f.min_version) FROM rollouts r"
        " JOIN firmware f ON f.id = r.firmware_id JOIN firmware_signers s ON s.id = f.signer_id"
        " WHERE r.id = $1::uuid",
        1, p, out);
}

int hub_db_rollouts_to_notify(PGconn *c, const char *id, int from_wave, int to_wave,
                              int with_notified, const char *after, int limit, json_t **out)
{
    char fw[16], tw[16], wn[4], lim[16];
    snprintf(fw, sizeof fw, "%d", from_wave);
    snprintf(tw, sizeof tw, "%d", to_wave);
    snprintf(wn, sizeof wn, "%s", with_notified ? "t" : "f");
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {id, fw, tw, wn, after, lim};
    return hub_db_query_json(
        c,
        "SELECT coalesce(json_agg(device_id ORDER BY device_id), '[]') FROM (SELECT device_id"
        " FROM rollout_devices WHERE rollout_id = $1::uuid AND wave BETWEEN $2 AND $3"
        " AND (state = 'pending' OR ($4::bool AND state = 'notified'))"
        " AND ($5::uuid IS NULL OR device_id > $5::uuid) ORDER BY device_id LIMIT $6) x",
        6, p, out);
}

int hub_db_rollouts_for_devices(PGconn *c, const char *ids_json, json_t **out)
{
    const char *p[] = {ids_json};
    return hub_db_query_json(
        c,
        "SELECT coalesce(json_agg(json_build_object('rollout_id', x.rollout_id, 'device_id',"
        " x.device_id)), '[]') FROM rollout_devices x JOIN rollouts r ON r.id = x.rollout_id"
        " WHERE x.device_id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::uuid))"
        " AND x.active AND r.state = 'running' AND x.wave <= r.current_wave"
        " AND x.state IN ('pending', 'notified')",
        1, p, out);
}

int hub_db_rollouts_mark_notified(PGconn *c, const char *pairs_json)
{
    const char *p[] = {pairs_json};
    return hub_db_exec(c, NULL,
                       "UPDATE rollout_devices x SET state = 'notified', updated_at = now()"
                       " FROM jsonb_to_recordset($1::jsonb) AS j(rollout_id uuid, device_id uuid)"
                       " WHERE x.rollout_id = j.rollout_id AND x.device_id = j.device_id"
                       " AND x.state = 'pending'",
                       1, p);
}

int hub_db_rollouts_report(PGconn *c, const char *reports_json, long long *n)
{
    const char *p[] = {reports_json};
    PGresult *res;
    int rc = hub_db_exec(c, &res,
                         "UPDATE rollout_devices x SET state = j.state, reason = j.reason,"
                         " progress = j.progress, updated_at = now()"
                         " FROM jsonb_to_recordset($1::jsonb) AS j(rollout_id uuid, device_id uuid,"
                         " state text, reason text, progress bigint)"
                         " WHERE x.rollout_id = j.rollout_id AND x.device_id = j.device_id"
                         " AND x.state NOT IN " FINAL,
                         1, p);
    if (rc != 0)
        return rc;
    *n = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}

int hub_db_rollouts_metrics(PGconn *c, int limit, json_t **out)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {lim};
    return hub_db_query_json(
        c,
        "SELECT coalesce(json_agg(json_build_object('rollout_id', r.id, 'state', r.state,"
        " 'counts', (SELECT coalesce(json_object_agg(state, n), '{}') FROM (SELECT state,"
        " count(*) AS n FROM rollout_devices x WHERE x.rollout_id = r.id GROUP BY state) s))),"
        " '[]') FROM (SELECT id, state FROM rollouts ORDER BY state IN ('running', 'paused')"
        " DESC, created_at DESC LIMIT $1) r",
        1, p, out);
}
