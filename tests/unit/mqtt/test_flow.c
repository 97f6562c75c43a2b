/* mqtt/flow.c through the broker over an in-memory transport (peer.h): QoS 1 publishers
 * feeding a slow subscriber get their acknowledgements withheld rather than their messages
 * dropped, the edges of that (own session, offline, paused subscribers, HOLD_MAX_MS), and
 * keepalive while a publisher is paused. */
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
    RUN(test_flow_control);
    RUN(test_flow_edges);
    RUN(test_paused_keepalive);
    HARNESS_EXIT();
}
