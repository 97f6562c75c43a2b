/* PROXY header stage of the HTTPS API: one thread, poll(2) over the listening socket, a
 * wake-up pipe and the connections waiting for their header (a fixed table of max_pending
 * slots; deadlines are checked on every wake-up). */
#include "api/proxy_listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/error.h"
#include "util/log.h"

enum { R_UNTRUSTED, R_MALFORMED, R_TIMEOUT, R_OVERLOAD, R_COUNT };
static const char *const REASON[R_COUNT] = {"untrusted", "malformed", "timeout", "overload"};
static uint64_t refused[R_COUNT]; /* atomics */

struct waiting {
    int fd; /* -1: free slot */
    uint64_t deadline_ms;
    struct sockaddr_storage peer;
    struct hub_proxy_reader rd;
};

struct hub_api_proxy {
    struct hub_api_proxy_options o;
    int lfd, wake[2];
    pthread_t th;
    int started;
    struct waiting *w;  /* o.max_pending slots */
    struct pollfd *pfd; /* 2 + o.max_pending */
    uint64_t last_log;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void refuse(struct hub_api_proxy *p, int reason, const struct sockaddr *sa, const char *why)
{
    char peer[64];
    __atomic_add_fetch(&refused[reason], 1, __ATOMIC_RELAXED);
    hub_proxy_addr_str(sa, peer, sizeof peer);
    uint64_t now = now_ms();
    int loud = now - p->last_log >= 1000;
    if (loud)
        p->last_log = now;
    hub_log(loud ? HUB_LOG_WARN : HUB_LOG_DEBUG, "api :%d: %s refused (%s): %s", p->o.port, peer,
            REASON[reason], why);
}

static void accept_all(struct hub_api_proxy *p)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(p->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or an error the next poll reports again */
        struct waiting *w = NULL;
        for (unsigned i = 0; w == NULL && i < p->o.max_pending; i++)
            if (p->w[i].fd < 0)
                w = &p->w[i];
        if (!hub_proxy_trusted(p->o.trust, (struct sockaddr *)&ss)) {
            refuse(p, R_UNTRUSTED, (struct sockaddr *)&ss, "not in proxy_trusted");
        } else if (w == NULL) {
            refuse(p, R_OVERLOAD, (struct sockaddr *)&ss, "too many waiting for a header");
        } else {
            w->fd = fd;
            w->peer = ss;
            w->rd.have = 0;
            w->deadline_ms = now_ms() + p->o.timeout_ms;
            continue;
        }
        close(fd);
    }
}

/* Reads what w's socket has of its header; hands it to MHD once complete. */
static void serve(struct hub_api_proxy *p, struct waiting *w)
{
    struct hub_proxy_header h;
    const char *why = NULL;
    int rc = hub_proxy_read(w->fd, &w->rd, &h, &why);
    if (rc == 0)
        return;
    if (rc < 0) {
        refuse(p, rc == HUB_EINVAL ? R_MALFORMED : R_TIMEOUT, (struct sockaddr *)&w->peer, why);
        close(w->fd);
    } else {
        const struct sockaddr_storage *from = h.local ? &w->peer : &h.src;
        socklen_t len =
            from->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
        /* MHD closes the socket itself when it cannot take it (per-address limit...). */
        if (MHD_add_connection(p->o.mhd, w->fd, (const struct sockaddr *)from, len) != MHD_YES)
            hub_debug("api: connection not taken (limits): %s", strerror(errno));
    }
    w->fd = -1;
}

