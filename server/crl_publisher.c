/* CRL publisher thread (see crl_publisher.h). One blocking loop: poll(2) on the LISTEN
 * connection's socket and a wake-up pipe, with the time to the next round as timeout. A
 * NOTIFY makes the next round due at once; a round that was refused by the one-second rule
 * or by another node's lock says when to come back. */
#include "server/crl_publisher.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "api/metrics.h"
#include "ca/crlpub.h"
#include "db/certificates.h"
#include "db/db.h"
#include "util/error.h"
#include "util/log.h"

#define PERIOD_MS 60000   /* a round without NOTIFY: missed notifications, stale deltas */
#define BUSY_RETRY_MS 250 /* another node holds a CA's lock */
#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 5000

struct hub_crl_publisher {
    char *db_url;
    struct hub_authority *a;
    pthread_t thread;
    int wake[2]; /* pipe: the stopper writes a byte */
    _Atomic int stop;
};

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Reads what arrived on the LISTEN connection; returns the number of NOTIFYs, or -1 when the
 * connection is lost. */
static int drain(PGconn *c)
{
    int n = 0;
    if (!PQconsumeInput(c))
        return -1;
    PGnotify *note;
    while ((note = PQnotifies(c)) != NULL) {
        n++;
        PQfreemem(note);
    }
    return PQstatus(c) == CONNECTION_OK ? n : -1;
}

/* One round over every CA (*out: CRLs published); returns when the next one is due (ms from
 * now), or -1 when the connection failed. */
static long long round_once(struct hub_crl_publisher *p, PGconn *c, int *out)
{
    int published, retry_ms, busy;
    int rc = hub_crlpub_all(p->a, c, HUB_CRLPUB_DUE, &published, &retry_ms, &busy);
    *out = rc == 0 ? published : 0;
    if (rc != 0) {
        hub_warn("CRL publication failed (%s); retrying", hub_strerror(rc));
        return PQstatus(c) == CONNECTION_OK ? RETRY_MAX_MS : -1;
    }
    for (int i = 0; i < published; i++)
        hub_metrics_inc(HUB_M_CRLS);
    if (busy > 0 && (retry_ms == 0 || retry_ms > BUSY_RETRY_MS))
        retry_ms = BUSY_RETRY_MS;
    return retry_ms > 0 ? retry_ms : PERIOD_MS;
}

static void *publisher(void *arg)
{
    struct hub_crl_publisher *p = arg;
    PGconn *c = NULL;
    long long due = 0;    /* when the next round runs (monotonic ms) */
    long long notice = 0; /* first NOTIFY not yet covered by a publication, or 0 */
    unsigned backoff = 0;
    while (!p->stop) {
        if (c == NULL) {
            if (hub_db_connect(p->db_url, &c) == 0 && hub_db_certificates_listen_revoked(c) == 0) {
                backoff = 0;
                due = 0; /* revocations made while away */
            } else {
                PQfinish(c);
                c = NULL;
                backoff = backoff ? backoff * 2 : RETRY_MIN_MS;
                if (backoff > RETRY_MAX_MS)
                    backoff = RETRY_MAX_MS;
                due = now_ms() + backoff;
            }
        }
        long long wait = due - now_ms();
        struct pollfd fds[2] = {{p->wake[0], POLLIN, 0}, {c ? PQsocket(c) : -1, POLLIN, 0}};
        if (wait > 0 && poll(fds, c ? 2 : 1, (int)(wait > PERIOD_MS ? PERIOD_MS : wait)) < 0 &&
            errno != EINTR)
            hub_warn("CRL publisher: poll failed: %s", strerror(errno));
        if (p->stop)
            break;
        if (c != NULL) { /* also what libpq queued while a round's queries ran */
            int n = drain(c);
            if (n < 0) {
                hub_warn("CRL publisher: database connection lost; reconnecting");
                PQfinish(c);
                c = NULL;
                continue;
            }
            long long soon = now_ms(); /* a revocation: publish now (or when allowed) */
            if (n > 0 && due > soon)
                due = soon;
            if (n > 0 && notice == 0)
                notice = soon;
        }
        if (c == NULL || now_ms() < due)
            continue;
        long long started = now_ms();
        int published = 0;
        long long next = round_once(p, c, &published);
        if (published > 0 && notice != 0 && notice <= started) {
            hub_debug("CRL publisher: %d CRL(s) published %lld ms after the revocation notice",
                      published, now_ms() - notice);
            notice = 0;
        }
        if (next < 0) {
            PQfinish(c);
            c = NULL;
            continue;
        }
        due = now_ms() + next;
        /* NOTIFYs that came during the round are read next time round; a revocation
         * committed after the round's snapshot makes its own NOTIFY, so none is lost. */
    }
    PQfinish(c);
    return NULL;
}

struct hub_crl_publisher *hub_crl_publisher_start(const char *db_url, struct hub_authority *a)
{
    struct hub_crl_publisher *p = calloc(1, sizeof *p);
    if (p == NULL || (p->db_url = strdup(db_url)) == NULL) {
        free(p);
        return NULL;
    }
    p->a = a;
    if (pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        hub_error("CRL publisher: pipe2 failed: %s", strerror(errno));
        free(p->db_url);
        free(p);
        return NULL;
    }
    if (pthread_create(&p->thread, NULL, publisher, p) != 0) {
        hub_error("CRL publisher: cannot start its thread");
        close(p->wake[0]);
        close(p->wake[1]);
        free(p->db_url);
        free(p);
        return NULL;
    }
    return p;
}

void hub_crl_publisher_stop(struct hub_crl_publisher *p)
{
    if (p == NULL)
        return;
    p->stop = 1;
    ssize_t w = write(p->wake[1], "x", 1);
    (void)w; /* a full pipe already wakes the thread */
    pthread_join(p->thread, NULL);
    close(p->wake[0]);
    close(p->wake[1]);
    free(p->db_url);
    free(p);
}
