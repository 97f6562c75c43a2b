/* The backbone client (server/backbone.h). Design:
 *
 * - libmosquitto runs on our own thread (not mosquitto_loop_start: its loop gives up for
 *   good after a TLS, DNS or authentication error, and we want to retry those too): connect,
 *   mosquitto_loop, and on any failure a back-off of 0.25 s doubling to 5 s, then reconnect.
 *   The client is "threaded", so the loop thread may publish and subscribe on it directly;
 *   libmosquitto only takes its own mutexes and wakes its thread.
 * - Outgoing: one slot per libmosquitto message id (mid, 16 bits) records the message id,
 *   its bytes and whether an acknowledgement is held; on_publish (network thread) frees the
 *   slot and queues the id for hub_broker_release. At most MAX_PENDING forwards are pending,
 *   so a mid is never reused while its slot is taken.
 * - Incoming: on_message appends one record (id, sizes, flags, origin, topic, payload) to a
 *   buffer; the loop swaps it with its own (both keep their capacity: no allocation per
 *   message once warm) and injects. Past backbone_max_inbound bytes the network thread waits
 *   for the loop, so the backbone broker holds the rest (TCP flow control), nothing dropped.
 * - One mutex (lock) guards what both threads touch: the slots, the two buffers, the
 *   connect event and `stopping`; the subscription table, the waiting forwards and the
 *   hook calls are the loop's alone. */
#include "server/backbone.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "mqtt/broker.h"
#include "mqtt/msg.h"
#include "mqtt/topic.h"
#include "server/backbone_conf.h"
#include "server/backbone_subs.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

#define KEEPALIVE_S 30
#define MAX_PENDING 30000   /* forwards not yet acknowledged; < 65535 mids */
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000
#define SUB_BATCH 64        /* filters per SUBSCRIBE when subscribing again */
#define LOG_EVERY_MS 10000  /* drops and refusals are logged at most this often */
#define PROP_ID "iothub-id"
#define PROP_NODE "iothub-node"
#define CONTROL_KEY ""      /* the subscription table's key for control filters */
#define SUB_OPTIONS (MQTT_SUB_OPT_NO_LOCAL | MQTT_SUB_OPT_RETAIN_AS_PUBLISHED |                    \
                     MQTT_SUB_OPT_SEND_RETAIN_NEW)

struct slot {
    uint64_t id;
    uint32_t bytes;
    uint8_t used, hold;
};

/* A received message in the inbound buffer, followed by origin, topic and payload, padded to
 * 8 bytes. */
struct rec {
    uint64_t id;
    uint32_t tlen, plen;
    uint8_t qos, retain, control, olen;
};

typedef atomic_ullong counter_t;

