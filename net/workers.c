/* Worker loops and the two queues between each worker and home. Design:
 *   - a queue is a list of 64 KiB chunks holding records (header + bytes), appended under a
 *     mutex by the producer, taken whole by the consumer, and handed back for reuse: nothing
 *     is allocated per message once the chunks exist. A push wakes the consumer with
 *     uv_async_send, which coalesces, so a busy consumer takes many records per wake-up;
 *   - lifetime: the worker allocates a hub_wconn_t at on_open and sends OPEN, DATA..., CLOSED
 *     home in order; home answers CLOSED with RELEASE, after which it sends nothing more
 *     about that connection, and the worker frees it. Records home sends for a connection
 *     whose TLS side has closed meanwhile (tls == NULL) are dropped;
 *   - backpressure: when more than QUEUE_HIGH bytes wait to go home, the worker stops
 *     reading its connections; home sends RESUME once it has processed that backlog;
 *   - records that must not be lost (CLOSED, RELEASE, CLOSE, AUTH, PAUSE of a connection;
 *     RESUME, STOP, DONE of a worker) never wait for memory: each has a slot reserved in its
 *     connection or worker, which is queued as a one-record chunk when the last chunk is full
 *     and no spare is left. Once-only records use their slot once; PAUSE and RESUME keep at
 *     most one record queued and its consumer reads the latest wish under the queue's lock;
 *   - stop: STOP closes a worker's listeners and so its connections; once every connection
 *     is released the worker sends DONE, ends its loop, and home joins the thread. */
#include "net/workers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/wqueue.h"
#include "util/error.h"
#include "util/log.h"

_Static_assert(HUB_WCONN_PIECES == HUB_WQUEUE_PIECES, "one piece count");

#define STATS_MS 500
#define SCRATCH_KEEP 65536 /* a larger gathering buffer is freed after its write */

struct worker {
    hub_workers_t *w;
    unsigned index;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake; /* records from home */
    uv_timer_t stats_timer;
    hub_tls_listener_t *l[HUB_WORKERS_LISTEN_MAX];
    struct queue in;                      /* home -> worker */
    struct queue out;                     /* worker -> home */
    struct slot s_resume, s_stop, s_done; /* reserved records */
    int resume_queued;                    /* a RESUME is in wk->in (under wk->in.mu) */
    /* worker thread only */
    size_t live;        /* connections not yet released */
    unsigned listening; /* listeners not yet closed */
    int stopping, paused, handles;
    uint8_t *scratch; /* where a shared write's pieces are gathered */
    size_t scratch_cap;
    /* home thread only */
    int started, done;
    pthread_mutex_t stats_mu;
    struct hub_tls_stats stats[HUB_WORKERS_LISTEN_MAX];
};

struct hub_workers {
    uv_loop_t *home;
    uv_async_t wake; /* records from any worker */
    struct hub_workers_callbacks cb;
    void *user;
    unsigned n, ndone;
    size_t nl;
    int port[HUB_WORKERS_LISTEN_MAX];
    hub_admission_shared_t *shared[HUB_WORKERS_LISTEN_MAX]; /* port-wide caps */
    int stopping;
    uint64_t queued_bytes; /* home thread: payload bytes of writes pushed to the workers */
    void (*done)(void *);
    void *done_arg;
    struct worker *wk; /* n of them */
};

struct hub_wconn {
    struct worker *wk;
    hub_tls_conn_t *tls; /* worker side; NULL once the TLS connection is gone */
    void *user;          /* home side */
    int closing;         /* home side: hub_wconn_close was called */
    int has_id, has_o, resumed;
    char cn[65], o[65], serial_hex[2 * HUB_REVSET_MAX_SERIAL + 1];
    uint8_t serial[HUB_REVSET_MAX_SERIAL];
    size_t serial_len;
    char device_ca[HUB_TRUST_ID_LEN + 1]; /* "" unless a device CA issued the certificate */
    uint8_t *der;                         /* its DER until home's on_open (device CAs only) */
    size_t der_len;
    char peer[64];
    /* reserved records: CLOSED (worker -> home); CLOSE, AUTH, PAUSE, RELEASE (home -> worker) */
    struct slot s_closed, s_close, s_auth, s_pause, s_release;
    int authed;       /* home side: AUTH sent */
    int pause_queued; /* a PAUSE is in wk->in; pause_wish is what it applies (wk->in.mu) */
    int pause_wish;
};

