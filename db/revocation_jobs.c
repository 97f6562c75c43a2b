/* Bulk revocation jobs: see db/revocation_jobs.h. The selection and each chunk are one
 * statement each, so a chunk's revocations, its NOTIFYs and the job's progress commit
 * together; a node that dies mid-job leaves a consistent job another node resumes. */
#include "db/revocation_jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/audit.h"
#include "db/db.h"
#include "util/error.h"

int hub_db_revjobs_missing(PGconn *c, const char *list_json, int by_serial, json_t **out)
{
    const char *p[] = {list_json};
    if (by_serial)
        return hub_db_query_json(c,
                                 "SELECT coalesce(json_agg(x), '[]') FROM json_array_elements_text($1::json) x"
                                 " WHERE NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = x"
                                 " AND c.kind <> 'server')",
                                 1, p, out);
    return hub_db_query_json(c,
                             "SELECT coalesce(json_agg(x), '[]') FROM json_array_elements_text($1::json) x"
                             " WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = x::uuid)",
                             1, p, out);
}

int hub_db_revjobs_product(PGconn *c, const char *product_key, char id[24])
{
    const char *p[] = {product_key};
    return hub_db_query_text(c, "SELECT id FROM products WHERE product_key = $1", 1, p, id, 24);
}

int hub_db_revjobs_ca(PGconn *c, const char *serial, char id[16])
{
    const char *p[] = {serial};
    return hub_db_query_text(c,
                             "SELECT id FROM cas WHERE role = 'issuing' AND (serial = $1"
                             " OR ($1 = 'issuing' AND active)) ORDER BY active DESC LIMIT 1",
                             1, p, id, 16);
}

int hub_db_revjobs_create(PGconn *c, const char *selector_json,
                          const struct hub_db_revjob_sel *sel, int reason,
                          const char *created_by, char id[HUB_REVJOB_ID])
{
    char reason_s[8];
    snprintf(reason_s, sizeof reason_s, "%d", reason);
    const char *p[] = {selector_json,      sel->product_id,     sel->ca_id, sel->issued_after,
                       sel->issued_before, reason_s,            created_by};
    return hub_db_query_text(c,
                             "INSERT INTO revocation_jobs (selector, product_id, ca_id, issued_after,"
                             " issued_before, reason, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                             " RETURNING id",
                             7, p, id, HUB_REVJOB_ID);
}

int hub_db_revjobs_get(PGconn *c, const char *id, json_t **out)
{
    const char *p[] = {id};
    return hub_db_query_json(
        c,
        "SELECT json_build_object('id', id, 'state', state, 'selector', selector,"
        " 'reason', reason, 'total', total, 'done', done, 'skipped', skipped, 'failed', failed,"
        " 'remaining', CASE WHEN selected THEN total - done - skipped - failed END,"
        " 'error', error, 'created_by', created_by, 'created_at', rfc3339(created_at),"
        " 'started_at', rfc3339(started_at), 'finished_at', rfc3339(finished_at))"
        " FROM revocation_jobs WHERE id = $1::uuid",
        1, p, out);
}

int hub_db_revjobs_claim(PGconn *c, int stale_s, struct hub_db_revjob *job)
{
    char stale[16];
    snprintf(stale, sizeof stale, "%d", stale_s);
    const char *p[] = {stale};
    PGresult *r;
    int rc = hub_db_exec_row(
        c, &r,
        "UPDATE revocation_jobs SET state = 'running', heartbeat_at = now(),"
        " started_at = coalesce(started_at, now()) WHERE id = (SELECT id FROM revocation_jobs"
        " WHERE state = 'queued' OR (state = 'running' AND heartbeat_at < now() - $1 * interval"
        " '1 second') ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
        " RETURNING id, reason, selected, selector ? 'device_ids' OR selector ? 'product_key'",
        1, p);
    if (rc != 0)
        return rc;
    hub_db_get_text(r, 0, 0, job->id, sizeof job->id);
    job->reason = atoi(PQgetvalue(r, 0, 1));
    job->selected = PQgetvalue(r, 0, 2)[0] == 't';
    job->mark_devices = PQgetvalue(r, 0, 3)[0] == 't';
    PQclear(r);
    return 0;
}

/* The statements that copy a job's selection into its items: ITEMS_INSERT, the FROM/WHERE
 * of the selection ($1 the job, then its parameters), ITEMS_TOTAL. A product's certificates
 * are looked up device by device (OFFSET 0 keeps the planner from turning the LATERAL into
 * a join that scans every certificate). */
#define ITEMS_INSERT                                                                               \
    "WITH ins AS (INSERT INTO revocation_job_items (job_id, serial) SELECT $1::uuid, c.serial "
#define ITEMS_TOTAL                                                                                \
    " ON CONFLICT DO NOTHING RETURNING 1) UPDATE revocation_jobs SET selected = true,"            \
    " total = (SELECT count(*) FROM ins), heartbeat_at = now() WHERE id = $1 RETURNING total"

