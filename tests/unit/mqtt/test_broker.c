/* mqtt/broker over an in-memory transport: the packets routed (one write each, flags and
 * packet ids), the totals of hub_broker_stats against a full walk (hub_broker_check), and
 * flow control of QoS 1 publishers feeding a slow subscriber. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/harness.h"
#include "mqtt/broker.h"
#include "mqtt/codec.h"
#include "util/buf.h"
#include "util/log.h"

#define MAXPKT 4096

/* A client as the transport sees it: every packet written to it, whole. */
struct peer {
    struct hub_mqtt_conn *c;
    struct hub_mqtt_identity who;
    int closed;      /* the broker asked to close */
    int paused;      /* the broker asked to stop reading */
    unsigned writes; /* write calls */
    size_t npkts;    /* packets received */
    uint8_t type[MAXPKT], flags[MAXPKT];
    uint16_t pid[MAXPKT];
    hub_buf_t last; /* the last packet, whole */
    hub_buf_t in;   /* bytes not yet framed */
};

static int t_write(void *tconn, const void *data, size_t len)
{
    struct peer *p = tconn;
    size_t n;
    p->writes++;
    hub_buf_append(&p->in, data, len);
    while (hub_mqtt_frame(p->in.data, p->in.len, SIZE_MAX, &n) == 1) {
        const uint8_t *d = p->in.data;
        size_t h = 1;
        while (d[h++] & 0x80)
            ;
        if (p->npkts < MAXPKT) {
            p->type[p->npkts] = d[0] >> 4;
            p->flags[p->npkts] = d[0] & 15;
            p->pid[p->npkts] = 0;
            if (d[0] >> 4 == HUB_MQTT_PUBLISH && (d[0] & 6)) {
                size_t tl = (size_t)d[h] << 8 | d[h + 1];
                p->pid[p->npkts] = (uint16_t)(d[h + 2 + tl] << 8 | d[h + 3 + tl]);
            } else if (n == 4) {
                p->pid[p->npkts] = (uint16_t)(d[2] << 8 | d[3]);
            }
        }
        p->npkts++;
        p->last.len = 0;
        hub_buf_append(&p->last, d, n);
        memmove(p->in.data, p->in.data + n, p->in.len - n);
        p->in.len -= n;
    }
    return 0;
}

static void t_close(void *tconn)
{
    ((struct peer *)tconn)->closed = 1;
}

static void t_pause(void *tconn, int paused)
{
    ((struct peer *)tconn)->paused = paused;
}

static const struct hub_mqtt_transport transport = {
    .write = t_write, .close = t_close, .pause = t_pause};
static const char *const svc_sub[] = {"devices/+/telemetry", NULL};
static const char *const svc_pub[] = {NULL};
static uint64_t now = 1000;
static uint8_t keepalive_s; /* the keepalive open_peer's CONNECT asks for */

static void feed(struct peer *p, const void *d, size_t n)
{
    hub_mqtt_conn_data(p->c, d, n, now);
}

static void put_str(hub_buf_t *b, const char *s)
{
    uint8_t n[2] = {(uint8_t)(strlen(s) >> 8), (uint8_t)strlen(s)};
    hub_buf_append(b, n, 2);
    hub_buf_append(b, s, strlen(s));
}

static void send_packet(struct peer *p, uint8_t t, const hub_buf_t *body)
{
    uint8_t h[2] = {t, (uint8_t)body->len}; /* bodies here are under 128 bytes */
    hub_buf_t b = {0};
    hub_buf_append(&b, h, 2);
    hub_buf_append(&b, body->data, body->len);
    feed(p, b.data, b.len);
    hub_buf_free(&b);
}

static void open_peer(struct hub_broker *br, struct peer *p, int service, const char *id,
                      const char *client_id, int clean)
{
    hub_buf_t body = {0};
    memset(p, 0, sizeof *p);
    p->who.kind = service ? HUB_MQTT_SERVICE : HUB_MQTT_DEVICE;
    snprintf(p->who.id, sizeof p->who.id, "%s", id);
    if (service) {
        p->who.subscribe = svc_sub;
        p->who.publish = svc_pub;
    }
    p->c = hub_mqtt_conn_open(br, &transport, p, &p->who, now);
    put_str(&body, "MQTT");
    uint8_t v[4] = {4, clean ? 0x02 : 0x00, 0, keepalive_s};
    hub_buf_append(&body, v, 4);
    put_str(&body, client_id);
    send_packet(p, 0x10, &body);
    hub_buf_free(&body);
}

