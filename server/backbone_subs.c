/* Two chained hash tables: filters (filter -> sessions per QoS) and pairs (session key +
 * filter -> QoS, pointing at its filter). Both grow by doubling at a load of 1. */
#include "server/backbone_subs.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"

struct filter {
    struct filter *next;
    unsigned n[3]; /* sessions subscribed at each QoS */
    size_t len;
    char name[]; /* NUL-terminated */
};

struct pair {
    struct pair *next;
    struct filter *f;
    uint8_t qos;
    size_t klen, len; /* key is name[0..klen), then a NUL, then the filter (len bytes) */
    char name[];
};

struct table {
    void **slot;
    size_t nslots, count;
};

struct hub_bsubs {
    struct table filters, pairs;
};

static uint64_t hash(const char *a, size_t alen, const char *b, size_t blen)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < alen; i++)
        h = (h ^ (uint8_t)a[i]) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (size_t i = 0; i < blen; i++)
        h = (h ^ (uint8_t)b[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static int table_init(struct table *t)
{
    t->nslots = 64;
    t->count = 0;
    t->slot = calloc(t->nslots, sizeof *t->slot);
    return t->slot != NULL ? 0 : HUB_ENOMEM;
}

/* The `next` pointer is the first member of both entry kinds. */
static void **next_of(void *e)
{
    return (void **)e;
}

static uint64_t filter_hash(const struct filter *f)
{
    return hash(NULL, 0, f->name, f->len);
}

static uint64_t pair_hash(const struct pair *p)
{
    return hash(p->name, p->klen, p->name + p->klen + 1, p->len);
}

/* Doubles t when full; a failed allocation keeps the table as it is (only slower). */
static void table_grow(struct table *t, int pairs)
{
    if (t->count < t->nslots)
        return;
    size_t n = t->nslots * 2;
    void **slot = calloc(n, sizeof *slot);
    if (slot == NULL)
        return;
    for (size_t i = 0; i < t->nslots; i++) {
        for (void *e = t->slot[i], *next; e != NULL; e = next) {
            next = *next_of(e);
            uint64_t h = pairs ? pair_hash(e) : filter_hash(e);
            *next_of(e) = slot[h & (n - 1)];
            slot[h & (n - 1)] = e;
        }
    }
    free(t->slot);
    t->slot = slot;
    t->nslots = n;
}

static void table_unlink(struct table *t, uint64_t h, void *e)
{
    for (void **pp = &t->slot[h & (t->nslots - 1)]; *pp != NULL; pp = next_of(*pp)) {
        if (*pp == e) {
            *pp = *next_of(e);
            t->count--;
            return;
        }
    }
}

static struct filter *filter_find(const struct hub_bsubs *t, const char *name, size_t len,
                                  uint64_t h)
{
    for (struct filter *f = t->filters.slot[h & (t->filters.nslots - 1)]; f; f = f->next)
        if (f->len == len && memcmp(f->name, name, len) == 0)
            return f;
    return NULL;
}

static struct pair *pair_find(const struct hub_bsubs *t, const char *key, size_t klen,
                              const char *name, size_t len, uint64_t h)
{
    for (struct pair *p = t->pairs.slot[h & (t->pairs.nslots - 1)]; p; p = p->next)
        if (p->klen == klen && p->len == len && memcmp(p->name, key, klen) == 0 &&
            memcmp(p->name + klen + 1, name, len) == 0)
            return p;
    return NULL;
}

static int top_qos(const struct filter *f)
{
    for (int q = 2; q >= 0; q--)
        if (f->n[q] > 0)
            return q;
    return HUB_BSUBS_GONE;
}

struct hub_bsubs *hub_bsubs_new(void)
{
    struct hub_bsubs *t = calloc(1, sizeof *t);
    if (t == NULL || table_init(&t->filters) != 0 || table_init(&t->pairs) != 0) {
        hub_bsubs_free(t);
        return NULL;
    }
    return t;
}

void hub_bsubs_free(struct hub_bsubs *t)
{
    if (t == NULL)
        return;
    struct table *tables[2] = {&t->filters, &t->pairs};
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; tables[k]->slot != NULL && i < tables[k]->nslots; i++) {
            for (void *e = tables[k]->slot[i], *next; e != NULL; e = next) {
                next = *next_of(e);
                free(e);
            }
        }
        free(tables[k]->slot);
    }
    free(t);
}

