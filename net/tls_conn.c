/* TLS connections over libuv. Design:
 *   - input: one 64 KiB read buffer per group (a loop reads one stream at a time); the read
 *     callback hands it to mbedTLS through the recv BIO and drives the handshake or
 *     mbedtls_ssl_read until mbedTLS wants more, so mbedTLS has copied every byte into its own
 *     record buffer before the next read;
 *   - output: the send BIO appends ciphertext to the connection's net/outbuf and never
 *     blocks; one uv_write at a time takes the filling buffer;
 *   - idle memory: once idle, a connection gives back the pages of mbedTLS's two record
 *     buffers that its handshake or a large record wrote (the first page stays) and keeps no
 *     parsed peer certificate: about 14 KB of RSS instead of 50 KB;
 *   - revocation: every completed handshake, full or resumed, re-checks the peer certificate
 *     (a resumed session never calls net/tls_ctx's verify callback);
 *   - timeouts: handshaking and closing connections sit in two FIFO lists (constant
 *     timeouts, so the head expires first) served by one timer per group;
 *   - floods: a connection over the per-address handshake cap (net/admission) is closed
 *     before mbedtls_ssl_setup allocates its 33 KB of record buffers;
 *   - lifetime: a connection is freed only in its uv_close callback, where on_close runs. */
#include "net/tls_conn.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/platform.h>

#include "net/outbuf.h"
#include "util/error.h"
#include "util/log.h"
#include "util/memtune.h"

#define READ_BUF_SIZE 65536
#define PLAIN_BUF_SIZE 16384
#define RECORD_KEEP 8 /* mbedTLS 2.28 keeps a record buffer's sequence number in its first bytes */

struct link {
    struct link *prev, *next;
};

enum conn_state { ST_HANDSHAKE, ST_OPEN, ST_CLOSING, ST_CLOSED };

struct hub_tls_conn {
    uv_tcp_t tcp;
    uv_write_t wreq;
    hub_tls_conn_group_t *g;
    struct link all;   /* g->conns */
    struct link timed; /* g->handshaking or g->closing */
    uint64_t deadline;
    enum conn_state state;
    enum hub_close_reason reason;
    unsigned opened : 1;  /* on_open was called: on_close is due */
    unsigned in_read : 1; /* inside the read callback: flush at its end */
    unsigned resumed : 1;
    unsigned ssl_ready : 1;
    unsigned paused : 1;     /* reading stopped until the output drains */
    unsigned held : 1;       /* reading stopped by the layer above (hub_tls_conn_pause) */
    unsigned unauth : 1;     /* counted as unauthenticated in g->adm */
    unsigned ip_counted : 1; /* counted in g->adm's per-address table */
    unsigned fail : 4;       /* enum hub_tls_fail counted if the handshake ends badly */
    unsigned dirty : 1;      /* record buffers written past their first page: trim when idle */
    uint64_t t0_ns;          /* accept time (uv_hrtime), for the handshake histogram */
    struct hub_outbuf out;   /* out.inflight: wreq is in flight */
    const uint8_t *in_p;     /* ciphertext not yet taken by mbedTLS */
    size_t in_n;
    void *user;
    mbedtls_ssl_context ssl;
    struct hub_tls_peer id; /* the client certificate's serial and CN ("" without) */
    char peer[64];
    uint8_t addr[16]; /* the per-address key (hub_admission_addr_key) */
};

struct hub_tls_conn_group {
    uv_loop_t *loop;
    hub_tls_ctx_t *ctx;
    struct hub_tls_callbacks cb;
    void *user;
    hub_tls_listener_t *listener;
    struct hub_admission *adm;
    unsigned handshake_timeout_ms, close_timeout_ms;
    size_t max_pending;
    uv_timer_t timer;
    uint64_t timer_due; /* UINT64_MAX: stopped */
    struct link conns, handshaking, closing;
    unsigned n;       /* connections not yet freed */
    int reads_paused; /* hub_tls_conn_group_pause */
    int closing_g;
    int timer_open;
    void (*done)(void *);
    void *done_arg;
    struct hub_tls_stats st; /* conns, unauth and failed[LIMIT] are the listener's */
    uint8_t rbuf[READ_BUF_SIZE];
    uint8_t plain[PLAIN_BUF_SIZE];
};

/* ---- small helpers ----------------------------------------------------------------- */

