/* Server-side TLS 1.2 (mbedTLS) over libuv TCP, with mutual-TLS client checks against an
 * in-memory revocation set, and the same listener API for plain TCP (ctx == NULL). Every
 * listener and its connections live on one loop thread; nothing here blocks that loop. */
#ifndef HUB_SERVER_TLS_H
#define HUB_SERVER_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/pk.h>
#include <uv.h>

#include "server/revset.h"
#include "server/tickets.h"

typedef struct hub_tls_ctx hub_tls_ctx_t;
typedef struct hub_tls_listener hub_tls_listener_t;
typedef struct hub_tls_conn hub_tls_conn_t;

enum hub_tls_client_auth {
    HUB_TLS_CLIENT_NONE,     /* no client certificate asked for (username/password TLS) */
    HUB_TLS_CLIENT_REQUIRED, /* mTLS: a valid, unrevoked clientAuth certificate required */
};

struct hub_tls_ctx_options {
    const char *cert_chain_pem; /* server certificate, then intermediates (NUL-terminated) */
    const char *key_pem;        /* server private key as PEM, or NULL to use key */
    mbedtls_pk_context *key;    /* or the parsed key (copied; the caller keeps its own) */
    const char *ca_pem;         /* CAs client certificates must chain to (issuing + root) */
    enum hub_tls_client_auth client_auth;
    const char *ciphers;        /* comma-separated IANA or mbedTLS names; NULL: ECDHE AEAD */
    hub_tickets_t *tickets;     /* session-ticket keys, borrowed, must outlive the context
                                   (shared by contexts and threads); NULL: no tickets */
    hub_revset_t *revset;       /* borrowed, must outlive the context; NULL: no revocation */
};

/* Builds a server TLS configuration (TLS 1.2 only). The context may be shared by listeners
 * on several loops, must outlive them, and is freed with hub_tls_ctx_free. Tickets are written
 * and opened with o->tickets, bound to the client_auth mode. Returns 0 or
 * HUB_EINVAL/HUB_ENOMEM/HUB_ECRYPTO (logged). */
int hub_tls_ctx_new(const struct hub_tls_ctx_options *o, hub_tls_ctx_t **out);
void hub_tls_ctx_free(hub_tls_ctx_t *ctx);

/* The peer as verified by the handshake: valid during on_open only (copies stay available
 * through hub_tls_conn_cn/serial_hex). */
struct hub_tls_identity {
    const char *cn;         /* subject commonName (1..64 bytes, no control characters) */
    const char *o;          /* subject organizationName (same rules), or NULL */
    const char *serial_hex; /* upper-case hex, leading zero bytes removed */
    const uint8_t *serial;  /* the same as bytes */
    size_t serial_len;
    int resumed; /* 1 when the session was resumed from a ticket */
};

enum hub_tls_close_reason {
    HUB_TLS_CLOSE_LOCAL,    /* hub_tls_close was called */
    HUB_TLS_CLOSE_PEER,     /* the peer closed (EOF or close_notify) */
    HUB_TLS_CLOSE_ERROR,    /* socket or TLS error */
    HUB_TLS_CLOSE_REVOKED,  /* hub_tls_listener_recheck found the certificate revoked */
    HUB_TLS_CLOSE_SHUTDOWN, /* hub_tls_listener_close */
};

/* Callbacks to the layer above, all on the listener's loop. on_open runs after a successful
 * handshake (identity NULL without a client certificate or in plain mode) and returns the
 * upper layer's per-connection pointer; it may call hub_tls_close to refuse. on_data gets
 * plaintext valid during the call only. on_close runs once, for opened connections only,
 * right before the connection is freed; no hub_tls_* call on conn is allowed after it. */
struct hub_tls_callbacks {
    void *(*on_open)(hub_tls_conn_t *conn, const struct hub_tls_identity *id, void *user);
    void (*on_data)(hub_tls_conn_t *conn, const uint8_t *plain, size_t len);
    void (*on_close)(hub_tls_conn_t *conn, enum hub_tls_close_reason reason);
};

/* What the listeners of one port on several loops (server/workers) count together, so that
 * max_handshakes, max_unauthenticated, max_connections and max_handshakes_per_ip hold for
 * the port as a whole. Created from the limits the listeners will get; must outlive them. */
typedef struct hub_tls_shared hub_tls_shared_t;
struct hub_tls_limits;
hub_tls_shared_t *hub_tls_shared_new(const struct hub_tls_limits *lim);
void hub_tls_shared_free(hub_tls_shared_t *s);

