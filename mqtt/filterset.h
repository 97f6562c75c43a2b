/* A hash set over an array of NUL-terminated strings its caller owns: a session's filters
 * (session.c keeps them in s->filters for iteration at close, takeover and persistence, and
 * this set for lookups). Finding, adding or removing a filter costs O(1) on average,
 * whatever the number of filters; the set stores positions in the array, never copies.
 * Open addressing (linear probing, at most half full, backward-shift deletion); the hash
 * is SipHash-1-3 with a random key per set, so a client cannot pick colliding filters. */
#ifndef HUB_MQTT_FILTERSET_H
#define HUB_MQTT_FILTERSET_H

#include <stddef.h>
#include <stdint.h>

#include "util/siphash.h"

struct hub_filterset_slot {
    uint32_t pos1; /* 0: empty, else 1 + the position in the caller's array */
    uint32_t hash; /* low bits of the string's hash (probing and growth without rehashing) */
};

/* Zero-initialised is empty. */
struct hub_filterset {
    struct hub_filterset_slot *slots;
    uint32_t cap, count; /* cap: 0 or a power of two */
    struct hub_sipkey key;
};

/* The position in v of the string f (len bytes, no NUL needed), or -1. */
long hub_filterset_find(const struct hub_filterset *s, char *const *v, const char *f, size_t len);
/* Adds v[pos], which the set does not hold yet (hub_filterset_find said -1). 0 or
 * HUB_ENOMEM (the set unchanged). */
int hub_filterset_add(struct hub_filterset *s, char *const *v, size_t pos);
/* Forgets v[pos] (v[pos] still readable). */
void hub_filterset_del(struct hub_filterset *s, char *const *v, size_t pos);
/* The string at v[from] is now at v[to] (the caller moved it, e.g. into a hole left by a
 * removal); v[to] must be readable. */
void hub_filterset_moved(struct hub_filterset *s, char *const *v, size_t from, size_t to);
/* Frees the slots; the set is empty (reusable) afterwards. The strings are the caller's. */
void hub_filterset_free(struct hub_filterset *s);

#endif
