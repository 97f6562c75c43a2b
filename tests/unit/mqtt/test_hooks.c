/* The durability and cluster hooks of mqtt/broker (hooks.c, restore.c, flow.c's holds,
 * connect.c's parked CONNECTs) over the in-memory transport of peer.h: the sequence of hook
 * calls, acknowledgements held until released and kept in packet order, injected messages
 * and their de-duplication, restored sessions resumed with DUP and PUBREL, parked CONNECTs
 * resumed, refused or timed out, sessions released to another node, session expiry. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/broker.h"
#include "mqtt/codec.h"
#include "mqtt/msg.h"
#include "tests/unit/harness.h"
#include "tests/unit/mqtt/peer.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/log.h"

#define SKEY(cid) "s:" SVC "/" cid
#define DKEY_A "d:" DEV_A

/* ---- a recorder of hook calls ------------------------------------------------------------ */

static char events[8192];   /* "name args;" per call */
static unsigned hold_every; /* accepted holds messages whose payload starts with 'h' */
static int claim_answer;    /* what claim returns */
static struct hub_broker *cur;
static int release_in_accepted; /* accepted releases its own hold at once */
static int release_in_queued;   /* queued releases the message's hold (before accepted) */
static uint64_t ids[64];        /* ids seen by accepted */
static size_t nids;

static void ev(const char *fmt, ...)
{
    size_t n = strlen(events);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(events + n, sizeof events - n, fmt, ap);
    va_end(ap);
    n = strlen(events);
    if (n + 1 < sizeof events) {
        events[n] = ';';
        events[n + 1] = 0;
    }
}

/* Keys are long: the recorder writes "S/<client id>" for services and "D" for device A. */
static const char *k(const char *key)
{
    static char buf[4][64];
    static int i;
    i = (i + 1) % 4;
    if (strncmp(key, "s:" SVC "/", strlen("s:" SVC "/")) == 0)
        snprintf(buf[i], sizeof buf[i], "S/%s", key + strlen("s:" SVC "/"));
    else if (strcmp(key, DKEY_A) == 0)
        snprintf(buf[i], sizeof buf[i], "D");
    else
        snprintf(buf[i], sizeof buf[i], "%s", key);
    return buf[i];
}

static void h_open(void *ctx, const char *key, uint32_t expiry_s)
{
    (void)ctx;
    ev("open %s %u", k(key), expiry_s == UINT32_MAX ? 0 : expiry_s);
}
static void h_gone(void *ctx, const char *key)
{
    (void)ctx;
    ev("gone %s", k(key));
}
static void h_sub(void *ctx, const char *key, int persistent, const char *f, size_t flen,
                  uint8_t qos)
{
    (void)ctx;
    ev("sub %s %d %.*s %u", k(key), persistent, (int)flen, f, qos);
}
static void h_unsub(void *ctx, const char *key, int persistent, const char *f, size_t flen)
{
    (void)ctx;
    ev("unsub %s %d %.*s", k(key), persistent, (int)flen, f);
}
static void h_queued(void *ctx, const char *key, const struct hub_msg *m, uint8_t qos, int remote)
{
    (void)ctx;
    ev("queued %s %llu %u %d", k(key), (unsigned long long)m->id, qos, remote);
    if (release_in_queued)
        hub_broker_release(cur, m->id);
}
static void h_delivered(void *ctx, const char *key, uint64_t id)
{
    (void)ctx;
    ev("delivered %s %llu", k(key), (unsigned long long)id);
}
static void h_incoming(void *ctx, const char *key, uint16_t pid, int added)
{
    (void)ctx;
    ev("incoming %s %u %d", k(key), pid, added);
}
static void h_retained(void *ctx, const char *topic, size_t tlen, const struct hub_msg *m,
                       int remote)
{
    (void)ctx;
    ev("retained %.*s %llu %d", (int)tlen, topic, m ? (unsigned long long)m->id : 0ull, remote);
}
static unsigned h_accepted(void *ctx, const struct hub_msg *m, const char *origin)
{
    (void)ctx;
    ev("accepted %llu %s", (unsigned long long)m->id, origin ? "dev" : "-");
    if (nids < 64)
        ids[nids++] = m->id;
    unsigned hold = hold_every && m->payload_len > 0 && m->payload[0] == 'h';
    if (hold && release_in_accepted)
        hub_broker_release(cur, m->id);
    return hold;
}
static void h_durable(void *ctx, uint64_t id)
{
    (void)ctx;
    ev("durable %llu", (unsigned long long)id);
}
static int h_claim(void *ctx, const char *key)
{
    (void)ctx;
    ev("claim %s", k(key));
    return claim_answer;
}

static const struct hub_broker_hooks hooks = {
    .session_open = h_open,
    .session_gone = h_gone,
    .subscribed = h_sub,
    .unsubscribed = h_unsub,
    .queued = h_queued,
    .delivered = h_delivered,
    .incoming = h_incoming,
    .retained = h_retained,
    .accepted = h_accepted,
    .claim = h_claim,
    .durable = h_durable,
};

static uint64_t next_id_cb(void *ctx)
{
    return ++*(uint64_t *)ctx;
}

static uint64_t id_counter;

/* A broker with the recording hooks, ids from 7 << 32 up. */
static struct hub_broker *hbroker(size_t max_queued, unsigned max_inflight, uint32_t expiry_s)
{
    struct hub_broker_options o = {
        .max_packet = 65536,
        .max_queued = max_queued,
        .max_inflight = max_inflight,
        .connect_timeout = 10,
        .next_id = next_id_cb,
        .next_id_ctx = &id_counter,
        .session_expiry_s = expiry_s,
    };
    id_counter = 7ull << 32;
    events[0] = 0;
    hold_every = 0;
    claim_answer = 0;
    release_in_accepted = release_in_queued = 0;
    nids = 0;
    cur = hub_broker_new(&o);
    hub_broker_set_hooks(cur, &hooks);
    return cur;
}

