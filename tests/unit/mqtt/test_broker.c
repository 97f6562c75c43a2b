/* mqtt/broker over an in-memory transport (peer.h): the packets routed (one write each,
 * flags and packet ids), partial input, and the totals of hub_broker_stats against a full
 * walk (hub_broker_check). Flow control is in test_flow.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/broker.h"
#include "mqtt/codec.h"
#include "tests/unit/harness.h"
#include "tests/unit/mqtt/peer.h"
#include "util/buf.h"
#include "util/log.h"

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
int main(void)
{
    hub_log_setup(HUB_LOG_ERROR, HUB_LOG_TEXT);
    RUN(test_routing_packets);
    RUN(test_partial_input);
    RUN(test_stats_totals);
    HARNESS_EXIT();
}
