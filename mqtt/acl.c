/* Topic ACLs. A device may use only its own subtree "devices/<id>/#"; a service has lists
 * of allow and deny ('!') patterns. For a PUBLISH topic a pattern must match it; for a
 * SUBSCRIBE filter an allow pattern must cover it (every topic the filter can match is
 * allowed) and a deny pattern must not overlap it (no topic it can match is denied). */
#include "mqtt/acl.h"

#include <string.h>

#include "mqtt/topic.h"

int hub_acl_pattern_valid(const char *pattern)
{
    if (pattern[0] == '!')
        pattern++;
    return hub_topic_filter_valid(pattern, strlen(pattern));
}

int hub_acl_allows(const char *const *patterns, size_t n, const char *topic, size_t tlen,
                   int is_filter)
{
    if (is_filter ? !hub_topic_filter_valid(topic, tlen) : !hub_topic_name_valid(topic, tlen))
        return 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = patterns[i];
        size_t plen;
        if (p[0] != '!')
            continue;
        p++;
        plen = strlen(p);
        if (!hub_topic_filter_valid(p, plen))
            return 0;
        if (is_filter ? hub_topic_overlap(p, plen, topic, tlen)
                      : hub_topic_match(p, plen, topic, tlen))
            return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const char *p = patterns[i];
        size_t plen = strlen(p);
        if (p[0] == '!' || !hub_topic_filter_valid(p, plen))
            continue;
        if (is_filter ? hub_topic_covers(p, plen, topic, tlen)
                      : hub_topic_match(p, plen, topic, tlen))
            return 1;
    }
    return 0;
}

int hub_acl_device(const char *device_id, const char *topic, size_t tlen, int is_filter)
{
    if (is_filter ? !hub_topic_filter_valid(topic, tlen) : !hub_topic_name_valid(topic, tlen))
        return 0;
    return hub_acl_device_checked(device_id, topic, tlen);
}

int hub_acl_device_checked(const char *device_id, const char *topic, size_t tlen)
{
    if (!hub_acl_device_id_valid(device_id))
        return 0;
    return hub_acl_device_under(device_id, strlen(device_id), topic, tlen);
}

int hub_acl_device_id_valid(const char *device_id)
{
    return device_id[0] != 0 && strpbrk(device_id, "/+#") == NULL;
}

int hub_acl_device_under(const char *device_id, size_t idlen, const char *topic, size_t tlen)
{
    static const char prefix[] = "devices/";
    const size_t plen = sizeof prefix - 1;
    /* "devices/<id>" as two literal levels, then the end or '/': whatever follows
     * (including '+' and '#') stays under "devices/<id>/#". */
    if (tlen < plen + idlen || memcmp(topic, prefix, plen) != 0 ||
        memcmp(topic + plen, device_id, idlen) != 0)
        return 0;
    return tlen == plen + idlen || topic[plen + idlen] == '/';
}