static void link_init(struct link *k)
{
    k->prev = k->next = k;
}

static int link_empty(const struct link *head)
{
    return head->next == head;
}

static void link_push(struct link *head, struct link *k)
{
    k->prev = head->prev;
    k->next = head;
    head->prev->next = k;
    head->prev = k;
}

static void link_remove(struct link *k)
{
    k->prev->next = k->next;
    k->next->prev = k->prev;
    link_init(k);
}

#define CONN_OF(k, field) ((hub_tls_conn_t *)((char *)(k)-offsetof(hub_tls_conn_t, field)))

/* ---- handshake duration histogram ------------------------------------------------------ */

const struct hub_histogram_bounds hub_tls_hs_bounds = {
    9, {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}};

/* A handshake succeeded: counted by kind and in the duration histogram. */
static void count_handshake(hub_tls_conn_t *c)
{
    struct hub_tls_stats *st = &c->g->st;
    hub_histogram_observe(&st->handshakes, &hub_tls_hs_bounds, (uv_hrtime() - c->t0_ns) / 1000);
    if (c->resumed)
        st->resumed++;
    else
        st->full++;
}

/* ---- handshakes ------------------------------------------------------------------- */

/* The connection leaves ST_HANDSHAKE (done, failed or closed). */
static void handshake_end(hub_tls_conn_t *c)
{
    hub_admission_handshake_end(c->g->adm);
    if (c->ip_counted) {
        hub_admission_addr_release(c->g->adm, c->addr);
        c->ip_counted = 0;
    }
}

/* ---- deadlines ---------------------------------------------------------------------- */

static void timer_cb(uv_timer_t *t);

static void timer_arm_at(hub_tls_conn_group_t *g, uint64_t due)
{
    if (g->closing_g || due >= g->timer_due)
        return;
    uint64_t now = uv_now(g->loop);
    g->timer_due = due;
    uv_timer_start(&g->timer, timer_cb, due > now ? due - now : 0, 0);
}

static void timed_add(hub_tls_conn_t *c, struct link *list, unsigned ms)
{
    link_remove(&c->timed);
    c->deadline = uv_now(c->g->loop) + ms;
    link_push(list, &c->timed);
    timer_arm_at(c->g, c->deadline);
}

/* ---- connection output ----------------------------------------------------------- */

static void conn_destroy(hub_tls_conn_t *c);
static void conn_close(hub_tls_conn_t *c, enum hub_close_reason reason, int flags);
#define CLOSE_FLUSH 1  /* send what is queued (alerts, data) before closing */
#define CLOSE_NOTIFY 2 /* and a close_notify if the session is open */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Starts a uv_write of the filling buffer; 0, or the uv_write error (bytes dropped). */
static int conn_write_next(hub_tls_conn_t *c);

static void write_cb(uv_write_t *req, int status)
{
    hub_tls_conn_t *c = req->data;
    /* An idle connection keeps small output buffers only (its handshake grew them). */
    hub_outbuf_written(&c->out);
    if (c->state == ST_CLOSED)
        return;
    if (c->paused && c->state < ST_CLOSING && !hub_outbuf_over_pause(&c->out)) {
        c->paused = 0;
        if (!c->g->reads_paused && !c->held)
            uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    }
    if (status < 0) {
        hub_debug("tls %s: write failed: %s", c->peer, uv_strerror(status));
        conn_close(c, HUB_CLOSE_ERROR, 0);
        conn_destroy(c);
        return;
    }
    if (conn_write_next(c) != 0)
        conn_close(c, HUB_CLOSE_ERROR, 0);
    else if (c->out.inflight)
        return;
    if (c->state == ST_CLOSING)
        conn_destroy(c);
}

static int conn_write_next(hub_tls_conn_t *c)
{
    const uint8_t *data;
    size_t len;
    if (!hub_outbuf_take(&c->out, &data, &len))
        return 0;
    uv_buf_t ub = uv_buf_init((char *)data, len);
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &ub, 1, write_cb);
    if (rc != 0)
        hub_outbuf_drop(&c->out);
    return rc;
}

/* Starts a uv_write of the filling buffer unless one is in flight. */
static void conn_flush(hub_tls_conn_t *c)
{
    if (c->state == ST_CLOSED)
        return;
    int rc = conn_write_next(c);
    if (rc == 0)
        return;
    hub_debug("tls %s: uv_write: %s", c->peer, uv_strerror(rc));
    conn_close(c, HUB_CLOSE_ERROR, 0);
    conn_destroy(c);
}