/* ---- worker side ------------------------------------------------------------------------ */

static void worker_maybe_done(struct worker *wk);

static void *w_open(hub_tls_conn_t *t, const struct hub_tls_identity *id, void *user)
{
    struct worker *wk = user;
    hub_wconn_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        hub_tls_conn_close(t);
        return NULL;
    }
    c->wk = wk;
    c->tls = t;
    snprintf(c->peer, sizeof c->peer, "%s", hub_tls_conn_peer(t));
    if (id != NULL) {
        c->has_id = 1;
        snprintf(c->cn, sizeof c->cn, "%s", id->cn ? id->cn : "");
        c->has_o = id->o != NULL;
        snprintf(c->o, sizeof c->o, "%s", id->o ? id->o : "");
        snprintf(c->serial_hex, sizeof c->serial_hex, "%s", id->serial_hex ? id->serial_hex : "");
        c->serial_len = id->serial_len <= sizeof c->serial ? id->serial_len : 0;
        if (c->serial_len > 0)
            memcpy(c->serial, id->serial, c->serial_len);
        c->resumed = id->resumed;
        if (id->device_ca != NULL && id->der != NULL && (c->der = malloc(id->der_len)) != NULL) {
            snprintf(c->device_ca, sizeof c->device_ca, "%s", id->device_ca);
            memcpy(c->der, id->der, id->der_len);
            c->der_len = id->der_len;
        }
    }
    if (hub_wqueue_push(&wk->out, R_OPEN, 0, c, NULL, 0) < 0) {
        free(c->der);
        free(c);
        hub_tls_conn_close(t);
        return NULL;
    }
    wk->live++;
    return c;
}

static void w_data(hub_tls_conn_t *t, const uint8_t *plain, size_t len)
{
    hub_wconn_t *c = hub_tls_conn_user(t);
    if (c == NULL)
        return;
    int rc = hub_wqueue_push(&c->wk->out, R_DATA, 0, c, plain, len);
    if (rc < 0) {
        hub_warn("mqtt %s: out of memory queueing input: closing", c->peer);
        hub_tls_conn_close(t);
    } else if (rc > 0 && !c->wk->paused) {
        struct worker *wk = c->wk;
        wk->paused = 1;
        for (size_t i = 0; i < wk->w->nl; i++)
            if (wk->l[i] != NULL)
                hub_tls_listener_pause(wk->l[i], 1);
    }
}

static void w_close(hub_tls_conn_t *t, enum hub_close_reason reason)
{
    hub_wconn_t *c = hub_tls_conn_user(t);
    if (c == NULL)
        return;
    c->tls = NULL;
    /* CLOSED must get home or the connection is never released: its slot was reserved. */
    hub_wqueue_push_sure(&c->wk->out, R_CLOSED, (unsigned)reason, c, &c->s_closed);
}

static const struct hub_tls_callbacks worker_callbacks = {w_open, w_data, w_close};

static void worker_listener_closed(void *arg)
{
    struct worker *wk = arg;
    wk->listening--;
    worker_maybe_done(wk);
}

/* Gathers a shared write's pieces into the worker's scratch buffer (one TLS record, one
 * write, as an R_WRITE would make), writes them unless the connection is gone, and drops the
 * record's reference to the shared buffer in either case. */
