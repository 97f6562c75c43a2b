/* The retained-message store of a broker: one message per topic, held by reference (the
 * same refcounted block that was routed). Loop thread of its broker only. */
#ifndef HUB_MQTT_RETAINED_H
#define HUB_MQTT_RETAINED_H

#include <stddef.h>

#include "mqtt/msg.h"
#include "mqtt/topictrie.h"

/* Retained messages by topic (open hashing), and the same messages in a trie of topic
 * levels (topics, created with the first one) for the filters of a SUBSCRIBE;
 * zero-initialised is empty. */
struct hub_retained {
    struct hub_msg **slots;
    size_t cap, count;
    hub_topictrie_t *topics; /* values: the messages of slots (borrowed) */
};

/* Stores m as the retained message of its topic (holding a reference), replacing the one
 * before; an empty payload deletes it (MQTT 3.1.1 §3.3.1.3). m must not be borrowed.
 * Returns 0 or HUB_ENOMEM (the store unchanged). */
int hub_retained_set(struct hub_retained *r, struct hub_msg *m);
/* Calls cb for each retained message (in no particular order); cb must not change r. */
void hub_retained_each(const struct hub_retained *r, void (*cb)(const struct hub_msg *m, void *ctx),
                       void *ctx);
/* The retained message of topic, or NULL (quotas: what a new one replaces). */
const struct hub_msg *hub_retained_get(const struct hub_retained *r, const char *topic, size_t len);
/* Drops the store's references and frees its table; r is empty (reusable) afterwards. */
void hub_retained_free(struct hub_retained *r);

/* Calls cb for each retained message whose topic the valid filter matches (flen bytes), in
 * no particular order, visiting only the trie levels the filter can match: a SUBSCRIBE
 * costs what it matches, not the number of retained messages. cb must not change r. */
void hub_retained_match(const struct hub_retained *r, const char *filter, size_t flen,
                        void (*cb)(const struct hub_msg *m, void *ctx), void *ctx);

#endif