static void pubrel(struct peer *p, uint16_t pid)
{
    uint8_t a[4];
    feed(p, a, hub_mqtt_ack(a, HUB_MQTT_PUBREL, pid));
}

static void unsubscribe(struct peer *p, const char *filter)
{
    hub_buf_t body = {0};
    uint8_t pid[2] = {0, 2};
    hub_buf_append(&body, pid, 2);
    put_str(&body, filter);
    send_packet(p, 0xa2, &body);
    hub_buf_free(&body);
}

/* The packet ids of p's packets of type t from index from on, as "1,2,3". */
static const char *pids(const struct peer *p, int t, size_t from)
{
    static char buf[512];
    buf[0] = 0;
    for (size_t i = from; i < p->npkts && i < MAXPKT; i++)
        if (p->type[i] == t)
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%u", buf[0] ? "," : "",
                     p->pid[i]);
    return buf;
}

#define ID(n) ((7ull << 32) + (n))

/* ---- tests ------------------------------------------------------------------------------ */

/* Which hook is called when, with what: a persistent and a clean session, QoS 1 and 2,
 * retained set and cleared, a will, a clean start ending a persistent session. */
static void test_hook_sequence(void)
{
    struct hub_broker *b = hbroker(100, 10, 0);
    struct peer svc, cl, dev;
    open_peer(b, &svc, 1, SVC, "p", 0);
    CHECK_STR(events, "claim S/p;open S/p 0;");
    events[0] = 0;
    subscribe(&svc, "devices/+/telemetry", 2);
    open_peer(b, &cl, 1, SVC, "c", 1);
    subscribe(&cl, "devices/+/telemetry", 1);
    CHECK_STR(events, "sub S/p 1 devices/+/telemetry 2;sub S/c 0 devices/+/telemetry 1;");

    events[0] = 0;
    open_peer(b, &dev, 0, DEV_A, "dev", 1); /* clean: no claim, no open */
    publish(&dev, TOPIC_A, 1, 0, 1, "a");
    CHECK_STR(events, "queued S/p 30064771073 1 0;accepted 30064771073 dev;");
    CHECK_EQ(count(&dev, HUB_MQTT_PUBACK, 0), 1);
    events[0] = 0;
    size_t acked = 0;
    ack_next(&svc, &acked);
    ack_next(&cl, &acked);
    CHECK_STR(events, "delivered S/p 30064771073;");

    /* QoS 0: an id too, accepted, nothing queued. */
    events[0] = 0;
    publish(&dev, TOPIC_A, 0, 0, 0, "z");
    CHECK_STR(events, "accepted 30064771074 dev;");

    /* Retained set, then cleared (an empty payload). */
    events[0] = 0;
    publish(&dev, "devices/" DEV_A "/state", 1, 1, 2, "on");
    publish(&dev, "devices/" DEV_A "/state", 1, 1, 3, "");
    CHECK_STR(events, "retained devices/" DEV_A "/state 30064771075 0;accepted 30064771075 dev;"
                      "retained devices/" DEV_A "/state 0 0;accepted 30064771076 dev;");
    close_peer(&dev);

    /* QoS 2 from a persistent device session: the packet id is stored until PUBREL. */
    open_peer(b, &dev, 0, DEV_A, "dev", 0);
    events[0] = 0;
    publish(&dev, "devices/" DEV_A "/x", 2, 0, 9, "q2");
    publish(&dev, "devices/" DEV_A "/x", 2, 0, 9, "q2"); /* duplicate: PUBREC only */
    pubrel(&dev, 9);
    CHECK_STR(events, "incoming D 9 1;accepted 30064771077 dev;incoming D 9 0;");
    CHECK_EQ(count(&dev, HUB_MQTT_PUBREC, 0), 2);
    CHECK_EQ(count(&dev, HUB_MQTT_PUBCOMP, 0), 1);

    /* The will: an id, accepted (origin the device). */
    uint8_t will_connect[] = {0x10, 0, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x06,
                              0,    0, 0, 1, 'w', 0,   0,   0,   1, 'x'};
    const char *wt = "devices/" DEV_A "/will";
    hub_buf_t wc = {0};
    hub_buf_append(&wc, will_connect, 15);
    uint8_t tl[2] = {0, (uint8_t)strlen(wt)};
    hub_buf_append(&wc, tl, 2);
    hub_buf_append(&wc, wt, strlen(wt));
    hub_buf_append(&wc, will_connect + 17, 3);
    wc.data[1] = (uint8_t)(wc.len - 2);
    close_peer(&dev);
    events[0] = 0;
    struct peer wp;
    memset(&wp, 0, sizeof wp);
    wp.who.kind = HUB_MQTT_DEVICE;
    snprintf(wp.who.id, sizeof wp.who.id, "%s", DEV_A);
    wp.c = hub_mqtt_conn_open(b, &transport, &wp, &wp.who, now);
    feed(&wp, wc.data, wc.len);
    hub_buf_free(&wc);
    CHECK_EQ(wp.type[0], HUB_MQTT_CONNACK);
    CHECK_EQ(wp.pid[0], 0); /* a clean start: D ended, no session present */
    CHECK_STR(events, "gone D;");
    events[0] = 0;
    close_peer(&wp); /* vanished: the will goes out */
    CHECK_STR(events, "accepted 30064771078 dev;");

    /* A clean start of p: its filters leave the trie, then the session is gone. */
    events[0] = 0;
    close_peer(&svc);
    open_peer(b, &svc, 1, SVC, "p", 1);
    CHECK_STR(events, "unsub S/p 0 devices/+/telemetry;gone S/p;");
    events[0] = 0;
    unsubscribe(&cl, "devices/+/telemetry");
    subscribe(&cl, "devices/+/telemetry", 0);
    close_peer(&cl); /* a clean session ends: its filters leave, no gone */
    CHECK_STR(events, "unsub S/c 0 devices/+/telemetry;sub S/c 0 devices/+/telemetry 0;"
                      "unsub S/c 0 devices/+/telemetry;");
    CHECK_EQ(hub_broker_check(b), 0);
    close_peer(&svc);
    hub_broker_free(b);
}

