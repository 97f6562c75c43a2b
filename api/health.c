/* GET /healthz and GET /metrics. */
#include "api/health.h"

#include "api/device_cas.h"
#include "api/metrics.h"
#include "api/reply.h"
#include "db/pool.h"
#include "util/error.h"

void hub_api_health_show(struct hub_req *r)
{
    int db_up = hub_db_pool_ping(r->api->pool);
    hub_reply_json(r, db_up ? 200 : 503,
                   json_pack("{s:s,s:s,s:s}", "status", db_up ? "ok" : "unavailable", "database",
                             db_up ? "up" : "down", "api", "up"));
}

void hub_api_health_metrics(struct hub_req *r)
{
    hub_buf_t out = HUB_BUF_INIT;
    const struct hub_api_mqtt *mq = r->api->mqtt;
    int rc = hub_metrics_render(&out, r->api->pool);
    if (rc == 0)
        rc = hub_api_device_cas_metrics(&out);
    if (rc == 0 && mq != NULL && mq->metrics != NULL)
        rc = mq->metrics(mq->ctx, &out);
    if (rc != 0) {
        hub_buf_free(&out);
        hub_reply_internal(r, HUB_ENOMEM, "metrics");
        return;
    }
    hub_reply_raw(r, 200, "text/plain; version=0.0.4", out.data, out.len);
    hub_buf_free(&out);
}