static void write_shared(struct worker *wk, hub_wconn_t *c, const uint8_t *payload)
{
    struct shared_write sw;
    memcpy(&sw, payload, sizeof sw);
    const uint8_t *copied = payload + sizeof sw;
    size_t total = 0;
    for (uint32_t i = 0; i < sw.n; i++)
        total += sw.v[i].len;
    if (c->tls != NULL && total > wk->scratch_cap) {
        uint8_t *p = realloc(wk->scratch, total);
        if (p == NULL) {
            hub_warn("mqtt %s: out of memory writing: closing", c->peer);
            hub_tls_conn_close(c->tls);
        } else {
            wk->scratch = p;
            wk->scratch_cap = total;
        }
    }
    if (c->tls != NULL && total <= wk->scratch_cap) {
        size_t off = 0;
        for (uint32_t i = 0; i < sw.n; i++) {
            const uint8_t *p = sw.v[i].p;
            if (p == NULL) {
                p = copied;
                copied += sw.v[i].len;
            }
            memcpy(wk->scratch + off, p, sw.v[i].len);
            off += sw.v[i].len;
        }
        (void)hub_tls_conn_write(c->tls, wk->scratch, total);
        if (wk->scratch_cap > SCRATCH_KEEP) {
            free(wk->scratch);
            wk->scratch = NULL;
            wk->scratch_cap = 0;
        }
    }
    hub_rcbuf_unref(sw.buf);
}

/* The one drain loop of both queues: hands every record of the list k (taken from q) to
 * handle with ctx (hub_wqueue_next gives chunks back and steps past slots first). Each caller
 * passes a constant handler: inlined, the call is direct. */
static inline __attribute__((always_inline)) void
drain(struct queue *q, struct chunk *k,
      void (*handle)(void *ctx, const struct rec *r, const uint8_t *payload), void *ctx)
{
    size_t off = 0;
    struct rec r;
    const uint8_t *payload;
    while (hub_wqueue_next(q, &k, &off, &r, &payload))
        handle(ctx, &r, payload);
}

/* One record from home, on the worker's loop. */
static void worker_rec(void *ctx, const struct rec *r, const uint8_t *payload)
{
    struct worker *wk = ctx;
    hub_wconn_t *c = r->c;
    switch ((enum rec_type)r->type) {
    case R_WRITE:
        if (c->tls != NULL)
            (void)hub_tls_conn_write(c->tls, payload, r->len);
        break;
    case R_WRITE_SHARED: write_shared(wk, c, payload); break;
    case R_CLOSE:
        if (c->tls != NULL)
            hub_tls_conn_close(c->tls);
        break;
    case R_AUTH:
        if (c->tls != NULL)
            hub_tls_conn_authenticated(c->tls);
        break;
    case R_PAUSE: {
        pthread_mutex_lock(&wk->in.mu); /* the latest wish, see hub_wconn_pause */
        int paused = c->pause_wish;
        c->pause_queued = 0;
        pthread_mutex_unlock(&wk->in.mu);
        if (c->tls != NULL)
            hub_tls_conn_pause(c->tls, paused);
        break;
    }
    case R_RELEASE:
        free(c->der);
        free(c);
        wk->live--;
        break;
    case R_RECHECK:
        for (size_t i = 0; i < wk->w->nl; i++)
            if (wk->l[i] != NULL)
                (void)hub_tls_listener_recheck(wk->l[i]);
        break;
    case R_RESUME:
        pthread_mutex_lock(&wk->in.mu);
        wk->resume_queued = 0;
        pthread_mutex_unlock(&wk->in.mu);
        wk->paused = 0;
        for (size_t i = 0; i < wk->w->nl; i++)
            if (wk->l[i] != NULL)
                hub_tls_listener_pause(wk->l[i], 0);
        break;
    case R_STOP:
        wk->stopping = 1;
        for (size_t i = 0; i < wk->w->nl; i++) {
            if (wk->l[i] != NULL) {
                hub_tls_listener_close(wk->l[i], worker_listener_closed, wk);
                wk->l[i] = NULL;
            }
        }
        break;
    default: break;
    }
}