/* PUBACK/PUBREC wait for every hold, in packet order across held and unheld packets; a
 * publisher with max_inflight held is paused; a release during accepted counts; a
 * publisher closing forgets its holds. */
static void test_ack_holds(void)
{
    struct hub_broker *b = hbroker(100, 4, 0);
    struct hub_broker_stats st;
    struct peer dev;
    hold_every = 1;
    open_peer(b, &dev, 0, DEV_A, "dev", 1);
    publish(&dev, TOPIC_A, 1, 0, 1, "h1"); /* ID(1) held */
    publish(&dev, TOPIC_A, 1, 0, 2, "u2"); /* ID(2) not held, waits behind 1 */
    publish(&dev, TOPIC_A, 2, 0, 3, "h3"); /* ID(3) held (PUBREC) */
    publish(&dev, TOPIC_A, 0, 0, 0, "h0"); /* QoS 0: never held */
    CHECK_EQ(count(&dev, HUB_MQTT_PUBACK, 0) + count(&dev, HUB_MQTT_PUBREC, 0), 0);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.held_acks, 2);
    CHECK_EQ(st.throttled, 0); /* holds are not flow control */
    CHECK_EQ(hub_broker_check(b), 0);
    hub_broker_release(b, ID(3));  /* out of order: nothing goes before 1 */
    CHECK_EQ(dev.npkts, 1);        /* the CONNACK only */
    hub_broker_release(b, ID(99)); /* unknown: ignored */
    hub_broker_release(b, ID(1));
    CHECK_STR(pids(&dev, HUB_MQTT_PUBACK, 0), "1,2");
    CHECK_STR(pids(&dev, HUB_MQTT_PUBREC, 0), "3");
    hub_broker_stats(b, &st);
    CHECK_EQ(st.held_acks, 0);
    CHECK_EQ(st.throttled, 0);
    CHECK_EQ(hub_broker_check(b), 0);

    /* Unheld after held: order kept; four withheld: reading paused until one goes. */
    publish(&dev, TOPIC_A, 1, 0, 10, "h"); /* ID(5) */
    publish(&dev, TOPIC_A, 1, 0, 11, "u");
    publish(&dev, TOPIC_A, 1, 0, 12, "h"); /* ID(7) */
    CHECK_EQ(dev.paused, 0);
    publish(&dev, TOPIC_A, 1, 0, 13, "u");
    CHECK_EQ(dev.paused, 1);
    hub_broker_release(b, ID(7));
    CHECK_EQ(dev.paused, 1);
    hub_broker_release(b, ID(5));
    CHECK_EQ(dev.paused, 0);
    CHECK_STR(pids(&dev, HUB_MQTT_PUBACK, 0), "1,2,10,11,12,13");
    CHECK_EQ(hub_broker_check(b), 0);

    /* A hold released by the hook itself during accepted: acknowledged at once. */
    release_in_accepted = 1;
    publish(&dev, TOPIC_A, 1, 0, 20, "h");
    CHECK_STR(pids(&dev, HUB_MQTT_PUBACK, 0), "1,2,10,11,12,13,20");
    release_in_accepted = 0;

    /* ... or by an earlier hook of the same message (queued, on a persistent session). */
    struct peer svc;
    open_peer(b, &svc, 1, SVC, "p", 0);
    subscribe(&svc, "devices/+/telemetry", 1);
    release_in_queued = 1;
    publish(&dev, TOPIC_A, 1, 0, 22, "h");
    CHECK_STR(pids(&dev, HUB_MQTT_PUBACK, 0), "1,2,10,11,12,13,20,22");
    release_in_queued = 0;
    close_peer(&svc);
    CHECK_EQ(hub_broker_check(b), 0);

    /* Closing while held: the holds are forgotten, a late release finds nothing. */
    publish(&dev, TOPIC_A, 1, 0, 21, "h"); /* ID(11) */
    hub_broker_stats(b, &st);
    CHECK_EQ(st.held_acks, 1);
    close_peer(&dev);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.held_acks, 0);
    CHECK_EQ(st.throttled, 0);
    hub_broker_release(b, ID(11));
    CHECK_EQ(hub_broker_check(b), 0);
    hub_broker_free(b);
}

/* Holds and flow control together: a publisher waiting on a full subscriber and holding
 * store holds gets its acknowledgements only when both let them go, in order. */