static void close_peer(struct peer *p)
{
    hub_mqtt_conn_closed(p->c, 0);
    hub_buf_free(&p->in);
    hub_buf_free(&p->last);
    p->c = NULL;
}

static void subscribe(struct peer *p, const char *filter, uint8_t qos)
{
    hub_buf_t body = {0};
    uint8_t pid[2] = {0, 1};
    hub_buf_append(&body, pid, 2);
    put_str(&body, filter);
    hub_buf_append(&body, &qos, 1);
    send_packet(p, 0x82, &body);
    hub_buf_free(&body);
}

static void publish(struct peer *p, const char *topic, int qos, int retain, uint16_t pid,
                    const char *payload)
{
    hub_buf_t b = {0};
    hub_mqtt_publish_append(&b, topic, strlen(topic), qos, retain, 0, pid, (const uint8_t *)payload,
                            strlen(payload));
    feed(p, b.data, b.len);
    hub_buf_free(&b);
}

static void puback(struct peer *p, uint16_t pid)
{
    uint8_t a[4];
    feed(p, a, hub_mqtt_ack(a, HUB_MQTT_PUBACK, pid));
}

/* Acknowledges the next QoS 1 delivery p has not acknowledged yet (*acked so far).
 * Returns 0, or -1 when there is none. */
static int ack_next(struct peer *p, size_t *acked)
{
    size_t k = 0;
    for (size_t i = 0; i < p->npkts && i < MAXPKT; i++) {
        if (p->type[i] == HUB_MQTT_PUBLISH && p->flags[i] == 2 && k++ == *acked) {
            (*acked)++;
            puback(p, p->pid[i]);
            return 0;
        }
    }
    return -1;
}

/* Number of packets of type t received by p from index from on. */
static size_t count(const struct peer *p, int t, size_t from)
{
    size_t n = 0;
    for (size_t i = from; i < p->npkts && i < MAXPKT; i++)
        n += p->type[i] == t;
    return n;
}

static struct hub_broker *broker(size_t max_queued, unsigned max_inflight)
{
    struct hub_broker_options o = {
        .max_packet = 65536,
        .max_queued = max_queued,
        .max_inflight = max_inflight,
        .connect_timeout = 10,
    };
    return hub_broker_new(&o);
}

#define DEV_A "0b8e3b8a-1111-4c1e-8a6e-00000000000a"
#define DEV_B "0b8e3b8a-2222-4c1e-8a6e-00000000000b"
#define SVC "5e7c0000-3333-4c1e-8a6e-000000000005"
#define TOPIC_A "devices/" DEV_A "/telemetry"

/* A QoS 0 PUBLISH goes out as one write, byte for byte the client's packet; a QoS 1 message goes to
 * a QoS 0 and a QoS 1 subscriber with the right QoS and packet ids. */
