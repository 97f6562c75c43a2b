/* Retained messages: an open-addressing table keyed by topic (FNV-1a, linear probing, at
 * most half full). A retained message is the published message itself, one more reference
 * on it, not a copy; deleting an entry re-inserts the rest of its cluster. The trie
 * r->topics indexes the same messages by topic level for hub_retained_match. */
#include "mqtt/retained.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"

static size_t hash(const char *s, size_t n)
{
    size_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* Linear probing; deletion re-inserts the rest of the cluster. */
static size_t find(const struct hub_retained *r, const char *topic, size_t len)
{
    size_t i = hash(topic, len) & (r->cap - 1);
    while (r->slots[i] != NULL &&
           !(r->slots[i]->topic_len == len && memcmp(r->slots[i]->topic, topic, len) == 0))
        i = (i + 1) & (r->cap - 1);
    return i;
}

static int grow(struct hub_retained *r)
{
    size_t cap = r->cap ? r->cap * 2 : 64;
    struct hub_msg **old = r->slots;
    size_t old_cap = r->cap;
    r->slots = calloc(cap, sizeof *r->slots);
    if (r->slots == NULL) {
        r->slots = old;
        return HUB_ENOMEM;
    }
    r->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i] != NULL)
            r->slots[find(r, old[i]->topic, old[i]->topic_len)] = old[i];
    free(old);
    return 0;
}

int hub_retained_set(struct hub_retained *r, struct hub_msg *m)
{
    if (m->payload_len == 0) {
        if (r->cap == 0)
            return 0;
        size_t i = find(r, m->topic, m->topic_len);
        if (r->slots[i] == NULL)
            return 0;
        hub_topictrie_del(r->topics, m->topic, m->topic_len);
        hub_msg_unref(r->slots[i]);
        r->slots[i] = NULL;
        r->count--;
        for (size_t j = (i + 1) & (r->cap - 1); r->slots[j] != NULL; j = (j + 1) & (r->cap - 1)) {
            struct hub_msg *x = r->slots[j];
            r->slots[j] = NULL;
            r->slots[find(r, x->topic, x->topic_len)] = x;
        }
        return 0;
    }
    if ((r->count + 1) * 2 > r->cap && grow(r) != 0)
        return HUB_ENOMEM;
    if (r->topics == NULL && (r->topics = hub_topictrie_new()) == NULL)
        return HUB_ENOMEM;
    if (hub_topictrie_set(r->topics, m->topic, m->topic_len, m) != 0)
        return HUB_ENOMEM;
    size_t i = find(r, m->topic, m->topic_len);
    if (r->slots[i] != NULL)
        hub_msg_unref(r->slots[i]);
    else
        r->count++;
    r->slots[i] = hub_msg_ref(m);
    return 0;
}

void hub_retained_each(const struct hub_retained *r, void (*cb)(const struct hub_msg *m, void *ctx),
                       void *ctx)
{
    for (size_t i = 0; i < r->cap; i++)
        if (r->slots[i] != NULL)
            cb(r->slots[i], ctx);
}

struct match_ctx {
    void (*cb)(const struct hub_msg *m, void *ctx);
    void *ctx;
};

static void match_cb(void *v, void *ctx)
{
    const struct match_ctx *a = ctx;
    a->cb(v, a->ctx);
}

void hub_retained_match(const struct hub_retained *r, const char *filter, size_t flen,
                        void (*cb)(const struct hub_msg *m, void *ctx), void *ctx)
{
    struct match_ctx a = {cb, ctx};
    if (r->topics != NULL)
        hub_topictrie_match(r->topics, filter, flen, match_cb, &a);
}

void hub_retained_free(struct hub_retained *r)
{
    hub_topictrie_free(r->topics);
    for (size_t i = 0; i < r->cap; i++)
        hub_msg_unref(r->slots[i]);
    free(r->slots);
    memset(r, 0, sizeof *r);
}

const struct hub_msg *hub_retained_get(const struct hub_retained *r, const char *topic, size_t len)
{
    return r->cap == 0 ? NULL : r->slots[find(r, topic, len)];
}
