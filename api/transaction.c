/* The database side of a request: its pooled connection and the commit of its transaction. */
#include "api/transaction.h"

#include "api/metrics.h"
#include "api/reply.h"
#include "db/db.h"
#include "util/error.h"

#define DB_WAIT_MS 5000

PGconn *hub_transaction_db(struct hub_req *r)
{
    if (r->db != NULL)
        return r->db;
    int rc = hub_db_pool_acquire(r->api->pool, DB_WAIT_MS, &r->db);
    if (rc != 0) {
        r->db = NULL;
        if (rc == HUB_EDBDOWN)
            hub_reply_error(r, 503, "database_unavailable",
                            "the database is unavailable; retry later");
        else
            hub_reply_error(r, 503, "busy", "all database connections are busy; retry later");
        return NULL;
    }
    return r->db;
}

int hub_transaction_commit(struct hub_req *r)
{
    int rc = hub_db_commit(r->db);
    if (rc != 0) {
        hub_reply_internal(r, rc, "commit");
        return HUB_REPLIED;
    }
    for (; r->revoked > 0; r->revoked--)
        hub_metrics_inc(HUB_M_REVOCATIONS);
    for (; r->crls > 0; r->crls--)
        hub_metrics_inc(HUB_M_CRLS);
    return 0;
}
