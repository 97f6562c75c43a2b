/* Process-wide counters exposed at GET /metrics in the Prometheus text format. Lock-free:
 * any thread may count. */
#ifndef HUB_API_METRICS_H
#define HUB_API_METRICS_H

#include "db/pool.h"
#include "util/buf.h"

enum hub_metric {
    HUB_M_PROVISIONED,   /* devices created */
    HUB_M_ACTIVATIONS,   /* certificates issued to devices and services */
    HUB_M_REVOCATIONS,   /* certificates revoked */
    HUB_M_CRLS,          /* CRLs published by server/crl_publisher */
    HUB_M_AUTH_FAILURES, /* 401 answers */
    HUB_M_COUNT
};

/* Counts one HTTP answer by status class. */
void hub_metrics_http(unsigned status);
void hub_metrics_inc(enum hub_metric m);
/* Appends every metric of the API and the database (queries of db/db, the API's pool)
 * in the text exposition format. */
int hub_metrics_render(hub_buf_t *out, hub_db_pool_t *pool);

#endif