/* mbedTLS send BIO: never blocks, the bytes go out with the next flush. */
static int bio_send(void *p, const unsigned char *buf, size_t len)
{
    hub_tls_conn_t *c = p;
    if (hub_outbuf_append(&c->out, buf, len) != 0)
        return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    if (hub_memtune_touches(c->ssl.out_buf, RECORD_KEEP, buf, len))
        c->dirty = 1;
    return (int)len;
}

static int bio_recv(void *p, unsigned char *buf, size_t len)
{
    hub_tls_conn_t *c = p;
    if (c->in_n == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    size_t n = len < c->in_n ? len : c->in_n;
    if (hub_memtune_touches(c->ssl.in_buf, RECORD_KEEP, buf, n))
        c->dirty = 1;
    memcpy(buf, c->in_p, n);
    c->in_p += n;
    c->in_n -= n;
    return (int)n;
}

/* An open connection with no partial record in its buffers gives back the record-buffer
 * pages that its handshake or a large record wrote (about 24 KiB of the 33 KiB): an idle
 * connection keeps the first page of each. */
static void conn_trim(hub_tls_conn_t *c)
{
    if (!c->dirty || c->state != ST_OPEN || c->ssl.in_left != 0 || c->ssl.out_left != 0 ||
        mbedtls_ssl_check_pending(&c->ssl))
        return;
    hub_memtune_discard(c->ssl.in_buf, RECORD_KEEP);
    hub_memtune_discard(c->ssl.out_buf, RECORD_KEEP);
    c->dirty = 0;
}

/* ---- connection lifecycle -------------------------------------------------------- */

static void group_maybe_done(hub_tls_conn_group_t *g);

static void conn_closed_cb(uv_handle_t *h)
{
    hub_tls_conn_t *c = h->data;
    hub_tls_conn_group_t *g = c->g;
    link_remove(&c->all);
    link_remove(&c->timed);
    g->n--;
    hub_admission_conn_remove(g->adm, c->unauth);
    if (c->opened && g->cb.on_close != NULL)
        g->cb.on_close(c, c->reason);
    if (c->ssl_ready)
        mbedtls_ssl_free(&c->ssl);
    hub_outbuf_free(&c->out);
    free(c);
    group_maybe_done(g);
}

/* Closes the socket now; the memory goes in conn_closed_cb (pending writes are cancelled). */
static void conn_destroy(hub_tls_conn_t *c)
{
    if (c->state == ST_CLOSED)
        return;
    if (c->state == ST_HANDSHAKE) {
        c->g->st.failed[c->fail]++;
        handshake_end(c);
    }
    c->state = ST_CLOSED;
    link_remove(&c->timed);
    uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
}

/* Stops reading and, with CLOSE_FLUSH, lets queued bytes (and a close_notify with
 * CLOSE_NOTIFY) go out first, for at most close_timeout_ms. */
static void conn_close(hub_tls_conn_t *c, enum hub_close_reason reason, int flags)
{
    if (c->state >= ST_CLOSING)
        return;
    if (c->state == ST_HANDSHAKE) {
        c->g->st.failed[c->fail]++;
        handshake_end(c);
    }
    int was_open = c->state == ST_OPEN;
    c->state = ST_CLOSING;
    c->reason = reason;
    link_remove(&c->timed);
    uv_read_stop((uv_stream_t *)&c->tcp);
    if ((flags & CLOSE_NOTIFY) && was_open && c->g->ctx != NULL)
        (void)mbedtls_ssl_close_notify(&c->ssl); /* best effort */
    if (!(flags & CLOSE_FLUSH)) {
        conn_destroy(c);
        return;
    }
    conn_flush(c);
    if (c->state == ST_CLOSED)
        return;
    if (!c->out.inflight)
        conn_destroy(c);
    else
        timed_add(c, &c->g->closing, c->g->close_timeout_ms);
}

/* Refuses a peer after a completed handshake: a fatal alert, then close. */
static void conn_refuse(hub_tls_conn_t *c, unsigned char alert, enum hub_tls_fail fail,
                        const char *why)
{
    c->g->st.failed[fail]++;
    hub_info("tls %s: client refused: %s (serial %s)", c->peer, why,
             c->id.serial_hex[0] ? c->id.serial_hex : "-");
    (void)mbedtls_ssl_send_alert_message(&c->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL, alert);
    conn_close(c, HUB_CLOSE_ERROR, CLOSE_FLUSH);
}

/* After every completed handshake, full or resumed: re-check the certificate, open. */
static void handshake_done(hub_tls_conn_t *c)
{
    hub_tls_conn_group_t *g = c->g;
    hub_tls_ctx_t *ctx = g->ctx;
    link_remove(&c->timed);
    handshake_end(c);
    c->state = ST_OPEN;
    struct hub_tls_identity id = {.resumed = c->resumed}, *idp = NULL;
    uint8_t *der = NULL;
    char org[HUB_TLS_PEER_NAME_MAX + 1];
    if (hub_tls_ctx_auth(ctx) == HUB_TLS_CLIENT_REQUIRED) {
        unsigned char alert;
        const char *why;
        int fail =
            hub_tls_peer_check(ctx, mbedtls_ssl_get_peer_cert(&c->ssl), &c->id, org, &alert, &why);
        if (fail >= 0) {
            hub_tls_peer_refused(ctx, mbedtls_ssl_get_peer_cert(&c->ssl), (enum hub_tls_fail)fail,
                                 c->peer);
            conn_refuse(c, alert, (enum hub_tls_fail)fail, why);
            return;
        }
        id.cn = c->id.cn;
        id.o = org[0] ? org : NULL;
        id.serial_hex = c->id.serial_hex;
        id.serial = c->id.serial;
        id.serial_len = c->id.serial_len;
        idp = &id;
        if (c->id.device_ca[0] != 0) { /* a device CA's: registered from its DER (on_open) */
            const mbedtls_x509_crt *pc = mbedtls_ssl_get_peer_cert(&c->ssl);
            id.device_ca = c->id.device_ca;
            if ((der = malloc(pc->raw.len)) != NULL) {
                memcpy(der, pc->raw.p, pc->raw.len);
                id.der = der;
                id.der_len = pc->raw.len;
            }
        }
        /* Everything used later is copied, and the session ticket was written during the
         * handshake: the parsed certificate (about 3 KB) is not kept. */
        mbedtls_x509_crt_free(c->ssl.session->peer_cert);
        mbedtls_free(c->ssl.session->peer_cert);
        c->ssl.session->peer_cert = NULL;
    }
    hub_debug("tls %s: handshake done (%s, %s)%s%s", c->peer, mbedtls_ssl_get_ciphersuite(&c->ssl),
              c->resumed ? "resumed" : "full", c->id.cn[0] ? " CN=" : "", c->id.cn);
    count_handshake(c);
    hub_tls_ctx_count_suite(ctx, c->ssl.session->ciphersuite);
    g->st.opened++;
    c->opened = 1;
    if (g->reads_paused) /* handshakes go on during a pause; application data waits */
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->user = g->cb.on_open(c, idp, g->user);
    free(der);
}

static void handshake_failed(hub_tls_conn_t *c, int rc)
{
    c->fail = hub_tls_peer_failure(&c->ssl, rc, c->peer);
    hub_tls_peer_refused(c->g->ctx,
                         c->ssl.session_negotiate ? c->ssl.session_negotiate->peer_cert : NULL,
                         c->fail, c->peer);
    conn_close(c, HUB_CLOSE_ERROR, CLOSE_FLUSH); /* flushes mbedTLS's alert */
}

/* Feeds the ciphertext in c->in_p to mbedTLS until it wants more. */
static void conn_drive(hub_tls_conn_t *c)
{
    hub_tls_conn_group_t *g = c->g;
    if (c->state == ST_HANDSHAKE) {
        (void)hub_tls_ctx_take_resumed();
        int rc = mbedtls_ssl_handshake(&c->ssl);
        if (hub_tls_ctx_take_resumed())
            c->resumed = 1;
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
            return;
        if (rc != 0) {
            handshake_failed(c, rc);
            return;
        }
        handshake_done(c);
    }
    while (c->state == ST_OPEN) {
        int rc = mbedtls_ssl_read(&c->ssl, g->plain, sizeof g->plain);
        if (rc > 0) {
            g->cb.on_data(c, g->plain, (size_t)rc);
        } else if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
            break;
        } else if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
            conn_close(c, HUB_CLOSE_PEER, CLOSE_FLUSH | CLOSE_NOTIFY);
        } else {
            if (rc != 0)
                hub_tls_ctx_log(HUB_LOG_DEBUG, "mbedtls_ssl_read", c->peer, rc);
            conn_close(c, HUB_CLOSE_ERROR, CLOSE_FLUSH);
        }
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    hub_tls_conn_t *c = h->data;
    buf->base = (char *)c->g->rbuf;
    buf->len = sizeof c->g->rbuf;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    hub_tls_conn_t *c = s->data;
    if (nread == 0 || c->state >= ST_CLOSING)
        return;
    if (nread < 0) {
        if (nread != UV_EOF)
            hub_debug("tls %s: read: %s", c->peer, uv_strerror((int)nread));
        conn_close(c, nread == UV_EOF ? HUB_CLOSE_PEER : HUB_CLOSE_ERROR,
                   nread == UV_EOF ? CLOSE_FLUSH : 0);
        return;
    }
    c->in_read = 1;
    if (c->g->ctx == NULL) {
        c->g->cb.on_data(c, (const uint8_t *)buf->base, (size_t)nread);
    } else {
        c->in_p = (const uint8_t *)buf->base;
        c->in_n = (size_t)nread;
        conn_drive(c);
        c->in_p = NULL;
        c->in_n = 0;
    }
    c->in_read = 0;
    if (c->state == ST_CLOSED)
        return;
    conn_flush(c);
    if (c->state == ST_CLOSING && !c->out.inflight)
        conn_destroy(c);
    else if (c->state < ST_CLOSING && hub_outbuf_over_pause(&c->out)) {
        c->paused = 1; /* the peer sends faster than it reads: TCP backpressure */
        uv_read_stop(s);
    }
    conn_trim(c);
}