static void test_routing_packets(void)
{
    struct hub_broker *b = broker(100, 10);
    struct peer dev, s0, s1;
    open_peer(b, &s0, 1, SVC, "zero", 1);
    open_peer(b, &s1, 1, SVC, "one", 1);
    open_peer(b, &dev, 0, DEV_A, "dev", 1);
    subscribe(&s0, "devices/+/telemetry", 0);
    subscribe(&s1, "devices/+/telemetry", 1);
    unsigned w0 = s0.writes, w1 = s1.writes;

    publish(&dev, TOPIC_A, 0, 0, 0, "hello");
    hub_buf_t want = {0};
    hub_mqtt_publish_append(&want, TOPIC_A, strlen(TOPIC_A), 0, 0, 0, 0, (const uint8_t *)"hello",
                            5);
    CHECK_EQ(s0.writes, w0 + 1);
    CHECK_EQ(s1.writes, w1 + 1);
    CHECK_EQ(s0.last.len, want.len);
    CHECK(s0.last.len == want.len && memcmp(s0.last.data, want.data, want.len) == 0);
    CHECK(s1.last.len == want.len && memcmp(s1.last.data, want.data, want.len) == 0);

    /* A remaining length that is not minimally encoded goes out minimal. */
    hub_buf_t odd = {0};
    uint8_t hdr[3] = {0x30, (uint8_t)((want.len - 2) | 0x80), 0x00};
    hub_buf_append(&odd, hdr, 3);
    hub_buf_append(&odd, want.data + 2, want.len - 2);
    feed(&dev, odd.data, odd.len);
    CHECK(s0.last.len == want.len && memcmp(s0.last.data, want.data, want.len) == 0);
    CHECK(s1.last.len == want.len && memcmp(s1.last.data, want.data, want.len) == 0);
    hub_buf_free(&odd);
    w0++;
    w1++;

    for (uint16_t i = 1; i <= 3; i++)
        publish(&dev, TOPIC_A, 1, 0, i, "qos1");
    want.len = 0;
    hub_mqtt_publish_append(&want, TOPIC_A, strlen(TOPIC_A), 0, 0, 0, 0, (const uint8_t *)"qos1",
                            4);
    CHECK(s0.last.len == want.len && memcmp(s0.last.data, want.data, want.len) == 0);
    CHECK_EQ(s0.writes, w0 + 4);
    CHECK_EQ(s1.writes, w1 + 4);
    CHECK_EQ(s1.flags[s1.npkts - 1], 2); /* QoS 1, no DUP, no RETAIN */
    CHECK(s1.pid[s1.npkts - 1] != s1.pid[s1.npkts - 2] && s1.pid[s1.npkts - 1] != 0);
    want.len = 0;
    hub_mqtt_publish_append(&want, TOPIC_A, strlen(TOPIC_A), 1, 0, 0, s1.pid[s1.npkts - 1],
                            (const uint8_t *)"qos1", 4);
    CHECK(s1.last.len == want.len && memcmp(s1.last.data, want.data, want.len) == 0);
    CHECK_EQ(count(&dev, HUB_MQTT_PUBACK, 0), 3);

    /* A retained QoS 1 message reaches a new subscription with RETAIN set, at QoS 1. */
    publish(&dev, TOPIC_A, 1, 1, 9, "kept");
    CHECK_EQ(s0.flags[s0.npkts - 1], 0); /* RETAIN only for a new subscription */
    CHECK_EQ(s1.flags[s1.npkts - 1], 2);
    struct peer s2;
    open_peer(b, &s2, 1, SVC, "late", 1);
    subscribe(&s2, "devices/+/telemetry", 2);
    CHECK_EQ(s2.type[s2.npkts - 1], HUB_MQTT_PUBLISH);
    CHECK_EQ(s2.flags[s2.npkts - 1], 3); /* QoS 1, RETAIN */
    CHECK_EQ(hub_broker_check(b), 0);
    hub_buf_free(&want);
    close_peer(&dev);
    close_peer(&s0);
    close_peer(&s1);
    close_peer(&s2);
    hub_broker_free(b);
}

/* Packets split across reads in any way are handled as whole ones: a CONNECT byte by byte,
 * then three PUBLISHes and a PINGREQ in chunks of 7 bytes. */
