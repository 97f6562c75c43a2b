/* Listening sockets over libuv. A connection over a listener-wide cap (handshakes,
 * unauthenticated, total) is accepted into a bare uv_tcp_t and closed at once; the others go
 * to the listener's connection group (net/tls_conn), which applies the per-address cap. */
#include "net/tls_listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/error.h"
#include "util/log.h"

struct hub_tls_listener {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    hub_tls_ctx_t *ctx;
    struct hub_tls_limits lim;
    struct hub_admission adm;
    hub_tls_conn_group_t *conns; /* NULL once closed */
    hub_proxy_accept_t *pp;      /* the PROXY header stage, or NULL */
    int port;
    int closing_l;
    int tcp_open, group_open, pp_open;
    void (*done)(void *);
    void *done_arg;
    uint64_t refused, last_refused_log;
    uint64_t limit_refused; /* stats: failed[HUB_TLS_FAIL_LIMIT] */
};

static void free_handle_cb(uv_handle_t *h)
{
    free(h);
}

/* Counts a refused connection (logged at most once a second). */
static void count_refused(hub_tls_listener_t *l)
{
    l->limit_refused++;
    l->refused++;
    uint64_t now = uv_now(l->loop);
    if (now - l->last_refused_log >= 1000) {
        hub_warn("tls listener :%d: %llu connection(s) refused over the limits (%u handshakes, "
                 "%u unauthenticated, %u connections in progress)",
                 l->port, (unsigned long long)l->refused, l->adm.handshakes, l->adm.unauth,
                 l->adm.conns);
        l->refused = 0;
        l->last_refused_log = now;
    }
}

/* Accepts and closes at once a connection over the listener-wide limits. */
static void refuse_connection(hub_tls_listener_t *l, uv_stream_t *server)
{
    uv_tcp_t *t = malloc(sizeof *t);
    if (t == NULL)
        return;
    uv_tcp_init(l->loop, t);
    (void)uv_accept(server, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, free_handle_cb);
    count_refused(l);
}

static void connection_cb(uv_stream_t *server, int status)
{
    hub_tls_listener_t *l = server->data;
    if (status < 0) {
        hub_warn("tls listener :%d: accept: %s", l->port, uv_strerror(status));
        return;
    }
    if (l->closing_l)
        return;
    if (hub_admission_full(&l->adm)) {
        refuse_connection(l, server);
        return;
    }
    if (l->pp != NULL) {
        hub_proxy_accept_take(l->pp, server);
        return;
    }
    int rc = hub_tls_conn_accept(l->conns, server, -1, NULL);
    if (rc == HUB_ENOMEM)
        refuse_connection(l, server);
    else if (rc == HUB_ERANGE)
        count_refused(l);
}

/* A PROXY header arrived (net/proxy_accept): the caps are checked again (time passed). */
static void proxy_ready(void *arg, int fd, const struct sockaddr *from)
{
    hub_tls_listener_t *l = arg;
    int rc = l->closing_l || hub_admission_full(&l->adm)
                 ? HUB_ENOMEM
                 : hub_tls_conn_accept(l->conns, NULL, fd, from);
    if (rc == HUB_ENOMEM)
        close(fd);
    if (rc == HUB_ENOMEM || rc == HUB_ERANGE)
        count_refused(l);
}

/* SO_REUSEPORT would let a second daemon of the same user share (and split) the port
 * silently: a plain listening socket first tells whether the port is taken. Returns 0 when
 * it is free. */
static int probe_port(const struct addrinfo *a)
{
    int fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return 0; /* the real socket will report it */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    int rc = bind(fd, a->ai_addr, a->ai_addrlen) != 0 && errno == EADDRINUSE ? -1 : 0;
    close(fd);
    return rc;
}

static int open_socket(const char *host, int port, int reuseport, int *fd_out, int *port_out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host && *host ? host : NULL, ps, &hints, &res);
    if (rc != 0) {
        hub_error("listen %s:%d: %s", host, port, gai_strerror(rc));
        return HUB_EIO;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0) {
        hub_error("listen %s:%d: socket: %s", host, port, strerror(errno));
        freeaddrinfo(res);
        return HUB_EIO;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport == 1 && probe_port(res) != 0) {
        hub_error("listen %s:%d: bind: %s", host, port, strerror(EADDRINUSE));
        freeaddrinfo(res);
        close(fd);
        return HUB_EIO;
    }
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (res->ai_family == AF_INET6) /* "::" listens on IPv6 only, as its name says */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
        hub_error("listen %s:%d: bind: %s", host, port, strerror(errno));
        freeaddrinfo(res);
        close(fd);
        return HUB_EIO;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *port_out = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    return 0;
}

static void listener_maybe_done(hub_tls_listener_t *l)
{
    if (!l->closing_l || l->tcp_open || l->group_open || l->pp_open)
        return;
    void (*done)(void *) = l->done;
    void *arg = l->done_arg;
    hub_admission_fini(&l->adm);
    free(l);
    if (done != NULL)
        done(arg);
}

static void listener_tcp_closed(uv_handle_t *h)
{
    hub_tls_listener_t *l = h->data;
    l->tcp_open = 0;
    listener_maybe_done(l);
}

