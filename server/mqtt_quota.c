/* The broker's quotas from the configuration, and their metrics (docs/metrics.md). */
#include "server/mqtt_quota.h"

void hub_mqtt_quotas_from_config(const struct hub_config *cfg, struct hub_broker_quotas *q)
{
    q->max_subscriptions = (size_t)cfg->mqtt_max_subscriptions;
    q->retained_per_principal = (size_t)cfg->mqtt_max_retained_per_principal;
    q->retained_bytes_per_principal = (size_t)cfg->mqtt_max_retained_bytes_per_principal;
    q->retained = (size_t)cfg->mqtt_max_retained;
    q->retained_bytes = (size_t)cfg->mqtt_max_retained_bytes;
    q->rate_msgs = (uint64_t)cfg->mqtt_rate_msgs_per_s;
    q->rate_bytes = (uint64_t)cfg->mqtt_rate_bytes_per_s;
    q->burst_s = (unsigned)cfg->mqtt_rate_burst_s;
    q->connects_per_min = (unsigned)cfg->mqtt_max_connects_per_min;
}

int hub_mqtt_quota_metrics_render(const struct hub_broker_stats *st, hub_buf_t *out)
{
    int rc = hub_buf_printf(out, "# HELP iothub_mqtt_quota_refusals_total MQTT requests refused "
                                 "by a quota per principal, by quota (its configuration key).\n"
                                 "# TYPE iothub_mqtt_quota_refusals_total counter\n");
    for (int q = 0; rc == 0 && q < HUB_QUOTA_COUNT; q++)
        rc = hub_buf_printf(out, "iothub_mqtt_quota_refusals_total{quota=\"%s\"} %llu\n",
                            hub_quota_key((enum hub_quota)q), st->quota_refusals[q]);
    if (rc == 0)
        rc = hub_buf_printf(out,
                            "# HELP iothub_mqtt_retained_bytes Bytes (topic + payload) of the "
                            "retained messages held.\n"
                            "# TYPE iothub_mqtt_retained_bytes gauge\n"
                            "iothub_mqtt_retained_bytes %zu\n"
                            "# HELP iothub_mqtt_rate_paused_connections Device connections not "
                            "read now because they are over mqtt_rate_msgs_per_s or "
                            "mqtt_rate_bytes_per_s.\n"
                            "# TYPE iothub_mqtt_rate_paused_connections gauge\n"
                            "iothub_mqtt_rate_paused_connections %zu\n"
                            "# HELP iothub_mqtt_quota_principals Principals whose quota counters "
                            "the broker keeps (retained messages, recent CONNECTs or refusals).\n"
                            "# TYPE iothub_mqtt_quota_principals gauge\n"
                            "iothub_mqtt_quota_principals %zu\n",
                            st->retained_bytes, st->rate_paused, st->quota_principals);
    return rc;
}
