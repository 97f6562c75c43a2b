/* The loop decides, one thread-pool job at a time, what the connection does next (kick):
 * connect (after the back-off), the loads listeners asked for, or the queued jobs; when there
 * is nothing to do it polls the socket. Only the job touches the connection while it runs. */
#include "server/pgfeed.h"

#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "util/error.h"
#include "util/log.h"

#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 5000 /* a change missed while away is applied within ~5 s */
#define MAX_LISTENERS 8

struct job {
    int (*work)(PGconn *c, void *arg);
    void (*done)(int rc, void *arg);
    void *arg;
    int rc;
    struct job *next;
};

enum step { STEP_CONNECT, STEP_RELOAD, STEP_JOB };

struct hub_pgfeed {
    uv_loop_t *loop;
    char *db_url;
    char *label;
    struct hub_pgfeed_listener l[MAX_LISTENERS];
    int load_rc[MAX_LISTENERS]; /* written by the job */
    size_t n;
    PGconn *db;        /* owned by the job while it runs, by the loop otherwise */
    unsigned reload;   /* listeners whose load must run (bit per listener) */
    struct job *jobs, **jobs_tail;
    struct job *current;
    enum step step;
    uv_work_t work;
    uv_poll_t *poll; /* NULL when not polling */
    uv_timer_t retry;
    unsigned retry_ms;
    int connected; /* db is up and loaded */
    int waiting;   /* the retry timer runs */
    int busy, stopping, handles_open, was_up;
    unsigned long long attempts;
};

static void kick(struct hub_pgfeed *f);

/* ---- thread pool ------------------------------------------------------------------------- */

static void load_some(struct hub_pgfeed *f, unsigned mask, int *ok)
{
    for (size_t i = 0; i < f->n && *ok; i++) {
        if (!(mask & (1u << i)) || f->l[i].load == NULL)
            continue;
        f->load_rc[i] = f->l[i].load(f->db, f->l[i].ctx);
        if (f->load_rc[i] != 0)
            *ok = 0;
    }
}

static void work_cb(uv_work_t *req)
{
    struct hub_pgfeed *f = req->data;
    int ok = 1;
    unsigned mask = f->reload;
    switch (f->step) {
    case STEP_CONNECT:
        PQfinish(f->db);
        f->db = NULL;
        ok = hub_db_connect(f->db_url, &f->db) == 0;
        for (size_t i = 0; i < f->n && ok; i++) {
            char *ch = PQescapeIdentifier(f->db, f->l[i].channel, strlen(f->l[i].channel));
            char sql[128];
            ok = ch != NULL && strlen(ch) < sizeof sql - 8;
            if (ok) {
                strcpy(sql, "LISTEN ");
                strcat(sql, ch);
                ok = hub_db_exec(f->db, NULL, sql, 0, NULL) == 0;
            }
            PQfreemem(ch);
        }
        load_some(f, ~0u, &ok);
        break;
    case STEP_RELOAD:
        load_some(f, mask, &ok);
        break;
    case STEP_JOB:
        f->current->rc = f->current->work(f->db, f->current->arg);
        ok = PQstatus(f->db) == CONNECTION_OK;
        break;
    }
    if (!ok) {
        PQfinish(f->db);
        f->db = NULL;
    }
}

/* ---- loop -------------------------------------------------------------------------------- */

static void free_if_done(struct hub_pgfeed *f)
{
    if (!f->stopping || f->busy || f->handles_open > 0)
        return;
    while (f->jobs != NULL) {
        struct job *j = f->jobs;
        f->jobs = j->next;
        j->done(HUB_EDBDOWN, j->arg);
        free(j);
    }
    for (size_t i = 0; i < f->n; i++) {
        if (f->l[i].release != NULL)
            f->l[i].release(f->l[i].ctx);
        free((char *)f->l[i].channel);
    }
    PQfinish(f->db);
    free(f->db_url);
    free(f->label);
    free(f);
}