struct hub_backbone {
    uv_loop_t *loop;
    struct hub_broker *broker;
    uint64_t (*next_id)(void *ctx);
    void *next_id_ctx;
    struct mosquitto *mosq;
    pthread_t thread;
    int thread_started;
    struct hub_backbone_url url;
    char node[HUB_NODE_NAME_MAX + 1];
    char client_id[HUB_NODE_NAME_MAX + 16];
    size_t max_queued, max_inbound, max_packet;
    uint32_t expiry_s;
    uv_async_t wake;
    /* Shared with the network thread, under lock. */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* inbound room, stop */
    struct slot *slots;  /* [65536], by mid */
    size_t pending, queued_bytes;
    hub_buf_t in, rel;   /* received records; released ids (uint64_t) */
    int connect_event;   /* a CONNACK came: subscribe again */
    int stopping;
    /* Network thread only. */
    unsigned backoff_ms;
    uint64_t fail_logged_ms;
    /* Loop thread only. */
    int stopped;
    hub_buf_t in_loop, rel_loop, scratch, unsub_later;
    struct hub_bsubs *subs;
    struct hub_msg **fifo; /* forwards waiting for room (a reference each) */
    size_t fifo_head, fifo_len, fifo_cap, fifo_bytes;
    hub_backbone_control_cb control_cb;
    void *control_ctx;
    uint64_t drop_logged_ms;
    /* Counters, any thread. */
    atomic_int connected;
    counter_t connects, forwarded[3], received[3], dropped_disconnected, dropped_full, refused,
        dropped_inbound, held, filters, waiting, queued_now;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void count(counter_t *c, long long n)
{
    atomic_fetch_add_explicit(c, (unsigned long long)n, memory_order_relaxed);
}

static unsigned long long get(counter_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static int is_control(const char *topic, size_t len)
{
    size_t n = sizeof HUB_BACKBONE_CONTROL_PREFIX - 1;
    return len >= n && memcmp(topic, HUB_BACKBONE_CONTROL_PREFIX, n) == 0;
}

/* What a pending forward costs against backbone_max_queued: its bytes and an estimate of
 * libmosquitto's own (packet, properties, bookkeeping). */
static size_t cost(size_t tlen, size_t plen)
{
    return tlen + plen + 128;
}

/* ---- network thread: libmosquitto callbacks ------------------------------------------------ */

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
    struct hub_backbone *bb = obj;
    if (rc != 0) {
        hub_warn("backbone: %s:%d refused the connection: %s", bb->url.host, bb->url.port,
                 mosquitto_reason_string(rc));
        return;
    }
    hub_info("backbone: connected to %s:%d as %s (%s)", bb->url.host, bb->url.port,
             bb->client_id, flags & 1 ? "session kept" : "new session");
    bb->backoff_ms = BACKOFF_MIN_MS;
    bb->fail_logged_ms = 0;
    atomic_store(&bb->connected, 1);
    count(&bb->connects, 1);
    pthread_mutex_lock(&bb->lock);
    bb->connect_event = 1;
    pthread_mutex_unlock(&bb->lock);
    uv_async_send(&bb->wake);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc,
                          const mosquitto_property *props)
{
    struct hub_backbone *bb = obj;
    if (atomic_exchange(&bb->connected, 0) && rc != 0)
        hub_warn("backbone: connection to %s:%d lost (%s): reconnecting", bb->url.host,
                 bb->url.port, mosquitto_strerror(rc));
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid, int reason,
                       const mosquitto_property *props)
{
    struct hub_backbone *bb = obj;
    int wake = 0;
    pthread_mutex_lock(&bb->lock);
    struct slot *s = &bb->slots[(uint16_t)mid];
    if (s->used) {
        bb->queued_bytes -= s->bytes;
        bb->pending--;
        if (s->hold && hub_buf_append(&bb->rel, &s->id, sizeof s->id) == 0)
            wake = 1;
        s->used = 0;
    }
    atomic_store_explicit(&bb->queued_now, bb->queued_bytes, memory_order_relaxed);
    pthread_mutex_unlock(&bb->lock);
    if (reason >= 0x80) {
        count(&bb->refused, 1);
        hub_warn("backbone: the broker refused a forward: %s", mosquitto_reason_string(reason));
    }
    if (wake)
        uv_async_send(&bb->wake);
}

/* The user properties iothub-id (16 hex digits) and iothub-node of a received message. */
static void read_props(const mosquitto_property *props, uint64_t *id, char *node, size_t n)
{
    int skip = 0;
    for (const mosquitto_property *p = props;;) {
        char *name = NULL, *value = NULL;
        p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, skip);
        if (p == NULL)
            break;
        skip = 1;
        if (strcmp(name, PROP_ID) == 0 && strlen(value) == 16 &&
            strspn(value, "0123456789abcdef") == 16)
            *id = strtoull(value, NULL, 16);
        else if (strcmp(name, PROP_NODE) == 0 && strlen(value) < n)
            memcpy(node, value, strlen(value) + 1);
        free(name);
        free(value);
        p = mosquitto_property_next(p);
    }
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    struct hub_backbone *bb = obj;
    uint64_t id = 0;
    char origin[HUB_NODE_NAME_MAX + 1] = "";
    read_props(props, &id, origin, sizeof origin);
    size_t tlen = msg->topic ? strlen(msg->topic) : 0, plen = (size_t)msg->payloadlen;
    /* No Local keeps our own forwards away; the name is checked as well, in case. */
    if (strcmp(origin, bb->node) == 0 || !hub_topic_name_valid(msg->topic, tlen) ||
        plen > bb->max_packet || msg->qos < 0 || msg->qos > 2) {
        count(&bb->dropped_inbound, 1);
        return;
    }
    struct rec r = {
        .id = id,
        .tlen = (uint32_t)tlen,
        .plen = (uint32_t)plen,
        .qos = (uint8_t)msg->qos,
        .retain = msg->retain ? 1 : 0,
        .control = (uint8_t)is_control(msg->topic, tlen),
        .olen = (uint8_t)strlen(origin),
    };
    size_t len = sizeof r + r.olen + tlen + plen;
    static const uint8_t pad[8];
    pthread_mutex_lock(&bb->lock);
    while (bb->in.len > 0 && bb->in.len + len > bb->max_inbound && !bb->stopping)
        pthread_cond_wait(&bb->cond, &bb->lock);
    int rc = bb->stopping ? HUB_ERANGE : hub_buf_reserve(&bb->in, len + 8);
    if (rc == 0) {
        hub_buf_append(&bb->in, &r, sizeof r);
        hub_buf_append(&bb->in, origin, r.olen);
        hub_buf_append(&bb->in, msg->topic, tlen);
        hub_buf_append(&bb->in, msg->payload, plen);
        hub_buf_append(&bb->in, pad, (8 - len % 8) % 8);
    }
    pthread_mutex_unlock(&bb->lock);
    if (rc != 0)
        count(&bb->dropped_inbound, 1);
    else
        uv_async_send(&bb->wake);
}

