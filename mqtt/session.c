#include "mqtt/session.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define MAX_INCOMING 1024 /* QoS 2 ids a client may leave unreleased */
#define MAX_SPARE 4096    /* delivery records a table keeps for reuse */

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int hub_session_table_init(struct hub_session_table *t)
{
    memset(t, 0, sizeof *t);
    t->nbuckets = 1024;
    t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
    return t->buckets ? 0 : HUB_ENOMEM;
}

static void free_session(struct hub_session *s)
{
    struct hub_delivery *d = s->head;
    while (d != NULL) {
        struct hub_delivery *next = d->next;
        hub_msg_unref(d->msg);
        free(d);
        d = next;
    }
    s->table->queued -= s->queued;
    s->table->inflight -= s->inflight;
    free(s->waiters);
    for (size_t i = 0; i < s->nsubs; i++)
        free(s->filters[i]);
    free(s->filters);
    hub_filterset_free(&s->fset);
    free(s->incoming);
    free(s->key);
    free(s);
}

void hub_session_table_free(struct hub_session_table *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct hub_session *s = t->buckets[i];
        while (s != NULL) {
            struct hub_session *next = s->hnext;
            free_session(s);
            s = next;
        }
    }
    while (t->spare != NULL) {
        struct hub_delivery *d = t->spare;
        t->spare = d->next;
        free(d);
    }
    free(t->buckets);
    memset(t, 0, sizeof *t);
}

struct hub_session *hub_session_find(const struct hub_session_table *t, const char *key)
{
    for (struct hub_session *s = t->buckets[hash(key) & (t->nbuckets - 1)]; s; s = s->hnext)
        if (strcmp(s->key, key) == 0)
            return s;
    return NULL;
}