static void handle_closed(uv_handle_t *h)
{
    struct hub_pgfeed *f = h->data;
    if (h != (uv_handle_t *)&f->retry)
        free(h);
    f->handles_open--;
    free_if_done(f);
}

static void stop_polling(struct hub_pgfeed *f)
{
    if (f->poll == NULL)
        return;
    uv_poll_stop(f->poll);
    uv_close((uv_handle_t *)f->poll, handle_closed);
    f->poll = NULL;
}

static void retry_cb(uv_timer_t *t)
{
    struct hub_pgfeed *f = t->data;
    f->waiting = 0;
    kick(f);
}

/* The connection is gone (or never came): listeners are told once, queued jobs fail, and the
 * connect runs again after the back-off. */
static void down(struct hub_pgfeed *f, const char *why)
{
    stop_polling(f);
    if (f->connected) {
        hub_warn("%s: %s; reconnecting", f->label, why);
        for (size_t i = 0; i < f->n; i++)
            if (f->l[i].lost != NULL)
                f->l[i].lost(why, f->l[i].ctx);
    }
    f->connected = 0;
    f->reload = 0;
    while (f->jobs != NULL && !f->stopping) {
        struct job *j = f->jobs;
        f->jobs = j->next;
        j->done(HUB_EDBDOWN, j->arg);
        free(j);
    }
    f->jobs_tail = &f->jobs;
    f->retry_ms = f->retry_ms ? f->retry_ms * 2 : RETRY_MIN_MS;
    if (f->retry_ms > RETRY_MAX_MS)
        f->retry_ms = RETRY_MAX_MS;
    f->waiting = 1;
    uv_timer_start(&f->retry, retry_cb, f->retry_ms, 0);
}

/* Hands the notifications read so far to their listeners. */
static void dispatch(struct hub_pgfeed *f)
{
    PGnotify *n;
    while (f->db != NULL && (n = PQnotifies(f->db)) != NULL) {
        for (size_t i = 0; i < f->n && !f->stopping; i++) {
            if (strcmp(n->relname, f->l[i].channel) == 0 && f->l[i].notify != NULL &&
                f->l[i].notify(n->extra != NULL ? n->extra : "", f->l[i].ctx))
                f->reload |= 1u << i;
        }
        PQfreemem(n);
    }
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    (void)events;
    struct hub_pgfeed *f = p->data;
    if (status < 0 || !PQconsumeInput(f->db)) {
        down(f, "database connection lost");
        return;
    }
    dispatch(f);
    if (PQstatus(f->db) != CONNECTION_OK) {
        down(f, "database connection lost");
        return;
    }
    kick(f);
}

static void loaded(struct hub_pgfeed *f, unsigned mask)
{
    for (size_t i = 0; i < f->n && !f->stopping; i++)
        if ((mask & (1u << i)) && f->l[i].loaded != NULL)
            f->l[i].loaded(f->l[i].ctx);
}

static void done_cb(uv_work_t *req, int status)
{
    (void)status;
    struct hub_pgfeed *f = req->data;
    f->busy = 0;
    struct job *j = f->current;
    f->current = NULL;
    if (j != NULL) {
        j->done(f->stopping ? HUB_EDBDOWN : j->rc, j->arg);
        free(j);
    }
    if (f->stopping) {
        free_if_done(f);
        return;
    }
    if (f->db == NULL) {
        if (f->step != STEP_CONNECT)
            down(f, "database connection lost");
        else {
            for (size_t i = 0; i < f->n; i++)
                if (f->load_rc[i] != 0)
                    hub_warn("%s: loading for %s failed: %s", f->label, f->l[i].channel,
                             hub_strerror(f->load_rc[i]));
            f->connected = 0;
            down(f, "cannot connect");
        }
        return;
    }
    if (f->step == STEP_CONNECT) {
        f->connected = 1;
        f->retry_ms = 0;
        if (f->was_up)
            hub_info("%s: reconnected", f->label);
        f->was_up = 1;
        loaded(f, ~0u);
    } else if (f->step == STEP_RELOAD) {
        loaded(f, f->reload);
        f->reload = 0;
    }
    if (f->stopping)
        return;
    PQconsumeInput(f->db);
    dispatch(f); /* what arrived while the job ran */
    kick(f);
}

