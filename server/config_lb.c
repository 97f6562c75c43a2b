/* Load-balancer keys (server/config_lb.h). */
#include "server/config_lb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/config_internal.h"
#include "util/error.h"

static int set_bool(int *slot, const char *v, char *why, size_t n)
{
    if (strcmp(v, "on") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 ||
        strcmp(v, "1") == 0) {
        *slot = 1;
    } else if (strcmp(v, "off") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0 ||
               strcmp(v, "0") == 0) {
        *slot = 0;
    } else {
        snprintf(why, n, "expected on or off");
        return HUB_EINVAL;
    }
    return 0;
}

int hub_config_set_mqtt_mtls_proxy_protocol(struct hub_config *c, const char *v, char *why,
                                            size_t n)
{
    return set_bool(&c->mqtt_mtls_proxy_protocol, v, why, n);
}

int hub_config_set_mqtt_tls_proxy_protocol(struct hub_config *c, const char *v, char *why, size_t n)
{
    return set_bool(&c->mqtt_tls_proxy_protocol, v, why, n);
}

int hub_config_set_mqtt_plain_proxy_protocol(struct hub_config *c, const char *v, char *why,
                                             size_t n)
{
    return set_bool(&c->mqtt_plain_proxy_protocol, v, why, n);
}

int hub_config_set_api_proxy_protocol(struct hub_config *c, const char *v, char *why, size_t n)
{
    return set_bool(&c->api_proxy_protocol, v, why, n);
}

int hub_config_set_proxy_trusted(struct hub_config *c, const char *v, char *why, size_t n)
{
    struct hub_proxy_trust *t;
    int rc = hub_proxy_trust_parse(v, &t, why, n);
    if (rc != 0)
        return rc;
    hub_proxy_trust_free(t);
    char *s = strdup(v);
    if (s == NULL) {
        snprintf(why, n, "out of memory");
        return HUB_ENOMEM;
    }
    free(c->proxy_trusted);
    c->proxy_trusted = s;
    return 0;
}

static int set_range(int *slot, const char *v, long min, long max, char *why, size_t n)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end != 0 || x < min || x > max) {
        snprintf(why, n, "expected an integer from %ld to %ld", min, max);
        return HUB_EINVAL;
    }
    *slot = (int)x;
    return 0;
}

int hub_config_set_proxy_header_timeout_ms(struct hub_config *c, const char *v, char *why, size_t n)
{
    return set_range(&c->proxy_header_timeout_ms, v, 100, 60000, why, n);
}

int hub_config_set_shutdown_drain_s(struct hub_config *c, const char *v, char *why, size_t n)
{
    return set_range(&c->shutdown_drain_s, v, 0, 600, why, n);
}

int hub_config_proxy_trust(const struct hub_config *cfg, struct hub_proxy_trust **out, char *err,
                           size_t errlen)
{
    *out = NULL;
    int on = (cfg->mqtt_mtls_proxy_protocol && cfg->mqtt_mtls_listen.port != 0) ||
             (cfg->mqtt_tls_proxy_protocol && cfg->mqtt_tls_listen.port != 0) ||
             (cfg->mqtt_plain_proxy_protocol && cfg->mqtt_plain_listen.port != 0) ||
             cfg->api_proxy_protocol;
    if (!on)
        return 0;
    char why[256];
    if (cfg->proxy_trusted == NULL ||
        hub_proxy_trust_parse(cfg->proxy_trusted, out, why, sizeof why) != 0 ||
        !hub_proxy_trusted_any(*out)) {
        hub_proxy_trust_free(*out);
        *out = NULL;
        snprintf(err, errlen,
                 "proxy_trusted: a listener has the PROXY protocol on (*_proxy_protocol): list "
                 "the addresses of the proxies allowed to send it");
        return HUB_ECONFIG;
    }
    return 0;
}
