/* The broker's quotas per principal (mqtt/quota.c) as the server sets and shows them: the
 * limits from the "quotas" keys of server/config_limits.c, and their /metrics lines. */
#ifndef HUB_SERVER_MQTT_QUOTA_H
#define HUB_SERVER_MQTT_QUOTA_H

#include "mqtt/broker.h"
#include "server/config.h"
#include "util/buf.h"

/* Fills q from the configuration (docs/configuration.md "Limits and quotas"). */
void hub_mqtt_quotas_from_config(const struct hub_config *cfg, struct hub_broker_quotas *q);
/* Appends iothub_mqtt_quota_refusals_total{quota="<key>"} and the quota gauges. */
int hub_mqtt_quota_metrics_render(const struct hub_broker_stats *st, hub_buf_t *out);

#endif
