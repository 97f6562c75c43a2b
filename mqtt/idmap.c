#include "mqtt/idmap.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"

/* Ids are a boot number above a counter: mix them so consecutive ids spread (splitmix64). */
static size_t home(const struct hub_idmap *m, uint64_t id)
{
    id ^= id >> 30;
    id *= 0xbf58476d1ce4e5b9ull;
    id ^= id >> 27;
    id *= 0x94d049bb133111ebull;
    id ^= id >> 31;
    return (size_t)id & (m->cap - 1);
}

/* The slot of id, or the empty slot where it would go. */
static size_t find(const struct hub_idmap *m, uint64_t id)
{
    size_t i = home(m, id);
    while (m->slots[i].id != 0 && m->slots[i].id != id)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int grow(struct hub_idmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64, old_cap = m->cap;
    struct hub_idmap_slot *old = m->slots, *s = calloc(cap, sizeof *s);
    if (s == NULL)
        return HUB_ENOMEM;
    m->slots = s;
    m->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].id != 0)
            m->slots[find(m, old[i].id)] = old[i];
    free(old);
    return 0;
}

int hub_idmap_put(struct hub_idmap *m, uint64_t id, void *v)
{
    if (id == 0)
        return HUB_EINVAL;
    if ((m->count + 1) * 2 > m->cap && grow(m) != 0)
        return HUB_ENOMEM;
    size_t i = find(m, id);
    if (m->slots[i].id == 0)
        m->count++;
    m->slots[i].id = id;
    m->slots[i].v = v;
    return 0;
}

void *hub_idmap_get(const struct hub_idmap *m, uint64_t id)
{
    if (m->cap == 0 || id == 0)
        return NULL;
    size_t i = find(m, id);
    return m->slots[i].id == id ? m->slots[i].v : NULL;
}

int hub_idmap_del(struct hub_idmap *m, uint64_t id)
{
    if (m->cap == 0 || id == 0)
        return 0;
    size_t i = find(m, id);
    if (m->slots[i].id != id)
        return 0;
    /* Backward shift: move later members of the cluster into the hole when their home
     * position allows it, so lookups never need tombstones. */
    size_t j = i;
    for (;;) {
        m->slots[i].id = 0;
        m->slots[i].v = NULL;
        for (;;) {
            j = (j + 1) & (m->cap - 1);
            if (m->slots[j].id == 0) {
                m->count--;
                return 1;
            }
            size_t k = home(m, m->slots[j].id);
            /* j's entry may move to i unless its home lies cyclically in (i, j]. */
            if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
                continue;
            break;
        }
        m->slots[i] = m->slots[j];
        i = j;
    }
}

void hub_idmap_free(struct hub_idmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}