static void rehash(struct hub_session_table *t)
{
    size_t n = t->nbuckets * 2;
    struct hub_session **b = calloc(n, sizeof *b);
    if (b == NULL)
        return; /* keep the longer chains */
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct hub_session *s = t->buckets[i];
        while (s != NULL) {
            struct hub_session *next = s->hnext;
            size_t j = hash(s->key) & (n - 1);
            s->hnext = b[j];
            b[j] = s;
            s = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

struct hub_session *hub_session_create(struct hub_session_table *t, const char *key)
{
    struct hub_session *s = calloc(1, sizeof *s);
    if (s == NULL || (s->key = strdup(key)) == NULL) {
        free(s);
        return NULL;
    }
    s->table = t;
    if (t->count + 1 > t->nbuckets)
        rehash(t);
    size_t i = hash(key) & (t->nbuckets - 1);
    s->hnext = t->buckets[i];
    t->buckets[i] = s;
    t->count++;
    return s;
}

void hub_session_destroy(struct hub_session_table *t, struct hub_session *s)
{
    struct hub_session **pp = &t->buckets[hash(s->key) & (t->nbuckets - 1)];
    while (*pp != NULL && *pp != s)
        pp = &(*pp)->hnext;
    if (*pp == s) {
        *pp = s->hnext;
        t->count--;
    }
    free_session(s);
}

/* A zeroed delivery record holding a reference to m, recycled when one is spare. */
static struct hub_delivery *new_delivery(struct hub_session_table *t, struct hub_msg *m,
                                         uint8_t qos)
{
    struct hub_delivery *d = t->spare;
    if (d != NULL) {
        t->spare = d->next;
        t->nspare--;
        memset(d, 0, sizeof *d);
    } else if ((d = calloc(1, sizeof *d)) == NULL) {
        return NULL;
    }
    d->msg = hub_msg_ref(m);
    d->qos = qos;
    return d;
}

int hub_session_enqueue_inflight(struct hub_session *s, struct hub_msg *m, uint8_t qos,
                                 uint8_t state, uint16_t pid)
{
    struct hub_delivery *d = new_delivery(s->table, m, qos), *prev = NULL;
    if (d == NULL)
        return HUB_ENOMEM;
    d->state = state;
    d->pid = pid;
    for (struct hub_delivery *x = s->head; x != NULL && x != s->unsent; x = x->next)
        prev = x;
    d->next = prev != NULL ? prev->next : s->head;
    if (prev != NULL)
        prev->next = d;
    else
        s->head = d;
    if (d->next == NULL)
        s->tail = d;
    s->queued++;
    s->table->queued++;
    return 0;
}

static int enqueue(struct hub_session *s, struct hub_msg *m, uint8_t qos, uint8_t retain)
{
    struct hub_session_table *t = s->table;
    struct hub_delivery *d = new_delivery(t, m, qos);
    if (d == NULL)
        return HUB_ENOMEM;
    d->retain = retain;
    if (s->tail != NULL)
        s->tail->next = d;
    else
        s->head = d;
    s->tail = d;
    if (s->unsent == NULL)
        s->unsent = d;
    s->queued++;
    t->queued++;
    return 0;
}

int hub_session_enqueue(struct hub_session *s, struct hub_msg *m, uint8_t qos)
{
    return enqueue(s, m, qos, 0);
}

int hub_session_enqueue_retained(struct hub_session *s, struct hub_msg *m, uint8_t qos)
{
    return enqueue(s, m, qos, 1);
}

size_t hub_session_queued(const struct hub_session *s)
{
    return s->queued;
}

struct hub_delivery *hub_session_next_unsent(struct hub_session *s)
{
    struct hub_delivery *d = s->unsent;
    if (d != NULL)
        s->unsent = d->next;
    return d;
}

struct hub_delivery *hub_session_find_pid(struct hub_session *s, uint16_t pid)
{
    for (struct hub_delivery *d = s->head; d != NULL && d != s->unsent; d = d->next)
        if (d->pid == pid && d->state != HUB_DELIVERY_QUEUED)
            return d;
    return NULL;
}

uint16_t hub_session_next_pid(struct hub_session *s)
{
    for (;;) {
        s->last_pid = (uint16_t)(s->last_pid + 1);
        if (s->last_pid == 0)
            continue;
        if (hub_session_find_pid(s, s->last_pid) == NULL)
            return s->last_pid;
    }
}

void hub_session_remove(struct hub_session *s, struct hub_delivery *d)
{
    struct hub_delivery **pp = &s->head, *prev = NULL;
    while (*pp != NULL && *pp != d) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL)
        return;
    *pp = d->next;
    if (s->tail == d)
        s->tail = prev;
    if (s->unsent == d)
        s->unsent = d->next;
    s->queued--;
    s->table->queued--;
    hub_msg_unref(d->msg);
    if (s->table->nspare < MAX_SPARE) {
        d->next = s->table->spare;
        s->table->spare = d;
        s->table->nspare++;
    } else {
        free(d);
    }
}

void hub_session_set_inflight(struct hub_session *s, unsigned n)
{
    s->table->inflight = s->table->inflight - s->inflight + n;
    s->inflight = n;
}

int hub_session_add_filter(struct hub_session *s, const char *f, size_t len)
{
    if (hub_filterset_find(&s->fset, s->filters, f, len) >= 0)
        return 0;
    if (s->nsubs == s->subs_cap) {
        size_t cap = s->subs_cap ? s->subs_cap * 2 : 4;
        char **p = realloc(s->filters, cap * sizeof *p);
        if (p == NULL)
            return HUB_ENOMEM;
        s->filters = p;
        s->subs_cap = cap;
    }
    if ((s->filters[s->nsubs] = strndup(f, len)) == NULL)
        return HUB_ENOMEM;
    if (hub_filterset_add(&s->fset, s->filters, s->nsubs) != 0) {
        free(s->filters[s->nsubs]);
        return HUB_ENOMEM;
    }
    s->nsubs++;
    return 0;
}

void hub_session_remove_filter(struct hub_session *s, const char *f, size_t len)
{
    long i = hub_filterset_find(&s->fset, s->filters, f, len);
    if (i < 0)
        return;
    hub_filterset_del(&s->fset, s->filters, (size_t)i);
    free(s->filters[i]);
    if ((size_t)i != --s->nsubs) {
        s->filters[i] = s->filters[s->nsubs];
        hub_filterset_moved(&s->fset, s->filters, s->nsubs, (size_t)i);
    }
}

int hub_session_has_filter(const struct hub_session *s, const char *f, size_t len)
{
    return hub_filterset_find(&s->fset, s->filters, f, len) >= 0;
}

int hub_session_has_incoming(const struct hub_session *s, uint16_t pid)
{
    for (size_t i = 0; i < s->nincoming; i++)
        if (s->incoming[i] == pid)
            return 1;
    return 0;
}

void hub_session_add_incoming(struct hub_session *s, uint16_t pid)
{
    if (hub_session_has_incoming(s, pid) || s->nincoming >= MAX_INCOMING)
        return;
    if (s->nincoming == s->incoming_cap) {
        size_t cap = s->incoming_cap ? s->incoming_cap * 2 : 8;
        uint16_t *p = realloc(s->incoming, cap * sizeof *p);
        if (p == NULL)
            return;
        s->incoming = p;
        s->incoming_cap = cap;
    }
    s->incoming[s->nincoming++] = pid;
}

void hub_session_remove_incoming(struct hub_session *s, uint16_t pid)
{
    for (size_t i = 0; i < s->nincoming; i++) {
        if (s->incoming[i] == pid) {
            s->incoming[i] = s->incoming[--s->nincoming];
            return;
        }
    }
}