static void worker_wake(uv_async_t *a)
{
    struct worker *wk = a->data;
    drain(&wk->in, hub_wqueue_take(&wk->in, NULL), worker_rec, wk);
    worker_maybe_done(wk);
}

static void worker_publish_stats(struct worker *wk)
{
    struct hub_tls_stats s[HUB_WORKERS_LISTEN_MAX];
    memset(s, 0, sizeof s);
    for (size_t i = 0; i < wk->w->nl; i++)
        if (wk->l[i] != NULL)
            hub_tls_listener_stats(wk->l[i], &s[i]);
    pthread_mutex_lock(&wk->stats_mu);
    for (size_t i = 0; i < wk->w->nl; i++) {
        if (wk->l[i] != NULL)
            wk->stats[i] = s[i];
        else /* closed: no connections left, the totals stay */
            wk->stats[i].conns = wk->stats[i].unauth = 0;
    }
    pthread_mutex_unlock(&wk->stats_mu);
}

static void worker_stats_tick(uv_timer_t *t)
{
    worker_publish_stats(t->data);
}

static void worker_handle_closed(uv_handle_t *h)
{
    struct worker *wk = h->data;
    wk->handles--;
}

static void worker_maybe_done(struct worker *wk)
{
    if (!wk->stopping || wk->listening > 0 || wk->live > 0 || wk->handles != 2)
        return;
    worker_publish_stats(wk);
    uv_close((uv_handle_t *)&wk->wake, worker_handle_closed);
    uv_close((uv_handle_t *)&wk->stats_timer, worker_handle_closed);
    hub_wqueue_push_sure(&wk->out, R_DONE, 0, NULL, &wk->s_done);
}

static void worker_main(void *arg)
{
    struct worker *wk = arg;
    char name[16];
    snprintf(name, sizeof name, "iothub-mqtt-%u", wk->index);
    pthread_setname_np(pthread_self(), name);
    uv_run(&wk->loop, UV_RUN_DEFAULT);
}

/* ---- home side -------------------------------------------------------------------------- */

static void worker_free(struct worker *wk)
{
    uv_loop_close(&wk->loop);
    hub_wqueue_free(&wk->in);
    hub_wqueue_free(&wk->out);
    free(wk->scratch);
    pthread_mutex_destroy(&wk->stats_mu);
}

static void home_closed(uv_handle_t *h)
{
    hub_workers_t *w = h->data;
    void (*done)(void *) = w->done;
    void *arg = w->done_arg;
    for (size_t i = 0; i < w->nl; i++)
        hub_admission_shared_free(w->shared[i]);
    free(w->wk);
    free(w);
    if (done != NULL)
        done(arg);
}

static void worker_joined(hub_workers_t *w, struct worker *wk)
{
    uv_thread_join(&wk->thread);
    wk->done = 1;
    worker_free(wk);
    if (++w->ndone == w->n)
        uv_close((uv_handle_t *)&w->wake, home_closed);
}

/* The home side's drain of one worker's out-queue. */
struct home_drain {
    hub_workers_t *w;
    struct worker *wk;
    int finished; /* DONE seen */
};

/* One record from a worker, on the home loop. */
static void home_rec(void *ctx, const struct rec *r, const uint8_t *payload)
{
    struct home_drain *h = ctx;
    hub_wconn_t *c = r->c;
    switch ((enum rec_type)r->type) {
    case R_OPEN: {
        struct hub_tls_identity id = {.cn = c->cn,
                                      .o = c->has_o ? c->o : NULL,
                                      .serial_hex = c->serial_hex,
                                      .serial = c->serial,
                                      .serial_len = c->serial_len,
                                      .resumed = c->resumed,
                                      .device_ca = c->device_ca[0] ? c->device_ca : NULL,
                                      .der = c->der,
                                      .der_len = c->der_len};
        c->user = h->w->cb.on_open(c, c->has_id ? &id : NULL, h->w->user);
        free(c->der);
        c->der = NULL;
        break;
    }
    case R_DATA:
        if (!c->closing && h->w->cb.on_data != NULL)
            h->w->cb.on_data(c, payload, r->len);
        break;
    case R_CLOSED:
        if (h->w->cb.on_close != NULL)
            h->w->cb.on_close(c, (enum hub_close_reason)r->arg);
        hub_wqueue_push_sure(&h->wk->in, R_RELEASE, 0, c, &c->s_release);
        break;
    case R_DONE: h->finished = 1; break;
    default: break;
    }
}

