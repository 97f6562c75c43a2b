/* mqtt/quota.c: the token bucket, then each quota through the broker over an in-memory
 * transport (peer.h): subscriptions per session (SUBACK 0x80), retained count and bytes per
 * principal and in total (replacement, clearing, restored messages counted), the PUBLISH
 * rate (reading paused, never closed, resumed by the tick) and CONNECTs per minute
 * (CONNACK 3 before any takeover). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/broker.h"
#include "mqtt/codec.h"
#include "mqtt/quota.h"
#include "tests/unit/harness.h"
#include "tests/unit/mqtt/peer.h"
#include "util/buf.h"
#include "util/log.h"

static struct hub_broker *quota_broker(const struct hub_broker_quotas *q)
{
    struct hub_broker_options o = {
        .max_packet = 65536,
        .max_queued = 1000,
        .max_inflight = 100,
        .connect_timeout = 10,
        .quota = *q,
    };
    return hub_broker_new(&o);
}

static unsigned long long refusals(struct hub_broker *b, enum hub_quota q)
{
    struct hub_broker_stats st;
    hub_broker_stats(b, &st);
    return st.quota_refusals[q];
}

static void test_tbucket(void)
{
    struct hub_tbucket t;
    /* 5 per second, a burst of 1 s: a token is 1000 units, 5 units a millisecond. */
    hub_tbucket_init(&t, 5 * 1000, 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(hub_tbucket_take(&t, 1000), 0);
    CHECK_EQ(hub_tbucket_take(&t, 1000), 1); /* in debt */
    CHECK_EQ(hub_tbucket_wait_ms(&t, 5), 200);
    hub_tbucket_refill(&t, 5, 5000, 100);
    CHECK_EQ(hub_tbucket_wait_ms(&t, 5), 100);
    hub_tbucket_refill(&t, 5, 5000, 200);
    CHECK_EQ(t.level, 0);
    CHECK_EQ(hub_tbucket_wait_ms(&t, 5), 0);
    hub_tbucket_refill(&t, 5, 5000, 100000); /* capped at the burst */
    CHECK_EQ(t.level, 5000);
    hub_tbucket_refill(&t, 5, 5000, 50); /* time going back: nothing */
    CHECK_EQ(t.level, 5000);
    /* 3 per minute: try never goes into debt; 20 s gives one back. */
    hub_tbucket_init(&t, 3 * 60000, 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(hub_tbucket_try(&t, 60000), 1);
    CHECK_EQ(hub_tbucket_try(&t, 60000), 0);
    CHECK_EQ(t.level, 0);
    hub_tbucket_refill(&t, 3, 180000, 19999);
    CHECK_EQ(hub_tbucket_try(&t, 60000), 0);
    hub_tbucket_refill(&t, 3, 180000, 20000);
    CHECK_EQ(hub_tbucket_try(&t, 60000), 1);
    /* A huge gap neither overflows nor exceeds the cap. */
    hub_tbucket_init(&t, 1000000000LL * 60 * 1000, 0);
    hub_tbucket_take(&t, 1000000000LL * 60 * 1000 * 2);
    hub_tbucket_refill(&t, 1000000000ull, 1000000000LL * 60 * 1000, UINT64_MAX / 2);
    CHECK_EQ(t.level, 1000000000LL * 60 * 1000);
}

static void test_table(void)
{
    struct hub_quota_table t = {0};
    char id[40];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "dev-%d", i);
        CHECK_EQ(hub_quota_lookup(&t, id, 1), (uint32_t)i + 1);
    }
    CHECK_EQ(t.count, 1000);
    CHECK_EQ(hub_quota_lookup(&t, "dev-517", 0), 518);
    CHECK_EQ(hub_quota_lookup(&t, "dev-1000", 0), 0);
    CHECK_EQ(hub_quota_lookup(&t, "0123456789012345678901234567890123456789", 1), 0); /* > 39 */
    hub_quota_table_free(&t);
}

