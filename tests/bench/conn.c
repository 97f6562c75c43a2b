/* TLS client connections over memory BIOs. Reads land in one loop-wide buffer and go into
 * the read BIO at once; decrypted bytes are framed in a second loop-wide buffer, and only an
 * incomplete packet is kept per connection. Writes try the socket directly; the per-connection
 * buffer is used only when the socket pushes back, and one write is in flight at a time. */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/err.h>

#include "mqtt/codec.h"
#include "tests/bench/conn.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define BUF_SIZE 65536

static uint8_t g_rbuf[BUF_SIZE];  /* socket reads */
static uint8_t g_plain[BUF_SIZE]; /* decrypted stream being framed */
static uint8_t g_out[BUF_SIZE];   /* ciphertext on its way to the socket */

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void close_cb(uv_handle_t *h)
{
    bench_conn_t *c = h->data;
    int silent = c->state != BENCH_CONN_CLOSING;
    if (c->ssl)
        SSL_free(c->ssl); /* frees both BIOs */
    c->ssl = NULL;
    c->rbio = c->wbio = NULL;
    c->in_len = 0;
    c->writing = 0;
    c->state = BENCH_CONN_IDLE;
    if (!silent)
        c->ops->closed(c, c->why[0] ? c->why : NULL);
}

/* Closes without the closed callback: a start that failed before connecting. */
static int abort_start(bench_conn_t *c, int err)
{
    c->state = BENCH_CONN_ABORTING;
    uv_close((uv_handle_t *)&c->tcp, close_cb);
    return err;
}

static void shut(bench_conn_t *c)
{
    if (c->state == BENCH_CONN_CLOSING || c->state == BENCH_CONN_IDLE ||
        c->state == BENCH_CONN_ABORTING)
        return;
    c->state = BENCH_CONN_CLOSING;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, close_cb);
}

static void fail(bench_conn_t *c, const char *fmt, ...)
{
    if (c->state != BENCH_CONN_CONNECTING && c->state != BENCH_CONN_HANDSHAKE &&
        c->state != BENCH_CONN_OPEN)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    shut(c);
}

/* A failed SSL call: the reason from OpenSSL's error queue, or what SSL_get_error says. */
static void fail_ssl(bench_conn_t *c, const char *what, int ret)
{
    int e = SSL_get_error(c->ssl, ret);
    unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code) {
        const char *r = ERR_reason_error_string(code);
        long vr = SSL_get_verify_result(c->ssl);
        if (vr != X509_V_OK)
            fail(c, "%s: server certificate: %s", what, X509_verify_cert_error_string(vr));
        else
            fail(c, "%s: %s", what, r ? r : "unknown error");
    } else if (e == SSL_ERROR_ZERO_RETURN) {
        fail(c, "%s: closed by server (close_notify)", what);
    } else {
        fail(c, "%s: SSL error %d", what, e);
    }
}

static void write_cb(uv_write_t *req, int status)
{
    bench_conn_t *c = req->data;
    c->writing = 0;
    if (status < 0) {
        fail(c, "write: %s", uv_err_name(status));
        return;
    }
    bench_conn_flush(c);
}

void bench_conn_flush(bench_conn_t *c)
{
    if (c->writing || (c->state != BENCH_CONN_HANDSHAKE && c->state != BENCH_CONN_OPEN))
        return;
    for (;;) {
        int n = BIO_read(c->wbio, g_out, sizeof g_out);
        if (n <= 0)
            return;
        uv_buf_t b = uv_buf_init((char *)g_out, (unsigned)n);
        int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (w == n)
            continue;
        if (w < 0 && w != UV_EAGAIN) {
            fail(c, "write: %s", uv_err_name(w));
            return;
        }
        size_t off = w > 0 ? (size_t)w : 0, rem = (size_t)n - off;
        if (c->wcap < rem) {
            uint8_t *nb = realloc(c->wbuf, rem);
            if (!nb) {
                fail(c, "out of memory");
                return;
            }
            c->wbuf = nb;
            c->wcap = rem;
        }
        memcpy(c->wbuf, g_out + off, rem);
        b = uv_buf_init((char *)c->wbuf, (unsigned)rem);
        c->wreq.data = c;
        int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
        if (rc < 0) {
            fail(c, "write: %s", uv_err_name(rc));
            return;
        }
        c->writing = 1;
        return;
    }
}

int bench_conn_write(bench_conn_t *c, const void *data, size_t len)
{
    if (c->state != BENCH_CONN_OPEN)
        return -1;
    ERR_clear_error();
    int n = SSL_write(c->ssl, data, (int)len);
    if (n <= 0) {
        fail_ssl(c, "tls write", n);
        return -1;
    }
    c->t_last_tx = bench_now_ns();
    return 0;
}

