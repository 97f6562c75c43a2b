/* The configuration keys of running behind a load balancer (docs/configuration.md, "Behind
 * a load balancer"): the PROXY protocol per listener, the proxies trusted to send it, the
 * header timeout, and the drain time after SIGTERM. Their setters, for server/config.c's
 * table, are declared in server/config_internal.h. */
#ifndef HUB_SERVER_CONFIG_LB_H
#define HUB_SERVER_CONFIG_LB_H

#include <stddef.h>

#include "server/config.h"
#include "util/proxyproto.h"

/* The trusted proxies for serve: *out NULL when no listener has the PROXY protocol on.
 * Returns 0, or HUB_ECONFIG with the reason in err (a listener has it on but proxy_trusted
 * is empty). Freed with hub_proxy_trust_free. */
int hub_config_proxy_trust(const struct hub_config *cfg, struct hub_proxy_trust **out, char *err,
                           size_t errlen);

#endif
