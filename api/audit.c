/* The audit log: one row per state-changing request, failures included; refused anonymous
 * calls (no or wrong credentials, throttled) are counted into one row per source address and
 * minute instead (api/throttle.h, api/audit_aggregate.h): guessing writes no row per guess. */
#include "api/audit.h"

#include <stdio.h>
#include <stdlib.h>

#include "api/params.h"
#include "api/reply.h"
#include "api/throttle.h"
#include "api/transaction.h"
#include "db/audit.h"
#include "db/db.h"
#include "util/log.h"

#define AUDIT_WAIT_MS 1000

int hub_api_audit_write(struct hub_req *r, const char *target, const char *details_json)
{
    static const char *const kinds[] = {"anonymous", "token", "device", "product", "service"};
    char result[64];
    if (r->status == 0 || r->status < 400)
        snprintf(result, sizeof result, "ok");
    else
        snprintf(result, sizeof result, "%u %s", r->status, r->error_code ? r->error_code : "");
    const char *role =
        r->who.kind == HUB_WHO_TOKEN ? hub_request_role_name(r->who.role) : kinds[r->who.kind];
    char actor[200];
    snprintf(actor, sizeof actor, "%s:%s", kinds[r->who.kind], r->who.name[0] ? r->who.name : "-");
    int rc =
        hub_db_audit_insert(r->db, actor, role, r->action, target, r->source, result, details_json);
    if (rc == 0)
        r->audited = 1;
    return rc;
}

/* Failed state-changing calls are audited too (outside the failed transaction). */
void hub_api_audit_failure(struct hub_req *r)
{
    if (r->audited || r->status < 400 || r->status == 503)
        return;
    if (r->who.kind == HUB_WHO_ANONYMOUS && (r->mutating || r->status == 401 || r->status == 429)) {
        hub_throttle_audit_count(r->source, r->status); /* the row of its source and minute */
        return;
    }
    if (!r->mutating)
        return;
    /* Refusals decided before any database work (missing or malformed credentials,
     * credentials of another device) are audited too. */
    if (r->db == NULL && hub_db_pool_acquire(r->api->pool, AUDIT_WAIT_MS, &r->db) != 0) {
        r->db = NULL;
        hub_warn("%s %s %u from %s: not audited (no database connection)", r->method, r->path,
                 r->status, r->source);
        return;
    }
    if (PQtransactionStatus(r->db) != PQTRANS_IDLE)
        hub_db_rollback(r->db);
    char target[200];
    snprintf(target, sizeof target, "%s", r->params[0] ? r->params[0] : "");
    hub_api_audit_write(r, target[0] ? target : NULL, NULL);
}

void hub_api_audit_list(struct hub_req *r)
{
    int limit;
    if (hub_params_limit(r, 100, 1000, &limit) != 0)
        return;
    long long before = 0;
    const char *b = hub_request_query(r, "before");
    if (b != NULL) {
        char *end;
        before = strtoll(b, &end, 10);
        if (*b == 0 || *end != 0 || before < 1) {
            hub_reply_error(r, 400, "invalid_parameter", "before must be a positive audit id");
            return;
        }
    }
    PGconn *c = hub_transaction_db(r);
    json_t *list;
    if (c == NULL)
        return;
    int rc = hub_db_audit_list(c, before, limit, &list);
    if (rc != 0) {
        hub_reply_internal(r, rc, "audit listing");
        return;
    }
    json_t *next = hub_reply_next_cursor(list, limit, "id");
    hub_reply_json(r, 200, json_pack("{s:o,s:o?}", "entries", list, "next_before", next));
}