/* Sleeps ms unless stop is called meanwhile. Returns 1 when stopping. */
static int backoff_sleep(struct hub_backbone *bb, unsigned ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&bb->lock);
    while (!bb->stopping && pthread_cond_timedwait(&bb->cond, &bb->lock, &until) != ETIMEDOUT) {
    }
    int stopping = bb->stopping;
    pthread_mutex_unlock(&bb->lock);
    return stopping;
}

static int stopping(struct hub_backbone *bb)
{
    pthread_mutex_lock(&bb->lock);
    int s = bb->stopping;
    pthread_mutex_unlock(&bb->lock);
    return s;
}

static void *thread_main(void *arg)
{
    struct hub_backbone *bb = arg;
    mosquitto_property *props = NULL;
    mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, bb->expiry_s);
    bb->backoff_ms = BACKOFF_MIN_MS;
    int rc = mosquitto_connect_bind_v5(bb->mosq, bb->url.host, bb->url.port, KEEPALIVE_S, NULL,
                                       props);
    mosquitto_property_free_all(&props);
    while (!stopping(bb)) {
        if (rc == MOSQ_ERR_SUCCESS) {
            rc = mosquitto_loop(bb->mosq, 1000, 1);
            continue;
        }
        uint64_t now = now_ms();
        if (bb->fail_logged_ms == 0 || now - bb->fail_logged_ms >= 30000) {
            hub_warn("backbone: no connection to %s:%d (%s%s%s): retrying", bb->url.host,
                     bb->url.port, mosquitto_strerror(rc), rc == MOSQ_ERR_ERRNO ? ": " : "",
                     rc == MOSQ_ERR_ERRNO ? strerror(errno) : "");
            bb->fail_logged_ms = now;
        }
        if (backoff_sleep(bb, bb->backoff_ms))
            break;
        bb->backoff_ms = bb->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : bb->backoff_ms * 2;
        rc = mosquitto_reconnect(bb->mosq);
    }
    return NULL;
}

/* ---- loop thread: forwarding ---------------------------------------------------------------- */

/* Hands one message to libmosquitto. Returns 0 (queued: its slot holds the id when hold),
 * HUB_ERANGE (no room now: over backbone_max_queued or MAX_PENDING), HUB_EIO (the backbone
 * is down and qos is 0) or HUB_EINVAL (refused by libmosquitto). */
static int publish(struct hub_backbone *bb, const char *topic, size_t tlen, const void *payload,
                   size_t plen, uint8_t qos, int retain, uint64_t id, int hold)
{
    char hex[17];
    mosquitto_property *props = NULL;
    bb->scratch.len = 0;
    if (hub_buf_reserve(&bb->scratch, tlen + 1) != 0)
        return HUB_ENOMEM;
    memcpy(bb->scratch.data, topic, tlen);
    bb->scratch.data[tlen] = 0;
    snprintf(hex, sizeof hex, "%016" PRIx64, id);
    if ((id != 0 && mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, PROP_ID,
                                                       hex) != 0) ||
        mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, PROP_NODE,
                                           bb->node) != 0) {
        mosquitto_property_free_all(&props);
        return HUB_ENOMEM;
    }
    size_t bytes = cost(tlen, plen);
    int mid = 0, rc;
    pthread_mutex_lock(&bb->lock);
    if (bb->pending >= MAX_PENDING || bb->queued_bytes + bytes > bb->max_queued) {
        rc = HUB_ERANGE;
    } else {
        int mrc = mosquitto_publish_v5(bb->mosq, &mid, (const char *)bb->scratch.data, (int)plen,
                                       payload, qos, retain != 0, props);
        /* A QoS >= 1 message stays queued in libmosquitto while the backbone is down. */
        if (mrc == MOSQ_ERR_SUCCESS || (qos > 0 && mrc == MOSQ_ERR_NO_CONN)) {
            struct slot *s = &bb->slots[(uint16_t)mid];
            if (s->used) { /* cannot happen below MAX_PENDING; never lose a hold anyway */
                bb->queued_bytes -= s->bytes;
                bb->pending--;
                if (s->hold)
                    hub_buf_append(&bb->rel, &s->id, sizeof s->id);
            }
            *s = (struct slot){.id = id, .bytes = (uint32_t)bytes, .used = 1, .hold = hold != 0};
            bb->pending++;
            bb->queued_bytes += bytes;
            rc = 0;
        } else {
            rc = mrc == MOSQ_ERR_NO_CONN ? HUB_EIO : HUB_EINVAL;
        }
        atomic_store_explicit(&bb->queued_now, bb->queued_bytes, memory_order_relaxed);
    }
    pthread_mutex_unlock(&bb->lock);
    mosquitto_property_free_all(&props);
    if (rc == 0)
        count(&bb->forwarded[qos > 2 ? 2 : qos], 1);
    return rc;
}

