/* Setters of server/config.c's key table defined in other files (same signature as its
 * setter_fn): the load-balancer keys of server/config_lb.c. */
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

#endif