static void test_subscriptions(void)
{
    struct hub_broker_quotas q = {.max_subscriptions = 3};
    struct hub_broker *b = quota_broker(&q);
    struct peer dev;
    open_peer(b, &dev, 0, DEV_A, "dev", 1);
    subscribe(&dev, "devices/" DEV_A "/a", 1);
    subscribe(&dev, "devices/" DEV_A "/b", 1);
    subscribe(&dev, "devices/" DEV_A "/c", 1);
    CHECK_EQ(dev.last.data[4], 1); /* granted */
    subscribe(&dev, "devices/" DEV_A "/d", 1);
    CHECK_EQ(dev.type[dev.npkts - 1], HUB_MQTT_SUBACK);
    CHECK_EQ(dev.last.data[4], 0x80); /* over the quota */
    CHECK_EQ(refusals(b, HUB_QUOTA_SUBSCRIPTIONS), 1);
    subscribe(&dev, "devices/" DEV_A "/b", 0); /* held already: a QoS change, granted */
    CHECK_EQ(dev.last.data[4], 0);
    CHECK_EQ(refusals(b, HUB_QUOTA_SUBSCRIPTIONS), 1);
    for (int i = 0; i < 100; i++) /* refused again and again: counted each time */
        subscribe(&dev, "devices/" DEV_A "/e", 1);
    CHECK_EQ(refusals(b, HUB_QUOTA_SUBSCRIPTIONS), 101);
    struct hub_broker_stats st;
    hub_broker_stats(b, &st);
    CHECK_EQ(st.subscriptions, 3);
    /* An UNSUBSCRIBE makes room. */
    hub_buf_t body = {0};
    uint8_t pid[2] = {0, 2};
    hub_buf_append(&body, pid, 2);
    put_str(&body, "devices/" DEV_A "/a");
    send_packet(&dev, 0xa2, &body);
    hub_buf_free(&body);
    subscribe(&dev, "devices/" DEV_A "/e", 1);
    CHECK_EQ(dev.last.data[4], 1);
    CHECK_EQ(dev.closed, 0);
    CHECK_EQ(hub_broker_check(b), 0);
    close_peer(&dev);
    hub_broker_free(b);
}

static size_t retained_count(struct hub_broker *b, size_t *bytes)
{
    struct hub_broker_stats st;
    hub_broker_stats(b, &st);
    if (bytes != NULL)
        *bytes = st.retained_bytes;
    return st.retained;
}

static void test_retained(void)
{
    const size_t tl = strlen("devices/" DEV_A "/r1"); /* every topic below has this length */
    struct hub_broker_quotas q = {
        .retained_per_principal = 2,
        .retained_bytes_per_principal = 2 * tl + 40, /* two of 20-byte payloads */
        .retained = 3,
        .retained_bytes = 1000,
    };
    struct hub_broker *b = quota_broker(&q);
    struct peer a, d2, svc;
    size_t bytes;
    open_peer(b, &svc, 1, SVC, "svc", 1);
    subscribe(&svc, "devices/+/telemetry", 0);
    open_peer(b, &a, 0, DEV_A, "a", 1);
    open_peer(b, &d2, 0, DEV_B, "b", 1);
    publish(&a, "devices/" DEV_A "/r1", 1, 1, 1, "0123456789");
    publish(&a, "devices/" DEV_A "/r2", 1, 1, 2, "0123456789");
    CHECK_EQ(retained_count(b, &bytes), 2);
    CHECK_EQ(bytes, 2 * tl + 20);
    publish(&a, "devices/" DEV_A "/r3", 1, 1, 3, "x"); /* a third: over the count */
    CHECK_EQ(retained_count(b, NULL), 2);
    CHECK_EQ(refusals(b, HUB_QUOTA_RETAINED), 1);
    CHECK_EQ(count(&a, HUB_MQTT_PUBACK, 0), 3); /* still acknowledged */
    /* A replacement counts its new size: 20 + 10 fits, 21 + 10 does not. */
    publish(&a, "devices/" DEV_A "/r1", 1, 1, 4, "01234567890123456789");
    CHECK_EQ(retained_count(b, &bytes), 2);
    CHECK_EQ(bytes, 2 * tl + 30);
    publish(&a, "devices/" DEV_A "/r1", 1, 1, 5, "012345678901234567890123456789x");
    CHECK_EQ(refusals(b, HUB_QUOTA_RETAINED_BYTES), 1);
    CHECK_EQ(retained_count(b, &bytes), 2);
    CHECK_EQ(bytes, 2 * tl + 30); /* the store unchanged */
    /* Clearing frees the quota. */
    publish(&a, "devices/" DEV_A "/r2", 1, 1, 6, "");
    CHECK_EQ(retained_count(b, &bytes), 1);
    CHECK_EQ(bytes, tl + 20);
    publish(&a, "devices/" DEV_A "/r3", 1, 1, 7, "x");
    CHECK_EQ(retained_count(b, NULL), 2);
    /* The total: B may store one more (3 in all), not two. */
    publish(&d2, "devices/" DEV_B "/r1", 1, 1, 1, "b");
    publish(&d2, "devices/" DEV_B "/r2", 1, 1, 2, "b");
    CHECK_EQ(retained_count(b, NULL), 3);
    CHECK_EQ(refusals(b, HUB_QUOTA_RETAINED_TOTAL), 1);
    /* A refused retained message is still routed to current subscribers. */
    size_t before = count(&svc, HUB_MQTT_PUBLISH, 0);
    publish(&d2, "devices/" DEV_B "/telemetry", 0, 1, 0, "routed");
    CHECK_EQ(count(&svc, HUB_MQTT_PUBLISH, 0), before + 1);
    CHECK_EQ(refusals(b, HUB_QUOTA_RETAINED_TOTAL), 2);
    CHECK_EQ(a.closed + d2.closed, 0);
    close_peer(&a);
    close_peer(&d2);
    close_peer(&svc);
    hub_broker_free(b);
}

