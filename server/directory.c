/* The directory is an array of entries swapped whole after each load (a load job fills a new
 * one on the feed's connection; the loop swaps it in). Routing scans it: fine for the
 * backends' few filters a fleet has; HUB_DIRECTORY_MAX bounds it. */
#include "server/directory.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/mqtt_state.h"
#include "mqtt/topic.h"
#include "server/mqtt_store.h"
#include "util/error.h"
#include "util/log.h"

struct entry {
    char *key;
    char *filter;
    size_t flen;
    uint8_t qos;
};

struct table {
    struct entry *v;
    size_t n, cap;
    int truncated;
};

struct hub_directory {
    char node[65];
    struct hub_mqtt_store *store;
    struct table cur, fresh; /* cur: the loop's; fresh: the job's */
    int stopping;
    pthread_mutex_t stats_lock;
    unsigned long long loads, routed;
    size_t size;
};

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].key); /* filter shares the block */
    free(t->v);
    memset(t, 0, sizeof *t);
}

static int on_entry(void *ctx, const char *key, const char *filter, int qos)
{
    struct table *t = ctx;
    if (t->n == HUB_DIRECTORY_MAX) {
        t->truncated = 1;
        return 0;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        struct entry *v = realloc(t->v, cap * sizeof *v);
        if (v == NULL)
            return HUB_ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    size_t kl = strlen(key), fl = strlen(filter);
    char *p = malloc(kl + fl + 2);
    if (p == NULL)
        return HUB_ENOMEM;
    memcpy(p, key, kl + 1);
    memcpy(p + kl + 1, filter, fl + 1);
    t->v[t->n++] = (struct entry){p, p + kl + 1, fl, (uint8_t)qos};
    return 0;
}

static int load_cb(PGconn *c, void *ctx)
{
    struct hub_directory *d = ctx;
    table_free(&d->fresh);
    int rc = hub_db_mqtt_directory(c, d->node, on_entry, &d->fresh);
    if (rc != 0)
        table_free(&d->fresh);
    return rc;
}

static void loaded_cb(void *ctx)
{
    struct hub_directory *d = ctx;
    if (d->stopping)
        return;
    table_free(&d->cur);
    d->cur = d->fresh;
    memset(&d->fresh, 0, sizeof d->fresh);
    if (d->cur.truncated)
        hub_warn("directory: more than %d persistent subscriptions held elsewhere: the rest "
                 "get messages through the backbone only",
                 HUB_DIRECTORY_MAX);
    pthread_mutex_lock(&d->stats_lock);
    d->loads++;
    d->size = d->cur.n;
    pthread_mutex_unlock(&d->stats_lock);
}

static int notify_cb(const char *payload, void *ctx)
{
    (void)payload;
    struct hub_directory *d = ctx;
    return !d->stopping; /* reload */
}

static void release_cb(void *ctx)
{
    struct hub_directory *d = ctx;
    table_free(&d->cur);
    table_free(&d->fresh);
    pthread_mutex_destroy(&d->stats_lock);
    free(d);
}

int hub_directory_start(struct hub_pgfeed *pg, const char *node, struct hub_mqtt_store *store,
                        struct hub_directory **out)
{
    struct hub_directory *d = calloc(1, sizeof *d);
    if (d == NULL)
        return HUB_ENOMEM;
    snprintf(d->node, sizeof d->node, "%s", node);
    d->store = store;
    pthread_mutex_init(&d->stats_lock, NULL);
    struct hub_pgfeed_listener l = {
        .channel = "iothub_directory",
        .load = load_cb,
        .loaded = loaded_cb,
        .notify = notify_cb,
        .release = release_cb,
        .ctx = d,
    };
    int rc = hub_pgfeed_add(pg, &l);
    if (rc != 0) {
        pthread_mutex_destroy(&d->stats_lock);
        free(d);
        return rc;
    }
    *out = d;
    return 0;
}

size_t hub_directory_route(struct hub_directory *d, const struct hub_msg *m)
{
    if (d == NULL || d->stopping || m->qos == 0 || m->id == 0)
        return 0;
    size_t n = 0;
    const char *last = NULL;
    for (size_t i = 0; i < d->cur.n; i++) {
        const struct entry *e = &d->cur.v[i];
        /* One delivery per session (its first matching filter; rows come by session). */
        if (last != NULL && strcmp(last, e->key) == 0)
            continue;
        if (!hub_topic_match(e->filter, e->flen, m->topic, m->topic_len))
            continue;
        hub_mqtt_store_queued(d->store, e->key, m, e->qos < m->qos ? e->qos : m->qos);
        last = e->key;
        n++;
    }
    if (n > 0) {
        pthread_mutex_lock(&d->stats_lock);
        d->routed += n;
        pthread_mutex_unlock(&d->stats_lock);
    }
    return n;
}

int hub_directory_metrics(struct hub_directory *d, hub_buf_t *out)
{
    pthread_mutex_lock(&d->stats_lock);
    unsigned long long loads = d->loads, routed = d->routed;
    size_t size = d->size;
    pthread_mutex_unlock(&d->stats_lock);
    return hub_buf_printf(
        out,
        "# HELP iothub_directory_subscriptions Persistent sessions' QoS >= 1 subscriptions held "
        "by other nodes (or offline on them) that this node writes queue rows for.\n"
        "# TYPE iothub_directory_subscriptions gauge\n"
        "iothub_directory_subscriptions %zu\n"
        "# HELP iothub_directory_loads_total Loads of the directory (start, reconnects, "
        "changes).\n"
        "# TYPE iothub_directory_loads_total counter\n"
        "iothub_directory_loads_total %llu\n"
        "# HELP iothub_directory_deliveries_total Queue rows this node wrote for sessions held "
        "elsewhere.\n"
        "# TYPE iothub_directory_deliveries_total counter\n"
        "iothub_directory_deliveries_total %llu\n",
        size, loads, routed);
}

void hub_directory_stop(struct hub_directory *d)
{
    if (d != NULL)
        d->stopping = 1;
}