static void test_partial_input(void)
{
    struct hub_broker *b = broker(100, 10);
    struct peer dev, svc;
    open_peer(b, &svc, 1, SVC, "sub", 1);
    subscribe(&svc, "devices/+/telemetry", 0);
    memset(&dev, 0, sizeof dev);
    dev.who.kind = HUB_MQTT_DEVICE;
    snprintf(dev.who.id, sizeof dev.who.id, "%s", DEV_A);
    dev.c = hub_mqtt_conn_open(b, &transport, &dev, &dev.who, now);
    hub_buf_t body = {0}, all = {0}, one = {0};
    put_str(&body, "MQTT");
    uint8_t v[4] = {4, 0x02, 0, 0};
    hub_buf_append(&body, v, 4);
    put_str(&body, "dev");
    uint8_t h[2] = {0x10, (uint8_t)body.len};
    hub_buf_append(&all, h, 2);
    hub_buf_append(&all, body.data, body.len);
    for (size_t i = 0; i < all.len; i++)
        feed(&dev, all.data + i, 1);
    CHECK_EQ(dev.npkts, 1);
    CHECK_EQ(dev.type[0], HUB_MQTT_CONNACK);
    all.len = 0;
    const char *payloads[3] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++)
        hub_mqtt_publish_append(&all, TOPIC_A, strlen(TOPIC_A), 0, 0, 0, 0,
                                (const uint8_t *)payloads[i], strlen(payloads[i]));
    uint8_t ping[2] = {0xc0, 0};
    hub_buf_append(&all, ping, 2);
    size_t before = svc.npkts;
    for (size_t off = 0; off < all.len; off += 7)
        feed(&dev, all.data + off, all.len - off < 7 ? all.len - off : 7);
    CHECK_EQ(svc.npkts, before + 3);
    hub_mqtt_publish_append(&one, TOPIC_A, strlen(TOPIC_A), 0, 0, 0, 0, (const uint8_t *)"three",
                            5);
    CHECK(svc.last.len == one.len && memcmp(svc.last.data, one.data, one.len) == 0);
    CHECK_EQ(dev.type[dev.npkts - 1], HUB_MQTT_PINGRESP);
    CHECK(!dev.closed);
    hub_buf_free(&body);
    hub_buf_free(&all);
    hub_buf_free(&one);
    close_peer(&dev);
    close_peer(&svc);
    hub_broker_free(b);
}

/* The queued and in-flight totals are kept as they change and always equal a full walk,
 * through deliveries, acknowledgements, disconnection of persistent and clean sessions,
 * takeover and a clean reconnection. */
static void test_stats_totals(void)
{
    struct hub_broker *b = broker(50, 4);
    struct hub_broker_stats st;
    struct peer dev, sa, sb, sa2;
    open_peer(b, &sa, 1, SVC, "a", 0); /* persistent */
    open_peer(b, &sb, 1, SVC, "b", 1);
    open_peer(b, &dev, 0, DEV_A, "dev", 1);
    subscribe(&sa, "devices/+/telemetry", 1);
    subscribe(&sb, "devices/+/telemetry", 1);
    for (uint16_t i = 1; i <= 10; i++)
        publish(&dev, TOPIC_A, 1, 0, i, "x");
    hub_broker_stats(b, &st);
    CHECK_EQ(st.queued, 20);
    CHECK_EQ(st.inflight, 8);
    CHECK_EQ(hub_broker_check(b), 0);
    puback(&sa, sa.pid[sa.npkts - 1]); /* not the oldest: acknowledged anyway */
    puback(&sb, sb.pid[2]);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.queued, 18);
    CHECK_EQ(st.inflight, 8);
    CHECK_EQ(hub_broker_check(b), 0);
    close_peer(&sb); /* clean: its deliveries go */
    close_peer(&sa); /* persistent: kept offline, in flight ones included */
    hub_broker_stats(b, &st);
    CHECK_EQ(st.queued, 9);
    CHECK_EQ(st.inflight, 4);
    CHECK_EQ(st.sessions, 2);
    CHECK_EQ(hub_broker_check(b), 0);
    publish(&dev, TOPIC_A, 1, 0, 11, "offline");
    open_peer(b, &sa, 1, SVC, "a", 0); /* resumes: 4 again in flight with DUP */
    hub_broker_stats(b, &st);
    CHECK_EQ(st.queued, 10);
    CHECK_EQ(st.inflight, 4);
    CHECK_EQ(count(&sa, HUB_MQTT_PUBLISH, 0), 4);
    CHECK_EQ(sa.flags[1], 0x0a); /* DUP, QoS 1 */
    CHECK_EQ(hub_broker_check(b), 0);
    open_peer(b, &sa2, 1, SVC, "a", 1); /* takeover with a clean session */
    CHECK(sa.closed);
    close_peer(&sa);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.queued, 0);
    CHECK_EQ(st.inflight, 0);
    CHECK_EQ(hub_broker_check(b), 0);
    close_peer(&sa2);
    close_peer(&dev);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.connections, 0);
    CHECK_EQ(hub_broker_check(b), 0);
    hub_broker_free(b);
}

/* A QoS 1 publisher faster than its subscriber: once the subscriber's queue is full, the
 * publisher's PUBACKs are withheld (nothing dropped) and come back in order as the
 * subscriber catches up; a publisher with max_inflight withheld has its further messages
 * dropped and counted. */
