/* One TLS client connection of iothub-bench on a libuv loop: non-blocking OpenSSL over a pair
 * of memory BIOs (the loop owns the socket, OpenSSL never touches it), then MQTT packets
 * framed out of the decrypted stream. A connection is a slot: the caller owns the struct and
 * may start it again once its closed callback ran. Nothing here allocates per message. */
#ifndef BENCH_CONN_H
#define BENCH_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

typedef struct bench_conn bench_conn_t;

typedef struct bench_conn_ops {
    /* The TLS handshake completed. */
    void (*tls_done)(bench_conn_t *c);
    /* One complete MQTT packet (header included) arrived; valid during the call only. */
    void (*packet)(bench_conn_t *c, const uint8_t *pkt, size_t len);
    /* The connection is closed (uv_close done): the slot may be started again. why is NULL
     * when bench_conn_close ended it without a reason, else a failure reason. */
    void (*closed)(bench_conn_t *c, const char *why);
} bench_conn_ops_t;

enum bench_conn_state {
    BENCH_CONN_IDLE,
    BENCH_CONN_CONNECTING,
    BENCH_CONN_HANDSHAKE,
    BENCH_CONN_OPEN,
    BENCH_CONN_CLOSING,
    BENCH_CONN_ABORTING, /* a start failed; becomes idle silently */
};

struct bench_conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    SSL *ssl;
    BIO *rbio;     /* network -> OpenSSL */
    BIO *wbio;     /* OpenSSL -> network */
    uint8_t *wbuf; /* bytes of a write the socket did not take at once (owned) */
    size_t wcap;
    uint8_t *in; /* partial MQTT packet carried between reads (owned) */
    size_t in_len, in_cap;
    const bench_conn_ops_t *ops;
    void *owner;  /* caller's data */
    unsigned idx; /* caller's index */
    int state;
    int writing;
    uint64_t t_start;   /* monotonic ns at bench_conn_start */
    uint64_t t_last_tx; /* monotonic ns of the last write */
    uint64_t deadline;  /* caller's use */
    char why[128];      /* failure reason handed to closed */
};

/* Monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);

/* Opens a socket (bound to src when not NULL), connects to dst and starts a TLS client
 * handshake with cert/key (and sess for resumption, may be NULL). Returns 0 or a negative
 * libuv error (UV_EMFILE, UV_EADDRNOTAVAIL ...) when the socket could not even be set up;
 * the slot is then left idle and no callback runs. */
int bench_conn_start(bench_conn_t *c, uv_loop_t *loop, SSL_CTX *ctx, X509 *cert, EVP_PKEY *key,
                     SSL_SESSION *sess, const struct sockaddr *src, const struct sockaddr *dst);

/* Encrypts len bytes for sending; bench_conn_flush puts them on the wire. Returns 0, or -1
 * when the connection is not open. */
int bench_conn_write(bench_conn_t *c, const void *data, size_t len);

/* Writes out what OpenSSL produced (a write at a time per connection). */
void bench_conn_flush(bench_conn_t *c);

/* Sends close_notify when open and closes; why (copied, may be NULL) goes to closed. */
void bench_conn_close(bench_conn_t *c, const char *why);

#endif