int hub_bsubs_add(struct hub_bsubs *t, const char *key, const char *filter, size_t flen,
                  uint8_t qos)
{
    if (qos > 2)
        qos = 2;
    size_t klen = strlen(key);
    uint64_t ph = hash(key, klen, filter, flen), fh = hash(NULL, 0, filter, flen);
    struct filter *f = filter_find(t, filter, flen, fh);
    int before = f != NULL ? top_qos(f) : HUB_BSUBS_GONE;
    struct pair *p = pair_find(t, key, klen, filter, flen, ph);
    if (p != NULL) {
        p->f->n[p->qos]--;
        p->f->n[qos]++;
        p->qos = qos;
    } else {
        if (f == NULL) {
            table_grow(&t->filters, 0);
            f = calloc(1, sizeof *f + flen + 1);
            if (f == NULL)
                return HUB_ENOMEM;
            memcpy(f->name, filter, flen);
            f->len = flen;
            f->next = t->filters.slot[fh & (t->filters.nslots - 1)];
            t->filters.slot[fh & (t->filters.nslots - 1)] = f;
            t->filters.count++;
        }
        table_grow(&t->pairs, 1);
        p = calloc(1, sizeof *p + klen + 1 + flen + 1);
        if (p == NULL) {
            if (top_qos(f) == HUB_BSUBS_GONE) {
                table_unlink(&t->filters, fh, f);
                free(f);
            }
            return HUB_ENOMEM;
        }
        memcpy(p->name, key, klen);
        memcpy(p->name + klen + 1, filter, flen);
        p->klen = klen;
        p->len = flen;
        p->f = f;
        p->qos = qos;
        f->n[qos]++;
        p->next = t->pairs.slot[ph & (t->pairs.nslots - 1)];
        t->pairs.slot[ph & (t->pairs.nslots - 1)] = p;
        t->pairs.count++;
    }
    int after = top_qos(f);
    return after != before ? after : HUB_BSUBS_SAME;
}

int hub_bsubs_remove(struct hub_bsubs *t, const char *key, const char *filter, size_t flen)
{
    size_t klen = strlen(key);
    uint64_t ph = hash(key, klen, filter, flen);
    struct pair *p = pair_find(t, key, klen, filter, flen, ph);
    if (p == NULL)
        return HUB_BSUBS_SAME;
    struct filter *f = p->f;
    int before = top_qos(f);
    f->n[p->qos]--;
    table_unlink(&t->pairs, ph, p);
    free(p);
    int after = top_qos(f);
    if (after == HUB_BSUBS_GONE) {
        table_unlink(&t->filters, filter_hash(f), f);
        free(f);
        return HUB_BSUBS_GONE;
    }
    return after != before ? after : HUB_BSUBS_SAME;
}

int hub_bsubs_qos(const struct hub_bsubs *t, const char *filter, size_t flen)
{
    struct filter *f = filter_find(t, filter, flen, hash(NULL, 0, filter, flen));
    return f != NULL ? top_qos(f) : HUB_BSUBS_GONE;
}

void hub_bsubs_each(const struct hub_bsubs *t,
                    void (*fn)(void *ctx, const char *filter, uint8_t qos), void *ctx)
{
    for (size_t i = 0; i < t->filters.nslots; i++)
        for (struct filter *f = t->filters.slot[i]; f != NULL; f = f->next)
            fn(ctx, f->name, (uint8_t)top_qos(f));
}

size_t hub_bsubs_filters(const struct hub_bsubs *t)
{
    return t->filters.count;
}

size_t hub_bsubs_pairs(const struct hub_bsubs *t)
{
    return t->pairs.count;
}
