/* The PROXY header stage. A waiting connection is a raw socket watched by a uv_poll_t:
 * libuv's uv_tcp_t would read ahead into the TLS handshake, while hub_proxy_read peeks and
 * takes only the header's bytes. The socket comes out of a uv_accept into a scratch handle
 * (dup, then the handle is closed). Deadlines are constant, so the waiting connections sit
 * in one FIFO list served by one timer. */
#include "net/proxy_accept.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/log.h"

struct waiting {
    uv_poll_t poll;
    hub_proxy_accept_t *a;
    struct waiting *prev, *next;
    uint64_t deadline;
    int fd;
    struct sockaddr_storage peer;
    struct hub_proxy_reader rd;
};

struct hub_proxy_accept {
    struct hub_proxy_accept_options o;
    uv_timer_t timer;
    struct waiting head; /* FIFO by deadline; only prev/next used */
    unsigned n;          /* waiting connections not yet freed */
    int closing, timer_open;
    void (*done)(void *);
    void *done_arg;
    uint64_t refused[HUB_PROXY_REFUSAL_COUNT];
    uint64_t last_log;
};

const char *hub_proxy_refusal_name(enum hub_proxy_refusal r)
{
    static const char *const names[HUB_PROXY_REFUSAL_COUNT] = {"untrusted", "malformed", "timeout",
                                                               "overload"};
    return r < HUB_PROXY_REFUSAL_COUNT ? names[r] : "?";
}

static void maybe_done(hub_proxy_accept_t *a)
{
    if (!a->closing || a->timer_open || a->n > 0)
        return;
    void (*done)(void *) = a->done;
    void *arg = a->done_arg;
    free(a);
    if (done != NULL)
        done(arg);
}

/* Counts a refusal; logged at warn level at most once a second, else at debug level. */
static void refuse(hub_proxy_accept_t *a, enum hub_proxy_refusal r, const struct sockaddr *sa,
                   const char *why)
{
    char peer[64];
    a->refused[r]++;
    hub_proxy_addr_str(sa, peer, sizeof peer);
    uint64_t now = uv_now(a->o.loop);
    int loud = now - a->last_log >= 1000;
    if (loud)
        a->last_log = now;
    hub_log(loud ? HUB_LOG_WARN : HUB_LOG_DEBUG, "listener :%d: %s refused (%s): %s", a->o.port,
            peer, hub_proxy_refusal_name(r), why);
}

static void waiting_freed(uv_handle_t *h)
{
    struct waiting *w = h->data;
    hub_proxy_accept_t *a = w->a;
    if (w->fd >= 0)
        close(w->fd);
    free(w);
    a->n--;
    maybe_done(a);
}

/* Unlinks w and frees it; its socket is closed unless handed over (fd set to -1). */
static void waiting_end(struct waiting *w)
{
    w->prev->next = w->next;
    w->next->prev = w->prev;
    w->prev = w->next = w;
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, waiting_freed);
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    struct waiting *w = p->data;
    hub_proxy_accept_t *a = w->a;
    struct hub_proxy_header h;
    const char *why = "poll error";
    int rc = status < 0 ? HUB_EIO : hub_proxy_read(w->fd, &w->rd, &h, &why);
    if (rc == 0)
        return;
    if (rc < 0) {
        refuse(a, rc == HUB_EINVAL ? HUB_PROXY_MALFORMED : HUB_PROXY_TIMEOUT,
               (struct sockaddr *)&w->peer, why);
        waiting_end(w);
        return;
    }
    int fd = w->fd;
    struct sockaddr_storage from = h.local ? w->peer : h.src;
    w->fd = -1;
    waiting_end(w);
    a->o.ready(a->o.arg, fd, (struct sockaddr *)&from);
}