/* ---- accepting ------------------------------------------------------------------------ */

int hub_tls_conn_accept(hub_tls_conn_group_t *g, uv_stream_t *server, int fd,
                        const struct sockaddr *from)
{
    hub_tls_conn_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return HUB_ENOMEM;
    c->g = g;
    c->t0_ns = uv_hrtime();
    c->fail = HUB_TLS_FAIL_CLOSED;
    link_init(&c->timed);
    uv_tcp_init(g->loop, &c->tcp);
    c->tcp.data = c;
    c->wreq.data = c;
    c->state = ST_OPEN; /* until the TLS set-up below */
    link_push(&g->conns, &c->all);
    g->n++;
    hub_admission_conn_add(g->adm);
    c->unauth = 1;
    int rc = server != NULL ? uv_accept(server, (uv_stream_t *)&c->tcp) : uv_tcp_open(&c->tcp, fd);
    if (rc != 0) {
        hub_warn("tls listener: uv_accept: %s", uv_strerror(rc));
        if (server == NULL)
            close(fd);
        conn_destroy(c);
        return HUB_EIO;
    }
    hub_tls_peer_address(&c->tcp, from, c->peer, sizeof c->peer, c->addr);
    if (g->ctx != NULL && !hub_admission_addr_acquire(g->adm, c->addr)) {
        hub_debug("tls %s: too many handshakes from this address: closed", c->peer);
        conn_destroy(c);
        return HUB_ERANGE;
    }
    g->st.accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    if (g->ctx != NULL) {
        mbedtls_ssl_init(&c->ssl);
        c->ssl_ready = 1;
        c->ip_counted = hub_admission_addr_counted(g->adm); /* acquired above */
        if ((rc = mbedtls_ssl_setup(&c->ssl, hub_tls_ctx_conf(g->ctx))) != 0) {
            hub_tls_ctx_log(HUB_LOG_WARN, "mbedtls_ssl_setup", c->peer, rc);
            if (c->ip_counted)
                hub_admission_addr_release(g->adm, c->addr);
            c->ip_counted = 0;
            conn_destroy(c);
            return HUB_EIO;
        }
        mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
        c->dirty = 1; /* calloc may have zeroed every page */
        c->state = ST_HANDSHAKE;
        hub_admission_handshake_begin(g->adm);
        timed_add(c, &g->handshaking, g->handshake_timeout_ms);
    }
    if ((rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb)) != 0) {
        hub_debug("tls %s: uv_read_start: %s", c->peer, uv_strerror(rc));
        conn_destroy(c);
        return HUB_EIO;
    }
    if (g->ctx == NULL) {
        g->st.opened++;
        c->opened = 1;
        if (g->reads_paused)
            uv_read_stop((uv_stream_t *)&c->tcp);
        c->user = g->cb.on_open(c, NULL, g->user);
    }
    return 0;
}

