/* iothub-bench: a load tool for the MQTT mutual-TLS listener of iothubd, one libuv loop and
 * OpenSSL on the client side (an OpenSSL handshake costs the client a fraction of what the
 * mbedTLS server spends, so one client core keeps a server core busy).
 *   iothub-bench --mode handshake|resume|idle|publish --certs devices.csv --ca ca.pem
 *                [--host 127.0.0.1] [--port 8883] [options]  (--help lists them)
 * handshake: C slots each connect, finish a full mutual-TLS handshake, send close_notify and
 *   start over (certificates round-robin); latency is connect + handshake.
 * resume: the same, each slot reconnecting with the session ticket of its last connection.
 * idle: N MQTT sessions (a certificate each: a device has one session) held for D seconds
 *   with keepalive pings; the server's VmRSS is read before and at the end.
 * publish: N devices publish devices/<id>/telemetry at a total --rate, received by one
 *   service subscribed to devices/+/telemetry (or each device on its own topic); a payload
 *   starts with its send time (CLOCK_MONOTONIC ns, big-endian), so end-to-end latency is
 *   read on the one clock of this machine.
 * readmit: N devices connect (CONNACK) and save their TLS session; the tool then waits (up to
 *   --wait S) for the server to drop them all (a restart of iothubd), reconnects each with its
 *   saved session, with exponential back-off (100 ms doubling up to --backoff S, jittered)
 *   while the server is down and at most --concurrency attempts at once, and reports the time
 *   from the first drop to the last CONNACK (limit -d, default 60 s), how many re-admissions
 *   resumed the session and how many needed a full handshake, and the failed attempts.
 * fanout: one device (the first certificate) publishes devices/<id>/telemetry at --rate to N
 *   subscriber connections of the service (--service-cert, one client id each) subscribed to
 *   devices/+/telemetry; reports deliveries/s, lost deliveries and latency.
 * Prints human lines, and with --json one JSON line at the end. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "mqtt/codec.h"
#include "tests/bench/conn.h"
#include "tests/bench/hist.h"
#include "tests/bench/mqttc.h"

enum mode { M_HANDSHAKE, M_RESUME, M_IDLE, M_PUBLISH, M_READMIT, M_FANOUT };

/* publish-like: fanout is publish with the roles turned (peers[0] publishes, the rest subscribe).
 */
#define PUBLISHING(m) ((m) == M_PUBLISH || (m) == M_FANOUT)

/* A connection slot and what the mode keeps about it. */
typedef struct peer {
    bench_conn_t conn; /* first: a bench_conn_t * is a peer * */
    int cert;          /* index into the certificate list, -1 for the service */
    int ready;         /* CONNACK (and SUBACK when subscribing) received */
    int counted;       /* counted as connected (idle) */
    SSL_SESSION *sess; /* resume, readmit: the slot's session */
    int pending;       /* readmit: dropped, not yet re-admitted */
    int attempt;       /* readmit: failed attempts since the drop */
    int was_resumed;   /* readmit: the current attempt resumed its session */
    uint64_t retry_at; /* readmit: next attempt, monotonic ns */
    uint16_t next_pid;
    uint32_t inflight;
    uint32_t seq;
    uint8_t *pkt; /* publish: the prepared PUBLISH packet (owned) */
    size_t pkt_len, pid_off, pay_off;
} peer_t;

#define MAX_REASONS 32
static struct {
    char why[128];
    uint64_t n;
} reasons[MAX_REASONS];
static size_t n_reasons;

static struct {
    enum mode mode;
    const char *host, *ca, *certs, *svc_cert, *svc_key, *sources, *sub;
    const char *session; /* --session: the subscriber's persistent client id */
    int port, concurrency, n, qos, size, keepalive, json, server_pid, duration_set;
    double duration, rate, timeout, wait, backoff;
} opt = {.host = "127.0.0.1",
         .port = 8883,
         .concurrency = 0,
         .n = 0,
         .qos = 0,
         .size = 64,
         .keepalive = 30,
         .duration = 10,
         .timeout = 10,
         .wait = 120,
         .backoff = 2,
         .sub = "service"};

static uv_loop_t *loop;
static SSL_CTX *ctx;
static X509 **certs;
static EVP_PKEY **keys;
static char (*cns)[64];
static int n_certs;
static X509 *svc_x509;
static EVP_PKEY *svc_pkey;
static struct sockaddr_in dst;
static struct sockaddr_in *srcs;
static int n_srcs, next_src;
static peer_t *peers;
static int n_peers;
static peer_t sub_peer;
static uv_timer_t tick, end_timer;
static int running, measuring, fatal;
static char fatal_msg[256];
static bench_hist_t hist;
static uint64_t t_begin, t_end, next_cert;
static uint64_t n_ok, n_fail, n_resumed, n_pings, n_pongs, n_sent, n_recv, n_acked;
static int launched, in_progress, connected_done;
static uint64_t t_connected;
static long rss_before, rss_after, held;
static int sending, draining, sub_ready;
/* readmit: connecting, waiting for the drop, re-admitting */
static enum { R_CONNECT, R_ARMED, R_READMIT } rphase;
static int r_target, r_pending;
static uint64_t t_drop, t_back, n_dropped, n_readmitted, n_rresumed, n_attempts, fail_at_drop;
static int r_cursor;

static const bench_conn_ops_t ops;
static void end_cb(uv_timer_t *t);

/* Counts a failure under its reason; past MAX_REASONS - 1 distinct ones, under "other". */
static void note_failure(const char *why)
{
    size_t i;
    n_fail++;
    for (i = 0; i < n_reasons; i++)
        if (strcmp(reasons[i].why, why) == 0)
            break;
    if (i == n_reasons) {
        if (n_reasons == MAX_REASONS)
            i = MAX_REASONS - 1; /* "other" */
        else if (n_reasons == MAX_REASONS - 1)
            why = "other";
        if (i == n_reasons) {
            snprintf(reasons[i].why, sizeof reasons[0].why, "%s", why);
            reasons[i].n = 0;
            n_reasons++;
        }
    }
    reasons[i].n++;
}

/* A local resource ran out: say which and how to get more, then stop starting connections. */
static void local_error(int err, const struct sockaddr_in *src)
{
    char a[INET_ADDRSTRLEN] = "default";
    if (src)
        inet_ntop(AF_INET, &src->sin_addr, a, sizeof a);
    if (err == UV_EMFILE || err == UV_ENFILE) {
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        snprintf(fatal_msg, sizeof fatal_msg,
                 "too many open files (RLIMIT_NOFILE %llu): raise the hard limit "
                 "(ulimit -Hn, LimitNOFILE=) or ask for fewer connections",
                 (unsigned long long)rl.rlim_cur);
    } else if (err == UV_EADDRNOTAVAIL || err == UV_EADDRINUSE) {
        snprintf(fatal_msg, sizeof fatal_msg,
                 "no free local port on source address %s (%s): spread the connections over "
                 "more source addresses (--source 127.0.0.1-127.0.0.20)",
                 a, uv_err_name(err));
    } else {
        snprintf(fatal_msg, sizeof fatal_msg, "cannot open a connection from %s: %s", a,
                 uv_strerror(err));
    }
    if (!fatal)
        fprintf(stderr, "iothub-bench: %s\n", fatal_msg);
    fatal = 1;
    char why[160];
    snprintf(why, sizeof why, "local: %s", uv_err_name(err));
    note_failure(why);
}

