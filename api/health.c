/* GET /healthz and GET /metrics. */
#include "api/health.h"

#include "api/device_cas.h"
#include "api/metrics.h"
#include "api/proxy_listen.h"
#include "api/reply.h"
#include "db/pool.h"
#include "util/error.h"

/* 200 only while this node can serve: a load balancer (deploy/haproxy.cfg) and the
 * container health check take it out on 503 (database unreachable, MQTT listeners not
 * accepting yet at start, or draining after SIGTERM: shutdown_drain_s). */
void hub_api_health_show(struct hub_req *r)
{
    int db_up = hub_db_pool_ping(r->api->pool);
    int draining = __atomic_load_n(&r->api->draining, __ATOMIC_ACQUIRE);
    int starting = __atomic_load_n(&r->api->mqtt_starting, __ATOMIC_ACQUIRE);
    const char *status = draining   ? "draining"
                         : starting ? "starting"
                         : db_up    ? "ok"
                                    : "unavailable";
    hub_reply_json(r, db_up && !draining && !starting ? 200 : 503,
                   json_pack("{s:s,s:s,s:s}", "status", status, "database", db_up ? "up" : "down",
                             "api", draining ? "draining" : "up"));
}

void hub_api_health_metrics(struct hub_req *r)
{
    hub_buf_t out = HUB_BUF_INIT;
    const struct hub_api_mqtt *mq = r->api->mqtt;
    int rc = hub_metrics_render(&out, r->api->pool);
    if (rc == 0)
        rc = hub_api_device_cas_metrics(&out);
    if (rc == 0)
        rc = hub_api_proxy_metrics(&out);
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