/* ---- the group ------------------------------------------------------------------------ */

static void timer_cb(uv_timer_t *t)
{
    hub_tls_conn_group_t *g = t->data;
    uint64_t now = uv_now(g->loop);
    g->timer_due = UINT64_MAX;
    while (!link_empty(&g->handshaking)) {
        hub_tls_conn_t *c = CONN_OF(g->handshaking.next, timed);
        if (c->deadline > now)
            break;
        hub_debug("tls %s: handshake timeout", c->peer);
        c->fail = HUB_TLS_FAIL_TIMEOUT;
        conn_close(c, HUB_CLOSE_ERROR, 0);
    }
    while (!link_empty(&g->closing)) {
        hub_tls_conn_t *c = CONN_OF(g->closing.next, timed);
        if (c->deadline > now)
            break;
        conn_destroy(c);
    }
    if (!link_empty(&g->handshaking))
        timer_arm_at(g, CONN_OF(g->handshaking.next, timed)->deadline);
    if (!link_empty(&g->closing))
        timer_arm_at(g, CONN_OF(g->closing.next, timed)->deadline);
}

int hub_tls_conn_group_new(const struct hub_tls_conn_group_options *o, hub_tls_conn_group_t **out)
{
    hub_tls_conn_group_t *g = calloc(1, sizeof *g);
    *out = g;
    if (g == NULL)
        return HUB_ENOMEM;
    g->loop = o->loop;
    g->ctx = o->ctx;
    g->cb = *o->cb;
    g->user = o->user;
    g->listener = o->listener;
    g->adm = o->adm;
    g->handshake_timeout_ms = o->handshake_timeout_ms;
    g->close_timeout_ms = o->close_timeout_ms;
    g->max_pending = o->max_pending;
    g->timer_due = UINT64_MAX;
    link_init(&g->conns);
    link_init(&g->handshaking);
    link_init(&g->closing);
    uv_timer_init(g->loop, &g->timer);
    g->timer.data = g;
    g->timer_open = 1;
    return 0;
}