static void log_drop(struct hub_backbone *bb, const char *why)
{
    uint64_t now = now_ms();
    if (bb->drop_logged_ms != 0 && now - bb->drop_logged_ms < LOG_EVERY_MS)
        return;
    bb->drop_logged_ms = now;
    hub_warn("backbone: forwards dropped (%s); totals: %llu while down, %llu over the limits",
             why, get(&bb->dropped_disconnected), get(&bb->dropped_full));
}

/* Queues m behind the forwards waiting for room, its acknowledgement held. 0 or
 * HUB_ERANGE (the waiting forwards are at their limit too). */
static int fifo_push(struct hub_backbone *bb, struct hub_msg *m)
{
    size_t bytes = cost(m->topic_len, m->payload_len);
    if (bb->fifo_bytes + bytes > bb->max_queued)
        return HUB_ERANGE;
    if (bb->fifo_len == bb->fifo_cap) {
        size_t cap = bb->fifo_cap ? bb->fifo_cap * 2 : 64;
        struct hub_msg **f = malloc(cap * sizeof *f);
        if (f == NULL)
            return HUB_ERANGE;
        for (size_t i = 0; i < bb->fifo_len; i++)
            f[i] = bb->fifo[(bb->fifo_head + i) % bb->fifo_cap];
        free(bb->fifo);
        bb->fifo = f;
        bb->fifo_cap = cap;
        bb->fifo_head = 0;
    }
    bb->fifo[(bb->fifo_head + bb->fifo_len++) % bb->fifo_cap] = hub_msg_ref(m);
    bb->fifo_bytes += bytes;
    count(&bb->waiting, 1);
    return 0;
}

/* Moves waiting forwards to libmosquitto while there is room, oldest first. */
static void fifo_drain(struct hub_backbone *bb)
{
    while (bb->fifo_len > 0) {
        struct hub_msg *m = bb->fifo[bb->fifo_head];
        int rc = publish(bb, m->topic, m->topic_len, m->payload, m->payload_len, m->qos,
                         m->retain, m->id, 1);
        if (rc == HUB_ERANGE)
            return;
        bb->fifo_head = (bb->fifo_head + 1) % bb->fifo_cap;
        bb->fifo_len--;
        bb->fifo_bytes -= cost(m->topic_len, m->payload_len);
        count(&bb->waiting, -1);
        if (rc != 0) { /* refused by libmosquitto: nothing will acknowledge it */
            count(&bb->dropped_full, 1);
            count(&bb->held, -1);
            hub_broker_release(bb->broker, m->id);
        }
        hub_msg_unref(m);
    }
}

unsigned hub_backbone_accepted(struct hub_backbone *bb, const struct hub_msg *cm)
{
    if (bb == NULL || bb->stopped || is_control(cm->topic, cm->topic_len))
        return 0; /* clients never speak for the nodes */
    struct hub_msg *m = (struct hub_msg *)cm; /* a reference is taken only to wait */
    int hold = m->qos > 0 && m->id != 0;
    int rc = bb->fifo_len > 0 ? HUB_ERANGE
                              : publish(bb, m->topic, m->topic_len, m->payload, m->payload_len,
                                        m->qos, m->retain, m->id, hold);
    if (rc == HUB_ERANGE && hold && fifo_push(bb, m) == 0)
        rc = 0;
    if (rc == 0) {
        if (hold)
            count(&bb->held, 1);
        return (unsigned)hold;
    }
    if (rc == HUB_EIO) {
        count(&bb->dropped_disconnected, 1);
        log_drop(bb, "QoS 0 while the backbone is down");
    } else {
        count(&bb->dropped_full, 1);
        log_drop(bb, rc == HUB_ERANGE ? "backbone_max_queued reached" : "refused by libmosquitto");
    }
    return 0;
}

/* ---- loop thread: subscriptions ------------------------------------------------------------- */

/* The filter to ask the backbone for: a shared subscription's underlying filter (sharing
 * happens among this node's sessions). Sets *len. */
static const char *backbone_filter(const char *filter, size_t *len)
{
    if (*len > 7 && memcmp(filter, "$share/", 7) == 0) {
        const char *slash = memchr(filter + 7, '/', *len - 7);
        if (slash != NULL) {
            *len -= (size_t)(slash + 1 - filter);
            return slash + 1;
        }
    }
    return filter;
}