static void test_retained_restore(void)
{
    struct hub_broker_quotas q = {.retained_per_principal = 2, .retained = 100,
                                  .retained_bytes = 1 << 20, .retained_bytes_per_principal = 1 << 20};
    struct hub_broker *b = quota_broker(&q);
    /* Restored: counted to the device of the topic, never refused (3 > 2). */
    for (int i = 0; i < 3; i++) {
        char t[80];
        snprintf(t, sizeof t, "devices/" DEV_A "/s%d", i);
        CHECK_EQ(hub_broker_restore_retained(b, t, strlen(t), (const uint8_t *)"v", 1, 1,
                                             (uint64_t)i + 1),
                 0);
    }
    CHECK_EQ(hub_broker_restore_retained(b, "other/x", 7, (const uint8_t *)"v", 1, 1, 9), 0);
    /* Not an id (a control character): charged to the server, like "other/x". */
    CHECK_EQ(hub_broker_restore_retained(b, "devices/a\nb/x", 13, (const uint8_t *)"v", 1, 1, 10),
             0);
    CHECK_EQ(retained_count(b, NULL), 5);
    struct hub_broker_stats st;
    hub_broker_stats(b, &st);
    CHECK_EQ(st.quota_principals, 2); /* DEV_A and the server */
    CHECK_EQ(hub_broker_check(b), 0);
    struct peer a;
    open_peer(b, &a, 0, DEV_A, "a", 1);
    publish(&a, "devices/" DEV_A "/new", 1, 1, 1, "v");
    CHECK_EQ(refusals(b, HUB_QUOTA_RETAINED), 1); /* its restored ones count */
    publish(&a, "devices/" DEV_A "/s0", 1, 1, 2, "");
    publish(&a, "devices/" DEV_A "/s1", 1, 1, 3, "");
    CHECK_EQ(retained_count(b, NULL), 3);
    publish(&a, "devices/" DEV_A "/new", 1, 1, 4, "v"); /* 1 left + 1 = 2 */
    CHECK_EQ(retained_count(b, NULL), 4);
    CHECK_EQ(hub_broker_check(b), 0);
    CHECK_EQ(refusals(b, HUB_QUOTA_RETAINED), 1);
    close_peer(&a);
    hub_broker_free(b);
}