static void test_holds_with_flow(void)
{
    struct hub_broker *b = hbroker(2, 8, 0);
    struct peer dev, svc;
    hold_every = 1;
    open_peer(b, &svc, 1, SVC, "slow", 1);
    subscribe(&svc, "devices/+/telemetry", 1);
    open_peer(b, &dev, 0, DEV_A, "dev", 1);
    publish(&dev, TOPIC_A, 1, 0, 1, "h"); /* ID(1): held by the hook */
    publish(&dev, TOPIC_A, 1, 0, 2, "u"); /* queue has room: waits behind 1 only */
    publish(&dev, TOPIC_A, 1, 0, 3, "u"); /* svc full: flow control too */
    CHECK_EQ(count(&dev, HUB_MQTT_PUBACK, 0), 0);
    hub_broker_release(b, ID(1));
    CHECK_STR(pids(&dev, HUB_MQTT_PUBACK, 0), "1,2"); /* 3 waits for the subscriber */
    CHECK_EQ(hub_broker_check(b), 0);
    size_t acked = 0;
    ack_next(&svc, &acked);
    ack_next(&svc, &acked);
    CHECK_STR(pids(&dev, HUB_MQTT_PUBACK, 0), "1,2,3");
    CHECK_EQ(hub_broker_check(b), 0);

    /* Held by the hook and by flow control: HOLD_MAX_MS ends the wait, not the hold. */
    publish(&dev, TOPIC_A, 1, 0, 4, "u");
    publish(&dev, TOPIC_A, 1, 0, 5, "h"); /* ID(5), svc full again */
    publish(&dev, TOPIC_A, 1, 0, 6, "u");
    now += 11000;
    hub_broker_tick(b, now);
    CHECK_STR(pids(&dev, HUB_MQTT_PUBACK, 0), "1,2,3,4");
    hub_broker_release(b, ID(5));
    CHECK_STR(pids(&dev, HUB_MQTT_PUBACK, 0), "1,2,3,4,5,6");
    CHECK_EQ(hub_broker_check(b), 0);
    close_peer(&dev);
    close_peer(&svc);
    hub_broker_free(b);
}

/* Injected messages reach local sessions with their origin id, accepted is not called,
 * queued and retained say remote, and an id seen lately is ignored. */
static void test_inject(void)
{
    struct hub_broker *b = hbroker(100, 10, 0);
    struct hub_broker_stats st;
    struct peer svc;
    open_peer(b, &svc, 1, SVC, "p", 0);
    subscribe(&svc, "devices/+/telemetry", 1);
    events[0] = 0;
    const uint8_t pl[] = "x";
    CHECK_EQ(hub_broker_inject(b, TOPIC_A, strlen(TOPIC_A), pl, 1, 1, 0, 77), 1);
    CHECK_STR(events, "queued S/p 77 1 1;");
    CHECK_EQ(count(&svc, HUB_MQTT_PUBLISH, 0), 1);
    CHECK_EQ(hub_broker_inject(b, TOPIC_A, strlen(TOPIC_A), pl, 1, 1, 0, 77), 0);
    CHECK_EQ(count(&svc, HUB_MQTT_PUBLISH, 0), 1);
    CHECK_EQ(
        hub_broker_inject(b, "devices/" DEV_A "/r", strlen("devices/" DEV_A "/r"), pl, 1, 1, 1, 78),
        0);
    CHECK(strstr(events, "retained devices/" DEV_A "/r 78 1;") != NULL);
    CHECK(strstr(events, "accepted") == NULL);
    CHECK_EQ(hub_broker_inject(b, "a/+", 3, pl, 1, 1, 0, 79), HUB_EINVAL);
    CHECK_EQ(hub_broker_inject(b, "a", 1, pl, 1, 3, 0, 79), HUB_EINVAL);
    /* QoS 0 and id 0 are never de-duplicated. */
    CHECK_EQ(hub_broker_inject(b, TOPIC_A, strlen(TOPIC_A), pl, 1, 0, 0, 77), 1);
    CHECK_EQ(hub_broker_inject(b, TOPIC_A, strlen(TOPIC_A), pl, 1, 1, 0, 0), 1);
    CHECK_EQ(hub_broker_inject(b, TOPIC_A, strlen(TOPIC_A), pl, 1, 1, 0, 0), 1);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.injected, 5);
    CHECK_EQ(st.inject_dupes, 1);
    /* The ring is bounded: 16384 newer ids later, 77 is new again. */
    for (uint64_t i = 0; i < 16384; i++)
        hub_broker_inject(b, "other", 5, pl, 1, 1, 0, 1000 + i);
    CHECK_EQ(hub_broker_inject(b, "other", 5, pl, 1, 1, 0, 1000 + 16383), 0);
    CHECK_EQ(hub_broker_inject(b, TOPIC_A, strlen(TOPIC_A), pl, 1, 1, 0, 77), 1);
    CHECK_EQ(hub_broker_check(b), 0);
    close_peer(&svc);
    hub_broker_free(b);
}

/* A session restored offline resumes at CONNECT: session present, the in-flight delivery
 * again with DUP and its packet id, PUBREL for the released QoS 2 one, then the queued one;
 * a restored QoS 2 id makes a resent PUBLISH a duplicate; restored retained messages and
 * subscriptions route. */
