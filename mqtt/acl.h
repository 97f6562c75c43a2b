/* Topic ACLs of devices and services. Strings are (pointer, length) pairs except the
 * NUL-terminated ids and patterns; every function is pure (any thread). */
#ifndef HUB_MQTT_ACL_H
#define HUB_MQTT_ACL_H

#include <stddef.h>

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
/* Whether device_id may own topics at all: not empty, no '/', '+' or '#'. Returns 1 or 0. */
int hub_acl_device_id_valid(const char *device_id);
/* hub_acl_device_checked for a device id of idlen bytes that hub_acl_device_id_valid
 * accepted (a connection checks its id once, not on every PUBLISH). Returns 1 or 0. */
int hub_acl_device_under(const char *device_id, size_t idlen, const char *topic, size_t tlen);

#endif
