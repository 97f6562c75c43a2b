/* broker-bench: the MQTT broker core (mqtt/broker) in isolation, over an in-memory transport
 * (no TLS, no sockets). Scenarios:
 *   fanin0  N devices publish QoS 0 to devices/<id>/telemetry, one service subscribed to
 *           devices/+/telemetry (QoS 1 subscription: deliveries at the message's QoS)
 *   fanin1  the same at QoS 1; the service acknowledges every delivery at once
 *   fanout0 one device publishes QoS 0, N service sessions subscribed
 *   fanout1 the same at QoS 1, every subscriber acknowledging
 *   slow1   N devices publish QoS 1 with an in-flight window of 20 each (mosquitto's
 *           default) to a service that acknowledges 10 deliveries per round: how many
 *           publishes were acknowledged, delivered, dropped (flow control)
 * For each it prints messages routed, deliveries written, and heap allocations (malloc,
 * calloc, realloc calls, counted by wrappers in this program) per published message.
 * Instructions per message: run one scenario under
 *   valgrind --tool=callgrind --collect-atstart=no --toggle-collect=bench_run \
 *            tests/bench/broker-bench fanin0
 * and divide the reported Ir by the messages printed.
 * BROKER_BENCH_SHARED=1 gives the transport a write_shared (a reference to the message
 * instead of a copy, as iothubd's worker transport has).
 * Usage: broker-bench [fanin0|fanin1|fanout0|fanout1|slow1|all] [messages|rounds]
 *                     [connections] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/broker.h"
#include "mqtt/codec.h"
#include "util/buf.h"
#include "util/log.h"

#if defined(__SANITIZE_ADDRESS__)
#define COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COUNT_ALLOCS 0
#endif
#endif
#ifndef COUNT_ALLOCS
#define COUNT_ALLOCS 1
#endif

static unsigned long long nalloc;

#if COUNT_ALLOCS
/* glibc lets a program replace malloc; these forward to it and count. */
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

void *malloc(size_t n)
{
    nalloc++;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    nalloc++;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    nalloc++;
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}
#endif

/* One client as the transport sees it: bytes written to it, PUBLISH packets parsed from the
 * stream (a packet may come in several writes), packet ids to acknowledge. */
struct peer {
    struct hub_mqtt_conn *c;
    struct hub_mqtt_identity who;
    unsigned long long bytes, publishes, pubacks;
    size_t skip;        /* bytes of the current packet still to come */
    uint16_t acks[256]; /* packet ids to PUBACK */
    size_t nacks;
};

static int t_write(void *tconn, const void *data, size_t len)
{
    struct peer *p = tconn;
    const uint8_t *d = data;
    p->bytes += len;
    while (len > 0) {
        if (p->skip > 0) {
            size_t n = p->skip < len ? p->skip : len;
            p->skip -= n;
            d += n;
            len -= n;
            continue;
        }
        /* A packet starts here; the broker writes at least its whole header at once. */
        size_t h = 1, rem = 0, mul = 1;
        do {
            rem += (d[h] & 0x7fu) * mul;
            mul <<= 7;
        } while (d[h++] & 0x80);
        int type = d[0] >> 4, qos = (d[0] >> 1) & 3;
        if (type == HUB_MQTT_PUBLISH) {
            p->publishes++;
            if (qos > 0 && p->nacks < sizeof p->acks / sizeof p->acks[0]) {
                size_t tlen = (size_t)d[h] << 8 | d[h + 1];
                p->acks[p->nacks++] = (uint16_t)(d[h + 2 + tlen] << 8 | d[h + 3 + tlen]);
            }
        } else if (type == HUB_MQTT_PUBACK) {
            p->pubacks++;
        }
        size_t total = h + rem, n = total < len ? total : len;
        p->skip = total - n;
        d += n;
        len -= n;
    }
    return 0;
}

static void t_close(void *tconn)
{
    (void)tconn;
    fprintf(stderr, "broker-bench: the broker closed a connection\n");
    exit(1);
}

/* The shared path of a transport on another thread (server/mqtt_server.c over net/workers):
 * a reference to the message and the few unshared bytes cross over, the pieces are gathered
 * into one buffer at the last hop (as a worker does for its TLS record) and the reference is
 * dropped. Used when BROKER_BENCH_SHARED=1. */
