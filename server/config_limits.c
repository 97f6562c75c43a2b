/* Integer limits and quotas (server/config_internal.h). */
#include "server/config_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/error.h"

#define LIMIT(name, min, max, def)                                                                 \
    {                                                                                              \
#name, offsetof(struct hub_config, name), min, max, def                                    \
    }

const struct hub_config_limit hub_config_limits[] = {
    /* Rows are added here by the features that enforce them (one per key). */
    LIMIT(mqtt_max_subscriptions, 1, 1000000, 1000),
    /* nodes: fencing of a node cut from PostgreSQL (server/cluster.c) */
    LIMIT(cluster_fence_s, 0, 3600, 30),
    /* quotas (mqtt/quota.c; docs/security.md "Quotas"): 0 turns a rate or CONNECT limit off */
    LIMIT(mqtt_max_retained_per_principal, 1, 100000000, 100),
    LIMIT(mqtt_max_retained_bytes_per_principal, 1, 1LL << 40, 1048576),
    LIMIT(mqtt_max_retained, 1, 100000000, 100000),
    LIMIT(mqtt_max_retained_bytes, 1, 1LL << 40, 268435456),
    LIMIT(mqtt_rate_msgs_per_s, 0, 1000000000, 50000),
    LIMIT(mqtt_rate_bytes_per_s, 0, 1000000000, 33554432),
    LIMIT(mqtt_rate_burst_s, 1, 60, 2),
    LIMIT(mqtt_max_connects_per_min, 0, 1000000, 60),
    /* throttle: credential guessing per source address (api/throttle.h) */
    LIMIT(auth_fail_free, 1, 1000000, 10),
    LIMIT(auth_fail_window_s, 1, 86400, 60),
    LIMIT(auth_fail_max_delay_s, 1, 86400, 300),
    LIMIT(auth_throttle_sources, 16, 16777216, 65536),
};
const size_t hub_config_nlimits = sizeof hub_config_limits / sizeof hub_config_limits[0];

#undef LIMIT

static long long *field(struct hub_config *c, size_t i)
{
    return (long long *)((char *)c + hub_config_limits[i].offset);
}

void hub_config_limits_defaults(struct hub_config *c)
{
    for (size_t i = 0; i < hub_config_nlimits; i++)
        *field(c, i) = hub_config_limits[i].def;
}

int hub_config_limit_set(struct hub_config *c, size_t i, const char *v, char *why, size_t n)
{
    const struct hub_config_limit *l = &hub_config_limits[i];
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != 0 || x < l->min || x > l->max) {
        snprintf(why, n, "expected an integer from %lld to %lld", l->min, l->max);
        return HUB_EINVAL;
    }
    *field(c, i) = x;
    return 0;
}