struct hub_tls_limits {
    unsigned handshake_timeout_ms; /* accept to handshake done; 0: 10000 */
    unsigned max_handshakes;       /* concurrent handshakes; excess closed at once; 0: 512 */
    unsigned max_handshakes_per_ip; /* concurrent handshakes from one address; 0: unlimited */
    unsigned max_unauthenticated;  /* connections not yet marked by hub_tls_conn_authenticated
                                      (handshakes included); excess closed at once on accept,
                                      before any TLS state exists; 0: unlimited */
    unsigned max_connections;      /* 0: unlimited */
    unsigned close_timeout_ms;     /* graceful close waits this long for the peer; 0: 5000 */
    size_t max_pending;            /* queued output beyond which a connection is closed;
                                      0: 16 MiB (reading pauses from 256 KiB on) */
    int backlog;                   /* listen(2) backlog; 0: 511 */
    hub_tls_shared_t *shared; /* NULL: the caps count this listener's connections */
    int reuseport;                 /* SO_REUSEPORT, one listener per loop on one port: 1 for
                                      the first (refused if anything listens there already),
                                      2 for the others, bound to the first one's port */
};

/* Why a handshake did not lead to an open connection (metrics). */
enum hub_tls_fail {
    HUB_TLS_FAIL_CLOSED,     /* the peer or the server closed during the handshake */
    HUB_TLS_FAIL_TIMEOUT,    /* handshake_timeout_ms elapsed */
    HUB_TLS_FAIL_LIMIT,      /* refused at accept: over a listener-wide or per-address cap */
    HUB_TLS_FAIL_NO_CERT,    /* mTLS: no client certificate */
    HUB_TLS_FAIL_BAD_CERT,   /* malformed, wrong key usage, bad subject or serial */
    HUB_TLS_FAIL_UNKNOWN_CA, /* does not chain to the configured CAs */
    HUB_TLS_FAIL_EXPIRED,    /* expired or not yet valid */
    HUB_TLS_FAIL_REVOKED,    /* serial in the revocation set */
    HUB_TLS_FAIL_PROTOCOL,   /* any other TLS error (alerts, versions, ciphers...) */
    HUB_TLS_FAIL_COUNT
};

/* Upper bounds (seconds) of the handshake duration histogram buckets; +Inf is implied. */
#define HUB_TLS_HS_BUCKETS 9
extern const double hub_tls_hs_bounds[HUB_TLS_HS_BUCKETS];

/* Counters of a listener, written by its loop thread only (plain integers: read them on
 * that thread, see hub_tls_listener_stats). */
struct hub_tls_stats {
    unsigned conns;         /* open TCP connections now (handshakes included) */
    unsigned unauth;        /* of which not yet authenticated (see max_unauthenticated) */
    uint64_t accepted;      /* connections accepted (those refused at once not included) */
    uint64_t opened;        /* handshakes done and handed to on_open */
    uint64_t full, resumed; /* successful handshakes, by kind */
    uint64_t failed[HUB_TLS_FAIL_COUNT];
    uint64_t hs_bucket[HUB_TLS_HS_BUCKETS + 1]; /* successful handshakes per bucket (not
                                                   cumulative; the last one is +Inf) */
    uint64_t hs_sum_us; /* total duration of successful handshakes, microseconds */
};

/* The label of a failure reason ("timeout", "bad_certificate", ...). */
const char *hub_tls_fail_name(enum hub_tls_fail f);

/* Listens on host:port (a numeric address, or a name resolved once, blocking: call at
 * startup) with ctx (NULL: plain TCP). cb is copied; user goes to on_open; limits may be NULL.
 * The listener belongs to its loop until hub_tls_listener_close. Returns 0 or HUB_EIO (bind
 * errors logged; a half-made listener is freed by the loop's next run) / HUB_EINVAL. */
int hub_tls_listen(uv_loop_t *loop, const char *host, int port, hub_tls_ctx_t *ctx,
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

/* Queues plaintext: encrypted at once into the connection's output buffer and flushed with
 * one uv_write at a time. Callable from any callback. Returns 0, HUB_EIO (closing),
 * HUB_ENOMEM, or HUB_ERANGE (max_pending exceeded: the connection is being closed). */
int hub_tls_write(hub_tls_conn_t *conn, const void *data, size_t len);
/* Graceful close: stops reading, sends pending data then close_notify, then closes (forced
 * after close_timeout_ms). on_close follows later, from the loop. Idempotent. */
void hub_tls_close(hub_tls_conn_t *conn);
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
/* Bytes accepted by hub_tls_write and not yet written to the socket (backpressure). */
size_t hub_tls_conn_pending(const hub_tls_conn_t *conn);
/* The listener that accepted the connection. */
hub_tls_listener_t *hub_tls_conn_listener(const hub_tls_conn_t *conn);
/* The loop the connection runs on. */
uv_loop_t *hub_tls_conn_loop(const hub_tls_conn_t *conn);

#endif
