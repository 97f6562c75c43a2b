/* One TLS (or plain TCP) connection over libuv: the state machine (handshake, open,
 * closing, closed), client-certificate checks after every handshake, reading, writing
 * through net/outbuf with backpressure, handshake and close deadlines, and the group of
 * connections of one listener. Every connection lives on its listener's loop thread; nothing
 * here blocks that loop. */
#ifndef HUB_NET_TLS_CONN_H
#define HUB_NET_TLS_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "net/admission.h"
#include "net/proxy_accept.h"
#include "net/tls_ctx.h"
#include "net/tls_peer.h"
#include "util/close.h"
#include "util/histogram.h"

typedef struct hub_tls_conn hub_tls_conn_t;
typedef struct hub_tls_conn_group hub_tls_conn_group_t;
typedef struct hub_tls_listener hub_tls_listener_t; /* net/tls_listener.h */

/* The peer as verified by the handshake: valid during on_open only (copies stay available
 * through hub_tls_conn_cn/serial_hex). */
struct hub_tls_identity {
    const char *cn;         /* subject commonName (1..64 bytes, no control characters) */
    const char *o;          /* subject organizationName (same rules), or NULL */
    const char *serial_hex; /* upper-case hex, leading zero bytes removed */
    const uint8_t *serial;  /* the same as bytes */
    size_t serial_len;
    int resumed; /* 1 when the session was resumed from a ticket */
    const char *device_ca; /* the device CA (net/trust.h) that issued it, or NULL: ours */
    const uint8_t *der;    /* with device_ca: the certificate (DER) */
    size_t der_len;
};

/* Callbacks to the layer above, all on the listener's loop. on_open runs after a successful
 * handshake (identity NULL without a client certificate or in plain mode) and returns the
 * upper layer's per-connection pointer; it may call hub_tls_conn_close to refuse. on_data
 * gets plaintext valid during the call only. on_close runs once, for opened connections only,
 * right before the connection is freed; no hub_tls_* call on conn is allowed after it. The
 * transport's close reasons: HUB_CLOSE_LOCAL (hub_tls_conn_close was called), _PEER (EOF or
 * close_notify), _ERROR (socket or TLS error), _REVOKED (hub_tls_listener_recheck found the
 * certificate revoked), _SHUTDOWN (hub_tls_listener_close). */
struct hub_tls_callbacks {
    void *(*on_open)(hub_tls_conn_t *conn, const struct hub_tls_identity *id, void *user);
    void (*on_data)(hub_tls_conn_t *conn, const uint8_t *plain, size_t len);
    void (*on_close)(hub_tls_conn_t *conn, enum hub_close_reason reason);
};

/* Upper bounds (seconds) of the handshake duration histogram buckets; +Inf is implied. */
extern const struct hub_histogram_bounds hub_tls_hs_bounds;

/* Counters of a listener, written by its loop thread only (plain integers: read them on
 * that thread, see hub_tls_listener_stats). */
struct hub_tls_stats {
    unsigned conns;         /* open TCP connections now (handshakes included) */
    unsigned unauth;        /* of which not yet authenticated (see max_unauthenticated) */
    uint64_t accepted;      /* connections accepted (those refused at once not included) */
    uint64_t opened;        /* handshakes done and handed to on_open */
    uint64_t full, resumed; /* successful handshakes, by kind */
    uint64_t failed[HUB_TLS_FAIL_COUNT];
    struct hub_histogram handshakes; /* durations of successful handshakes */
    uint64_t proxy_refused[HUB_PROXY_REFUSAL_COUNT]; /* before the handshake (PROXY header) */
};

/* ---- the connections of one listener (called by net/tls_listener) ---------------------- */

struct hub_tls_conn_group_options {
    uv_loop_t *loop;
    hub_tls_ctx_t *ctx;                              /* borrowed; NULL: plain TCP */
    const struct hub_tls_callbacks *cb;              /* copied */
    void *user;                                      /* passed to on_open */
    hub_tls_listener_t *listener;                    /* returned by hub_tls_conn_listener */
    struct hub_admission *adm;                       /* borrowed, must outlive the group */
    unsigned handshake_timeout_ms, close_timeout_ms; /* both > 0 */
    size_t max_pending;                              /* > 0 */
};