/* NUL-terminated copy of filter in the scratch buffer (NULL on ENOMEM). */
static const char *cstr(struct hub_backbone *bb, const char *s, size_t len)
{
    bb->scratch.len = 0;
    if (hub_buf_reserve(&bb->scratch, len + 1) != 0)
        return NULL;
    memcpy(bb->scratch.data, s, len);
    bb->scratch.data[len] = 0;
    return (const char *)bb->scratch.data;
}

static void send_subscribe(struct hub_backbone *bb, const char *filter, size_t len, int qos)
{
    const char *f = cstr(bb, filter, len);
    if (f == NULL)
        return;
    if (qos == HUB_BSUBS_GONE) {
        if (mosquitto_unsubscribe_v5(bb->mosq, NULL, f, NULL) != MOSQ_ERR_SUCCESS)
            hub_buf_append(&bb->unsub_later, f, len + 1); /* the backbone keeps our session */
    } else {
        /* Not connected: sent with every filter on the next CONNACK. */
        mosquitto_subscribe_v5(bb->mosq, NULL, f, qos, SUB_OPTIONS, NULL);
    }
    atomic_store_explicit(&bb->filters, hub_bsubs_filters(bb->subs), memory_order_relaxed);
}

void hub_backbone_subscribed(struct hub_backbone *bb, const char *key, const char *filter,
                             size_t flen, uint8_t qos)
{
    if (bb == NULL || bb->stopped)
        return;
    filter = backbone_filter(filter, &flen);
    int rc = hub_bsubs_add(bb->subs, key, filter, flen, qos);
    if (rc == HUB_ENOMEM)
        hub_error("backbone: out of memory: filter \"%.*s\" not subscribed", (int)flen, filter);
    else if (rc >= 0)
        send_subscribe(bb, filter, flen, rc);
}

void hub_backbone_unsubscribed(struct hub_backbone *bb, const char *key, const char *filter,
                               size_t flen)
{
    if (bb == NULL || bb->stopped)
        return;
    filter = backbone_filter(filter, &flen);
    int rc = hub_bsubs_remove(bb->subs, key, filter, flen);
    if (rc != HUB_BSUBS_SAME)
        send_subscribe(bb, filter, flen, rc);
}

struct batch {
    struct hub_backbone *bb;
    char *f[3][SUB_BATCH];
    int n[3];
};

static void batch_flush(struct batch *b, int qos)
{
    if (b->n[qos] > 0)
        mosquitto_subscribe_multiple(b->bb->mosq, NULL, b->n[qos], b->f[qos], qos, SUB_OPTIONS,
                                     NULL);
    b->n[qos] = 0;
}

static void batch_add(void *ctx, const char *filter, uint8_t qos)
{
    struct batch *b = ctx;
    b->f[qos][b->n[qos]++] = (char *)filter;
    if (b->n[qos] == SUB_BATCH)
        batch_flush(b, qos);
}

/* After a CONNACK: the filters dropped while down are unsubscribed (unless needed again),
 * every needed one subscribed again (the backbone may have lost our session), and the
 * waiting forwards go out. */
static void connected_again(struct hub_backbone *bb)
{
    size_t off = 0;
    while (off < bb->unsub_later.len) {
        const char *f = (const char *)bb->unsub_later.data + off;
        size_t len = strlen(f);
        if (hub_bsubs_qos(bb->subs, f, len) == HUB_BSUBS_GONE)
            mosquitto_unsubscribe_v5(bb->mosq, NULL, f, NULL);
        off += len + 1;
    }
    bb->unsub_later.len = 0;
    struct batch b = {.bb = bb};
    hub_bsubs_each(bb->subs, batch_add, &b);
    for (int q = 0; q < 3; q++)
        batch_flush(&b, q);
}

/* ---- loop thread: what the network thread handed over ------------------------------------- */

static void deliver(struct hub_backbone *bb, const struct rec *r, const char *origin)
{
    const char *topic = origin + r->olen;
    const uint8_t *payload = (const uint8_t *)topic + r->tlen;
    if (r->control) {
        char node[HUB_NODE_NAME_MAX + 1];
        memcpy(node, origin, r->olen);
        node[r->olen] = 0;
        if (bb->control_cb != NULL)
            bb->control_cb(bb->control_ctx, topic, r->tlen, payload, r->plen, node);
        return;
    }
    uint64_t id = r->id;
    if (id == 0 && r->qos > 0 && bb->next_id != NULL) /* a backend's message */
        id = bb->next_id(bb->next_id_ctx);
    if (hub_broker_inject(bb->broker, topic, r->tlen, payload, r->plen, r->qos, r->retain, id) <
        0)
        count(&bb->dropped_inbound, 1);
    else
        count(&bb->received[r->qos], 1);
}