static void group_maybe_done(hub_tls_conn_group_t *g)
{
    if (!g->closing_g || g->timer_open || g->n > 0)
        return;
    void (*done)(void *) = g->done;
    void *arg = g->done_arg;
    free(g);
    if (done != NULL)
        done(arg);
}

static void group_timer_closed(uv_handle_t *h)
{
    hub_tls_conn_group_t *g = h->data;
    g->timer_open = 0;
    group_maybe_done(g);
}

void hub_tls_conn_group_close(hub_tls_conn_group_t *g, void (*done)(void *arg), void *arg)
{
    if (g->closing_g)
        return;
    g->closing_g = 1;
    g->done = done;
    g->done_arg = arg;
    uv_close((uv_handle_t *)&g->timer, group_timer_closed);
    for (struct link *k = g->conns.next; k != &g->conns; k = k->next) {
        hub_tls_conn_t *c = CONN_OF(k, all);
        if (c->state == ST_CLOSED)
            continue;
        if (c->state == ST_OPEN && g->ctx != NULL && !c->out.inflight) {
            /* Best effort close_notify without waiting. */
            if (mbedtls_ssl_close_notify(&c->ssl) == 0) {
                const uint8_t *data;
                size_t len;
                hub_outbuf_filling(&c->out, &data, &len);
                uv_buf_t ub = uv_buf_init((char *)data, len);
                (void)uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
            }
        }
        if (c->state < ST_CLOSING)
            c->reason = HUB_CLOSE_SHUTDOWN;
        conn_destroy(c);
    }
}

void hub_tls_conn_group_pause(hub_tls_conn_group_t *g, int pause)
{
    if (g->reads_paused == !!pause)
        return;
    g->reads_paused = !!pause;
    for (struct link *k = g->conns.next; k != &g->conns; k = k->next) {
        hub_tls_conn_t *c = CONN_OF(k, all);
        if (c->state != ST_OPEN || c->paused || c->held)
            continue;
        if (pause)
            uv_read_stop((uv_stream_t *)&c->tcp);
        else
            uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    }
}