static void home_drain(hub_workers_t *w, struct worker *wk)
{
    int paused = 0;
    struct chunk *at = hub_wqueue_take(&wk->out, &paused);
    /* The backlog is taken: the worker may read again. Sent before the records are
     * processed, so that it precedes any DONE the worker may answer them with. */
    if (paused) {
        pthread_mutex_lock(&wk->in.mu);
        if (!wk->resume_queued) { /* one queued RESUME is enough */
            wk->resume_queued = 1;
            (void)hub_wqueue_push_locked(&wk->in, R_RESUME, 0, NULL, NULL, 0, &wk->s_resume);
        }
        pthread_mutex_unlock(&wk->in.mu);
        uv_async_send(&wk->wake);
    }
    struct home_drain h = {w, wk, 0};
    drain(&wk->out, at, home_rec, &h);
    if (h.finished)
        worker_joined(w, wk);
}

static void home_wake(uv_async_t *a)
{
    hub_workers_t *w = a->data;
    for (unsigned i = 0; i < w->n; i++)
        if (w->wk[i].started && !w->wk[i].done)
            home_drain(w, &w->wk[i]);
}

/* Closes what a failed start made of worker wk (its thread never ran) by running its loop
 * here until every handle is closed. */
static void worker_discard(hub_workers_t *w, struct worker *wk)
{
    for (size_t i = 0; i < w->nl; i++)
        if (wk->l[i] != NULL)
            hub_tls_listener_close(wk->l[i], NULL, NULL);
    uv_close((uv_handle_t *)&wk->wake, NULL);
    uv_close((uv_handle_t *)&wk->stats_timer, NULL);
    uv_run(&wk->loop, UV_RUN_DEFAULT);
    worker_free(wk);
}