static void timer_cb(uv_timer_t *t)
{
    hub_proxy_accept_t *a = t->data;
    uint64_t now = uv_now(a->o.loop);
    while (a->head.next != &a->head && a->head.next->deadline <= now) {
        struct waiting *w = a->head.next;
        refuse(a, HUB_PROXY_TIMEOUT, (struct sockaddr *)&w->peer, "no complete header in time");
        waiting_end(w);
    }
    if (a->head.next != &a->head)
        uv_timer_start(&a->timer, timer_cb, a->head.next->deadline - now, 0);
}

int hub_proxy_accept_new(const struct hub_proxy_accept_options *o, hub_proxy_accept_t **out)
{
    hub_proxy_accept_t *a = calloc(1, sizeof *a);
    *out = a;
    if (a == NULL)
        return HUB_ENOMEM;
    a->o = *o;
    if (a->o.timeout_ms == 0)
        a->o.timeout_ms = 5000;
    if (a->o.max_pending == 0)
        a->o.max_pending = 512;
    a->head.prev = a->head.next = &a->head;
    uv_timer_init(o->loop, &a->timer);
    a->timer.data = a;
    a->timer_open = 1;
    return 0;
}

/* A connection that cannot even wait: accepted and closed at once. */
static void scratch_closed(uv_handle_t *h)
{
    free(h);
}

void hub_proxy_accept_take(hub_proxy_accept_t *a, uv_stream_t *server)
{
    uv_tcp_t *t = malloc(sizeof *t);
    if (t == NULL)
        return;
    uv_tcp_init(a->o.loop, t);
    int fd = -1;
    uv_os_fd_t ofd;
    struct sockaddr_storage peer;
    int plen = sizeof peer;
    memset(&peer, 0, sizeof peer);
    if (uv_accept(server, (uv_stream_t *)t) == 0 && uv_fileno((uv_handle_t *)t, &ofd) == 0 &&
        uv_tcp_getpeername(t, (struct sockaddr *)&peer, &plen) == 0) {
        if (!hub_proxy_trusted(a->o.trust, (struct sockaddr *)&peer))
            refuse(a, HUB_PROXY_UNTRUSTED, (struct sockaddr *)&peer, "not in proxy_trusted");
        else if (a->closing || a->n >= a->o.max_pending)
            refuse(a, HUB_PROXY_OVERLOAD, (struct sockaddr *)&peer, "too many waiting");
        else
            fd = dup(ofd);
    }
    uv_close((uv_handle_t *)t, scratch_closed);
    if (fd < 0)
        return;
    struct waiting *w = calloc(1, sizeof *w);
    if (w == NULL || uv_poll_init(a->o.loop, &w->poll, fd) != 0) {
        free(w);
        close(fd);
        return;
    }
    w->poll.data = w;
    w->a = a;
    w->fd = fd;
    w->peer = peer;
    w->deadline = uv_now(a->o.loop) + a->o.timeout_ms;
    w->prev = a->head.prev;
    w->next = &a->head;
    a->head.prev->next = w;
    a->head.prev = w;
    a->n++;
    if (w->prev == &a->head)
        uv_timer_start(&a->timer, timer_cb, a->o.timeout_ms, 0);
    uv_poll_start(&w->poll, UV_READABLE | UV_DISCONNECT, poll_cb);
}

static void timer_closed(uv_handle_t *h)
{
    hub_proxy_accept_t *a = h->data;
    a->timer_open = 0;
    maybe_done(a);
}

void hub_proxy_accept_close(hub_proxy_accept_t *a, void (*done)(void *arg), void *arg)
{
    if (a->closing)
        return;
    a->closing = 1;
    a->done = done;
    a->done_arg = arg;
    while (a->head.next != &a->head)
        waiting_end(a->head.next);
    uv_close((uv_handle_t *)&a->timer, timer_closed);
}

void hub_proxy_accept_counts(const hub_proxy_accept_t *a, uint64_t out[HUB_PROXY_REFUSAL_COUNT])
{
    memcpy(out, a->refused, sizeof a->refused);
}
