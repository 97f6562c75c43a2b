#include "db/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db.h"
#include "util/error.h"
#include "util/log.h"

struct hub_db_pool {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    char *url;
    int size;
    int nfree;      /* entries [0, nfree) of idle are available */
    PGconn **idle;  /* NULL entries are connections not opened yet */
    unsigned long long busy, down; /* acquire failures, under lock */
};

hub_db_pool_t *hub_db_pool_new(const char *url, int size)
{
    hub_db_pool_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->url = strdup(url);
    p->idle = calloc((size_t)size, sizeof *p->idle);
    if (p->url == NULL || p->idle == NULL) {
        free(p->url);
        free(p->idle);
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->freed, NULL);
    p->size = p->nfree = size;
    return p;
}

void hub_db_pool_free(hub_db_pool_t *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < p->nfree; i++)
        PQfinish(p->idle[i]);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->freed);
    free(p->idle);
    free(p->url);
    free(p);
}

/* Makes c usable: opens it if NULL, resets it if broken. */
static int revive(hub_db_pool_t *p, PGconn **c)
{
    /* One the server closed while idle is reset rather than trusted with the first query. */
    if (hub_db_idle_ok(*c))
        return 0;
    if (*c != NULL) {
        if (hub_db_reset(*c) == 0)
            return 0;
        PQfinish(*c);
        *c = NULL;
    }
    return hub_db_connect(p->url, c);
}

int hub_db_pool_acquire(hub_db_pool_t *p, int timeout_ms, PGconn **out)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->lock);
    while (p->nfree == 0) {
        if (pthread_cond_timedwait(&p->freed, &p->lock, &deadline) == ETIMEDOUT) {
            p->busy++;
            pthread_mutex_unlock(&p->lock);
            hub_warn("all %d database connections busy for %d ms", p->size, timeout_ms);
            return HUB_ERANGE;
        }
    }
    PGconn *c = p->idle[--p->nfree];
    pthread_mutex_unlock(&p->lock);

    int rc = revive(p, &c);
    if (rc != 0) {
        pthread_mutex_lock(&p->lock);
        p->down++;
        pthread_mutex_unlock(&p->lock);
        hub_db_pool_release(p, c); /* gives the slot back (c may be NULL) */
        return HUB_EDBDOWN;
    }
    *out = c;
    return 0;
}

void hub_db_pool_release(hub_db_pool_t *p, PGconn *c)
{
    if (c != NULL && PQstatus(c) == CONNECTION_OK &&
        PQtransactionStatus(c) != PQTRANS_IDLE)
        hub_db_rollback(c);
    pthread_mutex_lock(&p->lock);
    p->idle[p->nfree++] = c;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
}

void hub_db_pool_stats(hub_db_pool_t *p, struct hub_db_pool_stats *out)
{
    pthread_mutex_lock(&p->lock);
    out->size = p->size;
    out->in_use = p->size - p->nfree;
    out->open = p->size - p->nfree;
    for (int i = 0; i < p->nfree; i++)
        out->open += p->idle[i] != NULL;
    out->busy = p->busy;
    out->down = p->down;
    pthread_mutex_unlock(&p->lock);
}

int hub_db_pool_ping(hub_db_pool_t *p)
{
    PGconn *c;
    if (hub_db_pool_acquire(p, 1000, &c) != 0)
        return 0;
    int ok = hub_db_exec(c, NULL, "SELECT 1", 0, NULL) == 0;
    hub_db_pool_release(p, c);
    return ok;
}