int hub_workers_start(uv_loop_t *home, unsigned n, const struct hub_workers_listen *ls, size_t nl,
                      const struct hub_workers_callbacks *cb, void *user, hub_workers_t **out)
{
    *out = NULL;
    if (n == 0 || nl > HUB_WORKERS_LISTEN_MAX || cb == NULL || cb->on_open == NULL)
        return HUB_EINVAL;
    hub_workers_t *w = calloc(1, sizeof *w);
    if (w == NULL || (w->wk = calloc(n, sizeof *w->wk)) == NULL) {
        free(w);
        return HUB_ENOMEM;
    }
    w->home = home;
    w->cb = *cb;
    w->user = user;
    w->n = n;
    w->nl = nl;
    uv_async_init(home, &w->wake, home_wake);
    w->wake.data = w;
    unsigned made = 0;
    int rc = 0;
    for (; made < n && rc == 0; made++) {
        struct worker *wk = &w->wk[made];
        wk->w = w;
        wk->index = made;
        if (uv_loop_init(&wk->loop) != 0) {
            rc = HUB_ENOMEM;
            break;
        }
        pthread_mutex_init(&wk->stats_mu, NULL);
        uv_async_init(&wk->loop, &wk->wake, worker_wake);
        uv_timer_init(&wk->loop, &wk->stats_timer);
        wk->wake.data = wk->stats_timer.data = wk;
        wk->handles = 2;
        hub_wqueue_init(&wk->in, &wk->wake);
        hub_wqueue_init(&wk->out, &w->wake);
        uv_timer_start(&wk->stats_timer, worker_stats_tick, STATS_MS, STATS_MS);
        for (size_t i = 0; i < nl && rc == 0; i++) {
            if (ls[i].host == NULL)
                continue;
            struct hub_tls_limits lim = ls[i].limits;
            if (made == 0 && (w->shared[i] = hub_admission_shared_new(
                                  lim.max_handshakes, lim.max_handshakes_per_ip)) == NULL) {
                rc = HUB_ENOMEM;
                break;
            }
            lim.shared = w->shared[i];
            lim.reuseport = n == 1 ? 0 : made == 0 ? 1 : 2;
            int port = made == 0 ? ls[i].port : w->port[i];
            rc = hub_tls_listener_open(&wk->loop, ls[i].host, port, ls[i].ctx, &worker_callbacks,
                                       wk, &lim, &wk->l[i]);
            if (rc == 0) {
                wk->listening++;
                if (made == 0)
                    w->port[i] = hub_tls_listener_port(wk->l[i]);
            }
        }
    }
    unsigned started = 0;
    for (; started < made && rc == 0; started++)
        if (uv_thread_create(&w->wk[started].thread, worker_main, &w->wk[started]) != 0)
            break;
    for (unsigned i = 0; i < started; i++)
        w->wk[i].started = 1;
    if (rc == 0 && started > 0 && started < made) {
        /* Running workers already serve the ports: go on with them rather than stop
         * threads that may be in the middle of handshakes. */
        hub_warn("mqtt: started %u of %u worker threads", started, made);
        for (unsigned i = started; i < made; i++)
            worker_discard(w, &w->wk[i]);
        w->n = started;
    } else if (rc == 0 && started == 0) {
        hub_error("mqtt: cannot start a worker thread");
        rc = HUB_ENOMEM;
    }
    if (rc != 0) {   /* no thread runs: everything is discarded here */
        w->n = made; /* only these need stopping */
        for (unsigned i = 0; i < made; i++) {
            if (!w->wk[i].started) {
                worker_discard(w, &w->wk[i]);
                w->wk[i].done = 1;
                w->ndone++;
            }
        }
        hub_workers_stop(w, NULL, NULL);
        return rc;
    }
    *out = w;
    return 0;
}

unsigned hub_workers_count(const hub_workers_t *w)
{
    return w->n;
}

int hub_workers_port(const hub_workers_t *w, size_t i)
{
    return i < w->nl ? w->port[i] : 0;
}

void hub_workers_stop(hub_workers_t *w, void (*done)(void *arg), void *arg)
{
    if (w == NULL || w->stopping)
        return;
    w->stopping = 1;
    w->done = done;
    w->done_arg = arg;
    if (w->ndone == w->n) {
        uv_close((uv_handle_t *)&w->wake, home_closed);
        return;
    }
    for (unsigned i = 0; i < w->n; i++)
        if (w->wk[i].started && !w->wk[i].done)
            hub_wqueue_push_sure(&w->wk[i].in, R_STOP, 0, NULL, &w->wk[i].s_stop);
}

void hub_workers_stats(hub_workers_t *w, size_t i, struct hub_tls_stats *out)
{
    memset(out, 0, sizeof *out);
    if (i >= w->nl)
        return;
    for (unsigned k = 0; k < w->n; k++) {
        struct worker *wk = &w->wk[k];
        if (wk->done)
            continue;
        pthread_mutex_lock(&wk->stats_mu);
        const struct hub_tls_stats *s = &wk->stats[i];
        out->conns += s->conns;
        out->unauth += s->unauth;
        out->accepted += s->accepted;
        out->opened += s->opened;
        out->full += s->full;
        out->resumed += s->resumed;
        for (int f = 0; f < HUB_TLS_FAIL_COUNT; f++)
            out->failed[f] += s->failed[f];
        for (int f = 0; f < HUB_PROXY_REFUSAL_COUNT; f++)
            out->proxy_refused[f] += s->proxy_refused[f];
        hub_histogram_merge(&out->handshakes, &s->handshakes);
        pthread_mutex_unlock(&wk->stats_mu);
    }
}