static void test_restore_resume(void)
{
    struct hub_broker *b = hbroker(3, 10, 0);
    const char *t = TOPIC_A;
    const uint8_t pl[] = "r";
    CHECK_EQ(hub_broker_restore_sub(b, SKEY("r"), "devices/+/telemetry", 1), HUB_ENOTFOUND);
    CHECK_EQ(hub_broker_restore_session(b, SKEY("r"), UINT32_MAX), 0);
    CHECK_EQ(hub_broker_restore_session(b, SKEY("r"), UINT32_MAX), 0); /* again: kept */
    CHECK_EQ(hub_broker_restore_sub(b, SKEY("r"), "devices/+/telemetry", 1), 0);
    CHECK_EQ(hub_broker_restore_sub(b, SKEY("r"), "devices/#/x", 1), HUB_EINVAL);
    /* In arrival order, the queued one first: in-flight ones still go before it. */
    CHECK_EQ(hub_broker_restore_delivery(b, SKEY("r"), t, strlen(t), pl, 1, 1, 103, 0, 0), 0);
    CHECK_EQ(hub_broker_restore_delivery(b, SKEY("r"), t, strlen(t), pl, 1, 1, 101, 1, 5), 0);
    CHECK_EQ(hub_broker_restore_delivery(b, SKEY("r"), t, strlen(t), pl, 1, 2, 102, 2, 6), 0);
    CHECK_EQ(hub_broker_restore_delivery(b, SKEY("r"), t, strlen(t), pl, 1, 1, 104, 0, 0), 1);
    CHECK(strstr(events, "delivered S/r 104;") != NULL); /* over max_queued: dropped */
    CHECK_EQ(hub_broker_restore_incoming(b, SKEY("r"), 9), 0);
    CHECK_EQ(hub_broker_restore_retained(b, "devices/" DEV_A "/state",
                                         strlen("devices/" DEV_A "/state"), pl, 1, 1, 55),
             0);
    CHECK_EQ(hub_broker_check(b), 0);
    struct hub_broker_stats st;
    hub_broker_stats(b, &st);
    CHECK_EQ(st.sessions, 1);
    CHECK_EQ(st.queued, 3);
    CHECK_EQ(st.inflight, 2);
    CHECK_EQ(st.retained, 1);
    CHECK(strstr(events, "sub S/r 0 devices/+/telemetry 1;") != NULL);
    CHECK(strstr(events, "queued") == NULL && strstr(events, "retained") == NULL);

    struct peer svc;
    open_peer(b, &svc, 1, SVC, "r", 0); /* in memory: no claim */
    CHECK_EQ(svc.type[0], HUB_MQTT_CONNACK);
    CHECK_EQ(svc.pid[0], 0x0100); /* session present */
    CHECK_EQ(svc.type[1], HUB_MQTT_PUBLISH);
    CHECK_EQ(svc.flags[1], 0x0a); /* DUP, QoS 1 */
    CHECK_EQ(svc.pid[1], 5);
    CHECK_EQ(svc.type[2], HUB_MQTT_PUBREL);
    CHECK_EQ(svc.pid[2], 6);
    CHECK_EQ(svc.type[3], HUB_MQTT_PUBLISH);
    CHECK_EQ(svc.flags[3], 0x02); /* the queued one: no DUP */
    CHECK(svc.pid[3] != 5 && svc.pid[3] != 6 && svc.pid[3] != 0);
    CHECK(strstr(events, "claim") == NULL);
    events[0] = 0;
    puback(&svc, 5);
    uint8_t a[4];
    feed(&svc, a, hub_mqtt_ack(a, HUB_MQTT_PUBCOMP, 6));
    CHECK_STR(events, "delivered S/r 101;delivered S/r 102;");

    /* The restored subscription routes a device's message. */
    struct peer dev;
    open_peer(b, &dev, 0, DEV_A, "dev", 1);
    size_t before = count(&svc, HUB_MQTT_PUBLISH, 0);
    publish(&dev, TOPIC_A, 1, 0, 1, "live");
    CHECK_EQ(count(&svc, HUB_MQTT_PUBLISH, 0), before + 1);
    CHECK_EQ(hub_broker_check(b), 0);
    close_peer(&dev);
    close_peer(&svc);

    /* A restored QoS 2 id: the client's resend is a duplicate (not routed again). */
    CHECK_EQ(hub_broker_restore_session(b, DKEY_A, UINT32_MAX), 0);
    CHECK_EQ(hub_broker_restore_incoming(b, DKEY_A, 4), 0);
    open_peer(b, &dev, 0, DEV_A, "dev", 0);
    events[0] = 0;
    publish(&dev, "devices/" DEV_A "/x", 2, 0, 4, "again");
    CHECK_EQ(count(&dev, HUB_MQTT_PUBREC, 0), 1);
    CHECK(strstr(events, "accepted") == NULL);
    CHECK_EQ(hub_broker_restore_incoming(b, DKEY_A, 5), HUB_EINVAL); /* connected */
    close_peer(&dev);
    CHECK_EQ(hub_broker_check(b), 0);
    hub_broker_free(b);
}

/* Restored state no SUBSCRIBE of the principal checked: filters and messages outside its
 * ACL are dropped when it connects (the store told), the rest resumes. */
static void test_restore_outside_acl(void)
{
    struct hub_broker *b = hbroker(100, 10, 0);
    const char *mine = "devices/" DEV_A "/commands/x", *other = "devices/" DEV_B "/commands/x";
    const uint8_t pl[] = "c";
    CHECK_EQ(hub_broker_restore_session(b, DKEY_A, UINT32_MAX), 0);
    CHECK_EQ(hub_broker_restore_sub(b, DKEY_A, "devices/#", 1), 0);
    CHECK_EQ(hub_broker_restore_sub(b, DKEY_A, "devices/" DEV_A "/commands/#", 1), 0);
    CHECK_EQ(hub_broker_restore_delivery(b, DKEY_A, other, strlen(other), pl, 1, 1, 31, 1, 3), 0);
    CHECK_EQ(hub_broker_restore_delivery(b, DKEY_A, mine, strlen(mine), pl, 1, 1, 32, 0, 0), 0);
    events[0] = 0;
    struct peer dev;
    open_peer(b, &dev, 0, DEV_A, "dev", 0);
    CHECK_STR(events, "open D 0;unsub D 1 devices/#;delivered D 31;");
    CHECK_EQ(count(&dev, HUB_MQTT_PUBLISH, 0), 1); /* only its own command */
    struct hub_broker_stats st;
    hub_broker_stats(b, &st);
    CHECK_EQ(st.subscriptions, 1);
    CHECK_EQ(st.queued, 1);
    CHECK_EQ(st.inflight, 1);
    CHECK_EQ(hub_broker_check(b), 0);
    /* A command to device B no longer reaches A. */
    CHECK_EQ(hub_broker_publish(b, other, pl, 1, 1, 0, DEV_B), 0);
    CHECK_EQ(count(&dev, HUB_MQTT_PUBLISH, 0), 1);
    close_peer(&dev);
    hub_broker_free(b);
}