static void test_flow_control(void)
{
    struct hub_broker *b = broker(8, 4);
    struct hub_broker_stats st;
    struct peer dev, svc;
    open_peer(b, &svc, 1, SVC, "slow", 1);
    open_peer(b, &dev, 0, DEV_A, "dev", 1);
    subscribe(&svc, "devices/+/telemetry", 1);
    for (uint16_t i = 1; i <= 8; i++)
        publish(&dev, TOPIC_A, 1, 0, i, "m");
    CHECK_EQ(count(&dev, HUB_MQTT_PUBACK, 0), 8); /* the queue had room */
    for (uint16_t i = 9; i <= 12; i++)
        publish(&dev, TOPIC_A, 1, 0, i, "m");
    CHECK_EQ(count(&dev, HUB_MQTT_PUBACK, 0), 8); /* withheld */
    CHECK_EQ(dev.paused, 1); /* max_inflight withheld: the transport stops reading */
    CHECK_EQ(svc.paused, 0);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.queued, 12);
    CHECK_EQ(st.dropped_queue, 0);
    CHECK_EQ(st.throttled, 1);
    CHECK_EQ(hub_broker_check(b), 0);

    /* A QoS 0 publish meanwhile is routed at once (not kept, nothing to hold). */
    size_t before = count(&svc, HUB_MQTT_PUBLISH, 0);
    publish(&dev, TOPIC_A, 0, 0, 0, "q0");
    CHECK_EQ(count(&svc, HUB_MQTT_PUBLISH, 0), before + 1);

    /* The subscriber acknowledges in order: at 6 queued (3/4 of 8) the publisher is
     * released, and its four PUBACKs arrive in order. */
    size_t acked = 0;
    for (int i = 0; i < 3; i++)
        ack_next(&svc, &acked);
    CHECK_EQ(count(&dev, HUB_MQTT_PUBACK, 0), 8); /* 9 queued: still held */
    while (count(&dev, HUB_MQTT_PUBACK, 0) == 8 && ack_next(&svc, &acked) == 0)
        ;
    CHECK_EQ(acked, 6);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.queued, 6);
    CHECK_EQ(st.throttled, 0);
    CHECK_EQ(dev.paused, 0);
    CHECK_EQ(count(&dev, HUB_MQTT_PUBACK, 0), 12);
    for (size_t i = 0, k = 1; i < dev.npkts; i++)
        if (dev.type[i] == HUB_MQTT_PUBACK)
            CHECK_EQ(dev.pid[i], k++);
    CHECK_EQ(hub_broker_check(b), 0);

    /* A publisher ignoring the hint gets 4 (max_inflight) more kept; beyond, its messages
     * are dropped (counted) and their acknowledgements still wait in order. */
    for (uint16_t i = 13; i <= 30; i++)
        publish(&dev, TOPIC_A, 1, 0, i, "m");
    hub_broker_stats(b, &st);
    CHECK_EQ(st.queued, 12);
    CHECK_EQ(st.dropped_queue, 12);
    CHECK_EQ(count(&dev, HUB_MQTT_PUBACK, 0), 14); /* 13 and 14 had room */
    CHECK_EQ(hub_broker_check(b), 0);

    /* The subscriber goes away (clean session): the publisher is released at once. */
    CHECK_EQ(dev.paused, 1);
    close_peer(&svc);
    CHECK_EQ(count(&dev, HUB_MQTT_PUBACK, 0), 30);
    CHECK_EQ(dev.paused, 0);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.throttled, 0);
    CHECK_EQ(hub_broker_check(b), 0);
    close_peer(&dev);
    hub_broker_free(b);
}

/* Throttling never blocks on an offline session or the publisher's own (the overflow is
 * dropped and counted), a publisher held for 10 s is released by the tick, and a publisher closing
 * while held leaves nothing behind. */
