/* Bulk revocation engine: see server/revjobs.h. One job at a time per node; a job is a
 * selection (one statement), then chunks (one transaction each), then the end (audit row).
 * A failed chunk is rolled back and retried; after MAX_ERRORS failures in a row the job
 * fails (its remaining certificates are counted failed). */
#include "server/revjobs.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/metrics.h"
#include "db/db.h"
#include "db/revocation_jobs.h"
#include "util/error.h"
#include "util/log.h"

#define POLL_S 1
#define MAX_ERRORS 5
#define MAX_CAS 16 /* CAs whose CRL a job may dirty (issuing CAs: the active and retired ones) */

struct hub_revjobs {
    char *db_url;
    struct hub_authority *authority;
    PGconn *db;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop;
    /* CRLs to republish: the CAs of certificates revoked since the last publication. */
    int dirty[MAX_CAS];
    size_t ndirty;
    struct timespec published;
};

static int stopping(struct hub_revjobs *e)
{
    pthread_mutex_lock(&e->lock);
    int stop = e->stop;
    pthread_mutex_unlock(&e->lock);
    return stop;
}

static double since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* Publishes the CRLs of the dirty CAs, each in its own transaction, when force or a second
 * has passed since the last publication. A failure is logged; the periodic refresh of
 * `serve` (and the next chunk) publishes again. */
static void publish_crls(struct hub_revjobs *e, int force)
{
    if (e->ndirty == 0 || (!force && since(&e->published) < 1.0))
        return;
    for (size_t i = 0; i < e->ndirty; i++) {
        int rc = hub_db_begin(e->db);
        if (rc == 0)
            rc = hub_authority_publish_crl_of(e->authority, e->db, e->dirty[i]);
        if (rc == 0) {
            rc = hub_db_commit(e->db);
        } else {
            hub_db_rollback(e->db);
            if (rc == HUB_ENOTFOUND) /* a CA no longer held: expired, with its certificates */
                rc = 0;
        }
        if (rc != 0)
            hub_warn("bulk revocation: publishing the CRL of CA %d failed (%s)", e->dirty[i],
                     hub_strerror(rc));
    }
    e->ndirty = 0;
    clock_gettime(CLOCK_MONOTONIC, &e->published);
}

static void mark_dirty(struct hub_revjobs *e, const int *cas, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < e->ndirty && e->dirty[k] != cas[i])
            k++;
        if (k == e->ndirty && e->ndirty < MAX_CAS)
            e->dirty[e->ndirty++] = cas[i];
    }
}

/* One chunk in one transaction. *taken: items consumed (0 when the job has none left). */
static int chunk(struct hub_revjobs *e, const struct hub_db_revjob *job, int *taken)
{
    int revoked = 0, *cas = NULL;
    size_t nca = 0;
    int rc = hub_db_begin(e->db);
    if (rc == 0)
        rc = hub_db_revjobs_chunk(e->db, job, HUB_REVJOBS_CHUNK, taken, &revoked, &cas, &nca);
    if (rc == 0)
        rc = hub_db_commit(e->db);
    else
        hub_db_rollback(e->db);
    if (rc == 0) {
        mark_dirty(e, cas, nca);
        for (int i = 0; i < revoked; i++)
            hub_metrics_inc(HUB_M_REVOCATIONS);
    }
    free(cas);
    return rc;
}

/* Runs a claimed job to its end, or until the node stops. */
static void run_job(struct hub_revjobs *e, const struct hub_db_revjob *job)
{
    int errors = 0, rc = 0, total = -1, taken = 1;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    hub_info("bulk revocation %s: %s", job->id, job->selected ? "resumed" : "started");
    while (!job->selected && total < 0 && errors < MAX_ERRORS && !stopping(e)) {
        rc = hub_db_revjobs_select(e->db, job->id, &total);
        if (rc != 0)
            errors++;
    }
    if (total >= 0)
        hub_info("bulk revocation %s: %d certificates selected", job->id, total);
    while (taken > 0 && errors < MAX_ERRORS && !stopping(e)) {
        rc = chunk(e, job, &taken);
        errors = rc == 0 ? 0 : errors + 1;
        if (rc != 0) {
            hub_warn("bulk revocation %s: chunk failed (%s), retrying", job->id,
                     hub_strerror(rc));
            if (PQstatus(e->db) != CONNECTION_OK)
                hub_db_reset(e->db);
            struct timespec pause = {0, 200 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
        publish_crls(e, 0);
    }
    publish_crls(e, 1);
    if (stopping(e) && taken > 0 && errors < MAX_ERRORS)
        return; /* left running: resumed after HUB_REVJOBS_STALE_S by any node */
    char why[128];
    snprintf(why, sizeof why, "database error: %s", hub_strerror(rc));
    rc = hub_db_revjobs_finish(e->db, job->id, errors >= MAX_ERRORS ? why : NULL);
    if (rc != 0)
        hub_warn("bulk revocation %s: recording its end failed (%s); it is resumed later",
                 job->id, hub_strerror(rc));
    else
        hub_info("bulk revocation %s: %s in %.1f s", job->id,
                 errors >= MAX_ERRORS ? "failed" : "done", since(&start));
}

static void *engine(void *arg)
{
    struct hub_revjobs *e = arg;
    while (!stopping(e)) {
        if (e->db == NULL || PQstatus(e->db) != CONNECTION_OK) {
            PQfinish(e->db);
            e->db = NULL;
            if (hub_db_connect(e->db_url, &e->db) != 0) {
                PQfinish(e->db);
                e->db = NULL;
            }
        }
        struct hub_db_revjob job;
        int rc = e->db != NULL ? hub_db_revjobs_claim(e->db, HUB_REVJOBS_STALE_S, &job) : HUB_EDBDOWN;
        if (rc == 0) {
            run_job(e, &job);
            continue; /* another job may be waiting */
        }
        pthread_mutex_lock(&e->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += POLL_S;
        if (!e->stop)
            pthread_cond_timedwait(&e->wake, &e->lock, &until);
        pthread_mutex_unlock(&e->lock);
    }
    PQfinish(e->db);
    e->db = NULL;
    return NULL;
}

struct hub_revjobs *hub_revjobs_start(const char *db_url, struct hub_authority *authority)
{
    struct hub_revjobs *e = calloc(1, sizeof *e);
    if (e == NULL || (e->db_url = strdup(db_url)) == NULL) {
        free(e);
        hub_error("bulk revocation engine: out of memory");
        return NULL;
    }
    e->authority = authority;
    clock_gettime(CLOCK_MONOTONIC, &e->published);
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, NULL);
    if (pthread_create(&e->thread, NULL, engine, e) != 0) {
        hub_error("bulk revocation engine: cannot start its thread");
        pthread_cond_destroy(&e->wake);
        pthread_mutex_destroy(&e->lock);
        free(e->db_url);
        free(e);
        return NULL;
    }
    return e;
}

void hub_revjobs_stop(struct hub_revjobs *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&e->lock);
    e->stop = 1;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->thread, NULL);
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->lock);
    free(e->db_url);
    free(e);
}