/* A CONNECT parked for claim: no CONNACK, input after it buffered; claim_done(ok) answers
 * with the session the server restored meanwhile and handles what was buffered;
 * claim_done(0) refuses (server unavailable); the CONNECT timeout closes a parked one. */
static void test_parked_connect(void)
{
    struct hub_broker *b = hbroker(100, 10, 0);
    struct hub_broker_stats st;
    struct peer svc, dev;
    claim_answer = 1;
    open_peer(b, &svc, 1, SVC, "q", 0);
    CHECK_STR(events, "claim S/q;");
    CHECK_EQ(svc.npkts, 0);
    subscribe(&svc, "devices/+/telemetry", 1); /* buffered */
    CHECK_EQ(svc.npkts, 0);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.parked, 1);
    CHECK_EQ(hub_broker_check(b), 0);
    CHECK_EQ(hub_broker_restore_session(b, SKEY("q"), UINT32_MAX), 0);
    const uint8_t pl[] = "m";
    CHECK_EQ(hub_broker_restore_delivery(b, SKEY("q"), TOPIC_A, strlen(TOPIC_A), pl, 1, 1, 5, 0, 0),
             0);
    hub_broker_claim_done(b, SKEY("other"), 1); /* not parked: nothing */
    CHECK_EQ(svc.npkts, 0);
    hub_broker_claim_done(b, SKEY("q"), 1);
    CHECK_EQ(svc.type[0], HUB_MQTT_CONNACK);
    CHECK_EQ(svc.pid[0], 0x0100); /* session present */
    CHECK_EQ(svc.type[1], HUB_MQTT_PUBLISH);
    CHECK_EQ(svc.type[2], HUB_MQTT_SUBACK); /* the buffered SUBSCRIBE, handled after */
    hub_broker_stats(b, &st);
    CHECK_EQ(st.parked, 0);
    CHECK_EQ(st.subscriptions, 1);
    CHECK_EQ(hub_broker_check(b), 0);
    close_peer(&svc);

    /* Refused. */
    open_peer(b, &dev, 0, DEV_B, "dev", 0);
    CHECK_EQ(dev.npkts, 0);
    hub_broker_claim_done(b, "d:" DEV_B, 0);
    CHECK_EQ(dev.type[0], HUB_MQTT_CONNACK);
    CHECK_EQ(dev.pid[0], HUB_MQTT_CONNACK_UNAVAILABLE);
    CHECK_EQ(dev.closed, 1);
    close_peer(&dev);

    /* Timed out, then closed: the parked list forgets it. */
    open_peer(b, &dev, 0, DEV_B, "dev", 0);
    now += 11000;
    hub_broker_tick(b, now);
    CHECK_EQ(dev.closed, 1);
    close_peer(&dev);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.parked, 0);
    hub_broker_claim_done(b, "d:" DEV_B, 1);
    CHECK_EQ(hub_broker_check(b), 0);

    /* A clean CONNECT is never parked. */
    events[0] = 0;
    open_peer(b, &dev, 0, DEV_B, "dev", 1);
    CHECK_EQ(dev.type[0], HUB_MQTT_CONNACK);
    CHECK(strstr(events, "claim") == NULL);
    close_peer(&dev);
    hub_broker_free(b);
}

/* Released to another node: the connection closes (takeover, no will), the session leaves
 * memory, the store hears nothing (its filters leave the trie: unsubscribed, persistent 0). */
static void test_release_session(void)
{
    struct hub_broker *b = hbroker(100, 10, 0);
    struct hub_broker_stats st;
    struct peer svc;
    open_peer(b, &svc, 1, SVC, "p", 0);
    subscribe(&svc, "devices/+/telemetry", 1);
    events[0] = 0;
    CHECK_EQ(hub_broker_release_session(b, SKEY("p")), 1);
    CHECK_EQ(svc.closed, 1);
    CHECK_EQ(hub_mqtt_conn_close_reason(svc.c), HUB_CLOSE_TAKEOVER);
    CHECK_STR(events, "unsub S/p 0 devices/+/telemetry;");
    hub_broker_stats(b, &st);
    CHECK_EQ(st.sessions, 0);
    CHECK_EQ(st.subscriptions, 0);
    close_peer(&svc);
    CHECK_EQ(hub_broker_release_session(b, SKEY("p")), 0);
    CHECK_EQ(hub_broker_check(b), 0);
    hub_broker_free(b);
}

/* outage: the offline persistent sessions are listed (not a connected one, not a clean one)
 * and only an offline one is released (hub_broker_release_offline). */
static void list_key(const char *key, void *ctx)
{
    strcat(ctx, key);
    strcat(ctx, ";");
}

