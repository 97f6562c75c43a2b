/* Worker event loops for the MQTT listeners. Each worker thread runs its own libuv loop with
 * one SO_REUSEPORT listener per configured port and owns the connections the kernel hands
 * it: accept, TLS handshake, record encryption, socket I/O. The layer above (the broker)
 * stays on the home loop and sees each connection as a hub_wconn_t: plaintext comes to it
 * and its output goes back through two queues per worker, so the broker needs no lock and
 * the expensive parts use every core.
 *
 * The callbacks keep the contract of net/tls_conn.h, on the home loop: on_open once after a
 * handshake (it may call hub_wconn_close to refuse), on_data in order, on_close once, after
 * which the connection must not be used. */
#ifndef HUB_NET_WORKERS_H
#define HUB_NET_WORKERS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "net/tls_listener.h"
#include "util/rcbuf.h"

typedef struct hub_workers hub_workers_t;
typedef struct hub_wconn hub_wconn_t;

struct hub_workers_callbacks {
    void *(*on_open)(hub_wconn_t *c, const struct hub_tls_identity *id, void *user);
    void (*on_data)(hub_wconn_t *c, const uint8_t *plain, size_t len);
    void (*on_close)(hub_wconn_t *c, enum hub_close_reason reason);
};

/* One listening port, served by every worker. host NULL: this slot is off. */
struct hub_workers_listen {
    const char *host;
    int port;
    hub_tls_ctx_t *ctx;           /* NULL: plain TCP; shared by the workers, must outlive them */
    struct hub_tls_limits limits; /* for the whole port: the workers count together */
};

#define HUB_WORKERS_LISTEN_MAX 4

/* Starts n worker threads (n >= 1) serving the nl listeners (at most HUB_WORKERS_LISTEN_MAX;
 * ports are bound before this returns, port 0 picks one port for all workers). Callbacks run
 * on home, which must keep running until hub_workers_stop's done. Returns 0 or HUB_EIO (bind
 * errors logged) / HUB_ENOMEM / HUB_EINVAL. */
int hub_workers_start(uv_loop_t *home, unsigned n, const struct hub_workers_listen *ls, size_t nl,
                      const struct hub_workers_callbacks *cb, void *user, hub_workers_t **out);
#define HUB_WCONN_PIECES 4 /* pieces of one hub_wconn_write_shared */
#define HUB_WCONN_COPY 32  /* bytes of its unshared pieces */

/* The payload bytes home queued to the workers since start (the bytes of writes; a shared
 * write counts its copied pieces only). Home thread. */
uint64_t hub_workers_queued_bytes(const hub_workers_t *w);
/* The number of worker threads. */
unsigned hub_workers_count(const hub_workers_t *w);
/* The port listener i is bound to. */
int hub_workers_port(const hub_workers_t *w, size_t i);
/* Closes the listeners and every connection (on_close: SHUTDOWN), joins the threads and
 * frees everything; done(arg) then runs on the home loop. Home thread. */
void hub_workers_stop(hub_workers_t *w, void (*done)(void *arg), void *arg);
/* Listener i's counters summed over the workers, each up to 0.5 s old. Home thread. */
void hub_workers_stats(hub_workers_t *w, size_t i, struct hub_tls_stats *out);
/* Asks every worker to re-check its connections against the revocation set and close the
 * revoked ones (hub_tls_listener_recheck). Home thread. */
void hub_workers_recheck(hub_workers_t *w);

/* The hub_tls_* connection calls, from the home loop. Writes are queued to the worker, which
 * encrypts them in order; a connection that closed meanwhile drops them. Returns 0, or
 * HUB_EIO once hub_wconn_close was called, or HUB_ENOMEM. */
int hub_wconn_write(hub_wconn_t *c, const void *data, size_t len);
/* Queues one write of the n pieces in v (at most HUB_WCONN_PIECES, up to HUB_WCONN_COPY
 * bytes of unshared ones): the worker gets a reference to buf instead of a copy of the shared
 * pieces (which must lie inside buf) and drops it once they are written or the connection
 * closed. Returns as hub_wconn_write. Home thread. */
int hub_wconn_write_shared(hub_wconn_t *c, struct hub_rcbuf *buf, const struct hub_rcbuf_piece *v,
                           size_t n);
void hub_wconn_close(hub_wconn_t *c);
void hub_wconn_authenticated(hub_wconn_t *c);
/* Stops (1) or restarts (0) reading from the peer (hub_tls_conn_pause). */
void hub_wconn_pause(hub_wconn_t *c, int paused);
void *hub_wconn_user(const hub_wconn_t *c);
void hub_wconn_set_user(hub_wconn_t *c, void *user);
/* The peer as "ip:port", for logs. */
const char *hub_wconn_peer(const hub_wconn_t *c);

#endif
