/* Subscription trie. A node stands for one filter level; its literal children live in a
 * linear-probing hash table (load <= 1/2, backward-shift deletion, so no tombstones), and
 * '+' and '#' children have their own pointers. A filter's subscriptions sit in the node
 * of its last level, in an unordered array. Emptied nodes are pruned up to the root.
 * The hash is FNV-1a seeded per tree so level names chosen by clients are harder to
 * collide on purpose. */
#include "mqtt/subtree.h"

#include <stdlib.h>
#include <string.h>

#include "mqtt/topic.h"
#include "util/error.h"

struct sub {
    void *subscriber;
    uint8_t qos;
};

struct node {
    struct node *parent;
    struct node **kids; /* literal children, kcap slots (0 or a power of two) */
    uint32_t nkids, kcap;
    struct node *plus, *hash;
    struct sub *subs;
    uint32_t nsubs, scap;
    uint32_t h;   /* hash of level */
    uint32_t len; /* length of level */
    char level[];
};

struct hub_subtree {
    struct node *root;
    size_t count;
    uint32_t seed;
};

static uint32_t level_hash(const hub_subtree_t *t, const char *s, size_t len)
{
    uint32_t h = 2166136261u ^ t->seed;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

static struct node *node_new(struct node *parent, const char *level, size_t len, uint32_t h)
{
    struct node *n = calloc(1, sizeof *n + len);
    if (!n)
        return NULL;
    n->parent = parent;
    n->h = h;
    n->len = (uint32_t)len;
    if (len)
        memcpy(n->level, level, len);
    return n;
}

/* Slot of the literal child named level, or of the empty slot where it would go. */
static uint32_t kid_slot(const struct node *n, const char *level, size_t len, uint32_t h)
{
    uint32_t mask = n->kcap - 1, i = h & mask;
    for (; n->kids[i]; i = (i + 1) & mask) {
        const struct node *k = n->kids[i];
        if (k->h == h && k->len == len && memcmp(k->level, level, len) == 0)
            break;
    }
    return i;
}

static struct node *kid_find(const struct node *n, const char *level, size_t len, uint32_t h)
{
    if (n->kcap == 0)
        return NULL;
    return n->kids[kid_slot(n, level, len, h)];
}

static int kid_add(struct node *n, struct node *k)
{
    if ((n->nkids + 1) * 2 > n->kcap) {
        uint32_t cap = n->kcap ? n->kcap * 2 : 4;
        struct node **old = n->kids;
        uint32_t oldcap = n->kcap;
        if (cap == 0 || !(n->kids = calloc(cap, sizeof *n->kids))) {
            n->kids = old;
            return HUB_ENOMEM;
        }
        n->kcap = cap;
        for (uint32_t i = 0; i < oldcap; i++)
            if (old[i])
                n->kids[kid_slot(n, old[i]->level, old[i]->len, old[i]->h)] = old[i];
        free(old);
    }
    n->kids[kid_slot(n, k->level, k->len, k->h)] = k;
    n->nkids++;
    return 0;
}

static void kid_del(struct node *n, const struct node *k)
{
    uint32_t mask = n->kcap - 1, i = kid_slot(n, k->level, k->len, k->h), j = i;
    n->kids[i] = NULL;
    n->nkids--;
    for (;;) {
        uint32_t home;
        j = (j + 1) & mask;
        if (!n->kids[j])
            break;
        home = n->kids[j]->h & mask;
        /* Move j back into the hole at i unless its home lies cyclically in (i, j]. */
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
            n->kids[i] = n->kids[j];
            n->kids[j] = NULL;
            i = j;
        }
    }
    if (n->nkids == 0) {
        free(n->kids);
        n->kids = NULL;
        n->kcap = 0;
    }
}

/* Frees empty nodes from n up to (not including) the root. */
static void prune(hub_subtree_t *t, struct node *n)
{
    while (n != t->root && n->nsubs == 0 && n->nkids == 0 && !n->plus && !n->hash) {
        struct node *p = n->parent;
        if (p->plus == n)
            p->plus = NULL;
        else if (p->hash == n)
            p->hash = NULL;
        else
            kid_del(p, n);
        free(n->subs);
        free(n);
        n = p;
    }
}

static void node_free(struct node *n)
{
    if (!n)
        return;
    for (uint32_t i = 0; i < n->kcap; i++)
        node_free(n->kids[i]);
    node_free(n->plus);
    node_free(n->hash);
    free(n->kids);
    free(n->subs);
    free(n);
}

hub_subtree_t *hub_subtree_new(void)
{
    hub_subtree_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->root = node_new(NULL, "", 0, 0);
    if (!t->root) {
        free(t);
        return NULL;
    }
    /* Address-space randomisation gives a cheap per-process seed without any I/O. */
    t->seed = (uint32_t)(((uintptr_t)t >> 4) * 2654435761u) ^ (uint32_t)(uintptr_t)&level_hash;
    return t;
}

void hub_subtree_free(hub_subtree_t *t)
{
    if (!t)
        return;
    node_free(t->root);
    free(t);
}