static void test_release_offline(void)
{
    struct hub_broker *b = hbroker(100, 10, 0);
    struct hub_broker_stats st;
    struct peer on, clean;
    char keys[256] = "";
    open_peer(b, &on, 1, SVC, "on", 0);
    open_peer(b, &clean, 1, SVC, "c", 1);
    CHECK_EQ(hub_broker_restore_session(b, SKEY("r"), UINT32_MAX), 0);
    hub_broker_each_offline(b, list_key, keys);
    CHECK_STR(keys, SKEY("r") ";");
    CHECK_EQ(hub_broker_release_offline(b, SKEY("on")), 0);
    CHECK_EQ(on.closed, 0);
    CHECK_EQ(hub_broker_release_offline(b, SKEY("c")), 0);
    CHECK_EQ(hub_broker_release_offline(b, SKEY("r")), 1);
    CHECK_EQ(hub_broker_release_offline(b, SKEY("nope")), 0);
    close_peer(&on);
    keys[0] = 0;
    hub_broker_each_offline(b, list_key, keys);
    CHECK_STR(keys, SKEY("on") ";");
    CHECK_EQ(hub_broker_release_offline(b, SKEY("on")), 1);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.sessions, 1); /* the clean one, still connected */
    close_peer(&clean);
    CHECK_EQ(hub_broker_check(b), 0);
    hub_broker_free(b);
}

/* Sessions offline longer than session_expiry_s are dropped on the tick (session_gone);
 * connected ones never; a kicked principal's sessions end. */
static void test_expiry_and_kick(void)
{
    struct hub_broker *b = hbroker(100, 10, 5);
    struct hub_broker_stats st;
    struct peer svc, on;
    open_peer(b, &svc, 1, SVC, "p", 0);
    CHECK_STR(events, "claim S/p;open S/p 5;");
    subscribe(&svc, "devices/+/telemetry", 1);
    open_peer(b, &on, 1, SVC, "on", 0);
    close_peer(&svc);
    CHECK_EQ(hub_broker_restore_session(b, SKEY("r"), 2), 0); /* its own, shorter */
    events[0] = 0;
    now += 1000;
    hub_broker_tick(b, now); /* starts r's clock */
    now += 3000;
    hub_broker_tick(b, now);
    CHECK_STR(events, "gone S/r;");
    now += 2000;
    hub_broker_tick(b, now);
    CHECK_STR(events, "gone S/r;unsub S/p 0 devices/+/telemetry;gone S/p;");
    hub_broker_stats(b, &st);
    CHECK_EQ(st.sessions_expired, 2);
    CHECK_EQ(st.sessions, 1); /* "on", connected */
    now += 60000;
    hub_broker_tick(b, now);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.sessions, 1);
    CHECK_EQ(hub_broker_check(b), 0);

    /* Kick: connection closed, its sessions (connected or not) gone. */
    CHECK_EQ(hub_broker_restore_session(b, SKEY("off"), UINT32_MAX), 0);
    events[0] = 0;
    CHECK_EQ(hub_broker_kick_principal(b, SVC, "revoked"), 1);
    CHECK_EQ(on.closed, 1);
    CHECK(strstr(events, "gone S/on;") != NULL && strstr(events, "gone S/off;") != NULL);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.sessions, 0);
    close_peer(&on);
    CHECK_EQ(hub_broker_check(b), 0);
    hub_broker_free(b);
}

/* A server publish (a command) whose holds were taken reports hooks.durable once the last
 * one is released, and only then; one no hold was taken on has no id to wait for. */
static void test_publish_durable(void)
{
    struct hub_broker *b = hbroker(100, 10, 0);
    hold_every = 1;
    uint64_t id = 99;
    CHECK_EQ(hub_broker_publish_durable(b, TOPIC_A, (const uint8_t *)"x", 1, 1, 0, NULL, &id), 0);
    CHECK_EQ(id, 0); /* not held: nothing to wait for */
    CHECK_EQ(hub_broker_publish_durable(b, TOPIC_A, (const uint8_t *)"h", 1, 1, 0, NULL, &id), 0);
    CHECK(id != 0);
    CHECK(strstr(events, "durable") == NULL);
    CHECK_EQ(hub_broker_check(b), 0); /* the server hold recounted */
    hub_broker_release(b, id + 1); /* another id: ignored */
    CHECK(strstr(events, "durable") == NULL);
    hub_broker_release(b, id);
    char want[64];
    snprintf(want, sizeof want, "durable %llu;", (unsigned long long)id);
    CHECK(strstr(events, want) != NULL);
    events[0] = 0;
    hub_broker_release(b, id); /* released already: nothing more */
    CHECK(strstr(events, "durable") == NULL);
    /* Released inside accepted (a hold dropped at once): answered without waiting. */
    release_in_accepted = 1;
    CHECK_EQ(hub_broker_publish_durable(b, TOPIC_A, (const uint8_t *)"h", 1, 1, 0, NULL, &id), 0);
    CHECK_EQ(id, 0);
    CHECK_EQ(hub_broker_check(b), 0);
    hub_broker_free(b);
}

/* Without next_id, ids come from a local counter; without hooks nothing changes. */
static void test_local_ids(void)
{
    struct hub_broker *b = broker(100, 10);
    struct peer dev;
    open_peer(b, &dev, 0, DEV_A, "dev", 1);
    publish(&dev, TOPIC_A, 1, 0, 1, "a");
    CHECK_EQ(count(&dev, HUB_MQTT_PUBACK, 0), 1);
    hub_broker_release(b, 1); /* nothing held: ignored */
    CHECK_EQ(hub_broker_check(b), 0);
    close_peer(&dev);
    hub_broker_free(b);
}

/* store2: QoS 2 outbound state (PUBREC received, PUBREL sent) is reported for persistent
 * sessions; a persistent session's connection closing is reported (the expiry clock); a
 * session restored with its offline time keeps what is left of its expiry, or is dropped. */
