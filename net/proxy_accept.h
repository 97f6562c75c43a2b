/* The PROXY protocol stage of a listener (proxy_protocol on): an accepted connection from a
 * trusted proxy waits here, on the listener's loop, until its PROXY header is complete
 * (util/proxyproto.h), then goes on to the TLS handshake with the client's address as its
 * peer (per-address limits, logs, audit). A connection from an address not in proxy_trusted,
 * with a malformed header, or without a complete header within the timeout is closed and
 * counted. Nothing here blocks the loop; every call on the loop thread. */
#ifndef HUB_NET_PROXY_ACCEPT_H
#define HUB_NET_PROXY_ACCEPT_H

#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "util/proxyproto.h"

typedef struct hub_proxy_accept hub_proxy_accept_t;

/* Why a connection was refused before its handshake (metrics labels: hub_proxy_refusal_name). */
enum hub_proxy_refusal {
    HUB_PROXY_UNTRUSTED, /* the peer is not in proxy_trusted */
    HUB_PROXY_MALFORMED, /* not a valid PROXY header (no header at all included) */
    HUB_PROXY_TIMEOUT,   /* no complete header in time, or closed before it */
    HUB_PROXY_OVERLOAD,  /* too many connections waiting for their header */
    HUB_PROXY_REFUSAL_COUNT
};
const char *hub_proxy_refusal_name(enum hub_proxy_refusal r);

/* A header arrived: fd (a connected non-blocking socket, now the callee's) is positioned on
 * the first byte after the header; from is the client (the proxy itself for a LOCAL
 * health check). */
typedef void (*hub_proxy_ready_fn)(void *arg, int fd, const struct sockaddr *from);

struct hub_proxy_accept_options {
    uv_loop_t *loop;
    const struct hub_proxy_trust *trust; /* borrowed, must outlive the stage */
    unsigned timeout_ms;                 /* accept to complete header; 0: 5000 */
    unsigned max_pending;                /* connections waiting for a header; 0: 512 */
    int port;                            /* for logs */
    hub_proxy_ready_fn ready;
    void *arg;
};

int hub_proxy_accept_new(const struct hub_proxy_accept_options *o, hub_proxy_accept_t **out);
/* Accepts the pending connection of server into the stage. */
void hub_proxy_accept_take(hub_proxy_accept_t *a, uv_stream_t *server);
/* Closes the waiting connections; done(arg) runs once all is freed (the stage too). */
void hub_proxy_accept_close(hub_proxy_accept_t *a, void (*done)(void *arg), void *arg);
/* Connections refused, by reason, since start (this stage's). */
void hub_proxy_accept_counts(const hub_proxy_accept_t *a, uint64_t out[HUB_PROXY_REFUSAL_COUNT]);

#endif
