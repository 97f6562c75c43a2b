/* Trie of topic names (topictrie.h). A node is one level; its literal children sit in a
 * linear-probing table (load <= 1/2, backward-shift deletion), a value marks a topic that
 * ends there. Emptied nodes are pruned up to the root. Deep topics (a 65,535-byte topic may
 * have 32,768 levels) are walked, freed and enumerated without recursion; only matching
 * recurses, once per filter level (at most HUB_TOPICTRIE_MAX_LEVELS). */
#include "mqtt/topictrie.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/siphash.h"

struct node {
    struct node *parent;
    struct node **kids; /* kcap slots: 0 or a power of two */
    uint32_t nkids, kcap;
    void *v;
    uint32_t h;   /* hash of level */
    uint32_t len; /* length of level */
    char level[];
};

struct hub_topictrie {
    struct node *root;
    size_t count;
    struct hub_sipkey key;
};

static uint32_t level_hash(const hub_topictrie_t *t, const char *s, size_t len)
{
    return (uint32_t)hub_siphash(&t->key, s, len);
}

static struct node *node_new(struct node *parent, const char *level, size_t len, uint32_t h)
{
    struct node *n = calloc(1, sizeof *n + len);
    if (n == NULL)
        return NULL;
    n->parent = parent;
    n->h = h;
    n->len = (uint32_t)len;
    if (len > 0)
        memcpy(n->level, level, len);
    return n;
}

/* Slot of the child named level, or of the empty slot where it would go (kcap > 0). */
static uint32_t kid_slot(const struct node *n, const char *level, size_t len, uint32_t h)
{
    uint32_t mask = n->kcap - 1, i = h & mask;
    for (; n->kids[i] != NULL; i = (i + 1) & mask) {
        const struct node *k = n->kids[i];
        if (k->h == h && k->len == len && memcmp(k->level, level, len) == 0)
            break;
    }
    return i;
}

static struct node *kid_find(const struct node *n, const char *level, size_t len, uint32_t h)
{
    return n->kcap == 0 ? NULL : n->kids[kid_slot(n, level, len, h)];
}

