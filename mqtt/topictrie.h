/* A trie of topic names by level, each node holding a pointer its owner gives it (the
 * retained store keeps its messages here): a filter finds the topics it matches by walking
 * only the levels it names, so the cost follows what it can match, not how many topics there
 * are. A '+' visits the children of one node, a '#' the subtree below it. Literal children
 * live in a linear-probing table hashed with SipHash under a random key per trie (topic
 * levels are chosen by clients). Loop thread of its owner only. */
#ifndef HUB_MQTT_TOPICTRIE_H
#define HUB_MQTT_TOPICTRIE_H

#include <stddef.h>

typedef struct hub_topictrie hub_topictrie_t;

/* An empty trie (hub_topictrie_free), NULL on ENOMEM. */
hub_topictrie_t *hub_topictrie_new(void);
/* Frees the nodes; the values are the caller's. NULL is fine. */
void hub_topictrie_free(hub_topictrie_t *t);
/* Sets the value of topic (len bytes, a valid topic name) to v (not NULL), replacing the one
 * before. 0 or HUB_ENOMEM (the trie unchanged). */
int hub_topictrie_set(hub_topictrie_t *t, const char *topic, size_t len, void *v);
/* Clears the value of topic (pruning emptied nodes); returns the value it had, or NULL. */
void *hub_topictrie_del(hub_topictrie_t *t, const char *topic, size_t len);
/* The value of topic, or NULL. */
void *hub_topictrie_get(const hub_topictrie_t *t, const char *topic, size_t len);
/* Calls cb for the value of every topic the valid filter matches (MQTT 3.1.1 §4.7: a
 * wildcard first level does not match topics starting with '$'), in no particular order.
 * cb must not change the trie. Returns the number of calls. Filters of more than
 * HUB_TOPICTRIE_MAX_LEVELS levels match nothing (this bounds the recursion). */
#define HUB_TOPICTRIE_MAX_LEVELS 128
size_t hub_topictrie_match(const hub_topictrie_t *t, const char *filter, size_t flen,
                           void (*cb)(void *v, void *ctx), void *ctx);
/* Number of topics with a value. */
size_t hub_topictrie_count(const hub_topictrie_t *t);

#endif