static void start_step(struct hub_pgfeed *f, enum step s)
{
    stop_polling(f);
    f->step = s;
    f->busy = 1;
    for (size_t i = 0; i < f->n; i++)
        f->load_rc[i] = 0;
    f->work.data = f;
    uv_queue_work(f->loop, &f->work, work_cb, done_cb);
}

static void kick(struct hub_pgfeed *f)
{
    if (f->stopping || f->busy || f->waiting)
        return;
    if (!f->connected) {
        f->attempts++;
        start_step(f, STEP_CONNECT);
    } else if (f->reload) {
        start_step(f, STEP_RELOAD);
    } else if (f->jobs != NULL) {
        f->current = f->jobs;
        f->jobs = f->current->next;
        if (f->jobs == NULL)
            f->jobs_tail = &f->jobs;
        start_step(f, STEP_JOB);
    } else if (f->poll == NULL) {
        f->poll = malloc(sizeof *f->poll);
        if (f->poll == NULL || uv_poll_init(f->loop, f->poll, PQsocket(f->db)) != 0) {
            free(f->poll);
            f->poll = NULL;
            down(f, "cannot poll the database socket");
            return;
        }
        f->poll->data = f;
        f->handles_open++;
        uv_poll_start(f->poll, UV_READABLE, poll_cb);
    }
}

int hub_pgfeed_new(uv_loop_t *loop, const char *db_url, const char *label, struct hub_pgfeed **out)
{
    struct hub_pgfeed *f = calloc(1, sizeof *f);
    if (f == NULL || (f->db_url = strdup(db_url)) == NULL || (f->label = strdup(label)) == NULL) {
        if (f != NULL)
            free(f->db_url);
        free(f);
        return HUB_ENOMEM;
    }
    f->loop = loop;
    f->jobs_tail = &f->jobs;
    uv_timer_init(loop, &f->retry);
    f->retry.data = f;
    f->handles_open = 1;
    *out = f;
    return 0;
}

int hub_pgfeed_add(struct hub_pgfeed *f, const struct hub_pgfeed_listener *l)
{
    if (f->n == MAX_LISTENERS)
        return HUB_ERANGE;
    f->l[f->n] = *l;
    if ((f->l[f->n].channel = strdup(l->channel)) == NULL)
        return HUB_ENOMEM;
    f->n++;
    return 0;
}

void hub_pgfeed_start(struct hub_pgfeed *f)
{
    kick(f);
}

int hub_pgfeed_run(struct hub_pgfeed *f, int (*work)(PGconn *c, void *arg),
                   void (*done)(int rc, void *arg), void *arg)
{
    struct job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return HUB_ENOMEM;
    j->work = work;
    j->done = done;
    j->arg = arg;
    if (!f->connected || f->stopping) {
        done(HUB_EDBDOWN, arg);
        free(j);
        return 0;
    }
    *f->jobs_tail = j;
    f->jobs_tail = &j->next;
    kick(f);
    return 0;
}

int hub_pgfeed_up(const struct hub_pgfeed *f)
{
    return f->connected;
}

unsigned long long hub_pgfeed_attempts(const struct hub_pgfeed *f)
{
    return f->attempts;
}

void hub_pgfeed_stop(struct hub_pgfeed *f)
{
    if (f == NULL || f->stopping)
        return;
    f->stopping = 1;
    stop_polling(f);
    uv_timer_stop(&f->retry);
    uv_close((uv_handle_t *)&f->retry, handle_closed);
}
