/* Subscription index: a trie over topic levels. Each node keeps its literal children in an
 * open-addressing hash table plus separate '+' and '#' children, and the subscriptions
 * (subscriber pointer, QoS) of the filter ending there. Matching walks at most three
 * children per topic level and never allocates. Not thread-safe: one owner (the loop). */
#ifndef HUB_MQTT_SUBTREE_H
#define HUB_MQTT_SUBTREE_H

#include <stddef.h>
#include <stdint.h>

/* Filters with more levels are refused, which bounds the recursion depth of matching. */
#define HUB_SUBTREE_MAX_LEVELS 128

typedef struct hub_subtree hub_subtree_t;

/* Called once per matching subscription. A subscriber whose several filters match the topic
 * is visited once per filter (3.1.1 §3.3.5 allows a copy per subscription); callers that
 * want one copy dedupe, e.g. with a per-message stamp in the session keeping the max QoS.
 * The callback must not modify the tree. */
typedef void (*hub_subtree_match_cb)(void *subscriber, uint8_t qos, void *ctx);

/* Allocates an empty tree, owned by the caller (hub_subtree_free). NULL on ENOMEM. */
hub_subtree_t *hub_subtree_new(void);

/* Frees the tree and all its nodes; subscriber pointers are not touched. NULL is fine. */
void hub_subtree_free(hub_subtree_t *t);

/* Adds subscriber's subscription to a valid filter (copied into the tree). Returns 0 when
 * added, 1 when it existed and its QoS was replaced, HUB_EINVAL for an invalid filter or
 * qos > 2, HUB_ERANGE for more than HUB_SUBTREE_MAX_LEVELS levels, HUB_ENOMEM. */
int hub_subtree_insert(hub_subtree_t *t, const char *filter, size_t flen, void *subscriber,
                       uint8_t qos);

/* Removes subscriber's subscription to filter, pruning empty nodes. Returns 0 or
 * HUB_ENOTFOUND. */
int hub_subtree_remove(hub_subtree_t *t, const char *filter, size_t flen, const void *subscriber);

/* Removes subscriber from each of its n NUL-terminated filters (the session keeps that
 * list). Returns how many subscriptions were removed. */
size_t hub_subtree_remove_all(hub_subtree_t *t, const void *subscriber, const char *const *filters,
                              size_t n);

/* Calls cb for every subscription whose filter matches the valid topic name. Returns the
 * number of calls made. */
size_t hub_subtree_match(const hub_subtree_t *t, const char *topic, size_t tlen,
                         hub_subtree_match_cb cb, void *ctx);

/* Number of subscriptions held. */
size_t hub_subtree_count(const hub_subtree_t *t);

#endif