static int kid_add(struct node *n, struct node *k)
{
    if ((n->nkids + 1) * 2 > n->kcap) {
        uint32_t cap = n->kcap ? n->kcap * 2 : 4;
        struct node **old = n->kids;
        uint32_t oldcap = n->kcap;
        if (cap == 0 || (n->kids = calloc(cap, sizeof *n->kids)) == NULL) {
            n->kids = old;
            return HUB_ENOMEM;
        }
        n->kcap = cap;
        for (uint32_t i = 0; i < oldcap; i++)
            if (old[i] != NULL)
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
        j = (j + 1) & mask;
        if (n->kids[j] == NULL)
            break;
        uint32_t home = n->kids[j]->h & mask;
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
static void prune(hub_topictrie_t *t, struct node *n)
{
    while (n != t->root && n->v == NULL && n->nkids == 0) {
        struct node *p = n->parent;
        kid_del(p, n);
        free(n);
        n = p;
    }
}

hub_topictrie_t *hub_topictrie_new(void)
{
    hub_topictrie_t *t = calloc(1, sizeof *t);
    if (t == NULL || (t->root = node_new(NULL, "", 0, 0)) == NULL) {
        free(t);
        return NULL;
    }
    hub_sipkey_init(&t->key);
    return t;
}

void hub_topictrie_free(hub_topictrie_t *t)
{
    if (t == NULL)
        return;
    /* Post-order without recursion: each node's slots are consumed from the end. */
    struct node *n = t->root;
    while (n != NULL) {
        while (n->kcap > 0 && n->kids[n->kcap - 1] == NULL)
            n->kcap--;
        if (n->kcap > 0) {
            n = n->kids[--n->kcap];
            continue;
        }
        struct node *p = n->parent;
        free(n->kids);
        free(n);
        n = p;
    }
    free(t);
}

/* The node of topic (create: built as needed); NULL when absent or out of memory. */
static struct node *walk(hub_topictrie_t *t, const char *topic, size_t tlen, int create)
{
    struct node *n = t->root;
    size_t pos = 0;
    while (pos <= tlen) {
        const char *slash = memchr(topic + pos, '/', tlen - pos);
        size_t len = (slash != NULL ? (size_t)(slash - topic) : tlen) - pos;
        const char *lv = topic + pos;
        uint32_t h = level_hash(t, lv, len);
        struct node *k = kid_find(n, lv, len, h);
        pos += len + 1;
        if (k == NULL) {
            if (!create)
                return NULL;
            if ((k = node_new(n, lv, len, h)) == NULL || kid_add(n, k) != 0) {
                free(k);
                prune(t, n);
                return NULL;
            }
        }
        n = k;
    }
    return n;
}

int hub_topictrie_set(hub_topictrie_t *t, const char *topic, size_t len, void *v)
{
    struct node *n = walk(t, topic, len, 1);
    if (n == NULL)
        return HUB_ENOMEM;
    if (n->v == NULL)
        t->count++;
    n->v = v;
    return 0;
}

void *hub_topictrie_del(hub_topictrie_t *t, const char *topic, size_t len)
{
    struct node *n = walk(t, topic, len, 0);
    if (n == NULL || n->v == NULL)
        return NULL;
    void *v = n->v;
    n->v = NULL;
    t->count--;
    prune(t, n);
    return v;
}

void *hub_topictrie_get(const hub_topictrie_t *t, const char *topic, size_t len)
{
    struct node *n = walk((hub_topictrie_t *)t, topic, len, 0); /* create 0: read only */
    return n != NULL ? n->v : NULL;
}

struct match {
    const hub_topictrie_t *t;
    const char *f;
    size_t flen, calls;
    void (*cb)(void *v, void *ctx);
    void *ctx;
};

/* A first-level wildcard skips this child of the root ("$SYS/..."). */
static int dollar(const struct match *m, const struct node *parent, const struct node *k)
{
    return parent == m->t->root && k->len > 0 && k->level[0] == '$';
}

static void visit(struct match *m, const struct node *n)
{
    if (n->v != NULL) {
        m->cb(n->v, m->ctx);
        m->calls++;
    }
}

/* Visits every node below top (not top itself), depth first, without recursion: going up,
 * a node finds its own slot in its parent to go on from the next one. */
static void below(struct match *m, const struct node *top)
{
    const struct node *n = top;
    uint32_t i = 0;
    for (;;) {
        while (i < n->kcap && (n->kids[i] == NULL || dollar(m, n, n->kids[i])))
            i++;
        if (i < n->kcap) {
            n = n->kids[i];
            visit(m, n);
            i = 0;
            continue;
        }
        if (n == top)
            return;
        const struct node *p = n->parent;
        i = kid_slot(p, n->level, n->len, n->h) + 1;
        n = p;
    }
}

/* n has consumed the filter up to pos (pos > flen: all of it). */
static void match_rec(struct match *m, const struct node *n, size_t pos)
{
    if (pos > m->flen) {
        visit(m, n);
        return;
    }
    const char *lv = m->f + pos;
    const char *slash = memchr(lv, '/', m->flen - pos);
    size_t len = slash != NULL ? (size_t)(slash - lv) : m->flen - pos;
    if (len == 1 && lv[0] == '#') {
        visit(m, n); /* "a/#" matches "a" (the root has no value) */
        below(m, n);
        return;
    }
    if (len == 1 && lv[0] == '+') {
        for (uint32_t i = 0; i < n->kcap; i++)
            if (n->kids[i] != NULL && !dollar(m, n, n->kids[i]))
                match_rec(m, n->kids[i], pos + 2);
        return;
    }
    const struct node *k = kid_find(n, lv, len, level_hash(m->t, lv, len));
    if (k != NULL)
        match_rec(m, k, pos + len + 1);
}

size_t hub_topictrie_match(const hub_topictrie_t *t, const char *filter, size_t flen,
                           void (*cb)(void *v, void *ctx), void *ctx)
{
    size_t levels = 1;
    for (size_t i = 0; i < flen; i++)
        levels += filter[i] == '/';
    if (flen == 0 || levels > HUB_TOPICTRIE_MAX_LEVELS || t->count == 0)
        return 0;
    struct match m = {t, filter, flen, 0, cb, ctx};
    match_rec(&m, t->root, 0);
    return m.calls;
}

size_t hub_topictrie_count(const hub_topictrie_t *t)
{
    return t->count;
}
