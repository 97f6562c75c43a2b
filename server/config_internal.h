/* Setters of server/config.c's key table defined in other files (same signature as its
 * setter_fn): the load-balancer keys of server/config_lb.c; and the integer limits and
 * quotas of server/config_limits.c (docs/configuration.md#limits-and-quotas): one row per
 * key with its field of struct hub_config, its range and its default, parsed like the
 * other keys (file, then IOTHUB_<KEY>). A new limit is one long long field in the block of
 * server/config.h marked "Limits and quotas" and one row of that table. */
#ifndef HUB_SERVER_CONFIG_INTERNAL_H
#define HUB_SERVER_CONFIG_INTERNAL_H

#include <stddef.h>

#include "server/config.h"

int hub_config_set_mqtt_mtls_proxy_protocol(struct hub_config *c, const char *v, char *why,
                                            size_t n);
int hub_config_set_mqtt_tls_proxy_protocol(struct hub_config *c, const char *v, char *why,
                                           size_t n);
int hub_config_set_mqtt_plain_proxy_protocol(struct hub_config *c, const char *v, char *why,
                                             size_t n);
int hub_config_set_api_proxy_protocol(struct hub_config *c, const char *v, char *why, size_t n);
int hub_config_set_proxy_trusted(struct hub_config *c, const char *v, char *why, size_t n);
int hub_config_set_proxy_header_timeout_ms(struct hub_config *c, const char *v, char *why,
                                           size_t n);
int hub_config_set_shutdown_drain_s(struct hub_config *c, const char *v, char *why, size_t n);

struct hub_config_limit {
    const char *key;
    size_t offset; /* offsetof(struct hub_config, field); the field is a long long */
    long long min, max, def;
};

/* The table and its length. */
extern const struct hub_config_limit hub_config_limits[];
extern const size_t hub_config_nlimits;

/* Sets every limit of c to its default. */
void hub_config_limits_defaults(struct hub_config *c);

/* Parses v (a decimal integer) into limit i of c; on a bad value fills why and returns
 * HUB_EINVAL. */
int hub_config_limit_set(struct hub_config *c, size_t i, const char *v, char *why, size_t n);

#endif
