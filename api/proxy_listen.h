/* The HTTPS API's listening socket when api_proxy_protocol is on. libmicrohttpd then runs
 * without a listening socket of its own (MHD_USE_NO_LISTEN_SOCKET): one thread here accepts,
 * refuses peers outside proxy_trusted, reads each connection's PROXY header
 * (util/proxyproto.h, never a byte past it) with a deadline, and hands the socket to MHD
 * with MHD_add_connection and the client's address from the header, so MHD's per-address
 * limit, the request's source (audit "from", logs) and the TLS handshake, which MHD does
 * as before, all see the real client. */
#ifndef HUB_API_PROXY_LISTEN_H
#define HUB_API_PROXY_LISTEN_H

#include <stdint.h>

#include <microhttpd.h>

#include "util/buf.h"
#include "util/proxyproto.h"

struct hub_api_proxy;

struct hub_api_proxy_options {
    const char *host; /* numeric address */
    int port;
    struct MHD_Daemon *mhd;              /* borrowed; stopped after hub_api_proxy_stop */
    const struct hub_proxy_trust *trust; /* borrowed */
    unsigned timeout_ms;                 /* accept to complete header */
    unsigned max_pending;                /* connections waiting for their header */
};

/* Binds, listens and starts the thread. Returns 0 or HUB_EIO (logged) / HUB_ENOMEM. */
int hub_api_proxy_start(const struct hub_api_proxy_options *o, struct hub_api_proxy **out);
/* Stops accepting, closes the connections still waiting for a header, joins the thread,
 * frees. NULL is ignored. */
void hub_api_proxy_stop(struct hub_api_proxy *p);
/* Appends iothub_api_proxy_refused_total{reason} (Prometheus text). Any thread. */
int hub_api_proxy_metrics(hub_buf_t *out);

#endif
