/* MQTT topic names, topic filters, matching, and the topic ACLs of devices and services.
 * Strings are (pointer, length) pairs; none of them needs a terminating NUL. */
#ifndef HUB_MQTT_TOPIC_H
#define HUB_MQTT_TOPIC_H

#include <stddef.h>

/* A topic name (PUBLISH): 1..65535 bytes of MQTT UTF-8, no '+' or '#'. Returns 1 or 0. */
int hub_topic_name_valid(const char *topic, size_t len);

/* A topic filter (SUBSCRIBE): 1..65535 bytes of MQTT UTF-8, '+' only as a whole level,
 * '#' only as the whole last level. Returns 1 or 0. */
int hub_topic_filter_valid(const char *filter, size_t len);

/* Whether a valid filter matches a valid topic name: '+' matches one (possibly empty) level,
 * '#' the rest including the parent ("a/#" matches "a"), and a filter starting with a
 * wildcard does not match a topic starting with '$'. Returns 1 or 0. */
int hub_topic_match(const char *filter, size_t flen, const char *topic, size_t tlen);

/* Filter inclusion: 1 when every topic that filter `inner` matches is also matched by filter
 * `outer` ("a/#" covers "a/+/b"; "a/+" does not cover "a/#"), else 0. */
int hub_topic_covers(const char *outer, size_t olen, const char *inner, size_t ilen);

/* Filter overlap: 1 when at least one topic name is matched by both filters, else 0. */
int hub_topic_overlap(const char *a, size_t alen, const char *b, size_t blen);

/* Whether an ACL pattern (a topic filter, optionally prefixed by '!' for deny) is valid.
 * Returns 1 or 0; the API should refuse invalid patterns when a service is created. */
int hub_acl_pattern_valid(const char *pattern);

/* Service ACL. patterns[0..n) are NUL-terminated filters, "!"-prefixed ones deny and are
 * checked first. A PUBLISH topic (is_filter 0) is refused if a deny pattern matches it; a
 * SUBSCRIBE filter (is_filter 1) if a deny pattern overlaps it. Otherwise it is allowed when
 * an allow pattern matches (topic) or covers (filter) it. An invalid deny pattern refuses
 * everything, an invalid allow pattern allows nothing, an invalid topic/filter is refused.
 * Returns 1 (allowed) or 0. */
int hub_acl_allows(const char *const *patterns, size_t n, const char *topic, size_t tlen,
                   int is_filter);

/* Device ACL: allowed iff the topic (or filter) is covered by "devices/<device_id>/#".
 * A device id that is empty or contains '/', '+', '#' allows nothing. Returns 1 or 0. */
int hub_acl_device(const char *device_id, const char *topic, size_t tlen, int is_filter);
/* The same for a topic name or filter the caller has already checked as valid (the codec
 * checks every PUBLISH topic and SUBSCRIBE filter it decodes). */
int hub_acl_device_checked(const char *device_id, const char *topic, size_t tlen);

#endif