static void wake_cb(uv_async_t *a)
{
    struct hub_backbone *bb = a->data;
    if (bb->stopped)
        return;
    pthread_mutex_lock(&bb->lock);
    hub_buf_t t = bb->in;
    bb->in = bb->in_loop;
    bb->in_loop = t;
    t = bb->rel;
    bb->rel = bb->rel_loop;
    bb->rel_loop = t;
    int connect_event = bb->connect_event;
    bb->connect_event = 0;
    pthread_cond_broadcast(&bb->cond);
    pthread_mutex_unlock(&bb->lock);
    if (connect_event)
        connected_again(bb);
    for (size_t off = 0; off + sizeof(uint64_t) <= bb->rel_loop.len; off += sizeof(uint64_t)) {
        uint64_t id;
        memcpy(&id, bb->rel_loop.data + off, sizeof id);
        count(&bb->held, -1);
        hub_broker_release(bb->broker, id);
    }
    bb->rel_loop.len = 0;
    fifo_drain(bb);
    for (size_t off = 0; off + sizeof(struct rec) <= bb->in_loop.len;) {
        struct rec r;
        memcpy(&r, bb->in_loop.data + off, sizeof r);
        size_t len = sizeof r + r.olen + r.tlen + r.plen;
        deliver(bb, &r, (const char *)bb->in_loop.data + off + sizeof r);
        off += len + (8 - len % 8) % 8;
    }
    bb->in_loop.len = 0;
}

/* ---- control messages ------------------------------------------------------------------------ */

int hub_backbone_control_subscribe(struct hub_backbone *bb, const char *filter, uint8_t qos,
                                   hub_backbone_control_cb cb, void *ctx)
{
    size_t len = strlen(filter);
    if (bb == NULL || !is_control(filter, len) || !hub_topic_filter_valid(filter, len))
        return HUB_EINVAL;
    bb->control_cb = cb;
    bb->control_ctx = ctx;
    int rc = hub_bsubs_add(bb->subs, CONTROL_KEY, filter, len, qos);
    if (rc == HUB_ENOMEM)
        return rc;
    if (rc >= 0)
        send_subscribe(bb, filter, len, rc);
    return 0;
}

int hub_backbone_control_publish(struct hub_backbone *bb, const char *topic,
                                 const void *payload, size_t len, uint8_t qos)
{
    size_t tlen = strlen(topic);
    if (bb == NULL || !is_control(topic, tlen) || !hub_topic_name_valid(topic, tlen) || qos > 2)
        return HUB_EINVAL;
    int rc = publish(bb, topic, tlen, payload, len, qos, 0, 0, 0);
    return rc == HUB_EIO || rc == HUB_ERANGE ? HUB_ERANGE : rc;
}

/* ---- start / stop ----------------------------------------------------------------------------- */

/* Reads the password file (one line; a trailing newline is not part of it) into a malloc'ed
 * string, or NULL (logged). */
