#include "mqtt/msg.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"

struct hub_msg *hub_msg_new(const char *topic, size_t topic_len, const void *payload,
                            size_t payload_len, uint8_t qos, uint8_t retain)
{
    struct hub_msg *m = malloc(sizeof *m + topic_len + 1 + payload_len);
    if (m == NULL)
        return NULL;
    m->refs = 1;
    m->qos = qos;
    m->retain = retain;
    m->topic_len = topic_len;
    m->payload_len = payload_len;
    m->topic = (char *)(m + 1);
    memcpy(m->topic, topic, topic_len);
    m->topic[topic_len] = 0;
    m->payload = (uint8_t *)m->topic + topic_len + 1;
    if (payload_len > 0)
        memcpy(m->payload, payload, payload_len);
    return m;
}

struct hub_msg *hub_msg_ref(struct hub_msg *m)
{
    m->refs++;
    return m;
}

void hub_msg_unref(struct hub_msg *m)
{
    if (m != NULL && --m->refs == 0)
        free(m);
}

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
    size_t i = find(r, m->topic, m->topic_len);
    if (r->slots[i] != NULL)
        hub_msg_unref(r->slots[i]);
    else
        r->count++;
    r->slots[i] = hub_msg_ref(m);
    return 0;
}

void hub_retained_each(const struct hub_retained *r,
                       void (*cb)(const struct hub_msg *m, void *ctx), void *ctx)
{
    for (size_t i = 0; i < r->cap; i++)
        if (r->slots[i] != NULL)
            cb(r->slots[i], ctx);
}

void hub_retained_free(struct hub_retained *r)
{
    for (size_t i = 0; i < r->cap; i++)
        hub_msg_unref(r->slots[i]);
    free(r->slots);
    memset(r, 0, sizeof *r);
}
