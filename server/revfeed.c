#include "server/revfeed.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db/certificates.h"
#include "db/db.h"
#include "util/error.h"
#include "util/log.h"

#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 5000 /* a revocation missed while away is enforced within ~5 s */

struct hub_revfeed {
    uv_loop_t *loop;
    char *db_url;
    hub_revset_t *set;
    hub_revfeed_cb on_revoked;
    void *ctx;
    PGconn *db;           /* owned by the job while it runs, by the loop otherwise */
    hub_revset_t *fresh;  /* set loaded by the job */
    uv_work_t work;
    uv_poll_t *poll;      /* NULL when not polling; closed before every reconnect */
    uv_timer_t retry;
    unsigned retry_ms;
    int job_running;
    int stopping;
    int ready;
    int handles_open;
    struct hub_revfeed_stats st;
};

static void schedule_connect(struct hub_revfeed *f);

/* Thread pool: (re)connect, LISTEN, then load the whole set. */
static void connect_work(uv_work_t *req)
{
    struct hub_revfeed *f = req->data;
    char(*serials)[HUB_SERIAL_HEX] = NULL;
    size_t n = 0;
    if (f->db != NULL) {
        PQfinish(f->db);
        f->db = NULL;
    }
    int rc = hub_db_connect(f->db_url, &f->db);
    if (rc == 0)
        rc = hub_db_certificates_listen_revoked(f->db);
    if (rc == 0)
        rc = hub_db_certificates_revoked_serials(f->db, &serials, &n);
    if (rc == 0 && (f->fresh = hub_revset_new()) == NULL)
        rc = HUB_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = hub_revset_add_hex(f->fresh, serials[i]);
    free(serials);
    if (rc != 0) {
        hub_revset_free(f->fresh);
        f->fresh = NULL;
        PQfinish(f->db);
        f->db = NULL;
    }
}

static void free_if_done(struct hub_revfeed *f)
{
    if (!f->stopping || f->job_running || f->handles_open > 0)
        return;
    PQfinish(f->db);
    hub_revset_free(f->fresh);
    free(f->db_url);
    free(f);
}

static void handle_closed(uv_handle_t *h)
{
    struct hub_revfeed *f = h->data;
    if (h != (uv_handle_t *)&f->retry)
        free(h);
    f->handles_open--;
    free_if_done(f);
}

static void stop_polling(struct hub_revfeed *f)
{
    if (f->poll == NULL)
        return;
    uv_poll_stop(f->poll);
    uv_close((uv_handle_t *)f->poll, handle_closed);
    f->poll = NULL;
}

static void connection_lost(struct hub_revfeed *f, const char *why)
{
    hub_warn("revocation feed: %s; keeping the %zu revoked serials known, reconnecting",
             why, hub_revset_count(f->set));
    stop_polling(f);
    schedule_connect(f);
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    struct hub_revfeed *f = p->data;
    if (status < 0 || !PQconsumeInput(f->db)) {
        connection_lost(f, "database connection lost");
        return;
    }
    PGnotify *n;
    while ((n = PQnotifies(f->db)) != NULL) {
        if (strncmp(n->extra, "device:", 7) == 0) {
            /* A device revoked or reset: its password sessions go too. */
            if (f->on_revoked != NULL)
                f->on_revoked(n->extra, f->ctx);
        } else if (hub_revset_add_hex(f->set, n->extra) == 0) {
            hub_info("revocation of %s received", n->extra);
            if (f->on_revoked != NULL)
                f->on_revoked(n->extra, f->ctx);
        } else {
            hub_warn("revocation feed: ignoring malformed serial \"%.64s\"", n->extra);
        }
        PQfreemem(n);
    }
    if (PQstatus(f->db) != CONNECTION_OK)
        connection_lost(f, "database connection lost");
}

static void connect_done(uv_work_t *req, int status)
{
    struct hub_revfeed *f = req->data;
    f->job_running = 0;
    if (f->stopping) {
        free_if_done(f);
        return;
    }
    if (f->fresh == NULL) {
        f->retry_ms = f->retry_ms ? f->retry_ms * 2 : RETRY_MIN_MS;
        if (f->retry_ms > RETRY_MAX_MS)
            f->retry_ms = RETRY_MAX_MS;
        schedule_connect(f);
        return;
    }
    hub_revset_replace_all(f->set, f->fresh); /* frees fresh */
    f->fresh = NULL;
    f->retry_ms = 0;
    f->st.loads++;
    f->st.last_load_ms = uv_now(f->loop);
    hub_info("revocation feed: listening; %zu revoked serials loaded", hub_revset_count(f->set));
    /* Revocations made while we were away: let the owner re-check live sessions. */
    if (f->on_revoked != NULL) /* connections accepted before this load are checked too */
        f->on_revoked(NULL, f->ctx);
    f->ready = 1;
    f->poll = malloc(sizeof *f->poll);
    if (f->poll == NULL || uv_poll_init(f->loop, f->poll, PQsocket(f->db)) != 0) {
        free(f->poll);
        f->poll = NULL;
        connection_lost(f, "cannot poll the database socket");
        return;
    }
    f->poll->data = f;
    f->handles_open++;
    uv_poll_start(f->poll, UV_READABLE, poll_cb);
}

static void retry_cb(uv_timer_t *t)
{
    struct hub_revfeed *f = t->data;
    if (f->stopping || f->job_running)
        return;
    f->st.attempts++;
    f->job_running = 1;
    f->work.data = f;
    uv_queue_work(f->loop, &f->work, connect_work, connect_done);
}

static void schedule_connect(struct hub_revfeed *f)
{
    uv_timer_start(&f->retry, retry_cb, f->retry_ms, 0);
}

int hub_revfeed_start(uv_loop_t *loop, const char *db_url, hub_revset_t *set,
                      hub_revfeed_cb on_revoked, void *ctx, struct hub_revfeed **out)
{
    struct hub_revfeed *f = calloc(1, sizeof *f);
    if (f == NULL || (f->db_url = strdup(db_url)) == NULL) {
        free(f);
        return HUB_ENOMEM;
    }
    f->loop = loop;
    f->set = set;
    f->on_revoked = on_revoked;
    f->ctx = ctx;
    uv_timer_init(loop, &f->retry);
    f->retry.data = f;
    f->handles_open = 1;
    schedule_connect(f);
    *out = f;
    return 0;
}

void hub_revfeed_stop(struct hub_revfeed *f)
{
    if (f == NULL)
        return;
    f->stopping = 1;
    stop_polling(f);
    uv_timer_stop(&f->retry);
    uv_close((uv_handle_t *)&f->retry, handle_closed);
}

void hub_revfeed_stats(const struct hub_revfeed *f, struct hub_revfeed_stats *out)
{
    *out = f->st;
}

int hub_revfeed_ready(const struct hub_revfeed *f)
{
    return f->ready;
}