static void test_flow_edges(void)
{
    struct hub_broker *b = broker(2, 1);
    struct hub_broker_stats st;
    struct peer dev, devb, svc;
    open_peer(b, &svc, 1, SVC, "p", 0);
    open_peer(b, &dev, 0, DEV_A, "dev", 1);
    subscribe(&svc, "devices/+/telemetry", 1);
    close_peer(&svc); /* offline, persistent */
    for (uint16_t i = 1; i <= 5; i++)
        publish(&dev, TOPIC_A, 1, 0, i, "m");
    CHECK_EQ(count(&dev, HUB_MQTT_PUBACK, 0), 5);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.queued, 2);
    CHECK_EQ(st.dropped_queue, 3);
    CHECK_EQ(st.throttled, 0);

    open_peer(b, &svc, 1, SVC, "p", 0); /* back, never acknowledging */
    publish(&dev, TOPIC_A, 1, 0, 6, "m");
    CHECK_EQ(count(&dev, HUB_MQTT_PUBACK, 0), 5);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.throttled, 1);
    CHECK_EQ(hub_broker_check(b), 0);

    /* A device subscribed to its own topic is not held back by its own full session. */
    struct peer self;
    open_peer(b, &self, 0, DEV_B, "self", 1);
    subscribe(&self, "devices/" DEV_B "/#", 1);
    for (uint16_t i = 1; i <= 4; i++)
        publish(&self, "devices/" DEV_B "/x", 1, 0, i, "m");
    CHECK_EQ(count(&self, HUB_MQTT_PUBACK, 0), 4);
    CHECK_EQ(count(&self, HUB_MQTT_PUBLISH, 0), 1); /* in flight: 1 */
    hub_broker_stats(b, &st);
    CHECK_EQ(st.dropped_queue, 5);
    close_peer(&self);

    open_peer(b, &devb, 0, DEV_B, "devb", 1);
    publish(&devb, "devices/" DEV_B "/telemetry", 1, 0, 1, "m");
    CHECK_EQ(count(&devb, HUB_MQTT_PUBACK, 0), 0);
    CHECK_EQ(hub_broker_check(b), 0);
    close_peer(&devb); /* closes while held */
    hub_broker_stats(b, &st);
    CHECK_EQ(st.throttled, 1);
    CHECK_EQ(hub_broker_check(b), 0);

    now += 11000;
    hub_broker_tick(b, now);
    CHECK_EQ(count(&dev, HUB_MQTT_PUBACK, 0), 6);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.throttled, 0);
    CHECK_EQ(hub_broker_check(b), 0);
    close_peer(&dev);
    close_peer(&svc);
    hub_broker_free(b);
}

/* A publisher paused by flow control is not closed for keepalive (its transport does not
 * read it); once released, its keepalive counts again. */
static void test_paused_keepalive(void)
{
    struct hub_broker *b = broker(1, 1);
    struct peer dev, svc;
    open_peer(b, &svc, 1, SVC, "k", 1);
    subscribe(&svc, "devices/+/telemetry", 1);
    keepalive_s = 2;
    open_peer(b, &dev, 0, DEV_A, "dev", 1);
    keepalive_s = 0;
    publish(&dev, TOPIC_A, 1, 0, 1, "m"); /* in flight to svc, which never acknowledges */
    publish(&dev, TOPIC_A, 1, 0, 2, "m"); /* svc full: PUBACK withheld, dev paused */
    CHECK_EQ(dev.paused, 1);
    now += 5000;
    hub_broker_tick(b, now);
    CHECK_EQ(dev.closed, 0); /* 5 s > 1.5 x 2 s, but paused */
    now += 6000;
    hub_broker_tick(b, now); /* held 11 s: released */
    CHECK_EQ(dev.paused, 0);
    CHECK_EQ(dev.closed, 0);
    CHECK_EQ(count(&dev, HUB_MQTT_PUBACK, 0), 2);
    now += 2000;
    hub_broker_tick(b, now);
    CHECK_EQ(dev.closed, 0);
    now += 2000;
    hub_broker_tick(b, now);
    CHECK_EQ(dev.closed, 1); /* 4 s of silence after the release */
    close_peer(&dev);
    close_peer(&svc);
    hub_broker_free(b);
}

int main(void)
{
    hub_log_setup(HUB_LOG_ERROR, HUB_LOG_TEXT);
    RUN(test_routing_packets);
    RUN(test_partial_input);
    RUN(test_stats_totals);
    RUN(test_flow_control);
    RUN(test_flow_edges);
    RUN(test_paused_keepalive);
    HARNESS_EXIT();
}
