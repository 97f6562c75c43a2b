/* The hash set of a session's filters (filterset.h): slots hold a position in the caller's
 * array and 32 bits of the hash, so probing compares strings only on a hash match, and
 * growing or deleting never hashes a string again. */
#include "mqtt/filterset.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"

static uint32_t hash(const struct hub_filterset *s, const char *f, size_t len)
{
    return (uint32_t)hub_siphash(&s->key, f, len);
}

/* 1 when the NUL-terminated a equals the len bytes of f (never reads past a's NUL). */
static int same(const char *a, const char *f, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (a[i] != f[i] || a[i] == 0)
            return 0;
    return a[len] == 0;
}

long hub_filterset_find(const struct hub_filterset *s, char *const *v, const char *f, size_t len)
{
    if (s->count == 0)
        return -1;
    uint32_t h = hash(s, f, len), mask = s->cap - 1;
    for (uint32_t i = h & mask; s->slots[i].pos1 != 0; i = (i + 1) & mask)
        if (s->slots[i].hash == h && same(v[s->slots[i].pos1 - 1], f, len))
            return (long)s->slots[i].pos1 - 1;
    return -1;
}

static void place(struct hub_filterset_slot *slots, uint32_t cap, struct hub_filterset_slot x)
{
    uint32_t i = x.hash & (cap - 1);
    while (slots[i].pos1 != 0)
        i = (i + 1) & (cap - 1);
    slots[i] = x;
}

int hub_filterset_add(struct hub_filterset *s, char *const *v, size_t pos)
{
    if (pos >= UINT32_MAX)
        return HUB_ENOMEM;
    if ((s->count + 1) * 2 > s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 8;
        struct hub_filterset_slot *slots = cap ? calloc(cap, sizeof *slots) : NULL;
        if (slots == NULL)
            return HUB_ENOMEM;
        if (s->cap == 0)
            hub_sipkey_init(&s->key); /* a new key each time the set starts from empty */
        for (uint32_t i = 0; i < s->cap; i++)
            if (s->slots[i].pos1 != 0)
                place(slots, cap, s->slots[i]);
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    struct hub_filterset_slot x = {(uint32_t)pos + 1, hash(s, v[pos], strlen(v[pos]))};
    place(s->slots, s->cap, x);
    s->count++;
    return 0;
}

/* The slot holding position pos of v, or cap when none does. */
static uint32_t slot_of(const struct hub_filterset *s, char *const *v, size_t pos, size_t at)
{
    uint32_t h = hash(s, v[at], strlen(v[at])), mask = s->cap - 1;
    for (uint32_t i = h & mask; s->slots[i].pos1 != 0; i = (i + 1) & mask)
        if (s->slots[i].pos1 == pos + 1)
            return i;
    return s->cap;
}

void hub_filterset_del(struct hub_filterset *s, char *const *v, size_t pos)
{
    if (s->count == 0)
        return;
    uint32_t mask = s->cap - 1, i = slot_of(s, v, pos, pos), j = i;
    if (i == s->cap)
        return;
    s->slots[i].pos1 = 0;
    s->count--;
    for (;;) {
        j = (j + 1) & mask;
        if (s->slots[j].pos1 == 0)
            break;
        uint32_t home = s->slots[j].hash & mask;
        /* Move j back into the hole at i unless its home lies cyclically in (i, j]. */
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
            s->slots[i] = s->slots[j];
            s->slots[j].pos1 = 0;
            i = j;
        }
    }
    if (s->count == 0)
        hub_filterset_free(s);
}

void hub_filterset_moved(struct hub_filterset *s, char *const *v, size_t from, size_t to)
{
    if (s->count == 0)
        return;
    uint32_t i = slot_of(s, v, from, to);
    if (i != s->cap)
        s->slots[i].pos1 = (uint32_t)to + 1;
}

void hub_filterset_free(struct hub_filterset *s)
{
    free(s->slots);
    memset(s, 0, sizeof *s);
}