int hub_tls_conn_group_recheck(hub_tls_conn_group_t *g)
{
    if (g->ctx == NULL || hub_tls_ctx_auth(g->ctx) != HUB_TLS_CLIENT_REQUIRED ||
        !hub_tls_ctx_has_revset(g->ctx))
        return 0;
    int n = 0;
    for (struct link *k = g->conns.next; k != &g->conns; k = k->next) {
        hub_tls_conn_t *c = CONN_OF(k, all);
        if (c->state != ST_OPEN || c->id.serial_len == 0 || !hub_tls_peer_revoked(g->ctx, &c->id))
            continue;
        hub_info("tls %s: certificate %s of %s revoked: closing", c->peer, c->id.serial_hex,
                 c->id.cn);
        (void)mbedtls_ssl_send_alert_message(&c->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                             MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED);
        conn_close(c, HUB_CLOSE_REVOKED, CLOSE_FLUSH);
        n++;
    }
    return n;
}

void hub_tls_conn_group_stats(const hub_tls_conn_group_t *g, struct hub_tls_stats *out)
{
    *out = g->st;
}

/* ---- connection API -------------------------------------------------------------- */

int hub_tls_conn_write(hub_tls_conn_t *c, const void *data, size_t len)
{
    if (c->state != ST_OPEN)
        return HUB_EIO;
    size_t max = c->g->max_pending;
    if (len > max || hub_outbuf_pending(&c->out) > max - len) {
        hub_warn("tls %s: more than %zu bytes queued: closing", c->peer, max);
        conn_close(c, HUB_CLOSE_ERROR, 0);
        return HUB_ERANGE;
    }
    const unsigned char *p = data;
    if (c->g->ctx == NULL) {
        if (hub_outbuf_append(&c->out, p, len) != 0)
            return HUB_ENOMEM;
    } else {
        while (len > 0) {
            int rc = mbedtls_ssl_write(&c->ssl, p, len);
            if (rc < 0) {
                hub_tls_ctx_log(HUB_LOG_DEBUG, "mbedtls_ssl_write", c->peer, rc);
                conn_close(c, HUB_CLOSE_ERROR, 0);
                return rc == MBEDTLS_ERR_SSL_ALLOC_FAILED ? HUB_ENOMEM : HUB_EIO;
            }
            p += rc;
            len -= (size_t)rc;
        }
    }
    if (!c->in_read) {
        conn_flush(c);
        conn_trim(c);
    }
    return 0;
}

void hub_tls_conn_authenticated(hub_tls_conn_t *c)
{
    if (c->unauth) {
        c->unauth = 0;
        hub_admission_authenticated(c->g->adm);
    }
}

void hub_tls_conn_close(hub_tls_conn_t *c)
{
    conn_close(c, HUB_CLOSE_LOCAL, CLOSE_FLUSH | CLOSE_NOTIFY);
}

void hub_tls_conn_pause(hub_tls_conn_t *c, int paused)
{
    if (c->held == !!paused || c->state != ST_OPEN)
        return;
    c->held = !!paused;
    if (c->paused || c->g->reads_paused)
        return; /* stopped anyway; restarted by whichever pause ends last */
    if (paused)
        uv_read_stop((uv_stream_t *)&c->tcp);
    else
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

void *hub_tls_conn_user(const hub_tls_conn_t *c)
{
    return c->user;
}

void hub_tls_conn_set_user(hub_tls_conn_t *c, void *user)
{
    c->user = user;
}

const char *hub_tls_conn_cn(const hub_tls_conn_t *c)
{
    return c->id.cn;
}

const char *hub_tls_conn_serial_hex(const hub_tls_conn_t *c)
{
    return c->id.serial_hex;
}

const char *hub_tls_conn_peer(const hub_tls_conn_t *c)
{
    return c->peer;
}

size_t hub_tls_conn_pending(const hub_tls_conn_t *c)
{
    return hub_outbuf_pending(&c->out);
}

hub_tls_listener_t *hub_tls_conn_listener(const hub_tls_conn_t *c)
{
    return c->g->listener;
}

uv_loop_t *hub_tls_conn_loop(const hub_tls_conn_t *c)
{
    return c->g->loop;
}
