/* Bulk revocation engine: see server/revjobs.h. One job at a time per node; a job is a
 * selection (one statement), then chunks (one transaction each), then the end (audit row).
 * A failed chunk is rolled back and retried; after MAX_ERRORS failures in a row the job
 * fails (its remaining certificates are counted failed). No CRL is built here: the NOTIFYs
 * of each chunk reach server/crl_publisher.c, which publishes delta CRLs within a second. */
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

struct hub_revjobs {
    char *db_url;
    PGconn *db;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop;
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

/* One chunk, one transaction. *taken: items consumed (0 when the job has none left). */
static int chunk(struct hub_revjobs *e, const struct hub_db_revjob *job, int *taken)
{
    int revoked = 0;
    int rc = hub_db_revjobs_chunk(e->db, job, HUB_REVJOBS_CHUNK, taken, &revoked);
    for (int i = 0; rc == 0 && i < revoked; i++)
        hub_metrics_inc(HUB_M_REVOCATIONS);
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
    }
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

struct hub_revjobs *hub_revjobs_start(const char *db_url)
{
    struct hub_revjobs *e = calloc(1, sizeof *e);
    if (e == NULL || (e->db_url = strdup(db_url)) == NULL) {
        free(e);
        hub_error("bulk revocation engine: out of memory");
        return NULL;
    }
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
