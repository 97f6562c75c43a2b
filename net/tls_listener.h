/* Server-side TLS 1.2 (mbedTLS) over libuv TCP, with mutual-TLS client checks against an
 * in-memory revocation set, and the same listener API for plain TCP (ctx == NULL): the
 * listening socket, accepting through net/admission's caps, and the listener's connections
 * (net/tls_conn). Every listener and its connections live on one loop thread; nothing here
 * blocks that loop. */
#ifndef HUB_NET_TLS_LISTENER_H
#define HUB_NET_TLS_LISTENER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "net/admission.h"
#include "net/tls_conn.h"
#include "net/tls_ctx.h"

struct hub_tls_limits {
    unsigned handshake_timeout_ms;  /* accept to handshake done; 0: 10000 */
    unsigned max_handshakes;        /* concurrent handshakes; excess closed at once; 0: 512 */
    unsigned max_handshakes_per_ip; /* concurrent handshakes from one address; 0: unlimited */
    unsigned max_unauthenticated;   /* connections not yet marked by hub_tls_conn_authenticated
                                       (handshakes included); excess closed at once on accept,
                                       before any TLS state exists; 0: unlimited */
    unsigned max_connections;       /* 0: unlimited */
    unsigned close_timeout_ms;      /* graceful close waits this long for the peer; 0: 5000 */
    size_t max_pending;             /* queued output beyond which a connection is closed;
                                       0: 16 MiB (reading pauses from 256 KiB on) */
    int backlog;                    /* listen(2) backlog; 0: 511 */
    hub_admission_shared_t *shared; /* NULL: the caps count this listener's connections */
    int reuseport;                  /* SO_REUSEPORT, one listener per loop on one port: 1 for
                                       the first (refused if anything listens there already),
                                       2 for the others, bound to the first one's port */
    /* PROXY protocol (net/proxy_accept.h): non-NULL, every connection must come from one of
     * these proxies and start with a PROXY header, whose client address then stands for the
     * peer. Borrowed, must outlive the listener. */
    const struct hub_proxy_trust *proxy;
    unsigned proxy_timeout_ms; /* accept to complete header; 0: 5000 */
};

/* Listens on host:port (a numeric address, or a name resolved once, blocking: call at
 * startup) with ctx (NULL: plain TCP). cb is copied; user goes to on_open; limits may be NULL.
 * The listener belongs to its loop until hub_tls_listener_close. Returns 0 or HUB_EIO (bind
 * errors logged; a half-made listener is freed by the loop's next run) / HUB_EINVAL /
 * HUB_ENOMEM. */
int hub_tls_listener_open(uv_loop_t *loop, const char *host, int port, hub_tls_ctx_t *ctx,
                          const struct hub_tls_callbacks *cb, void *user,
                          const struct hub_tls_limits *limits, hub_tls_listener_t **out);
/* The port actually bound (useful with port 0). */
int hub_tls_listener_port(const hub_tls_listener_t *l);
/* Closes (on the loop thread) every connection of the listener (on_close: SHUTDOWN), then
 * the listener; done(arg) runs once everything is freed. */
void hub_tls_listener_close(hub_tls_listener_t *l, void (*done)(void *arg), void *arg);
/* Stops (pause 1) or restarts (0) reading from every open connection of the listener,
 * e.g. while the layer above is overloaded; TCP flow control then slows the peers down.
 * Handshakes and writes go on. Loop thread only. */
void hub_tls_listener_pause(hub_tls_listener_t *l, int pause);
/* Copies the listener's counters. Loop thread only. */
void hub_tls_listener_stats(const hub_tls_listener_t *l, struct hub_tls_stats *out);
/* Re-checks every open connection's certificate against the revset and closes the revoked
 * ones (on_close: REVOKED). Call on the loop thread after revocations. Returns how many. */
int hub_tls_listener_recheck(hub_tls_listener_t *l);

#endif
