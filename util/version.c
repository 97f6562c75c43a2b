#include "util/version.h"

#include <stdio.h>
#include <string.h>

#include "util/error.h"

int hub_version_parse(const char *s, struct hub_version *out)
{
    memset(out, 0, sizeof *out);
    if (s == NULL || *s == 0 || strlen(s) >= HUB_VERSION_MAX)
        return HUB_EINVAL;
    const char *p = s;
    for (;;) {
        if (out->n == HUB_VERSION_PARTS || *p < '0' || *p > '9')
            return HUB_EINVAL;
        if (*p == '0' && p[1] >= '0' && p[1] <= '9')
            return HUB_EINVAL; /* leading zero */
        long v = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            v = v * 10 + (*p - '0');
            if (v > 2147483647L)
                return HUB_EINVAL;
        }
        out->parts[out->n++] = v;
        if (*p == 0)
            return 0;
        if (*p != '.')
            return HUB_EINVAL;
        p++;
    }
}

int hub_version_cmp(const struct hub_version *a, const struct hub_version *b)
{
    for (int i = 0; i < HUB_VERSION_PARTS; i++)
        if (a->parts[i] != b->parts[i])
            return a->parts[i] < b->parts[i] ? -1 : 1;
    return 0;
}

void hub_version_pg_array(const struct hub_version *v, char *out, unsigned long cap)
{
    snprintf(out, cap, "{%ld,%ld,%ld,%ld}", v->parts[0], v->parts[1], v->parts[2], v->parts[3]);
}