static void listener_pp_closed(void *arg)
{
    hub_tls_listener_t *l = arg;
    l->pp_open = 0;
    l->pp = NULL;
    listener_maybe_done(l);
}

static void listener_conns_closed(void *arg)
{
    hub_tls_listener_t *l = arg;
    l->group_open = 0;
    l->conns = NULL;
    listener_maybe_done(l);
}

int hub_tls_listener_open(uv_loop_t *loop, const char *host, int port, hub_tls_ctx_t *ctx,
                          const struct hub_tls_callbacks *cb, void *user,
                          const struct hub_tls_limits *limits, hub_tls_listener_t **out)
{
    *out = NULL;
    if (cb == NULL || cb->on_open == NULL || cb->on_data == NULL)
        return HUB_EINVAL;
    hub_tls_listener_t *l = calloc(1, sizeof *l);
    if (l == NULL)
        return HUB_ENOMEM;
    if (limits != NULL)
        l->lim = *limits;
    if (l->lim.handshake_timeout_ms == 0)
        l->lim.handshake_timeout_ms = 10000;
    if (l->lim.max_handshakes == 0)
        l->lim.max_handshakes = 512;
    if (l->lim.close_timeout_ms == 0)
        l->lim.close_timeout_ms = 5000;
    if (l->lim.max_pending == 0)
        l->lim.max_pending = 16u << 20;
    if (l->lim.backlog <= 0)
        l->lim.backlog = 511;
    struct hub_admission_caps caps = {l->lim.max_handshakes, l->lim.max_handshakes_per_ip,
                                      l->lim.max_unauthenticated, l->lim.max_connections};
    if (hub_admission_init(&l->adm, &caps, ctx != NULL, l->lim.shared) != 0) {
        free(l);
        return HUB_ENOMEM;
    }
    int fd, rc = open_socket(host, port, l->lim.reuseport, &fd, &l->port);
    if (rc != 0) {
        hub_admission_fini(&l->adm);
        free(l);
        return rc;
    }
    struct hub_tls_conn_group_options go = {
        .loop = loop,
        .ctx = ctx,
        .cb = cb,
        .user = user,
        .listener = l,
        .adm = &l->adm,
        .handshake_timeout_ms = l->lim.handshake_timeout_ms,
        .close_timeout_ms = l->lim.close_timeout_ms,
        .max_pending = l->lim.max_pending,
    };
    if (hub_tls_conn_group_new(&go, &l->conns) != 0) {
        close(fd);
        hub_admission_fini(&l->adm);
        free(l);
        return HUB_ENOMEM;
    }
    struct hub_proxy_accept_options po = {loop, l->lim.proxy, l->lim.proxy_timeout_ms,
                                           l->lim.max_handshakes, l->port, proxy_ready, l};
    if (l->lim.proxy != NULL && hub_proxy_accept_new(&po, &l->pp) != 0) {
        close(fd);
        hub_tls_conn_group_close(l->conns, NULL, NULL);
        hub_admission_fini(&l->adm);
        free(l);
        return HUB_ENOMEM;
    }
    l->pp_open = l->pp != NULL;
    l->loop = loop;
    l->ctx = ctx;
    uv_tcp_init(loop, &l->tcp);
    l->tcp.data = l;
    l->tcp_open = l->group_open = 1;
    if ((rc = uv_tcp_open(&l->tcp, fd)) != 0)
        close(fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, l->lim.backlog, connection_cb);
    if (rc != 0) {
        hub_error("listen %s:%d: %s", host, port, uv_strerror(rc));
        hub_tls_listener_close(l, NULL, NULL);
        return HUB_EIO;
    }
    hub_info("listening on %s:%d (%s%s)", host, l->port,
             ctx == NULL                                        ? "plain TCP"
             : hub_tls_ctx_auth(ctx) == HUB_TLS_CLIENT_REQUIRED ? "TLS, client certificate required"
                                                                : "TLS",
             l->pp != NULL ? ", PROXY protocol header required" : "");
    *out = l;
    return 0;
}

void hub_tls_listener_stats(const hub_tls_listener_t *l, struct hub_tls_stats *out)
{
    hub_tls_conn_group_stats(l->conns, out);
    out->failed[HUB_TLS_FAIL_LIMIT] += l->limit_refused;
    out->conns = l->adm.conns;
    out->unauth = l->adm.unauth;
    if (l->pp != NULL)
        hub_proxy_accept_counts(l->pp, out->proxy_refused);
}

int hub_tls_listener_port(const hub_tls_listener_t *l)
{
    return l->port;
}

void hub_tls_listener_close(hub_tls_listener_t *l, void (*done)(void *arg), void *arg)
{
    if (l->closing_l)
        return;
    l->closing_l = 1;
    l->done = done;
    l->done_arg = arg;
    uv_close((uv_handle_t *)&l->tcp, listener_tcp_closed);
    if (l->pp != NULL)
        hub_proxy_accept_close(l->pp, listener_pp_closed, l);
    hub_tls_conn_group_close(l->conns, listener_conns_closed, l);
}

void hub_tls_listener_pause(hub_tls_listener_t *l, int pause)
{
    hub_tls_conn_group_pause(l->conns, pause);
}

int hub_tls_listener_recheck(hub_tls_listener_t *l)
{
    return hub_tls_conn_group_recheck(l->conns);
}
