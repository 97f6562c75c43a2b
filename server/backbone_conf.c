/* Checks and parsing of `backbone` and `node_name` (server/backbone_conf.h). */
#include "server/backbone_conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"

static int host_char(char ch)
{
    return isalnum((unsigned char)ch) || ch == '-' || ch == '.' || ch == '_';
}

int hub_backbone_url_parse(const char *s, struct hub_backbone_url *out, char *why, size_t n)
{
    struct hub_backbone_url u;
    memset(&u, 0, sizeof u);
    const char *p;
    if (strncmp(s, "mqtt://", 7) == 0) {
        p = s + 7;
        u.port = 1883;
    } else if (strncmp(s, "mqtts://", 8) == 0) {
        p = s + 8;
        u.port = 8883;
        u.tls = 1;
    } else {
        snprintf(why, n, "expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (empty: one node)");
        return HUB_EINVAL;
    }
    const char *host = p, *end;
    size_t hlen;
    if (*p == '[') {
        end = strchr(p, ']');
        if (end == NULL) {
            snprintf(why, n, "unterminated [IPv6] address");
            return HUB_EINVAL;
        }
        host = p + 1;
        hlen = (size_t)(end - host);
        if (hlen == 0 || strspn(host, "0123456789abcdefABCDEF:.") < hlen) {
            snprintf(why, n, "bad IPv6 address");
            return HUB_EINVAL;
        }
        p = end + 1;
    } else {
        hlen = strcspn(p, ":/");
        for (size_t i = 0; i < hlen; i++) {
            if (!host_char(p[i])) {
                snprintf(why, n, "bad character in the host name");
                return HUB_EINVAL;
            }
        }
        p += hlen;
    }
    if (hlen == 0 || hlen >= sizeof u.host) {
        snprintf(why, n, "expected a host name of 1 to 255 characters");
        return HUB_EINVAL;
    }
    memcpy(u.host, host, hlen);
    if (*p == ':') {
        char *e;
        errno = 0;
        long port = strtol(p + 1, &e, 10);
        if (errno != 0 || e == p + 1 || port < 1 || port > 65535) {
            snprintf(why, n, "expected a port from 1 to 65535");
            return HUB_EINVAL;
        }
        u.port = (int)port;
        p = e;
    }
    if (*p == '/')
        p++;
    if (*p != 0) {
        snprintf(why, n, "nothing may follow HOST:PORT (no path, user or query)");
        return HUB_EINVAL;
    }
    if (out != NULL)
        *out = u;
    return 0;
}

int hub_node_name_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > HUB_NODE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!host_char(s[i]))
            return 0;
    return 1;
}

void hub_node_name(const char *name, char *out, size_t n)
{
    char host[256];
    if (name != NULL && *name != 0) {
        snprintf(out, n, "%s", name);
        return;
    }
    if (gethostname(host, sizeof host) != 0 || host[0] == 0) {
        snprintf(out, n, "iothub");
        return;
    }
    host[sizeof host - 1] = 0;
    host[HUB_NODE_NAME_MAX] = 0;
    for (char *p = host; *p; p++)
        if (!host_char(*p))
            *p = '-';
    snprintf(out, n, "%s", host);
}