static long read_rss_kb(void)
{
    if (opt.server_pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", opt.server_pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* Starts peer p with certificate cert (and its session); returns 0 or a libuv error. */
static int start_peer(peer_t *p, int cert, SSL_SESSION *sess)
{
    const struct sockaddr_in *src = n_srcs ? &srcs[next_src++ % n_srcs] : NULL;
    p->cert = cert;
    p->ready = p->counted = 0;
    p->next_pid = 1;
    p->inflight = 0;
    X509 *x = cert < 0 ? svc_x509 : certs[cert];
    EVP_PKEY *k = cert < 0 ? svc_pkey : keys[cert];
    int rc = bench_conn_start(&p->conn, loop, ctx, x, k, sess, (const struct sockaddr *)src,
                              (const struct sockaddr *)&dst);
    if (rc < 0)
        local_error(rc, src);
    return rc;
}

static void send_packet(peer_t *p, const uint8_t *b, size_t n)
{
    if (bench_conn_write(&p->conn, b, n) == 0)
        bench_conn_flush(&p->conn);
}

static void send_connect(peer_t *p)
{
    char id[64];
    uint8_t b[128];
    if (p->cert < 0 && opt.mode == M_FANOUT)
        snprintf(id, sizeof id, "bench-fan-%d-%d", (int)getpid(), (int)(p - peers));
    else if (p->cert < 0 && opt.session != NULL)
        snprintf(id, sizeof id, "%.60s", opt.session);
    else if (p->cert < 0)
        snprintf(id, sizeof id, "bench-sub-%d", (int)getpid());
    else
        snprintf(id, sizeof id, "bench-%d", p->cert);
    int clean = !(p->cert < 0 && opt.session != NULL);
    send_packet(p, b, bench_mqtt_connect(b, sizeof b, id, (uint16_t)opt.keepalive, clean));
}

/* ---- handshake and resume -------------------------------------------------------------- */

static void start_slot(peer_t *p)
{
    if (!running || fatal || p->conn.state != BENCH_CONN_IDLE)
        return;
    int cert = opt.mode == M_RESUME ? (int)(p - peers) % n_certs : (int)(next_cert++ % n_certs);
    start_peer(p, cert, opt.mode == M_RESUME ? p->sess : NULL);
}

static void hs_tls_done(peer_t *p)
{
    if (measuring) {
        n_ok++;
        bench_hist_add(&hist, bench_now_ns() - p->conn.t_start);
        if (SSL_session_reused(p->conn.ssl))
            n_resumed++;
    }
    if (opt.mode == M_RESUME) {
        SSL_SESSION *s = SSL_get1_session(p->conn.ssl);
        if (s) {
            if (p->sess)
                SSL_SESSION_free(p->sess);
            p->sess = s;
        }
    }
    bench_conn_close(&p->conn, NULL);
}

/* ---- idle and publish: connections started a window at a time ---------------------------- */

static void maybe_start_sending(void);
static void close_all(void);
static void readmit_arm(void);

/* Starts peers in order while fewer than --concurrency are connecting; in idle mode the hold
 * time starts once none is left, in publish mode the sending. */
static void launch(void)
{
    int total = opt.mode == M_FANOUT ? n_peers : opt.n;
    while (running && !fatal && launched < total && in_progress < opt.concurrency) {
        peer_t *p = &peers[launched];
        int cert = opt.mode == M_FANOUT && launched > 0 ? -1 : launched;
        if (start_peer(p, cert, NULL) < 0)
            break;
        launched++;
        in_progress++;
    }
    if (PUBLISHING(opt.mode)) {
        maybe_start_sending();
    } else if (!connected_done && in_progress == 0 && (launched == opt.n || fatal)) {
        connected_done = 1;
        t_connected = bench_now_ns();
        if (opt.mode == M_READMIT)
            readmit_arm();
        else
            uv_timer_start(&end_timer, end_cb, (uint64_t)(opt.duration * 1000), 0);
    }
}

/* ---- readmit ------------------------------------------------------------------------------ */

/* Everyone who could connect did: wait (up to --wait) for the server to drop them. */
static void readmit_arm(void)
{
    rphase = R_ARMED;
    r_target = (int)n_ok;
    memset(&hist, 0, sizeof hist); /* from now on: re-admissions only */
    if (r_target == 0) {
        t_end = bench_now_ns();
        close_all();
        return;
    }
    fprintf(stderr, "iothub-bench: %d devices connected; waiting for the server to drop them\n",
            r_target);
    fflush(stderr);
    uv_timer_start(&end_timer, end_cb, (uint64_t)(opt.wait * 1000), 0);
}

/* Delay before attempt number attempt (0: right after the drop), jittered. */
static uint64_t backoff_ns(int attempt)
{
    double d = 0.1;
    for (int i = 0; i < attempt && d < opt.backoff; i++)
        d *= 2;
    if (d > opt.backoff)
        d = opt.backoff;
    double r = (double)rand() / RAND_MAX;
    return (uint64_t)((attempt == 0 ? r : 0.5 + 0.5 * r) * d * 1e9);
}

/* Starts the attempts that are due, at most --concurrency at once, round robin. */
static void readmit_launch(void)
{
    uint64_t now = bench_now_ns();
    for (int k = 0; k < n_peers && running && !fatal && in_progress < opt.concurrency; k++) {
        peer_t *p = &peers[r_cursor];
        r_cursor = (r_cursor + 1) % n_peers;
        if (!p->pending || p->conn.state != BENCH_CONN_IDLE || p->retry_at > now)
            continue;
        if (start_peer(p, p->cert, p->sess) < 0)
            break;
        n_attempts++;
        in_progress++;
    }
}

static void readmit_closed(peer_t *p, const char *why)
{
    uint64_t now = bench_now_ns();
    if (rphase == R_CONNECT) {
        if (why && running)
            note_failure(why);
        if (!p->counted) {
            p->counted = 1;
            in_progress--;
            launch();
        }
        return;
    }
    if (!running)
        return;
    if (p->ready && !p->pending) { /* a connected device dropped by the server */
        p->ready = 0;
        p->pending = 1;
        p->attempt = 0;
        p->retry_at = now + backoff_ns(0);
        n_dropped++;
        r_pending++;
        if (rphase == R_ARMED) {
            rphase = R_READMIT;
            t_drop = now;
            fail_at_drop = n_fail;
            uv_timer_stop(&end_timer);
            uv_timer_start(&end_timer, end_cb, (uint64_t)(opt.duration * 1000), 0);
        }
    } else if (p->pending) { /* an attempt failed: back off */
        note_failure(why ? why : "closed before CONNACK");
        in_progress--;
        p->retry_at = now + backoff_ns(++p->attempt);
    }
    readmit_launch();
}

static void readmit_ready(peer_t *p)
{
    uint64_t now = bench_now_ns();
    if (rphase == R_CONNECT) {
        if (!p->counted) {
            p->counted = 1;
            n_ok++;
            bench_hist_add(&hist, now - p->conn.t_start);
            in_progress--;
            launch();
        }
        return;
    }
    if (!p->pending)
        return;
    p->pending = 0;
    r_pending--;
    in_progress--;
    n_readmitted++;
    n_rresumed += p->was_resumed;
    bench_hist_add(&hist, now - p->conn.t_start);
    if (t_back == 0)
        t_back = now;
    if (r_pending == 0 && rphase == R_READMIT) {
        t_end = now;
        close_all();
        return;
    }
    readmit_launch();
}

/* ---- publish ----------------------------------------------------------------------------- */

/* How many connections receive each message. */
static uint64_t subscribers(void)
{
    return opt.mode == M_FANOUT ? (uint64_t)(n_peers - 1) : 1;
}

static int prepare_publish(peer_t *p, int cert)
{
    char topic[128];
    p->cert = cert;
    int tl = snprintf(topic, sizeof topic, "devices/%s/telemetry", cns[p->cert]);
    size_t cap = 9 + (size_t)tl + (size_t)opt.size;
    p->pkt = malloc(cap);
    if (!p->pkt)
        return -1;
    size_t h = hub_mqtt_publish_header(p->pkt, topic, (size_t)tl, opt.qos, 0, 0, opt.qos ? 1 : 0,
                                       (size_t)opt.size);
    if (h == 0)
        return -1;
    p->pid_off = h - 2;
    p->pay_off = h;
    p->pkt_len = h + (size_t)opt.size;
    memset(p->pkt + h, 'x', (size_t)opt.size);
    return 0;
}

static void put64(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

/* Writes one PUBLISH of p (not flushed). Returns 0, or -1 when p cannot send now. */
static int publish_one(peer_t *p)
{
    if (!p->ready || p->conn.state != BENCH_CONN_OPEN || (opt.qos && p->inflight >= 32))
        return -1;
    uint8_t *pay = p->pkt + p->pay_off;
    put64(pay, bench_now_ns());
    uint32_t seq = ++p->seq;
    memcpy(pay + 8, &seq, 4);
    if (opt.qos) {
        p->pkt[p->pid_off] = (uint8_t)(p->next_pid >> 8);
        p->pkt[p->pid_off + 1] = (uint8_t)p->next_pid;
        if (++p->next_pid == 0)
            p->next_pid = 1;
        p->inflight++;
    }
    if (bench_conn_write(&p->conn, p->pkt, p->pkt_len) < 0)
        return -1;
    n_sent++;
    return 0;
}

static void publish_tick(void)
{
    static int rr;
    int n_pubs = opt.mode == M_FANOUT ? 1 : n_peers;
    uint64_t now = bench_now_ns();
    if (opt.rate > 0) {
        uint64_t due = (uint64_t)(opt.rate * (double)(now - t_begin) / 1e9);
        uint64_t budget = due > n_sent ? due - n_sent : 0;
        if (budget > 100000)
            budget = 100000;
        int idle_round = 0;
        while (budget > 0 && idle_round < n_pubs) {
            peer_t *p = &peers[rr++ % n_pubs];
            if (publish_one(p) == 0) {
                budget--;
                idle_round = 0;
            } else {
                idle_round++;
            }
        }
    } else {
        for (int i = 0; i < n_pubs; i++) {
            peer_t *p = &peers[i];
            if (p->conn.writing || (p->conn.wbio && BIO_ctrl_pending(p->conn.wbio)))
                continue;
            for (int k = 0; k < 16 && publish_one(p) == 0; k++)
                ;
        }
    }
    for (int i = 0; i < n_peers; i++)
        bench_conn_flush(&peers[i].conn);
}

static void maybe_start_sending(void)
{
    if (sending || !sub_ready || in_progress > 0 || (launched < n_peers && !fatal))
        return;
    for (int i = 0; i < n_peers; i++)
        if (!peers[i].ready && peers[i].conn.state != BENCH_CONN_IDLE)
            return;
    sending = 1;
    measuring = 1;
    t_begin = bench_now_ns();
    uv_timer_start(&end_timer, end_cb, (uint64_t)(opt.duration * 1000), 0);
}

static void on_publish(peer_t *p, const uint8_t *pkt, size_t len)
{
    bench_mqtt_pub_t m;
    if (bench_mqtt_publish_decode(pkt, len, &m) < 0) {
        bench_conn_close(&p->conn, "mqtt: malformed PUBLISH from the server");
        return;
    }
    if (m.qos == 1) {
        uint8_t ack[4];
        hub_mqtt_ack(ack, HUB_MQTT_PUBACK, m.packet_id);
        bench_conn_write(&p->conn, ack, sizeof ack);
    }
    if (m.payload_len >= 16 && measuring) {
        n_recv++;
        bench_hist_add(&hist, bench_now_ns() - get64(m.payload));
    }
}

/* ---- MQTT packets and connection events ----------------------------------------------------- */

static void became_ready(peer_t *p)
{
    p->ready = 1;
    if (opt.mode == M_READMIT) {
        readmit_ready(p);
    } else if (opt.mode == M_IDLE) {
        if (!p->counted) {
            p->counted = 1;
            n_ok++;
            bench_hist_add(&hist, bench_now_ns() - p->conn.t_start);
            in_progress--;
            launch();
        }
    } else if (p == &sub_peer) {
        sub_ready = 1;
        maybe_start_sending();
    } else if (!p->counted) {
        p->counted = 1;
        in_progress--;
        launch();
    }
}

static void subscribe(peer_t *p)
{
    char filter[128];
    uint8_t b[160];
    if (p == &sub_peer || opt.mode == M_FANOUT)
        snprintf(filter, sizeof filter, "devices/+/telemetry");
    else
        snprintf(filter, sizeof filter, "devices/%s/telemetry", cns[p->cert]);
    send_packet(p, b, bench_mqtt_subscribe(b, sizeof b, 1, filter, opt.qos));
}

static void packet_cb(bench_conn_t *c, const uint8_t *pkt, size_t len)
{
    peer_t *p = (peer_t *)c;
    char why[64];
    switch (pkt[0] >> 4) {
    case HUB_MQTT_CONNACK:
        if (len < 4 || pkt[3] != 0) {
            snprintf(why, sizeof why, "mqtt: CONNACK return code %d", len < 4 ? -1 : pkt[3]);
            bench_conn_close(c, why);
            return;
        }
        if ((opt.mode == M_PUBLISH && (p == &sub_peer || strcmp(opt.sub, "self") == 0)) ||
            (opt.mode == M_FANOUT && p != &peers[0]))
            subscribe(p);
        else
            became_ready(p);
        break;
    case HUB_MQTT_SUBACK:
        if (len < 5 || pkt[len - 1] == HUB_MQTT_SUBACK_FAILURE) {
            bench_conn_close(c, "mqtt: subscription refused (SUBACK 0x80)");
            return;
        }
        became_ready(p);
        break;
    case HUB_MQTT_PUBLISH: on_publish(p, pkt, len); break;
    case HUB_MQTT_PUBACK:
        if (p->inflight)
            p->inflight--;
        if (measuring)
            n_acked++;
        break;
    case HUB_MQTT_PINGRESP: n_pongs++; break;
    default: break;
    }
}

static void tls_done_cb(bench_conn_t *c)
{
    peer_t *p = (peer_t *)c;
    if (opt.mode == M_HANDSHAKE || opt.mode == M_RESUME) {
        hs_tls_done(p);
        return;
    }
    if (opt.mode == M_READMIT) {
        /* Keep a copy of the newest session (and its ticket): OpenSSL marks the connection's
         * own session not resumable when it is freed without our close_notify, as after a
         * drop by the server, which a device that kept its ticket would ignore. */
        SSL_SESSION *sess = SSL_SESSION_dup(SSL_get0_session(p->conn.ssl));
        p->was_resumed = SSL_session_reused(p->conn.ssl);
        if (sess) {
            if (p->sess)
                SSL_SESSION_free(p->sess);
            p->sess = sess;
        }
    }
    send_connect(p);
}

static void closed_cb(bench_conn_t *c, const char *why)
{
    peer_t *p = (peer_t *)c;
    if (opt.mode == M_READMIT) {
        readmit_closed(p, why);
        return;
    }
    if (why && running) /* after the end, closes are ours */
        note_failure(why);
    switch (opt.mode) {
    case M_READMIT: break;
    case M_HANDSHAKE:
    case M_RESUME: start_slot(p); break;
    case M_IDLE:
    case M_PUBLISH:
    case M_FANOUT:
        if (p == &sub_peer && !sending && running) {
            t_end = bench_now_ns(); /* no subscriber: nothing to measure */
            t_begin = t_end;
            close_all();
        } else if (p != &sub_peer && !p->counted) {
            p->counted = 1;
            in_progress--;
            launch();
        }
        break;
    }
}

static const bench_conn_ops_t ops = {tls_done_cb, packet_cb, closed_cb};

/* ---- timers and the end of a run ---------------------------------------------------------- */

static void close_all(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    running = 0;
    uv_timer_stop(&tick);
    uv_timer_stop(&end_timer);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_close((uv_handle_t *)&end_timer, NULL);
    for (int i = 0; i < n_peers; i++)
        bench_conn_close(&peers[i].conn, NULL);
    bench_conn_close(&sub_peer.conn, NULL);
}

/* Time limits, keepalive pings and restarts of idle handshake slots. */
static void sweep_peer(peer_t *p, uint64_t now)
{
    uint64_t limit = (uint64_t)(opt.timeout * 1e9);
    int st = p->conn.state;
    if ((st == BENCH_CONN_CONNECTING || st == BENCH_CONN_HANDSHAKE ||
         (st == BENCH_CONN_OPEN && !p->ready && opt.mode >= M_IDLE)) &&
        now - p->conn.t_start > limit) {
        bench_conn_close(&p->conn, st == BENCH_CONN_OPEN ? "timeout waiting for CONNACK/SUBACK"
                                                         : "timeout during the handshake");
    } else if (st == BENCH_CONN_OPEN && p->ready && opt.keepalive > 0 &&
               now - p->conn.t_last_tx >= (uint64_t)opt.keepalive * 500000000ull) {
        uint8_t b[2];
        send_packet(p, b, bench_mqtt_pingreq(b));
        n_pings++;
    } else if (st == BENCH_CONN_IDLE && opt.mode <= M_RESUME) {
        start_slot(p);
    }
}

static void tick_cb(uv_timer_t *t)
{
    uint64_t now = bench_now_ns();
    static uint64_t last_sweep;
    if (now - last_sweep >= 100000000ull) {
        last_sweep = now;
        for (int i = 0; i < n_peers; i++)
            sweep_peer(&peers[i], now);
        if (opt.mode == M_PUBLISH)
            sweep_peer(&sub_peer, now);
    }
    if (PUBLISHING(opt.mode) && sending && !draining)
        publish_tick();
    if (opt.mode == M_READMIT && rphase == R_READMIT && in_progress < opt.concurrency)
        readmit_launch();
    if (PUBLISHING(opt.mode) && draining) {
        int done = n_recv >= n_sent * subscribers() && (opt.qos == 0 || n_acked >= n_sent);
        if (done || now - t_end > 3000000000ull)
            close_all();
    }
}

static void end_cb(uv_timer_t *t)
{
    t_end = bench_now_ns();
    switch (opt.mode) {
    case M_HANDSHAKE:
    case M_RESUME:
        measuring = 0;
        close_all();
        break;
    case M_IDLE:
        rss_after = read_rss_kb();
        for (int i = 0; i < n_peers; i++)
            held += peers[i].ready && peers[i].conn.state == BENCH_CONN_OPEN;
        close_all();
        break;
    case M_READMIT:
        snprintf(fatal_msg, sizeof fatal_msg,
                 rphase == R_ARMED ? "the server did not drop the connections within --wait"
                                   : "not every device was re-admitted within -d");
        fatal = 1;
        close_all();
        break;
    case M_PUBLISH:
    case M_FANOUT:
        if (!sending) { /* never got ready: report what failed */
            t_begin = t_end;
            close_all();
        } else {
            draining = 1; /* stop sending; wait for the last messages (tick_cb) */
        }
        break;
    }
}

/* ---- reporting ------------------------------------------------------------------------------ */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if ((unsigned char)*s >= 0x20)
            fputc(*s, f);
    }
    fputc('"', f);
}

static void print_reasons(FILE *f, const char *key)
{
    fprintf(f, ",\"%s\":{", key);
    for (size_t i = 0; i < n_reasons; i++) {
        fputs(i ? "," : "", f);
        json_str(f, reasons[i].why);
        fprintf(f, ":%llu", (unsigned long long)reasons[i].n);
    }
    fputc('}', f);
}

static void print_latency(FILE *f, const char *key)
{
    fprintf(f, ",\"%s\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f}", key,
            bench_hist_quantile(&hist, 0.5) / 1e6, bench_hist_quantile(&hist, 0.9) / 1e6,
            bench_hist_quantile(&hist, 0.99) / 1e6, hist.max / 1e6);
}

static void human_latency(const char *what)
{
    printf("%s latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  (%llu samples)\n", what,
           bench_hist_quantile(&hist, 0.5) / 1e6, bench_hist_quantile(&hist, 0.9) / 1e6,
           bench_hist_quantile(&hist, 0.99) / 1e6, hist.max / 1e6, (unsigned long long)hist.n);
}

/* fanout: deliveries expected (every message to every subscriber) and not received. */
static uint64_t fanout_lost(void)
{
    uint64_t want = n_sent * subscribers();
    return want > n_recv ? want - n_recv : 0;
}

static void report(void)
{
    double secs = (double)(t_end - t_begin) / 1e9;
    static const char *names[] = {"handshake", "resume", "idle", "publish", "readmit", "fanout"};
    if (secs <= 0)
        secs = 1e-9;
    printf("mode %s against %s:%d\n", names[opt.mode], opt.host, opt.port);
    for (size_t i = 0; i < n_reasons; i++)
        printf("  failure: %s: %llu\n", reasons[i].why, (unsigned long long)reasons[i].n);
    if (fatal)
        printf("  stopped early: %s\n", fatal_msg);
    double resumed_ratio = 0, reconnects = (double)n_ok - (double)opt.concurrency;
    double connect_secs = 0, readmit_s = -1, back_s = -1;
    switch (opt.mode) {
    case M_HANDSHAKE:
    case M_RESUME:
        printf("%llu handshakes in %.2f s with %d concurrent: %.1f/s, %llu failures\n",
               (unsigned long long)n_ok, secs, opt.concurrency, (double)n_ok / secs,
               (unsigned long long)n_fail);
        if (opt.mode == M_RESUME) {
            resumed_ratio = reconnects > 0 ? (double)n_resumed / reconnects : 0;
            printf("%llu resumed of %.0f reconnects (ratio %.3f), %llu full\n",
                   (unsigned long long)n_resumed, reconnects > 0 ? reconnects : 0, resumed_ratio,
                   (unsigned long long)(n_ok - n_resumed));
        }
        human_latency("connect+handshake");
        break;
    case M_IDLE:
        connect_secs = (double)((connected_done ? t_connected : t_end) - t_begin) / 1e9;
        printf("%ld of %d connections held for %.1f s (%d source addresses); connected %llu "
               "in %.2f s: %.1f/s; %llu errors; pings %llu, answered %llu\n",
               held, opt.n, opt.duration, n_srcs ? n_srcs : 1, (unsigned long long)n_ok,
               connect_secs, connect_secs > 0 ? (double)n_ok / connect_secs : 0,
               (unsigned long long)n_fail, (unsigned long long)n_pings,
               (unsigned long long)n_pongs);
        if (rss_before >= 0 && rss_after >= 0)
            printf("server RSS %ld kB -> %ld kB: %.1f kB per held connection\n", rss_before,
                   rss_after, held ? (double)(rss_after - rss_before) / (double)held : 0);
        human_latency("connect+handshake+CONNACK");
        break;
    case M_PUBLISH:
        printf("%d publishers, subscriber %s, QoS %d, target %.0f msg/s (0: as fast as "
               "possible), %d-byte payloads, %.2f s\n",
               n_peers, opt.sub, opt.qos, opt.rate, opt.size, secs);
        printf("sent %llu (%.1f/s), received %llu (%.1f/s), lost %llu, acked %llu, %llu "
               "errors\n",
               (unsigned long long)n_sent, (double)n_sent / secs, (unsigned long long)n_recv,
               (double)n_recv / secs, (unsigned long long)(n_sent > n_recv ? n_sent - n_recv : 0),
               (unsigned long long)n_acked, (unsigned long long)n_fail);
        human_latency("end-to-end");
        break;
    case M_READMIT:
        readmit_s = t_drop && r_pending == 0 ? (double)(t_end - t_drop) / 1e9 : -1;
        back_s = t_back ? (double)(t_back - t_drop) / 1e9 : -1;
        connect_secs = (double)((connected_done ? t_connected : t_end) - t_begin) / 1e9;
        printf("%d of %d devices connected in %.2f s; the server dropped %llu\n", r_target, opt.n,
               connect_secs, (unsigned long long)n_dropped);
        printf("%llu of %llu re-admitted (CONNACK) %.3f s after the first drop (the first "
               "after %.3f s); %llu resumed their session, %llu full handshakes; %llu "
               "attempts, %llu failed; %d not re-admitted\n",
               (unsigned long long)n_readmitted, (unsigned long long)n_dropped, readmit_s, back_s,
               (unsigned long long)n_rresumed, (unsigned long long)(n_readmitted - n_rresumed),
               (unsigned long long)n_attempts, (unsigned long long)(n_fail - fail_at_drop),
               r_pending);
        human_latency("re-admission attempt (connect+handshake+CONNACK)");
        break;
    case M_FANOUT:
        printf("1 publisher, %d subscribers, QoS %d, target %.0f msg/s (0: as fast as possible), "
               "%d-byte payloads, %.2f s\n",
               n_peers - 1, opt.qos, opt.rate, opt.size, secs);
        printf("sent %llu (%.1f/s), deliveries %llu (%.1f/s), lost %llu, acked %llu, %llu "
               "errors\n",
               (unsigned long long)n_sent, (double)n_sent / secs, (unsigned long long)n_recv,
               (double)n_recv / secs, (unsigned long long)fanout_lost(),
               (unsigned long long)n_acked, (unsigned long long)n_fail);
        human_latency("end-to-end");
        break;
    }
    if (!opt.json)
        return;
    printf("{\"mode\":\"%s\",\"host\":\"%s\",\"port\":%d", names[opt.mode], opt.host, opt.port);
    switch (opt.mode) {
    case M_HANDSHAKE:
    case M_RESUME:
        printf(",\"concurrency\":%d,\"duration_s\":%.3f,\"handshakes\":%llu,\"rate\":%.1f,"
               "\"failures\":%llu",
               opt.concurrency, secs, (unsigned long long)n_ok, (double)n_ok / secs,
               (unsigned long long)n_fail);
        if (opt.mode == M_RESUME)
            printf(",\"resumed\":%llu,\"full\":%llu,\"resumed_ratio\":%.4f",
                   (unsigned long long)n_resumed, (unsigned long long)(n_ok - n_resumed),
                   resumed_ratio);
        print_reasons(stdout, "failure_reasons");
        print_latency(stdout, "latency_ms");
        break;
    case M_IDLE:
        printf(",\"requested\":%d,\"connected\":%llu,\"held\":%ld,\"hold_s\":%.1f,"
               "\"sources\":%d,\"connect_s\":%.3f,\"connect_rate\":%.1f,\"errors\":%llu,"
               "\"pings\":%llu,\"pongs\":%llu,\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,"
               "\"rss_per_conn_kb\":%.2f",
               opt.n, (unsigned long long)n_ok, held, opt.duration, n_srcs ? n_srcs : 1,
               connect_secs, connect_secs > 0 ? (double)n_ok / connect_secs : 0,
               (unsigned long long)n_fail, (unsigned long long)n_pings, (unsigned long long)n_pongs,
               rss_before, rss_after,
               held && rss_before >= 0 && rss_after >= 0
                   ? (double)(rss_after - rss_before) / (double)held
                   : 0);
        print_reasons(stdout, "error_reasons");
        print_latency(stdout, "connect_latency_ms");
        break;
    case M_PUBLISH:
        printf(",\"qos\":%d,\"publishers\":%d,\"subscriber\":\"%s\",\"target_rate\":%.1f,"
               "\"payload_bytes\":%d,\"duration_s\":%.3f,\"sent\":%llu,\"received\":%llu,"
               "\"acked\":%llu,\"lost\":%llu,\"sent_rate\":%.1f,\"received_rate\":%.1f,"
               "\"errors\":%llu",
               opt.qos, n_peers, opt.sub, opt.rate, opt.size, secs, (unsigned long long)n_sent,
               (unsigned long long)n_recv, (unsigned long long)n_acked,
               (unsigned long long)(n_sent > n_recv ? n_sent - n_recv : 0), (double)n_sent / secs,
               (double)n_recv / secs, (unsigned long long)n_fail);
        print_reasons(stdout, "error_reasons");
        print_latency(stdout, "latency_ms");
        break;
    case M_READMIT:
        printf(",\"devices\":%d,\"connected\":%d,\"connect_s\":%.3f,\"dropped\":%llu,"
               "\"readmitted\":%llu,\"resumed\":%llu,\"full\":%llu,\"failures\":%d,"
               "\"attempts\":%llu,\"failed_attempts\":%llu,\"readmit_s\":%.3f,"
               "\"first_back_s\":%.3f,\"concurrency\":%d",
               opt.n, r_target, connect_secs, (unsigned long long)n_dropped,
               (unsigned long long)n_readmitted, (unsigned long long)n_rresumed,
               (unsigned long long)(n_readmitted - n_rresumed),
               r_pending + (r_target - (int)n_dropped), (unsigned long long)n_attempts,
               (unsigned long long)(n_fail - fail_at_drop), readmit_s, back_s, opt.concurrency);
        print_reasons(stdout, "failure_reasons");
        print_latency(stdout, "latency_ms");
        break;
    case M_FANOUT:
        printf(",\"qos\":%d,\"subscribers\":%d,\"target_rate\":%.1f,\"payload_bytes\":%d,"
               "\"duration_s\":%.3f,\"sent\":%llu,\"deliveries\":%llu,\"acked\":%llu,"
               "\"lost\":%llu,\"sent_rate\":%.1f,\"delivery_rate\":%.1f,\"errors\":%llu",
               opt.qos, n_peers - 1, opt.rate, opt.size, secs, (unsigned long long)n_sent,
               (unsigned long long)n_recv, (unsigned long long)n_acked,
               (unsigned long long)fanout_lost(), (double)n_sent / secs, (double)n_recv / secs,
               (unsigned long long)n_fail);
        print_reasons(stdout, "error_reasons");
        print_latency(stdout, "latency_ms");
        break;
    }
    printf(",\"stopped_early\":%s}\n", fatal ? "true" : "false");
}

/* ---- setup ---------------------------------------------------------------------------------- */

static int load_pair(const char *cf, const char *kf, X509 **x, EVP_PKEY **k)
{
    FILE *f = fopen(cf, "r");
    if (!f) {
        fprintf(stderr, "iothub-bench: %s: %s\n", cf, strerror(errno));
        return -1;
    }
    *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    f = fopen(kf, "r");
    if (!f) {
        fprintf(stderr, "iothub-bench: %s: %s\n", kf, strerror(errno));
        return -1;
    }
    *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!*x || !*k) {
        fprintf(stderr, "iothub-bench: %s / %s: not a PEM certificate and key\n", cf, kf);
        return -1;
    }
    return 0;
}