/* Walks (create: builds) the nodes of filter; NULL when absent or out of memory. */
static struct node *walk(hub_subtree_t *t, const char *filter, size_t flen, int create)
{
    struct node *n = t->root;
    size_t pos = 0;
    while (pos <= flen) {
        const char *slash = memchr(filter + pos, '/', flen - pos);
        size_t len = (slash ? (size_t)(slash - filter) : flen) - pos;
        const char *lv = filter + pos;
        struct node **slot = NULL, *k;
        uint32_t h = 0;
        pos += len + 1;
        if (len == 1 && lv[0] == '+') {
            slot = &n->plus;
            k = *slot;
        } else if (len == 1 && lv[0] == '#') {
            slot = &n->hash;
            k = *slot;
        } else {
            h = level_hash(t, lv, len);
            k = kid_find(n, lv, len, h);
        }
        if (!k) {
            if (!create || !(k = node_new(n, lv, len, h)))
                goto fail;
            if (slot) {
                *slot = k;
            } else if (kid_add(n, k) < 0) {
                free(k);
                goto fail;
            }
        }
        n = k;
    }
    return n;
fail:
    if (create)
        prune(t, n);
    return NULL;
}

int hub_subtree_insert(hub_subtree_t *t, const char *filter, size_t flen, void *subscriber,
                       uint8_t qos)
{
    struct node *n;
    size_t levels = 1;
    if (qos > 2 || !hub_topic_filter_valid(filter, flen))
        return HUB_EINVAL;
    for (size_t i = 0; i < flen; i++)
        levels += filter[i] == '/';
    if (levels > HUB_SUBTREE_MAX_LEVELS)
        return HUB_ERANGE;
    if (!(n = walk(t, filter, flen, 1)))
        return HUB_ENOMEM;
    for (uint32_t i = 0; i < n->nsubs; i++) {
        if (n->subs[i].subscriber == subscriber) {
            n->subs[i].qos = qos;
            return 1;
        }
    }
    if (n->nsubs == n->scap) {
        uint32_t cap = n->scap ? n->scap * 2 : 2;
        struct sub *s = cap ? realloc(n->subs, cap * sizeof *s) : NULL;
        if (!s) {
            prune(t, n);
            return HUB_ENOMEM;
        }
        n->subs = s;
        n->scap = cap;
    }
    n->subs[n->nsubs].subscriber = subscriber;
    n->subs[n->nsubs].qos = qos;
    n->nsubs++;
    t->count++;
    return 0;
}

int hub_subtree_remove(hub_subtree_t *t, const char *filter, size_t flen, const void *subscriber)
{
    struct node *n = walk(t, filter, flen, 0);
    if (!n)
        return HUB_ENOTFOUND;
    for (uint32_t i = 0; i < n->nsubs; i++) {
        if (n->subs[i].subscriber != subscriber)
            continue;
        n->subs[i] = n->subs[--n->nsubs];
        t->count--;
        if (n->nsubs == 0) {
            free(n->subs);
            n->subs = NULL;
            n->scap = 0;
            prune(t, n);
        }
        return 0;
    }
    return HUB_ENOTFOUND;
}

size_t hub_subtree_remove_all(hub_subtree_t *t, const void *subscriber, const char *const *filters,
                              size_t n)
{
    size_t removed = 0;
    for (size_t i = 0; i < n; i++)
        if (hub_subtree_remove(t, filters[i], strlen(filters[i]), subscriber) == 0)
            removed++;
    return removed;
}

static size_t visit(const struct node *n, hub_subtree_match_cb cb, void *ctx)
{
    for (uint32_t i = 0; i < n->nsubs; i++)
        cb(n->subs[i].subscriber, n->subs[i].qos, ctx);
    return n->nsubs;
}

/* n has consumed the topic up to pos (pos > tlen: all of it). Recursion depth is bounded
 * by the tree depth, i.e. HUB_SUBTREE_MAX_LEVELS. */
static size_t match_rec(const hub_subtree_t *t, const struct node *n, const char *topic,
                        size_t tlen, size_t pos, hub_subtree_match_cb cb, void *ctx)
{
    const char *slash;
    const struct node *k;
    size_t len, calls = 0;
    if (pos > tlen) {
        calls += visit(n, cb, ctx);
        if (n->hash) /* "a/#" matches "a" */
            calls += visit(n->hash, cb, ctx);
        return calls;
    }
    slash = memchr(topic + pos, '/', tlen - pos);
    len = (slash ? (size_t)(slash - topic) : tlen) - pos;
    if (!(pos == 0 && len > 0 && topic[0] == '$')) {
        if (n->hash)
            calls += visit(n->hash, cb, ctx);
        if (n->plus)
            calls += match_rec(t, n->plus, topic, tlen, pos + len + 1, cb, ctx);
    }
    /* Hash the level only when there are literal children to look it up in. */
    k = n->kcap ? kid_find(n, topic + pos, len, level_hash(t, topic + pos, len)) : NULL;
    if (k)
        calls += match_rec(t, k, topic, tlen, pos + len + 1, cb, ctx);
    return calls;
}

size_t hub_subtree_match(const hub_subtree_t *t, const char *topic, size_t tlen,
                         hub_subtree_match_cb cb, void *ctx)
{
    if (tlen == 0)
        return 0;
    return match_rec(t, t->root, topic, tlen, 0, cb, ctx);
}

size_t hub_subtree_count(const hub_subtree_t *t)
{
    return t->count;
}