static void test_rate(void)
{
    struct hub_broker_quotas q = {.rate_msgs = 10, .rate_bytes = 1000000, .burst_s = 1};
    struct hub_broker *b = quota_broker(&q);
    struct peer a, s;
    now = 1000;
    open_peer(b, &a, 0, DEV_A, "a", 1);
    open_peer(b, &s, 1, SVC, "s", 1); /* services have no rate */
    for (uint16_t i = 1; i <= 10; i++)
        publish(&a, TOPIC_A, 1, 0, i, "m");
    CHECK_EQ(a.paused, 0);
    publish(&a, TOPIC_A, 1, 0, 11, "m");
    CHECK_EQ(a.paused, 1); /* in debt: not read */
    CHECK_EQ(count(&a, HUB_MQTT_PUBACK, 0), 11); /* what was read is acknowledged */
    CHECK_EQ(refusals(b, HUB_QUOTA_RATE_MSGS), 1);
    struct hub_broker_stats st;
    hub_broker_stats(b, &st);
    CHECK_EQ(st.rate_paused, 1);
    now += 50; /* 0.5 token back, 1 owed */
    hub_broker_tick(b, now);
    CHECK_EQ(a.paused, 1);
    now += 60;
    hub_broker_tick(b, now);
    CHECK_EQ(a.paused, 0);
    CHECK_EQ(a.closed, 0);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.rate_paused, 0);
    for (uint16_t i = 1; i <= 100; i++)
        publish(&s, "x", 0, 0, 0, "m"); /* a service: never paused (ACL drops these) */
    CHECK_EQ(s.paused, 0);
    /* Bytes: a packet larger than the bucket pauses it for as long as it owes. */
    now += 100000;
    hub_broker_tick(b, now);
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    struct hub_broker_quotas qb = {.rate_bytes = 1000, .burst_s = 1};
    struct hub_broker *b2 = quota_broker(&qb);
    struct peer c;
    open_peer(b2, &c, 0, DEV_B, "c", 1);
    publish(&c, "devices/" DEV_B "/x", 0, 0, 0, big);
    CHECK_EQ(c.paused, 1);
    CHECK_EQ(refusals(b2, HUB_QUOTA_RATE_BYTES), 1);
    now += 1000;
    hub_broker_tick(b2, now);
    CHECK_EQ(c.paused, 1); /* ~2 s owed */
    now += 2100;
    hub_broker_tick(b2, now);
    CHECK_EQ(c.paused, 0);
    /* Paused by its rate, a connection whose keepalive passes is not closed. */
    close_peer(&c);
    close_peer(&a);
    close_peer(&s);
    hub_broker_free(b);
    hub_broker_free(b2);
}

static void test_connects(void)
{
    struct hub_broker_quotas q = {.connects_per_min = 2};
    struct hub_broker *b = quota_broker(&q);
    struct peer p1, p2, p3, p4;
    now = 1000;
    open_peer(b, &p1, 0, DEV_A, "a", 1);
    open_peer(b, &p2, 0, DEV_A, "a", 1); /* takes p1 over */
    CHECK_EQ(p1.closed, 1);
    CHECK_EQ(p2.last.data[3], 0);
    open_peer(b, &p3, 0, DEV_A, "a", 1); /* the third in a minute */
    CHECK_EQ(p3.type[0], HUB_MQTT_CONNACK);
    CHECK_EQ(p3.last.data[3], 3); /* server unavailable */
    CHECK_EQ(p3.closed, 1);
    CHECK_EQ(p2.closed, 0); /* not taken over */
    CHECK_EQ(refusals(b, HUB_QUOTA_CONNECTS), 1);
    CHECK_EQ(hub_mqtt_conn_close_reason(p3.c), HUB_CLOSE_REFUSED);
    now += 30000; /* one back */
    open_peer(b, &p4, 0, DEV_A, "a", 1);
    CHECK_EQ(p4.last.data[3], 0);
    CHECK_EQ(p2.closed, 1);
    /* Another device is not affected; the table forgets an idle principal. */
    struct peer o;
    open_peer(b, &o, 0, DEV_B, "b", 1);
    CHECK_EQ(o.last.data[3], 0);
    struct hub_broker_stats st;
    hub_broker_stats(b, &st);
    CHECK_EQ(st.quota_principals, 2);
    now += 61000;
    hub_broker_tick(b, now);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.quota_principals, 0);
    close_peer(&p1);
    close_peer(&p2);
    close_peer(&p3);
    close_peer(&p4);
    close_peer(&o);
    hub_broker_free(b);
}

int main(void)
{
    hub_log_setup(HUB_LOG_ERROR, HUB_LOG_TEXT);
    RUN(test_tbucket);
    RUN(test_table);
    RUN(test_subscriptions);
    RUN(test_retained);
    RUN(test_retained_restore);
    RUN(test_rate);
    RUN(test_connects);
    HARNESS_EXIT();
}