void hub_workers_recheck(hub_workers_t *w)
{
    if (w->stopping)
        return;
    for (unsigned i = 0; i < w->n; i++)
        if (w->wk[i].started && !w->wk[i].done)
            (void)hub_wqueue_push(&w->wk[i].in, R_RECHECK, 0, NULL, NULL, 0);
}

/* ---- connections (home side) ------------------------------------------------------------ */

int hub_wconn_write(hub_wconn_t *c, const void *data, size_t len)
{
    if (c->closing)
        return HUB_EIO;
    if (len > UINT32_MAX)
        return HUB_ERANGE;
    if (hub_wqueue_push(&c->wk->in, R_WRITE, 0, c, data, len) < 0)
        return HUB_ENOMEM;
    c->wk->w->queued_bytes += len;
    return 0;
}

int hub_wconn_write_shared(hub_wconn_t *c, struct hub_rcbuf *buf, const struct hub_rcbuf_piece *v,
                           size_t n)
{
    if (c->closing)
        return HUB_EIO;
    uint8_t rec[sizeof(struct shared_write) + HUB_WCONN_COPY];
    struct shared_write sw;
    size_t copied = 0;
    if (n > HUB_WCONN_PIECES)
        return HUB_EINVAL;
    memset(&sw, 0, sizeof sw);
    sw.buf = buf;
    sw.n = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        sw.v[i].len = v[i].len;
        if (v[i].shared) {
            sw.v[i].p = v[i].p;
            continue;
        }
        if (copied + v[i].len > HUB_WCONN_COPY)
            return HUB_EINVAL;
        memcpy(rec + sizeof sw + copied, v[i].p, v[i].len);
        copied += v[i].len;
    }
    memcpy(rec, &sw, sizeof sw);
    hub_rcbuf_ref(buf); /* the record's, dropped by the worker */
    if (hub_wqueue_push(&c->wk->in, R_WRITE_SHARED, 0, c, rec, sizeof sw + copied) < 0) {
        hub_rcbuf_unref(buf);
        return HUB_ENOMEM;
    }
    c->wk->w->queued_bytes += copied;
    return 0;
}

uint64_t hub_workers_queued_bytes(const hub_workers_t *w)
{
    return w->queued_bytes;
}

void hub_wconn_close(hub_wconn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    hub_wqueue_push_sure(&c->wk->in, R_CLOSE, 0, c, &c->s_close);
}

void hub_wconn_authenticated(hub_wconn_t *c)
{
    if (c->authed) /* hub_tls_conn_authenticated is idempotent: once is enough */
        return;
    c->authed = 1;
    hub_wqueue_push_sure(&c->wk->in, R_AUTH, 0, c, &c->s_auth);
}

void *hub_wconn_user(const hub_wconn_t *c)
{
    return c->user;
}

void hub_wconn_set_user(hub_wconn_t *c, void *user)
{
    c->user = user;
}

void hub_wconn_pause(hub_wconn_t *c, int paused)
{
    if (c->closing)
        return;
    struct queue *q = &c->wk->in;
    pthread_mutex_lock(&q->mu);
    c->pause_wish = paused != 0;
    int queue_one = !c->pause_queued; /* a queued PAUSE applies the latest wish */
    if (queue_one) {
        c->pause_queued = 1;
        (void)hub_wqueue_push_locked(q, R_PAUSE, 0, c, NULL, 0, &c->s_pause);
    }
    pthread_mutex_unlock(&q->mu);
    if (queue_one)
        uv_async_send(q->wake);
}

const char *hub_wconn_peer(const hub_wconn_t *c)
{
    return c->peer;
}