static int t_write_shared(void *tconn, struct hub_rcbuf *buf, const struct hub_rcbuf_piece *v,
                          size_t n)
{
    static uint8_t *gather;
    static size_t cap;
    size_t len = 0;
    hub_rcbuf_ref(buf);
    for (size_t i = 0; i < n; i++)
        len += v[i].len;
    if (len > cap) {
        free(gather);
        if ((gather = malloc(len)) == NULL)
            return -1;
        cap = len;
    }
    len = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(gather + len, v[i].p, v[i].len);
        len += v[i].len;
    }
    int rc = t_write(tconn, gather, len);
    hub_rcbuf_unref(buf);
    return rc;
}

static const struct hub_mqtt_transport copying = {.write = t_write, .close = t_close};
static const struct hub_mqtt_transport sharing = {
    .write = t_write, .write_shared = t_write_shared, .close = t_close};
static const struct hub_mqtt_transport *transport = &copying;

static const char *const svc_sub[] = {"devices/+/telemetry", NULL};
static const char *const svc_pub[] = {"devices/+/commands/#", NULL};

static void put_str(hub_buf_t *b, const char *s)
{
    uint8_t n[2] = {(uint8_t)(strlen(s) >> 8), (uint8_t)strlen(s)};
    hub_buf_append(b, n, 2);
    hub_buf_append(b, s, strlen(s));
}

/* Wraps body in a fixed header of type byte t. */
static void packet(hub_buf_t *out, uint8_t t, const hub_buf_t *body)
{
    uint8_t h[5];
    size_t n = 0, rem = body->len;
    h[n++] = t;
    do {
        h[n] = (uint8_t)(rem & 0x7f);
        rem >>= 7;
        if (rem)
            h[n] |= 0x80;
        n++;
    } while (rem);
    out->len = 0;
    hub_buf_append(out, h, n);
    hub_buf_append(out, body->data, body->len);
}

static void feed(struct peer *p, const hub_buf_t *b)
{
    hub_mqtt_conn_data(p->c, b->data, b->len, 1000);
}

static void connect_peer(struct hub_broker *br, struct peer *p, const char *client_id)
{
    hub_buf_t body = {0}, pkt = {0};
    p->c = hub_mqtt_conn_open(br, transport, p, &p->who, 1000);
    put_str(&body, "MQTT");
    uint8_t v[4] = {4, 0x02, 0, 0}; /* level 4, clean session, no keepalive */
    hub_buf_append(&body, v, 4);
    put_str(&body, client_id);
    packet(&pkt, 0x10, &body);
    feed(p, &pkt);
    hub_buf_free(&body);
    hub_buf_free(&pkt);
}

static void subscribe(struct peer *p, const char *filter, uint8_t qos)
{
    hub_buf_t body = {0}, pkt = {0};
    uint8_t pid[2] = {0, 1};
    hub_buf_append(&body, pid, 2);
    put_str(&body, filter);
    hub_buf_append(&body, &qos, 1);
    packet(&pkt, 0x82, &body);
    feed(p, &pkt);
    hub_buf_free(&body);
    hub_buf_free(&pkt);
}

/* Sends PUBACKs for up to max of the deliveries p received, oldest first. */
static void ack_some(struct peer *p, hub_buf_t *scratch, size_t max)
{
    size_t n = p->nacks < max ? p->nacks : max;
    if (n == 0)
        return;
    scratch->len = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t a[4];
        hub_buf_append(scratch, a, hub_mqtt_ack(a, HUB_MQTT_PUBACK, p->acks[i]));
    }
    memmove(p->acks, p->acks + n, (p->nacks - n) * sizeof p->acks[0]);
    p->nacks -= n;
    hub_mqtt_conn_data(p->c, scratch->data, scratch->len, 1000);
}

static void ack_all(struct peer *p, hub_buf_t *scratch)
{
    ack_some(p, scratch, SIZE_MAX);
}

struct run {
    struct peer *pubs, *subs;
    size_t npubs, nsubs;
    hub_buf_t *pkts; /* one PUBLISH per publisher */
    hub_buf_t scratch;
    size_t messages;
    int qos;
};

/* r->messages PUBLISHes, round robin over the publishers, each followed by the subscribers'
 * PUBACKs (QoS 1). */
