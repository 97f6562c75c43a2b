/* MQTT topic names, topic filters, matching, inclusion and overlap (the ACLs are in acl.h).
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

#endif