static void *run(void *arg)
{
    struct hub_api_proxy *p = arg;
    for (;;) {
        uint64_t now = now_ms(), next = now + 1000;
        nfds_t n = 2;
        p->pfd[0] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
        p->pfd[1] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
        for (unsigned i = 0; i < p->o.max_pending; i++) {
            struct waiting *w = &p->w[i];
            if (w->fd < 0)
                continue;
            if (w->deadline_ms <= now) {
                refuse(p, R_TIMEOUT, (struct sockaddr *)&w->peer, "no complete header in time");
                close(w->fd);
                w->fd = -1;
                continue;
            }
            if (w->deadline_ms < next)
                next = w->deadline_ms;
            p->pfd[n++] = (struct pollfd){.fd = w->fd, .events = POLLIN};
        }
        int rc = poll(p->pfd, n, (int)(next - now));
        if (rc < 0 && errno != EINTR) {
            hub_error("api: poll: %s", strerror(errno));
            break;
        }
        if (rc <= 0)
            continue;
        if (p->pfd[0].revents != 0)
            break;
        for (nfds_t k = 2; k < n; k++) {
            if (p->pfd[k].revents == 0)
                continue;
            for (unsigned i = 0; i < p->o.max_pending; i++)
                if (p->w[i].fd == p->pfd[k].fd) {
                    serve(p, &p->w[i]);
                    break;
                }
        }
        if (p->pfd[1].revents != 0)
            accept_all(p);
    }
    return NULL;
}

static int listen_on(struct hub_api_proxy *p)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    socklen_t sl;
    if (inet_pton(AF_INET, p->o.host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)p->o.port);
        sl = sizeof *sin;
    } else if (inet_pton(AF_INET6, p->o.host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)p->o.port);
        sl = sizeof *sin6;
    } else {
        hub_error("api_listen: \"%s\" is not an IP address", p->o.host);
        return HUB_EIO;
    }
    int one = 1;
    p->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->lfd >= 0) {
        setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ss.ss_family == AF_INET6)
            setsockopt(p->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&ss, sl) != 0 || listen(p->lfd, 511) != 0) {
        hub_error("cannot listen on %s:%d for the HTTPS API: %s", p->o.host, p->o.port,
                  strerror(errno));
        return HUB_EIO;
    }
    return 0;
}

int hub_api_proxy_start(const struct hub_api_proxy_options *o, struct hub_api_proxy **out)
{
    *out = NULL;
    struct hub_api_proxy *p = calloc(1, sizeof *p);
    if (p == NULL)
        return HUB_ENOMEM;
    p->o = *o;
    p->lfd = p->wake[0] = p->wake[1] = -1;
    if (p->o.max_pending == 0)
        p->o.max_pending = 64;
    p->w = calloc(p->o.max_pending, sizeof *p->w);
    p->pfd = calloc(p->o.max_pending + 2, sizeof *p->pfd);
    int rc = p->w == NULL || p->pfd == NULL ? HUB_ENOMEM : 0;
    for (unsigned i = 0; rc == 0 && i < p->o.max_pending; i++)
        p->w[i].fd = -1;
    if (rc == 0 && pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) != 0)
        rc = HUB_EIO;
    if (rc == 0)
        rc = listen_on(p);
    if (rc == 0 && pthread_create(&p->th, NULL, run, p) != 0)
        rc = HUB_ENOMEM;
    if (rc != 0) {
        hub_api_proxy_stop(p);
        return rc;
    }
    p->started = 1;
    *out = p;
    return 0;
}

void hub_api_proxy_stop(struct hub_api_proxy *p)
{
    if (p == NULL)
        return;
    if (p->started) {
        (void)!write(p->wake[1], "x", 1);
        pthread_join(p->th, NULL);
    }
    for (unsigned i = 0; p->w != NULL && i < p->o.max_pending; i++)
        if (p->w[i].fd >= 0)
            close(p->w[i].fd);
    if (p->lfd >= 0)
        close(p->lfd);
    if (p->wake[0] >= 0) {
        close(p->wake[0]);
        close(p->wake[1]);
    }
    free(p->w);
    free(p->pfd);
    free(p);
}

int hub_api_proxy_metrics(hub_buf_t *out)
{
    int rc = hub_buf_printf(out, "# HELP iothub_api_proxy_refused_total HTTPS API connections "
                                 "closed before TLS at the PROXY header stage, by reason.\n"
                                 "# TYPE iothub_api_proxy_refused_total counter\n");
    for (int r = 0; rc == 0 && r < R_COUNT; r++)
        rc = hub_buf_printf(out, "iothub_api_proxy_refused_total{reason=\"%s\"} %llu\n", REASON[r],
                            (unsigned long long)__atomic_load_n(&refused[r], __ATOMIC_RELAXED));
    return rc;
}