/* Reads the CSV of "certfile,keyfile" lines (a header line is skipped; relative paths are
 * relative to the CSV's directory). */
static int load_certs(const char *csv)
{
    FILE *f = fopen(csv, "r");
    if (!f) {
        fprintf(stderr, "iothub-bench: %s: %s\n", csv, strerror(errno));
        return -1;
    }
    char dir[4096], line[8192], cp[8192], kp[8192];
    snprintf(dir, sizeof dir, "%s", csv);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int cap = 0, rc = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char *comma = strchr(line, ',');
        if (!line[0] || strcmp(line, "certfile,keyfile") == 0)
            continue;
        if (!comma) {
            fprintf(stderr, "iothub-bench: %s:%d: expected certfile,keyfile\n", csv, lineno);
            rc = -1;
            break;
        }
        *comma = '\0';
        int lc = snprintf(cp, sizeof cp, "%s%s%s", line[0] == '/' ? "" : dir,
                          line[0] == '/' ? "" : "/", line);
        int lk = snprintf(kp, sizeof kp, "%s%s%s", comma[1] == '/' ? "" : dir,
                          comma[1] == '/' ? "" : "/", comma + 1);
        if (lc < 0 || lk < 0 || (size_t)lc >= sizeof cp || (size_t)lk >= sizeof kp) {
            fprintf(stderr, "iothub-bench: %s:%d: path too long\n", csv, lineno);
            rc = -1;
            break;
        }
        if (n_certs == cap) {
            cap = cap ? cap * 2 : 256;
            certs = realloc(certs, (size_t)cap * sizeof *certs);
            keys = realloc(keys, (size_t)cap * sizeof *keys);
            cns = realloc(cns, (size_t)cap * sizeof *cns);
            if (!certs || !keys || !cns) {
                rc = -1;
                break;
            }
        }
        if (load_pair(cp, kp, &certs[n_certs], &keys[n_certs]) < 0) {
            rc = -1;
            break;
        }
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(certs[n_certs]), NID_commonName,
                                      cns[n_certs], sizeof cns[0]) <= 0)
            snprintf(cns[n_certs], sizeof cns[0], "unknown");
        n_certs++;
    }
    fclose(f);
    if (rc == 0 && n_certs == 0) {
        fprintf(stderr, "iothub-bench: %s: no certificates\n", csv);
        rc = -1;
    }
    return rc;
}