int hub_db_revjobs_select(PGconn *c, const char *id, int *total)
{
    const char *p[] = {id};
    PGresult *r, *s = NULL;
    int rc = hub_db_exec_row(c, &r,
                             "SELECT coalesce(selector->'device_ids', selector->'serials')::text,"
                             " selector ? 'serials', product_id, ca_id, issued_after, issued_before"
                             " FROM revocation_jobs WHERE id = $1",
                             1, p);
    if (rc != 0)
        return rc;
    const char *v[6];
    for (int i = 0; i < 6; i++)
        v[i] = PQgetisnull(r, 0, i) ? NULL : PQgetvalue(r, 0, i);
    if (v[0] != NULL && v[1][0] == 'f') {
        const char *q[] = {id, v[0]};
        rc = hub_db_exec_row(c, &s,
                             ITEMS_INSERT "FROM certificates c WHERE c.device_id IN (SELECT x::uuid"
                             " FROM json_array_elements_text($2::json) x) AND c.status = 'valid'"
                             ITEMS_TOTAL,
                             2, q);
    } else if (v[0] != NULL) {
        const char *q[] = {id, v[0]};
        rc = hub_db_exec_row(c, &s,
                             ITEMS_INSERT "FROM certificates c WHERE c.serial IN (SELECT"
                             " json_array_elements_text($2::json)) AND c.status = 'valid'"
                             " AND c.kind <> 'server'" ITEMS_TOTAL,
                             2, q);
    } else if (v[2] != NULL) {
        const char *q[] = {id, v[2], v[4], v[5]};
        rc = hub_db_exec_row(c, &s,
                             ITEMS_INSERT "FROM devices d, LATERAL (SELECT x.serial FROM certificates x"
                             " WHERE x.device_id = d.id AND x.status = 'valid' AND x.created_at >="
                             " coalesce($3, '-infinity'::timestamptz) AND x.created_at <"
                             " coalesce($4, 'infinity'::timestamptz) OFFSET 0) c WHERE d.product_id = $2"
                             ITEMS_TOTAL,
                             4, q);
    } else if (v[3] != NULL) {
        const char *q[] = {id, v[3], v[4], v[5]};
        rc = hub_db_exec_row(c, &s,
                             ITEMS_INSERT "FROM certificates c WHERE c.ca_id = $2 AND c.status = 'valid'"
                             " AND c.kind <> 'server' AND c.created_at >= coalesce($3,"
                             " '-infinity'::timestamptz) AND c.created_at < coalesce($4,"
                             " 'infinity'::timestamptz)" ITEMS_TOTAL,
                             4, q);
    } else {
        rc = HUB_EINVAL;
    }
    PQclear(r);
    if (rc == 0) {
        *total = atoi(PQgetvalue(s, 0, 0));
        PQclear(s);
    }
    return rc;
}

int hub_db_revjobs_chunk(PGconn *c, const struct hub_db_revjob *job, int limit, int *taken,
                         int *revoked)
{
    char reason[8], lim[16];
    snprintf(reason, sizeof reason, "%d", job->reason);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {job->id, reason, job->mark_devices ? "t" : "f", lim};
    PGresult *r;
    int rc = hub_db_exec_row(
        c, &r,
        "WITH batch AS (DELETE FROM revocation_job_items WHERE job_id = $1 AND serial IN (SELECT"
        " serial FROM revocation_job_items WHERE job_id = $1 ORDER BY serial LIMIT $4)"
        " RETURNING serial),"
        " rev AS (UPDATE certificates c SET status = 'revoked', revoked_at = now(),"
        " revocation_reason = $2 FROM batch WHERE c.serial = batch.serial AND c.status = 'valid'"
        " RETURNING c.serial, c.device_id),"
        " dev AS (UPDATE devices d SET status = 'revoked' FROM rev WHERE $3::boolean AND d.id ="
        " rev.device_id AND d.status <> 'revoked' RETURNING d.id),"
        " job AS (UPDATE revocation_jobs SET done = done + (SELECT count(*) FROM rev), skipped ="
        " skipped + (SELECT count(*) FROM batch) - (SELECT count(*) FROM rev), heartbeat_at ="
        " now() WHERE id = $1 RETURNING 1)"
        " SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM rev),"
        " (SELECT count(pg_notify('iothub_revocation', serial)) FROM rev),"
        " (SELECT count(pg_notify('iothub_revocation', 'device:' || id)) FROM dev),"
        " (SELECT count(*) FROM job)",
        4, p);
    if (rc != 0)
        return rc;
    *taken = atoi(PQgetvalue(r, 0, 0));
    *revoked = atoi(PQgetvalue(r, 0, 1));
    PQclear(r);
    return 0;
}

int hub_db_revjobs_finish(PGconn *c, const char *id, const char *error)
{
    const char *p[] = {id, error};
    PGresult *r;
    int rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_exec_row(
            c, &r,
            "WITH rest AS (DELETE FROM revocation_job_items WHERE job_id = $1 RETURNING 1)"
            " UPDATE revocation_jobs SET state = CASE WHEN $2::text IS NULL THEN 'done' ELSE"
            " 'failed' END, error = $2, failed = failed + (SELECT count(*) FROM rest),"
            " finished_at = now() WHERE id = $1 RETURNING json_build_object('total', total,"
            " 'done', done, 'skipped', skipped, 'failed', failed, 'error', error)::text",
            2, p);
    if (rc == 0) {
        rc = hub_db_audit_insert(c, "iothubd:revocations", "system",
                                 error == NULL ? "revocation.complete" : "revocation.fail", id,
                                 NULL, error == NULL ? "ok" : "failed", PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    if (rc == 0)
        rc = hub_db_commit(c);
    if (rc != 0)
        hub_db_rollback(c);
    return rc;
}
