/* A map from message id (uint64_t, never 0) to a pointer: open addressing, linear probing,
 * at most half full, deletion by backward shift (no tombstones). It grows and never shrinks,
 * so a map in steady use allocates nothing. Used for the acknowledgement holds (id ->
 * publisher) and the recently injected ids (hooks.c). Loop thread of its broker only. */
#ifndef HUB_MQTT_IDMAP_H
#define HUB_MQTT_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct hub_idmap_slot {
    uint64_t id; /* 0: empty */
    void *v;
};

/* Zero-initialised is empty. */
struct hub_idmap {
    struct hub_idmap_slot *slots;
    size_t cap, count;
};

/* Sets id (!= 0) to v, replacing a value it had. 0, HUB_EINVAL (id 0) or HUB_ENOMEM (the map
 * unchanged). */
int hub_idmap_put(struct hub_idmap *m, uint64_t id, void *v);
/* The value of id, or NULL when absent. */
void *hub_idmap_get(const struct hub_idmap *m, uint64_t id);
/* Removes id; returns 1 if it was there, else 0. */
int hub_idmap_del(struct hub_idmap *m, uint64_t id);
/* Frees the table; m is empty (reusable) afterwards. */
void hub_idmap_free(struct hub_idmap *m);

#endif