static char *read_password(const char *path)
{
    FILE *f = fopen(path, "rb");
    char buf[1024];
    size_t n = 0;
    if (f != NULL) {
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
    }
    if (f == NULL || n == sizeof buf - 1) {
        hub_error("backbone_password_file %s: %s", path,
                  f == NULL ? strerror(errno) : "longer than 1022 bytes");
        return NULL;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = 0;
    char *s = strdup(buf);
    hub_wipe(buf, sizeof buf);
    return s;
}

const char *hub_backbone_node(const struct hub_backbone *bb)
{
    return bb != NULL ? bb->node : "";
}

static void free_bb(struct hub_backbone *bb)
{
    if (bb->mosq != NULL)
        mosquitto_destroy(bb->mosq);
    mosquitto_lib_cleanup();
    pthread_mutex_destroy(&bb->lock);
    pthread_cond_destroy(&bb->cond);
    hub_bsubs_free(bb->subs);
    free(bb->slots);
    free(bb->fifo);
    hub_buf_free(&bb->in);
    hub_buf_free(&bb->in_loop);
    hub_buf_free(&bb->rel);
    hub_buf_free(&bb->rel_loop);
    hub_buf_free(&bb->scratch);
    hub_buf_free(&bb->unsub_later);
    free(bb);
}

static void closed_cb(uv_handle_t *h)
{
    free_bb(h->data);
}

/* TLS and credentials of the client. 0 or HUB_ECONFIG (logged). */
static int client_setup(struct hub_backbone *bb, const struct hub_config *cfg)
{
    int rc = MOSQ_ERR_SUCCESS;
    mosquitto_int_option(bb->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(bb->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_int_option(bb->mosq, MOSQ_OPT_RECEIVE_MAXIMUM, 100);
    mosquitto_threaded_set(bb->mosq, true);
    mosquitto_connect_v5_callback_set(bb->mosq, on_connect);
    mosquitto_disconnect_v5_callback_set(bb->mosq, on_disconnect);
    mosquitto_publish_v5_callback_set(bb->mosq, on_publish);
    mosquitto_message_v5_callback_set(bb->mosq, on_message);
    if (bb->url.tls) {
        if (cfg->backbone_cafile == NULL)
            mosquitto_int_option(bb->mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
        if (cfg->backbone_cafile != NULL || cfg->backbone_certfile != NULL)
            rc = mosquitto_tls_set(bb->mosq, cfg->backbone_cafile,
                                   cfg->backbone_cafile ? NULL : "/etc/ssl/certs",
                                   cfg->backbone_certfile, cfg->backbone_keyfile, NULL);
        if (rc != MOSQ_ERR_SUCCESS) {
            hub_error("backbone_cafile / backbone_certfile / backbone_keyfile: %s",
                      mosquitto_strerror(rc));
            return HUB_ECONFIG;
        }
    } else if (cfg->backbone_certfile != NULL || cfg->backbone_cafile != NULL) {
        hub_warn("backbone: backbone_cafile/certfile are ignored with mqtt:// (use mqtts://)");
    }
    if (cfg->backbone_username != NULL) {
        char *pw = cfg->backbone_password_file ? read_password(cfg->backbone_password_file)
                                               : NULL;
        if (cfg->backbone_password_file != NULL && pw == NULL)
            return HUB_ECONFIG;
        rc = mosquitto_username_pw_set(bb->mosq, cfg->backbone_username, pw);
        if (pw != NULL) {
            hub_wipe(pw, strlen(pw));
            free(pw);
        }
        if (rc != MOSQ_ERR_SUCCESS) {
            hub_error("backbone_username: %s", mosquitto_strerror(rc));
            return HUB_ECONFIG;
        }
    }
    return 0;
}

int hub_backbone_start(const struct hub_backbone_options *o, struct hub_backbone **out)
{
    const struct hub_config *cfg = o->cfg;
    char why[256];
    *out = NULL;
    if (cfg->backbone == NULL || cfg->backbone[0] == 0)
        return 0;
    struct hub_backbone *bb = calloc(1, sizeof *bb);
    if (bb == NULL)
        return HUB_ENOMEM;
    bb->loop = o->loop;
    bb->broker = o->broker;
    bb->next_id = o->next_id;
    bb->next_id_ctx = o->next_id_ctx;
    bb->max_queued = (size_t)cfg->backbone_max_queued;
    bb->max_inbound = (size_t)cfg->backbone_max_inbound;
    bb->max_packet = (size_t)cfg->mqtt_max_packet;
    bb->expiry_s = (uint32_t)cfg->backbone_session_expiry_s;
    hub_node_name(cfg->node_name, bb->node, sizeof bb->node);
    snprintf(bb->client_id, sizeof bb->client_id, "iothub-%s", bb->node);
    pthread_mutex_init(&bb->lock, NULL);
    pthread_cond_init(&bb->cond, NULL);
    mosquitto_lib_init();
    int rc = hub_backbone_url_parse(cfg->backbone, &bb->url, why, sizeof why);
    if (rc != 0) {
        hub_error("backbone: %s", why);
        free_bb(bb);
        return HUB_ECONFIG;
    }
    bb->slots = calloc(65536, sizeof *bb->slots);
    bb->subs = hub_bsubs_new();
    bb->mosq = mosquitto_new(bb->client_id, false, bb);
    if (bb->slots == NULL || bb->subs == NULL || bb->mosq == NULL) {
        free_bb(bb);
        return HUB_ENOMEM;
    }
    if ((rc = client_setup(bb, cfg)) != 0) {
        free_bb(bb);
        return rc;
    }
    uv_async_init(bb->loop, &bb->wake, wake_cb);
    bb->wake.data = bb;
    if (pthread_create(&bb->thread, NULL, thread_main, bb) != 0) {
        hub_error("backbone: pthread_create: %s", strerror(errno));
        bb->stopped = 1;
        uv_close((uv_handle_t *)&bb->wake, closed_cb);
        return HUB_ENOMEM;
    }
    bb->thread_started = 1;
    hub_info("backbone: node %s, broker %s (session kept %d s by the broker)", bb->node,
             cfg->backbone, cfg->backbone_session_expiry_s);
    *out = bb;
    return 0;
}

void hub_backbone_stop(struct hub_backbone *bb)
{
    if (bb == NULL || bb->stopped)
        return;
    bb->stopped = 1;
    mosquitto_disconnect(bb->mosq); /* its thread sends DISCONNECT, then sees `stopping` */
    pthread_mutex_lock(&bb->lock);
    bb->stopping = 1;
    pthread_cond_broadcast(&bb->cond);
    pthread_mutex_unlock(&bb->lock);
    if (bb->thread_started)
        pthread_join(bb->thread, NULL);
    while (bb->fifo_len > 0) { /* their connections close with the broker */
        hub_msg_unref(bb->fifo[bb->fifo_head]);
        bb->fifo_head = (bb->fifo_head + 1) % bb->fifo_cap;
        bb->fifo_len--;
    }
    uv_close((uv_handle_t *)&bb->wake, closed_cb);
}

/* ---- metrics ---------------------------------------------------------------------------------- */

void hub_backbone_stats(struct hub_backbone *bb, struct hub_backbone_stats *s)
{
    memset(s, 0, sizeof *s);
    if (bb == NULL)
        return;
    s->connected = atomic_load(&bb->connected);
    s->connects = get(&bb->connects);
    for (int q = 0; q < 3; q++) {
        s->forwarded[q] = get(&bb->forwarded[q]);
        s->received[q] = get(&bb->received[q]);
    }
    s->dropped_disconnected = get(&bb->dropped_disconnected);
    s->dropped_full = get(&bb->dropped_full);
    s->refused = get(&bb->refused);
    s->dropped_inbound = get(&bb->dropped_inbound);
    s->held = get(&bb->held);
    s->queued_bytes = get(&bb->queued_now);
    s->waiting = get(&bb->waiting);
    s->filters = get(&bb->filters);
}

static int family(hub_buf_t *out, const char *name, const char *type, const char *help)
{
    return hub_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int hub_backbone_metrics(struct hub_backbone *bb, hub_buf_t *out)
{
    struct hub_backbone_stats s;
    if (bb == NULL)
        return 0;
    hub_backbone_stats(bb, &s);
    int rc = family(out, "iothub_backbone_connected", "gauge",
                    "1 while this node is connected to the message backbone.");
    rc = rc ? rc : hub_buf_printf(out, "iothub_backbone_connected %d\n", s.connected);
    rc = rc ? rc : family(out, "iothub_backbone_connects_total", "counter",
                          "Connections to the backbone accepted (CONNACK), reconnects included.");
    rc = rc ? rc : hub_buf_printf(out, "iothub_backbone_connects_total %llu\n", s.connects);
    rc = rc ? rc : family(out, "iothub_backbone_forwarded_total", "counter",
                          "Messages accepted on this node and handed to the backbone, by QoS.");
    for (int q = 0; q < 3 && rc == 0; q++)
        rc = hub_buf_printf(out, "iothub_backbone_forwarded_total{qos=\"%d\"} %llu\n", q,
                            s.forwarded[q]);
    rc = rc ? rc : family(out, "iothub_backbone_received_total", "counter",
                          "Messages received from the backbone and routed here, by QoS.");
    for (int q = 0; q < 3 && rc == 0; q++)
        rc = hub_buf_printf(out, "iothub_backbone_received_total{qos=\"%d\"} %llu\n", q,
                            s.received[q]);
    rc = rc ? rc : family(out, "iothub_backbone_dropped_total", "counter",
                          "Messages not forwarded or not routed, by reason.");
    rc = rc ? rc
            : hub_buf_printf(out,
                             "iothub_backbone_dropped_total{reason=\"disconnected\"} %llu\n"
                             "iothub_backbone_dropped_total{reason=\"queue_full\"} %llu\n"
                             "iothub_backbone_dropped_total{reason=\"refused\"} %llu\n"
                             "iothub_backbone_dropped_total{reason=\"inbound_invalid\"} %llu\n",
                             s.dropped_disconnected, s.dropped_full, s.refused,
                             s.dropped_inbound);
    rc = rc ? rc : family(out, "iothub_backbone_held", "gauge",
                          "Publishers' acknowledgements held until the backbone acknowledges.");
    rc = rc ? rc : hub_buf_printf(out, "iothub_backbone_held %llu\n", s.held);
    rc = rc ? rc : family(out, "iothub_backbone_queued_bytes", "gauge",
                          "Bytes of forwards the backbone has not acknowledged yet.");
    rc = rc ? rc : hub_buf_printf(out, "iothub_backbone_queued_bytes %llu\n", s.queued_bytes);
    rc = rc ? rc : family(out, "iothub_backbone_waiting", "gauge",
                          "QoS 1/2 forwards waiting for room (over backbone_max_queued).");
    rc = rc ? rc : hub_buf_printf(out, "iothub_backbone_waiting %llu\n", s.waiting);
    rc = rc ? rc : family(out, "iothub_backbone_filters", "gauge",
                          "Topic filters this node subscribes to on the backbone.");
    rc = rc ? rc : hub_buf_printf(out, "iothub_backbone_filters %llu\n", s.filters);
    return rc;
}