/* Parses "A", "A-B" (last octet range) or "A,B,C" into srcs. */
static int parse_sources(const char *spec)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *dash = strchr(tok, '-');
        struct in_addr a, b;
        if (dash)
            *dash = '\0';
        if (inet_pton(AF_INET, tok, &a) != 1 || (dash && inet_pton(AF_INET, dash + 1, &b) != 1)) {
            fprintf(stderr, "iothub-bench: --source: bad address in \"%s\"\n", spec);
            return -1;
        }
        uint32_t lo = ntohl(a.s_addr), hi = dash ? ntohl(b.s_addr) : lo;
        if (hi < lo || hi - lo > 65535) {
            fprintf(stderr, "iothub-bench: --source: bad range in \"%s\"\n", spec);
            return -1;
        }
        for (uint32_t v = lo; v <= hi; v++) {
            srcs = realloc(srcs, (size_t)(n_srcs + 1) * sizeof *srcs);
            if (!srcs)
                return -1;
            memset(&srcs[n_srcs], 0, sizeof *srcs);
            srcs[n_srcs].sin_family = AF_INET;
            srcs[n_srcs].sin_addr.s_addr = htonl(v);
            n_srcs++;
        }
    }
    return 0;
}

static void usage(FILE *f)
{
    fputs("usage: iothub-bench --mode handshake|resume|idle|publish|readmit --certs CSV\n"
          "         --ca CA.pem [--host 127.0.0.1] [--port 8883] [--json]\n"
          "  -c, --concurrency C   handshake/resume: connections at once (default 10; over\n"
          "                        32 per source address iothubd closes the excess);\n"
          "                        idle/publish/readmit: handshakes in progress at once (24\n"
          "                        per source address by default, at most 480: iothubd\n"
          "                        allows 32 per address and 512 per listener)\n"
          "  -d, --duration S      handshake/resume/publish: seconds measured; idle: seconds\n"
          "                        the connections are held (default 10); readmit: limit\n"
          "                        from the first drop (default 60)\n"
          "  -n, --connections N   idle: connections; publish: publishers; readmit: devices\n"
          "                        (default: all certs)\n"
          "  --source A[-B][,C]    bind each connection to these source addresses in turn\n"
          "  --server-pid PID      idle: read the server's VmRSS before and after\n"
          "  --keepalive S         MQTT keepalive (default 30; a PINGREQ every S/2 idle)\n"
          "  --qos 0|1, --rate R (msg/s in all, 0 = as fast as possible), --size BYTES (>= 16)\n"
          "fanout: -n service subscribers (--service-cert, --service-key) on devices/+/telemetry,\n"
          "  the first device of --certs publishing at --rate (--qos, --size)\n"
          "  --sub service|self    publish: one service subscriber on devices/+/telemetry\n"
          "                        (--service-cert, --service-key) or each device on its own\n"
          "  --session ID          publish: the service subscriber is the persistent session\n"
          "                        ID (clean session 0), which stays when the run ends\n"
          "  --timeout S           connect + handshake + CONNACK time limit (default 10)\n"
          "readmit: -n devices connect, then the tool waits (--wait S, default 120) for the\n"
          "  server to drop them all (restart iothubd meanwhile: a line on stderr says when),\n"
          "  reconnects each with its saved TLS session (back-off from 100 ms doubling up to\n"
          "  --backoff S, default 2, jittered; at most -c attempts at once) and reports the time\n"
          "  from the first drop to the last CONNACK (-d S limit, default 60), resumed vs full\n"
          "  handshakes and the failed attempts (connection refused while the server is down).\n"
          "CSV lines: certfile,keyfile (one device each; relative to the CSV's directory).\n",
          f);
}