static void run_messages(struct run *r)
{
    uint16_t pid = 0;
    for (size_t i = 0; i < r->messages; i++) {
        hub_buf_t *pkt = &r->pkts[i % r->npubs];
        struct peer *p = &r->pubs[i % r->npubs];
        if (r->qos > 0) {
            pid = (uint16_t)(pid == 65535 ? 1 : pid + 1);
            size_t h = 1;
            while (pkt->data[h++] & 0x80)
                ;
            size_t tlen = (size_t)pkt->data[h] << 8 | pkt->data[h + 1];
            pkt->data[h + 2 + tlen] = (uint8_t)(pid >> 8);
            pkt->data[h + 3 + tlen] = (uint8_t)pid;
        }
        hub_mqtt_conn_data(p->c, pkt->data, pkt->len, 1000);
        if (r->qos > 0)
            for (size_t k = 0; k < r->nsubs; k++)
                ack_all(&r->subs[k], &r->scratch);
    }
}

/* The measured part. Not static and not inlined: callgrind toggles on it. */
__attribute__((noinline)) void bench_run(struct run *r);
__attribute__((noinline)) void bench_run(struct run *r)
{
    run_messages(r);
}

static void device_id(char out[40], size_t i)
{
    snprintf(out, 40, "00000000-0000-4000-8000-%012u", (unsigned)(i % 1000000000));
}

/* Publisher i sends its next QoS 1 PUBLISH (packet id from its count of publishes). */
static void publish_next(struct run *r, size_t i, unsigned long long *sent)
{
    hub_buf_t *pkt = &r->pkts[i];
    uint16_t pid = (uint16_t)(sent[i] % 65535 + 1);
    size_t h = 1;
    while (pkt->data[h++] & 0x80)
        ;
    size_t tlen = (size_t)pkt->data[h] << 8 | pkt->data[h + 1];
    pkt->data[h + 2 + tlen] = (uint8_t)(pid >> 8);
    pkt->data[h + 3 + tlen] = (uint8_t)pid;
    hub_mqtt_conn_data(r->pubs[i].c, pkt->data, pkt->len, 1000);
    sent[i]++;
}

/* slow1: rounds in which every publisher with room in its window of 20 publishes once and
 * the subscriber acknowledges 10 deliveries. */
static void run_slow(struct run *r, size_t rounds, struct hub_broker *br)
{
    unsigned long long *sent = calloc(r->npubs, sizeof *sent), published = 0, acked = 0;
    struct peer *svc = &r->subs[0];
    struct hub_broker_stats st0, st1;
    hub_broker_stats(br, &st0);
    for (size_t k = 0; k < rounds; k++) {
        for (size_t i = 0; i < r->npubs; i++) {
            if (sent[i] - r->pubs[i].pubacks < 20) {
                publish_next(r, i, sent);
                published++;
            }
        }
        ack_some(svc, &r->scratch, 10);
    }
    for (size_t i = 0; i < r->npubs; i++)
        acked += r->pubs[i].pubacks;
    hub_broker_stats(br, &st1);
    printf("slow1    qos 1  %zu publisher(s) (window 20) -> 1 subscriber acknowledging 10 per "
           "round, %zu rounds:\n  %llu published, %llu acknowledged to publishers, %llu "
           "delivered, %llu dropped, %zu queued\n",
           r->npubs, rounds, published, acked, svc->publishes,
           st1.dropped_queue - st0.dropped_queue, st1.queued);
    free(sent);
}

static void run_free(struct run *r, struct hub_broker *br)
{
    for (size_t i = 0; i < r->npubs; i++)
        hub_mqtt_conn_closed(r->pubs[i].c, 0);
    for (size_t i = 0; i < r->nsubs; i++)
        hub_mqtt_conn_closed(r->subs[i].c, 0);
    for (size_t i = 0; i < r->npubs; i++)
        hub_buf_free(&r->pkts[i]);
    hub_buf_free(&r->scratch);
    free(r->pkts);
    free(r->pubs);
    free(r->subs);
    hub_broker_free(br);
}

