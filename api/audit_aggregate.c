/* Aggregated audit rows of refused anonymous calls (api/audit_aggregate.h). */
#include "api/audit_aggregate.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "api/throttle.h"
#include "db/audit.h"
#include "util/log.h"

#define PERIOD_S 2
#define BATCH 256
#define ACQUIRE_MS 1000

struct hub_audit_aggregate {
    hub_db_pool_t *pool;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop;
};

/* Writes every pending aggregate. Without a connection they wait for the next round (in the
 * bounded table); those a failed statement could not write are dropped and logged. */
static void flush(struct hub_audit_aggregate *w)
{
    struct hub_throttle_audit a[BATCH];
    PGconn *c = NULL;
    size_t n;
    unsigned long long lost = 0;
    if (!hub_throttle_audit_pending() || hub_db_pool_acquire(w->pool, ACQUIRE_MS, &c) != 0)
        return;
    while ((n = hub_throttle_audit_take(a, BATCH)) > 0)
        for (size_t i = 0; i < n; i++)
            if (hub_db_audit_aggregate(c, a[i].source, a[i].minute, a[i].unauthorized,
                                       a[i].forbidden, a[i].throttled, a[i].other) != 0)
                lost += a[i].unauthorized + a[i].forbidden + a[i].throttled + a[i].other;
    hub_db_pool_release(w->pool, c);
    if (lost > 0)
        hub_warn("audit: %llu refused anonymous calls not audited (database unavailable)", lost);
}

static void *run(void *arg)
{
    struct hub_audit_aggregate *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += PERIOD_S;
        pthread_cond_timedwait(&w->wake, &w->lock, &until);
        pthread_mutex_unlock(&w->lock);
        flush(w);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

hub_audit_aggregate_t *hub_audit_aggregate_start(hub_db_pool_t *pool)
{
    struct hub_audit_aggregate *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->pool = pool;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    return w;
}

void hub_audit_aggregate_stop(hub_audit_aggregate_t *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    flush(w); /* what came in since the last round */
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