/* Creates the (empty) group and its deadline timer on o->loop. Returns 0 or HUB_ENOMEM.
 * Loop thread only, like every hub_tls_conn_group_* call. */
int hub_tls_conn_group_new(const struct hub_tls_conn_group_options *o, hub_tls_conn_group_t **out);
/* Accepts a pending connection of server into the group, counted in the admission counts
 * (the caller checked hub_admission_full first), and starts its handshake (TLS) or opens
 * it (plain). Returns 0, HUB_ERANGE (refused: per-address handshake cap; the caller counts
 * it), or HUB_ENOMEM (nothing accepted: the caller refuses it) / HUB_EIO (closed).
 * server NULL: takes the connected socket fd instead (after a PROXY header, net/proxy_accept;
 * the socket is the group's unless HUB_ENOMEM is returned), and from (if not NULL) is its
 * peer in place of the socket's own (logs, per-address cap). */
int hub_tls_conn_accept(hub_tls_conn_group_t *g, uv_stream_t *server, int fd,
                        const struct sockaddr *from);
/* Closes every connection (on_close: SHUTDOWN; a best-effort close_notify without waiting)
 * and the timer; done(arg) runs once all are freed, and then the group is freed too. */
void hub_tls_conn_group_close(hub_tls_conn_group_t *g, void (*done)(void *arg), void *arg);
/* Stops (1) or restarts (0) reading from every open connection (see hub_tls_listener_pause). */
void hub_tls_conn_group_pause(hub_tls_conn_group_t *g, int pause);
/* Closes the open connections whose certificate is now revoked (on_close: REVOKED, after a
 * certificate_revoked alert). Returns how many. */
int hub_tls_conn_group_recheck(hub_tls_conn_group_t *g);
/* Copies the group's counters (conns and unauth are left 0: net/admission counts them). */
void hub_tls_conn_group_stats(const hub_tls_conn_group_t *g, struct hub_tls_stats *out);

/* ---- one connection (the layer above, from its callbacks, on the loop thread) ----------- */

/* Queues plaintext: encrypted at once into the connection's output buffer and flushed with
 * one uv_write at a time. Callable from any callback. Returns 0, HUB_EIO (closing),
 * HUB_ENOMEM, or HUB_ERANGE (max_pending exceeded: the connection is being closed). */
int hub_tls_conn_write(hub_tls_conn_t *conn, const void *data, size_t len);
/* Graceful close: stops reading, sends pending data then close_notify, then closes (forced
 * after close_timeout_ms). on_close follows later, from the loop. Idempotent. */
void hub_tls_conn_close(hub_tls_conn_t *conn);
/* The upper layer accepted the peer (MQTT: CONNECT answered with success): the connection
 * stops counting against max_unauthenticated. Idempotent. */
void hub_tls_conn_authenticated(hub_tls_conn_t *conn);
/* Stops (1) or restarts (0) reading from this connection for the layer above (flow control);
 * independent of the pauses for queued output and hub_tls_listener_pause. Idempotent. */
void hub_tls_conn_pause(hub_tls_conn_t *conn, int paused);
/* The per-connection pointer: set from on_open's return value, changeable afterwards. */
void *hub_tls_conn_user(const hub_tls_conn_t *conn);
void hub_tls_conn_set_user(hub_tls_conn_t *conn, void *user);
/* Peer certificate CN and serial (upper-case hex), or "" without a client certificate. */
const char *hub_tls_conn_cn(const hub_tls_conn_t *conn);
const char *hub_tls_conn_serial_hex(const hub_tls_conn_t *conn);
/* The peer address as "ip:port" (for logs). */
const char *hub_tls_conn_peer(const hub_tls_conn_t *conn);
/* Bytes accepted by hub_tls_conn_write and not yet written to the socket (backpressure). */
size_t hub_tls_conn_pending(const hub_tls_conn_t *conn);
/* The listener that accepted the connection. */
hub_tls_listener_t *hub_tls_conn_listener(const hub_tls_conn_t *conn);
/* The loop the connection runs on. */
uv_loop_t *hub_tls_conn_loop(const hub_tls_conn_t *conn);

#endif