/* The number in arg of option name; exits with status 2 and a precise error when it is not one
 * or is negative. */
static double num(const char *name, const char *arg)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (end == arg || *end || errno || v < 0 || v > 1e9) {
        fprintf(stderr, "iothub-bench: --%s: expected a non-negative number, got \"%s\"\n", name,
                arg);
        exit(2);
    }
    return v;
}

static int parse_args(int argc, char **argv)
{
    static const struct option lo[] = {{"mode", 1, 0, 'm'},
                                       {"host", 1, 0, 'H'},
                                       {"port", 1, 0, 'p'},
                                       {"ca", 1, 0, 'A'},
                                       {"certs", 1, 0, 'C'},
                                       {"concurrency", 1, 0, 'c'},
                                       {"duration", 1, 0, 'd'},
                                       {"connections", 1, 0, 'n'},
                                       {"source", 1, 0, 's'},
                                       {"server-pid", 1, 0, 'P'},
                                       {"keepalive", 1, 0, 'k'},
                                       {"qos", 1, 0, 'q'},
                                       {"rate", 1, 0, 'r'},
                                       {"size", 1, 0, 'z'},
                                       {"sub", 1, 0, 'S'},
                                       {"session", 1, 0, 'I'},
                                       {"service-cert", 1, 0, 'x'},
                                       {"service-key", 1, 0, 'y'},
                                       {"timeout", 1, 0, 't'},
                                       {"json", 0, 0, 'j'},
                                       {"help", 0, 0, 'h'},
                                       {"wait", 1, 0, 'W'},
                                       {"backoff", 1, 0, 'B'},
                                       {0, 0, 0, 0}};
    int ch;
    const char *mode = NULL;
    while ((ch = getopt_long(argc, argv, "c:d:n:h", lo, NULL)) != -1) {
        switch (ch) {
        case 'm': mode = optarg; break;
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = (int)num("port", optarg); break;
        case 'A': opt.ca = optarg; break;
        case 'C': opt.certs = optarg; break;
        case 'c': opt.concurrency = (int)num("concurrency", optarg); break;
        case 'd':
            opt.duration = num("duration", optarg);
            opt.duration_set = 1;
            break;
        case 'W': opt.wait = num("wait", optarg); break;
        case 'B': opt.backoff = num("backoff", optarg); break;
        case 'n': opt.n = (int)num("connections", optarg); break;
        case 's': opt.sources = optarg; break;
        case 'P': opt.server_pid = (int)num("server-pid", optarg); break;
        case 'k': opt.keepalive = (int)num("keepalive", optarg); break;
        case 'q': opt.qos = (int)num("qos", optarg); break;
        case 'r': opt.rate = num("rate", optarg); break;
        case 'z': opt.size = (int)num("size", optarg); break;
        case 'S': opt.sub = optarg; break;
        case 'I': opt.session = optarg; break;
        case 'x': opt.svc_cert = optarg; break;
        case 'y': opt.svc_key = optarg; break;
        case 't': opt.timeout = num("timeout", optarg); break;
        case 'j': opt.json = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    const char *err = NULL;
    if (!mode)
        err = "--mode is required";
    else if (strcmp(mode, "handshake") == 0)
        opt.mode = M_HANDSHAKE;
    else if (strcmp(mode, "resume") == 0)
        opt.mode = M_RESUME;
    else if (strcmp(mode, "idle") == 0)
        opt.mode = M_IDLE;
    else if (strcmp(mode, "publish") == 0)
        opt.mode = M_PUBLISH;
    else if (strcmp(mode, "readmit") == 0)
        opt.mode = M_READMIT;
    else if (strcmp(mode, "fanout") == 0)
        opt.mode = M_FANOUT;
    else
        err = "--mode must be handshake, resume, idle, publish, readmit or fanout";
    if (!err && opt.mode == M_READMIT && !opt.duration_set)
        opt.duration = 60;
    if (!err && (!opt.certs || !opt.ca))
        err = "--certs and --ca are required";
    else if (!err && (opt.port <= 0 || opt.port > 65535))
        err = "--port must be 1..65535";
    else if (!err && (opt.duration <= 0 || opt.timeout <= 0 || opt.wait <= 0 || opt.backoff <= 0))
        err = "--duration, --timeout, --wait and --backoff must be positive";
    else if (!err && (opt.qos < 0 || opt.qos > 1))
        err = "--qos must be 0 or 1";
    else if (!err && (opt.size < 16 || opt.size > 65000))
        err = "--size must be 16..65000";
    else if (!err && opt.keepalive > 65535)
        err = "--keepalive must be 0..65535";
    else if (!err && opt.mode == M_PUBLISH && strcmp(opt.sub, "self") != 0 &&
             (strcmp(opt.sub, "service") != 0 || !opt.svc_cert || !opt.svc_key))
        err = "publish needs --service-cert and --service-key (or --sub self)";
    else if (!err && opt.mode == M_FANOUT && (!opt.svc_cert || !opt.svc_key || opt.n < 1))
        err = "fanout needs -n subscribers, --service-cert and --service-key";
    if (err) {
        fprintf(stderr, "iothub-bench: %s\n", err);
        usage(stderr);
        return -1;
    }
    return 0;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) < 0)
        return 2;
    raise_nofile();
    signal(SIGPIPE, SIG_IGN); /* a write to a socket the server closed is an error, not death */
    if (opt.sources && parse_sources(opt.sources) < 0)
        return 2;
    /* iothubd closes handshakes over mqtt_max_handshakes_per_ip (default 32) per address. */
    if (opt.concurrency <= 0) {
        opt.concurrency = opt.mode <= M_RESUME ? 10 : 24 * (n_srcs ? n_srcs : 1);
        if (opt.concurrency > 480)
            opt.concurrency = 480;
    }
    if (uv_ip4_addr(opt.host, opt.port, &dst) != 0) {
        fprintf(stderr, "iothub-bench: --host must be an IPv4 address (got \"%s\")\n", opt.host);
        return 2;
    }
    if (load_certs(opt.certs) < 0)
        return 1;
    if (((opt.mode == M_PUBLISH && strcmp(opt.sub, "service") == 0) || opt.mode == M_FANOUT) &&
        load_pair(opt.svc_cert, opt.svc_key, &svc_x509, &svc_pkey) < 0)
        return 1;
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || SSL_CTX_load_verify_locations(ctx, opt.ca, NULL) != 1) {
        fprintf(stderr, "iothub-bench: %s: cannot load the CA certificates\n", opt.ca);
        return 1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (opt.mode == M_IDLE || opt.mode == M_READMIT)
        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    srand((unsigned)(getpid() ^ bench_now_ns()));

    switch (opt.mode) {
    case M_HANDSHAKE:
    case M_RESUME: n_peers = opt.concurrency; break;
    case M_IDLE:
    case M_PUBLISH:
    case M_READMIT:
        if (opt.n <= 0)
            opt.n = n_certs;
        if (opt.n > n_certs) {
            fprintf(stderr,
                    "iothub-bench: %d connections need %d device certificates (a second "
                    "connection of a device takes its session over), %s has %d\n",
                    opt.n, opt.n, opt.certs, n_certs);
            return 2;
        }
        n_peers = opt.n;
        break;
    case M_FANOUT: n_peers = opt.n + 1; break; /* the publisher and -n subscribers */
    }
    peers = calloc((size_t)n_peers, sizeof *peers);
    if (!peers)
        return 1;
    loop = uv_default_loop();
    for (int i = 0; i < n_peers; i++) {
        peers[i].conn.ops = &ops;
        peers[i].conn.idx = (unsigned)i;
    }
    sub_peer.conn.ops = &ops;
    uv_timer_init(loop, &tick);
    uv_timer_init(loop, &end_timer);
    uv_timer_start(&tick, tick_cb, 1, 1);
    running = 1;
    rss_before = read_rss_kb();
    t_begin = bench_now_ns();
    switch (opt.mode) {
    case M_HANDSHAKE:
    case M_RESUME:
        measuring = 1;
        for (int i = 0; i < n_peers; i++)
            start_slot(&peers[i]);
        uv_timer_start(&end_timer, end_cb, (uint64_t)(opt.duration * 1000), 0);
        break;
    case M_IDLE:
    case M_READMIT: launch(); break;
    case M_PUBLISH:
        for (int i = 0; i < n_peers; i++)
            if (prepare_publish(&peers[i], i) < 0) {
                fprintf(stderr, "iothub-bench: cannot build the PUBLISH packet\n");
                return 1;
            }
        if (strcmp(opt.sub, "service") == 0)
            start_peer(&sub_peer, -1, NULL);
        else
            sub_ready = 1;
        launch(); /* maybe_start_sending starts the end timer */
        break;
    case M_FANOUT:
        if (prepare_publish(&peers[0], 0) < 0) {
            fprintf(stderr, "iothub-bench: cannot build the PUBLISH packet\n");
            return 1;
        }
        sub_ready = 1;
        launch();
        break;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    report();
    for (int i = 0; i < n_peers; i++) {
        free(peers[i].pkt);
        free(peers[i].conn.wbuf);
        free(peers[i].conn.in);
        if (peers[i].sess)
            SSL_SESSION_free(peers[i].sess);
    }
    free(peers);
    free(sub_peer.conn.wbuf);
    free(sub_peer.conn.in);
    for (int i = 0; i < n_certs; i++) {
        X509_free(certs[i]);
        EVP_PKEY_free(keys[i]);
    }
    free(certs);
    free(keys);
    free(cns);
    free(srcs);
    X509_free(svc_x509);
    EVP_PKEY_free(svc_pkey);
    SSL_CTX_free(ctx);
    uv_loop_close(loop);
    return 0;
}
