#include "agent/version.h"

#include <string.h>

#include "util/error.h"

int hub_version_parse(const char *s, struct hub_version *v)
{
    struct hub_version tmp;
    memset(&tmp, 0, sizeof tmp);
    int n = 0;
    if (s == NULL || *s == 0)
        return HUB_EINVAL;
    for (;;) {
        if (n == 4 || *s < '0' || *s > '9')
            return HUB_EINVAL;
        uint64_t x = 0;
        int digits = 0;
        while (*s >= '0' && *s <= '9') {
            x = x * 10 + (uint64_t)(*s++ - '0');
            if (++digits > 10 || x > 0x7fffffffu)
                return HUB_EINVAL;
        }
        tmp.part[n++] = (uint32_t)x;
        if (*s == 0)
            break;
        if (*s++ != '.')
            return HUB_EINVAL;
    }
    if (v != NULL)
        *v = tmp;
    return 0;
}

int hub_version_cmp(const char *a, const char *b)
{
    struct hub_version va, vb;
    if (hub_version_parse(a, &va) != 0)
        memset(&va, 0, sizeof va);
    if (hub_version_parse(b, &vb) != 0)
        memset(&vb, 0, sizeof vb);
    for (int i = 0; i < 4; i++)
        if (va.part[i] != vb.part[i])
            return va.part[i] < vb.part[i] ? -1 : 1;
    return 0;
}