static void h_offline(void *ctx, const char *key)
{
    (void)ctx;
    ev("offline %s", k(key));
}
static int state_later; /* h_state: the PUBREL is sent later (hub_broker_pubrel) */
static int h_state(void *ctx, const char *key, uint64_t id, int state, uint16_t pid)
{
    (void)ctx;
    ev("state %s %llu %d %u", k(key), (unsigned long long)id, state, pid);
    return state_later;
}

static void test_qos2_state_and_offline(void)
{
    struct hub_broker *b = hbroker(100, 10, 0);
    struct hub_broker_hooks h2 = hooks;
    h2.session_offline = h_offline;
    h2.delivery_state = h_state;
    hub_broker_set_hooks(b, &h2);
    struct peer svc, dev;
    open_peer(b, &svc, 1, SVC, "q", 0);
    subscribe(&svc, "devices/+/telemetry", 2);
    open_peer(b, &dev, 0, DEV_A, "dev", 1);
    events[0] = 0;
    size_t from = svc.npkts;
    publish(&dev, TOPIC_A, 2, 0, 3, "two");
    CHECK_EQ(count(&svc, HUB_MQTT_PUBLISH, from), 1);
    uint16_t pid = svc.pid[svc.npkts - 1];
    uint8_t a[4];
    feed(&svc, a, hub_mqtt_ack(a, HUB_MQTT_PUBREC, pid));
    char want[128];
    snprintf(want, sizeof want, "state S/q %llu 2 %u;", (unsigned long long)ID(1), pid);
    CHECK(strstr(events, want) != NULL);
    CHECK_EQ(svc.type[svc.npkts - 1], HUB_MQTT_PUBREL);
    feed(&svc, a, hub_mqtt_ack(a, HUB_MQTT_PUBREC, pid)); /* again: no second report */
    CHECK(strstr(strstr(events, want) + 1, "state") == NULL);
    /* The hook sends the PUBREL itself once the state is stored. */
    state_later = 1;
    from = svc.npkts;
    publish(&dev, TOPIC_A, 2, 0, 4, "later");
    CHECK_EQ(count(&svc, HUB_MQTT_PUBLISH, from), 1);
    uint16_t pid2 = svc.pid[svc.npkts - 1];
    feed(&svc, a, hub_mqtt_ack(a, HUB_MQTT_PUBREC, pid2));
    CHECK_EQ(count(&svc, HUB_MQTT_PUBREL, from), 0);
    hub_broker_pubrel(b, SKEY("q"), ID(1), pid2); /* another message's id: nothing */
    CHECK_EQ(count(&svc, HUB_MQTT_PUBREL, from), 0);
    hub_broker_pubrel(b, SKEY("q"), ID(2), pid2);
    CHECK_EQ(count(&svc, HUB_MQTT_PUBREL, from), 1);
    CHECK_EQ(svc.pid[svc.npkts - 1], pid2);
    feed(&svc, a, hub_mqtt_ack(a, HUB_MQTT_PUBCOMP, pid2));
    hub_broker_pubrel(b, SKEY("q"), ID(2), pid2); /* completed: nothing */
    CHECK_EQ(count(&svc, HUB_MQTT_PUBREL, from), 1);
    state_later = 0;
    events[0] = 0;
    close_peer(&svc);
    close_peer(&dev); /* clean: not reported */
    CHECK_STR(events, "offline S/q;");
    hub_broker_free(b);

    b = hbroker(100, 10, 5); /* mqtt_session_expiry 5 s caps what is stored */
    struct hub_broker_stats st;
    CHECK_EQ(hub_broker_restore_session_since(b, SKEY("a"), 4, 1), 0);     /* 3 s left */
    CHECK_EQ(hub_broker_restore_session_since(b, SKEY("b"), 4, 4), 1);     /* none left */
    CHECK_EQ(hub_broker_restore_session_since(b, SKEY("c"), 100, 5), 1);   /* capped to 5 */
    CHECK_EQ(hub_broker_restore_session_since(b, SKEY("d"), 100, UINT32_MAX), 0); /* unknown */
    CHECK_STR(events, "gone S/b;gone S/c;");
    CHECK_EQ(hub_broker_restore_sub(b, SKEY("b"), "devices/+/telemetry", 1), HUB_ENOTFOUND);
    hub_broker_stats(b, &st);
    CHECK_EQ(st.sessions, 2);
    CHECK_EQ(st.sessions_expired, 2);
    events[0] = 0;
    now += 1000;
    hub_broker_tick(b, now); /* starts the clocks */
    now += 3500;
    hub_broker_tick(b, now);
    CHECK_STR(events, "gone S/a;"); /* a had 3 s left, d has 5 */
    now += 2000;
    hub_broker_tick(b, now);
    CHECK_STR(events, "gone S/a;gone S/d;");
    CHECK_EQ(hub_broker_check(b), 0);
    hub_broker_free(b);
}

int main(void)
{
    hub_log_setup(HUB_LOG_ERROR, HUB_LOG_TEXT);
    RUN(test_hook_sequence);
    RUN(test_ack_holds);
    RUN(test_holds_with_flow);
    RUN(test_inject);
    RUN(test_restore_resume);
    RUN(test_restore_outside_acl);
    RUN(test_parked_connect);
    RUN(test_release_session);
    RUN(test_release_offline);
    RUN(test_expiry_and_kick);
    RUN(test_local_ids);
    RUN(test_publish_durable);
    RUN(test_qos2_state_and_offline);
    HARNESS_EXIT();
}
