/* Quotas per principal: the token bucket and the table of principals (mqtt/quota.h). What
 * the broker does with them is in mqtt/quota_check.c. */
#include "mqtt/quota.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"

/* ---- token bucket ---------------------------------------------------------------------- */

void hub_tbucket_init(struct hub_tbucket *t, int64_t cap, uint64_t now_ms)
{
    t->level = cap;
    t->last_ms = now_ms;
}

void hub_tbucket_refill(struct hub_tbucket *t, uint64_t rate, int64_t cap, uint64_t now_ms)
{
    if (now_ms <= t->last_ms)
        return;
    uint64_t dt = now_ms - t->last_ms;
    t->last_ms = now_ms;
    if (dt > 1000000000ull) /* 11 days: dt * rate stays far from overflowing */
        dt = 1000000000ull;
    uint64_t add = dt * rate;
    if (t->level < 0 && add >= (uint64_t)(-t->level))
        t->level = (int64_t)(add - (uint64_t)(-t->level));
    else if (t->level < 0)
        t->level += (int64_t)add;
    else
        t->level = add >= (uint64_t)cap ? cap : t->level + (int64_t)add;
    if (t->level > cap)
        t->level = cap;
}

int hub_tbucket_take(struct hub_tbucket *t, int64_t cost)
{
    t->level -= cost;
    return t->level < 0;
}

int hub_tbucket_try(struct hub_tbucket *t, int64_t cost)
{
    if (t->level < cost)
        return 0;
    t->level -= cost;
    return 1;
}

uint64_t hub_tbucket_wait_ms(const struct hub_tbucket *t, uint64_t rate)
{
    if (t->level >= 0 || rate == 0)
        return 0;
    return ((uint64_t)(-t->level) + rate - 1) / rate;
}

/* ---- the table of principals ----------------------------------------------------------- */

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int rehash(struct hub_quota_table *t, uint32_t nb)
{
    uint32_t *b = calloc(nb, sizeof *b);
    if (b == NULL)
        return HUB_ENOMEM;
    for (uint32_t i = 0; i < t->n; i++) {
        struct hub_quota_entry *e = &t->e[i];
        if (!e->used)
            continue;
        uint32_t h = hash(e->id) & (nb - 1);
        e->next = b[h];
        b[h] = i + 1;
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
    return 0;
}

uint32_t hub_quota_lookup(struct hub_quota_table *t, const char *id, int create)
{
    if (t->nbuckets > 0)
        for (uint32_t i = t->buckets[hash(id) & (t->nbuckets - 1)]; i != 0; i = t->e[i - 1].next)
            if (strcmp(t->e[i - 1].id, id) == 0)
                return i;
    if (!create || strlen(id) >= sizeof t->e[0].id)
        return 0;
    if (t->count + 1 > t->nbuckets && rehash(t, t->nbuckets ? t->nbuckets * 2 : 64) != 0)
        return 0;
    uint32_t i = t->free_head;
    if (i != 0) {
        t->free_head = t->e[i - 1].next;
    } else {
        if (t->n == t->cap) {
            uint32_t cap = t->cap ? t->cap * 2 : 16;
            struct hub_quota_entry *e = realloc(t->e, cap * sizeof *e);
            if (e == NULL)
                return 0;
            t->e = e;
            t->cap = cap;
        }
        i = ++t->n;
    }
    struct hub_quota_entry *e = &t->e[i - 1];
    memset(e, 0, sizeof *e);
    strcpy(e->id, id);
    e->used = 1;
    uint32_t h = hash(id) & (t->nbuckets - 1);
    e->next = t->buckets[h];
    t->buckets[h] = i;
    t->count++;
    return i;
}

void hub_quota_remove(struct hub_quota_table *t, uint32_t i)
{
    struct hub_quota_entry *e = &t->e[i - 1];
    uint32_t *pp = &t->buckets[hash(e->id) & (t->nbuckets - 1)];
    while (*pp != i)
        pp = &t->e[*pp - 1].next;
    *pp = e->next;
    e->used = 0;
    e->next = t->free_head;
    t->free_head = i;
    t->count--;
}

void hub_quota_table_free(struct hub_quota_table *t)
{
    free(t->e);
    free(t->buckets);
    memset(t, 0, sizeof *t);
}
