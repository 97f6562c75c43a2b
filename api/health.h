/* Operational endpoints: GET /healthz (the database is reachable) and GET /metrics
 * (Prometheus text of api/metrics.h and of the MQTT side). */
#ifndef HUB_API_HEALTH_H
#define HUB_API_HEALTH_H

#include "api/request.h"

/* GET /healthz: 200 {"status": "ok", ...}, 503 when the database is down. */
void hub_api_health_show(struct hub_req *r);
/* GET /metrics: public or auditor tokens (metrics_access, see hub_router_auth). */
void hub_api_health_metrics(struct hub_req *r);

#endif