static int scenario(const char *name, size_t messages, size_t conns)
{
    int fanin = strncmp(name, "fanin", 5) == 0 || strcmp(name, "slow1") == 0;
    int qos = name[strlen(name) - 1] - '0';
    struct hub_broker_options o = {
        .max_packet = 65536,
        .max_queued = 1000,
        .max_inflight = 32,
        .connect_timeout = 10,
    };
    struct hub_broker *br = hub_broker_new(&o);
    struct run r = {.messages = messages, .qos = qos};
    r.npubs = fanin ? conns : 1;
    r.nsubs = fanin ? 1 : conns;
    r.pubs = calloc(r.npubs, sizeof *r.pubs);
    r.subs = calloc(r.nsubs, sizeof *r.subs);
    r.pkts = calloc(r.npubs, sizeof *r.pkts);
    if (br == NULL || r.pubs == NULL || r.subs == NULL || r.pkts == NULL)
        return 1;
    uint8_t payload[64];
    memset(payload, 'x', sizeof payload);
    for (size_t i = 0; i < r.npubs; i++) {
        struct peer *p = &r.pubs[i];
        char topic[80];
        p->who.kind = HUB_MQTT_DEVICE;
        device_id(p->who.id, i);
        connect_peer(br, p, p->who.id);
        snprintf(topic, sizeof topic, "devices/%s/telemetry", p->who.id);
        /* A client PUBLISH has the server's layout; packet id 1 is replaced in the run. */
        hub_mqtt_publish_append(&r.pkts[i], topic, strlen(topic), qos, 0, 0, qos ? 1 : 0, payload,
                                sizeof payload);
    }
    for (size_t i = 0; i < r.nsubs; i++) {
        struct peer *p = &r.subs[i];
        char cid[32];
        p->who.kind = HUB_MQTT_SERVICE;
        snprintf(p->who.id, sizeof p->who.id, "5e7c0000-3333-4c1e-8a6e-000000000005");
        p->who.subscribe = svc_sub;
        p->who.publish = svc_pub;
        snprintf(cid, sizeof cid, "consumer-%zu", i);
        connect_peer(br, p, cid);
        subscribe(p, "devices/+/telemetry", 1);
        p->publishes = p->nacks = 0;
    }
    if (strcmp(name, "slow1") == 0) {
        run_slow(&r, messages, br);
        run_free(&r, br);
        return 0;
    }
    /* One message before counting, so that buffers reused across messages exist. */
    size_t warm = r.npubs < 64 ? 64 : r.npubs;
    r.messages = warm;
    run_messages(&r);
    struct hub_broker_stats st0, st1;
    hub_broker_stats(br, &st0);
    r.messages = messages;
    unsigned long long a0 = nalloc;
    bench_run(&r);
    unsigned long long allocs = nalloc - a0;
    hub_broker_stats(br, &st1);
    unsigned long long delivered = st1.msgs_out - st0.msgs_out;
    printf("%-8s qos %d  %zu publisher(s) -> %zu subscriber(s): %zu messages, %llu deliveries, "
           "%llu dropped",
           name, qos, r.npubs, r.nsubs, messages, delivered, st1.dropped_queue - st0.dropped_queue);
    if (COUNT_ALLOCS)
        printf(", %.3f allocations/message\n", (double)allocs / (double)messages);
    else
        printf(", allocations not counted (sanitizer build)\n");
    run_free(&r, br);
    return delivered == (unsigned long long)messages * (fanin ? 1 : conns) ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const char *const all[] = {"fanin0", "fanin1", "fanout0", "fanout1", "slow1"};
    const char *which = argc > 1 ? argv[1] : "all";
    size_t messages = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
    size_t conns = argc > 3 ? strtoul(argv[3], NULL, 10) : 1000;
    int rc = 0, found = 0;
    hub_log_setup(HUB_LOG_ERROR, HUB_LOG_TEXT); /* drop reports would swamp the numbers */
    if (getenv("BROKER_BENCH_SHARED") != NULL && strcmp(getenv("BROKER_BENCH_SHARED"), "1") == 0)
        transport = &sharing;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(which, "all") != 0 && strcmp(which, all[i]) != 0)
            continue;
        found = 1;
        /* Fan-out sends every message to each subscriber: fewer messages, same work. */
        size_t n = strncmp(all[i], "fanout", 6) == 0 ? messages / conns + 1
                   : strcmp(all[i], "slow1") == 0    ? messages / 100
                                                     : messages;
        if (scenario(all[i], n, conns) != 0) {
            fprintf(stderr, "broker-bench: %s: not every message was delivered\n", all[i]);
            rc = 1;
        }
    }
    if (!found) {
        fprintf(stderr, "usage: broker-bench [fanin0|fanin1|fanout0|fanout1|slow1|all] "
                        "[messages] [connections]\n");
        return 2;
    }
    return rc;
}
