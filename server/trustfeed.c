#include "server/trustfeed.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db/db.h"
#include "db/registrations.h"
#include "util/error.h"
#include "util/log.h"

#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 5000

struct hub_trustfeed {
    uv_loop_t *loop;
    char *db_url;
    hub_trust_t *trust;
    void (*changed)(const char *, void *);
    void *ctx;
    PGconn *db;                   /* owned by the job while it runs, by the loop otherwise */
    struct hub_db_device_ca *cas; /* loaded by the job */
    size_t ncas;
    int loaded;
    uv_work_t work;
    uv_poll_t *poll;
    uv_timer_t retry;
    unsigned retry_ms;
    int job_running, stopping, handles_open;
};

static void run_job(struct hub_trustfeed *f);

/* Thread pool: (re)connect and LISTEN when needed, then load every device CA. */
static void load_work(uv_work_t *req)
{
    struct hub_trustfeed *f = req->data;
    int rc = 0;
    f->loaded = 0;
    if (f->db != NULL && PQstatus(f->db) != CONNECTION_OK) {
        PQfinish(f->db);
        f->db = NULL;
    }
    if (f->db == NULL && (rc = hub_db_connect(f->db_url, &f->db)) == 0)
        rc = hub_db_registrations_listen(f->db);
    if (rc == 0)
        rc = hub_db_registrations_device_cas(f->db, &f->cas, &f->ncas);
    if (rc != 0) {
        PQfinish(f->db);
        f->db = NULL;
        return;
    }
    f->loaded = 1;
}

static void free_if_done(struct hub_trustfeed *f)
{
    if (!f->stopping || f->job_running || f->handles_open > 0)
        return;
    PQfinish(f->db);
    hub_db_registrations_free_cas(f->cas, f->ncas);
    free(f->db_url);
    free(f);
}

static void handle_closed(uv_handle_t *h)
{
    struct hub_trustfeed *f = h->data;
    if (h != (uv_handle_t *)&f->retry)
        free(h);
    f->handles_open--;
    free_if_done(f);
}

static void stop_polling(struct hub_trustfeed *f)
{
    if (f->poll == NULL)
        return;
    uv_poll_stop(f->poll);
    uv_close((uv_handle_t *)f->poll, handle_closed);
    f->poll = NULL;
}

static void retry_cb(uv_timer_t *t)
{
    run_job(t->data);
}

static void retry_later(struct hub_trustfeed *f, const char *why)
{
    hub_warn("device CA feed: %s; keeping the %zu device CAs known, reconnecting", why,
             hub_trust_known(f->trust));
    stop_polling(f);
    f->retry_ms = f->retry_ms ? f->retry_ms * 2 : RETRY_MIN_MS;
    if (f->retry_ms > RETRY_MAX_MS)
        f->retry_ms = RETRY_MAX_MS;
    uv_timer_start(&f->retry, retry_cb, f->retry_ms, 0);
}

/* Drains the notifications read so far; 1 when there was any. */
static int drain(struct hub_trustfeed *f)
{
    int any = 0;
    PGnotify *n;
    while ((n = PQnotifies(f->db)) != NULL) {
        hub_info("device CA %.36s changed: reloading the device CAs", n->extra);
        any = 1;
        PQfreemem(n);
    }
    return any;
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    (void)events;
    struct hub_trustfeed *f = p->data;
    if (status < 0 || !PQconsumeInput(f->db)) {
        retry_later(f, "database connection lost");
        return;
    }
    if (drain(f)) {
        stop_polling(f); /* the job uses the connection */
        run_job(f);
    } else if (PQstatus(f->db) != CONNECTION_OK) {
        retry_later(f, "database connection lost");
    }
}

static void load_done(uv_work_t *req, int status)
{
    (void)status;
    struct hub_trustfeed *f = req->data;
    f->job_running = 0;
    if (f->stopping) {
        free_if_done(f);
        return;
    }
    if (!f->loaded) {
        retry_later(f, "cannot load the device CAs");
        return;
    }
    struct hub_trust_ca *v = calloc(f->ncas + 1, sizeof *v);
    for (size_t i = 0; v != NULL && i < f->ncas; i++) {
        v[i] = (struct hub_trust_ca){.id = f->cas[i].id,
                                     .enabled = f->cas[i].enabled,
                                     .der = f->cas[i].der.data,
                                     .der_len = f->cas[i].der.len,
                                     .crl_der = f->cas[i].crl.len ? f->cas[i].crl.data : NULL,
                                     .crl_len = f->cas[i].crl.len};
    }
    int n = v != NULL ? hub_trust_replace(f->trust, v, f->ncas) : HUB_ENOMEM;
    free(v);
    hub_db_registrations_free_cas(f->cas, f->ncas);
    f->cas = NULL;
    f->ncas = 0;
    if (n < 0) {
        retry_later(f, "out of memory loading the device CAs");
        return;
    }
    f->retry_ms = 0;
    hub_info("device CAs: %d enabled of %zu trusted for client certificates", n,
             hub_trust_known(f->trust));
    if (f->changed != NULL)
        f->changed(NULL, f->ctx);
    if (drain(f)) { /* changed again while loading */
        run_job(f);
        return;
    }
    f->poll = malloc(sizeof *f->poll);
    if (f->poll == NULL || uv_poll_init(f->loop, f->poll, PQsocket(f->db)) != 0) {
        free(f->poll);
        f->poll = NULL;
        retry_later(f, "cannot poll the database socket");
        return;
    }
    f->poll->data = f;
    f->handles_open++;
    uv_poll_start(f->poll, UV_READABLE, poll_cb);
}

static void run_job(struct hub_trustfeed *f)
{
    if (f->stopping || f->job_running)
        return;
    f->job_running = 1;
    f->work.data = f;
    uv_queue_work(f->loop, &f->work, load_work, load_done);
}

int hub_trustfeed_start(uv_loop_t *loop, const char *db_url, hub_trust_t *trust,
                        void (*changed)(const char *, void *), void *ctx,
                        struct hub_trustfeed **out)
{
    struct hub_trustfeed *f = calloc(1, sizeof *f);
    if (f == NULL || (f->db_url = strdup(db_url)) == NULL) {
        free(f);
        return HUB_ENOMEM;
    }
    f->loop = loop;
    f->trust = trust;
    f->changed = changed;
    f->ctx = ctx;
    uv_timer_init(loop, &f->retry);
    f->retry.data = f;
    f->handles_open = 1;
    run_job(f);
    *out = f;
    return 0;
}

void hub_trustfeed_stop(struct hub_trustfeed *f)
{
    if (f == NULL)
        return;
    f->stopping = 1;
    stop_polling(f);
    uv_timer_stop(&f->retry);
    uv_close((uv_handle_t *)&f->retry, handle_closed);
}