/* Frames the decrypted stream into packets for ops->packet; keeps an incomplete tail. */
static void read_app(bench_conn_t *c)
{
    size_t len = c->in_len;
    if (len)
        memcpy(g_plain, c->in, len);
    c->in_len = 0;
    for (;;) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, g_plain + len, (int)(sizeof g_plain - len));
        if (n > 0)
            len += (size_t)n;
        size_t off = 0, plen;
        int fr;
        while ((fr = hub_mqtt_frame(g_plain + off, len - off, sizeof g_plain, &plen)) == 1) {
            c->ops->packet(c, g_plain + off, plen);
            if (c->state != BENCH_CONN_OPEN)
                return;
            off += plen;
        }
        if (fr < 0) {
            fail(c, "mqtt: malformed or oversized packet from the server");
            return;
        }
        memmove(g_plain, g_plain + off, len - off);
        len -= off;
        if (n <= 0) {
            int e = SSL_get_error(c->ssl, n);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                fail_ssl(c, "tls read", n);
                return;
            }
            break;
        }
    }
    if (len > 0) {
        if (c->in_cap < len) {
            uint8_t *nb = realloc(c->in, len);
            if (!nb) {
                fail(c, "out of memory");
                return;
            }
            c->in = nb;
            c->in_cap = len;
        }
        memcpy(c->in, g_plain, len);
        c->in_len = len;
    }
}

static void drive(bench_conn_t *c)
{
    if (c->state == BENCH_CONN_HANDSHAKE) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                bench_conn_flush(c);
            else
                fail_ssl(c, "tls handshake", r);
            return;
        }
        c->state = BENCH_CONN_OPEN;
        bench_conn_flush(c);
        c->ops->tls_done(c);
        if (c->state != BENCH_CONN_OPEN)
            return;
    }
    if (c->state == BENCH_CONN_OPEN) {
        read_app(c);
        bench_conn_flush(c);
    }
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    *buf = uv_buf_init((char *)g_rbuf, sizeof g_rbuf);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    bench_conn_t *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        const char *when = c->state == BENCH_CONN_HANDSHAKE ? " during the handshake" : "";
        if (nread == UV_EOF)
            fail(c, "closed by server%s", when);
        else
            fail(c, "read%s: %s", when, uv_err_name((int)nread));
        return;
    }
    BIO_write(c->rbio, buf->base, (int)nread);
    drive(c);
}

static void connect_cb(uv_connect_t *req, int status)
{
    bench_conn_t *c = req->data;
    if (c->state != BENCH_CONN_CONNECTING)
        return;
    if (status < 0) {
        fail(c, "connect: %s", uv_err_name(status));
        return;
    }
    int rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (rc < 0) {
        fail(c, "read start: %s", uv_err_name(rc));
        return;
    }
    c->state = BENCH_CONN_HANDSHAKE;
    drive(c);
}

int bench_conn_start(bench_conn_t *c, uv_loop_t *loop, SSL_CTX *ctx, X509 *cert, EVP_PKEY *key,
                     SSL_SESSION *sess, const struct sockaddr *src, const struct sockaddr *dst)
{
    int rc = uv_tcp_init_ex(loop, &c->tcp, dst->sa_family);
    if (rc < 0)
        return rc;
    c->tcp.data = c;
    c->why[0] = '\0';
    c->in_len = 0;
    c->writing = 0;
    uv_tcp_nodelay(&c->tcp, 1);
    if (src) {
        uv_os_fd_t fd;
        int one = 1;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        rc = uv_tcp_bind(&c->tcp, src, 0);
        if (rc < 0)
            return abort_start(c, rc);
    }
    c->ssl = SSL_new(ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->ssl || !c->rbio || !c->wbio) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        return abort_start(c, UV_ENOMEM);
    }
    BIO_set_mem_eof_return(c->rbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    if (SSL_use_certificate(c->ssl, cert) != 1 || SSL_use_PrivateKey(c->ssl, key) != 1 ||
        (sess && SSL_set_session(c->ssl, sess) != 1)) {
        ERR_clear_error();
        return abort_start(c, UV_EINVAL);
    }
    SSL_set_connect_state(c->ssl);
    c->creq.data = c;
    c->t_start = bench_now_ns();
    c->t_last_tx = c->t_start;
    c->state = BENCH_CONN_CONNECTING;
    rc = uv_tcp_connect(&c->creq, &c->tcp, dst, connect_cb);
    if (rc < 0)
        return abort_start(c, rc);
    return 0;
}

void bench_conn_close(bench_conn_t *c, const char *why)
{
    if (c->state != BENCH_CONN_CONNECTING && c->state != BENCH_CONN_HANDSHAKE &&
        c->state != BENCH_CONN_OPEN)
        return;
    if (why)
        snprintf(c->why, sizeof c->why, "%s", why);
    if (c->state == BENCH_CONN_OPEN) {
        ERR_clear_error();
        SSL_shutdown(c->ssl);
        ERR_clear_error();
        bench_conn_flush(c);
    }
    shut(c);
}
