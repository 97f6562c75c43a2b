/* Broker core. Sessions live in a hash table keyed by "d:<device id>" (a device has one
 * session whatever its client id) or "s:<service id>/<client id>". Subscriptions are in a
 * topic trie whose subscriber pointers are sessions. Each session keeps one FIFO of QoS 1/2
 * deliveries (queued, then in flight up to max_inflight); QoS 0 goes straight to the wire
 * and is not kept for offline sessions. Routing stamps each session with the message number
 * so a session matched by several filters gets one copy at its highest granted QoS.
 *
 * Hot path: packets are decoded where the transport holds them (only a partial packet is
 * buffered); a received QoS 0 PUBLISH goes on as it came (no allocation, no copy); QoS 1/2
 * ones are copied once into a refcounted message laid out as the wire packet, so each
 * delivery is one write. A QoS 0 copy of a QoS 1/2 message is encoded once per routing.
 *
 * Flow control: when a QoS 1/2 PUBLISH from a client meets a connected session whose queue
 * holds max_queued messages, the message is still queued and the publisher's
 * acknowledgements (PUBACK/PUBREC, kept in order) are withheld until that queue has drained
 * to 3/4, the session goes offline or HOLD_MAX_MS pass: the publisher's own in-flight window
 * then slows it to the subscriber's pace. A publisher may have max_inflight acknowledgements
 * withheld, so a queue exceeds max_queued by at most max_inflight per publisher. Messages
 * beyond that, for offline sessions, to the publisher's own session or published by the
 * server (commands, wills) are dropped, counted per session and
 * logged at most every DROP_LOG_MS per session. */
#include "mqtt/broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/codec.h"
#include "mqtt/msg.h"
#include "mqtt/session.h"
#include "mqtt/subtree.h"
#include "mqtt/topic.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/log.h"

#define HOLD_MAX_MS 10000 /* longest a publisher's acknowledgements are withheld */
#define DROP_LOG_MS 10000 /* a session's dropped messages are reported this often */
#define HELD_MAX 65535    /* withheld acknowledgements per connection (distinct ids) */

struct hub_mqtt_conn {
    struct hub_broker *b;
    const struct hub_mqtt_transport *t;
    void *tconn;
    struct hub_mqtt_identity who;
    char **pub_patterns, **sub_patterns; /* services: owned copies */
    hub_buf_t in;          /* the start of a packet not complete yet */
    int connected;         /* CONNECT accepted */
    int closing;           /* close requested: ignore further input */
    int keep_will;         /* publish the will when the transport closes */
    enum hub_mqtt_close close_reason; /* why the broker closed it (NONE: it did not) */
    uint8_t level;
    uint16_t keepalive;
    uint64_t last_rx_ms, opened_ms;
    struct hub_msg *will;
    struct hub_session *s;
    /* Flow control: acknowledgements withheld (type << 16 | packet id, in order), since when,
     * and the full sessions this publisher waits on. */
    uint32_t *held;
    size_t nheld, held_cap;
    uint64_t held_ms;
    int reading_paused; /* transport asked to stop reading (max_inflight withheld) */
    struct hub_session **waits;
    size_t nwaits, waits_cap;
    struct hub_mqtt_conn *prev, *next; /* all connections */
};

struct hub_broker {
    struct hub_broker_options o;
    struct hub_session_table sessions;
    hub_subtree_t *subs;
    struct hub_retained retained;
    struct hub_mqtt_conn *conns;
    size_t nconns;
    uint64_t stamp;                /* routing stamp */
    struct hub_session **targets;  /* reused by route() */
    size_t ntargets, targets_cap;
    hub_buf_t out;                 /* reused for encoded packets */
    hub_buf_t q0;                  /* the QoS 0 copy of q0_msg, retain flag q0_retain */
    const struct hub_msg *q0_msg;  /* valid during one routing only */
    int q0_retain;
    uint64_t now_ms;               /* latest time given by the transport */
    size_t throttled;              /* connections with acknowledgements withheld */
    struct hub_broker_stats st;
};

/* ---- writing --------------------------------------------------------------------------- */

static void conn_close(struct hub_mqtt_conn *c, int keep_will, enum hub_mqtt_close reason,
                       const char *why)
{
    if (c->closing)
        return;
    c->close_reason = reason;
    if (why != NULL)
        hub_info("mqtt: closing %s %s: %s", c->who.kind == HUB_MQTT_DEVICE ? "device" : "service",
                 c->who.id, why);
    c->keep_will = keep_will;
    c->closing = 1;
    c->t->close(c->tconn);
}

static void conn_write(struct hub_mqtt_conn *c, const void *p, size_t n)
{
    if (!c->closing && c->t->write(c->tconn, p, n) != 0)
        conn_close(c, 1, HUB_MQTT_CLOSE_ERROR, "write failed");
}

/* Sends a PUBLISH of m at qos with packet id pid, in one write. */
static void send_publish(struct hub_mqtt_conn *c, const struct hub_msg *m, int qos, int dup,
                         uint16_t pid, int retain)
{
    struct hub_broker *b = c->b;
    const uint8_t *pkt;
    size_t n = hub_msg_packet(m, qos, retain, dup, pid, &pkt);
    if (n == 0) { /* a QoS 0 copy of a QoS 1/2 message: encoded once per routing */
        if (b->q0_msg != m || b->q0_retain != retain) {
            b->q0.len = 0;
            b->q0_msg = NULL;
            if (hub_mqtt_publish_append(&b->q0, m->topic, m->topic_len, 0, retain, 0, 0,
                                        m->payload, m->payload_len) != 0) {
                conn_close(c, 1, HUB_MQTT_CLOSE_ERROR, "out of memory");
                return;
            }
            b->q0_msg = m;
            b->q0_retain = retain;
        }
        pkt = b->q0.data;
        n = b->q0.len;
    }
    conn_write(c, pkt, n);
    c->b->st.msgs_out++;
    c->b->st.out_by_qos[qos > 2 ? 2 : qos]++;
}

static void send_ack(struct hub_mqtt_conn *c, int type, uint16_t pid)
{
    uint8_t buf[4];
    conn_write(c, buf, hub_mqtt_ack(buf, type, pid));
}

/* Sends queued deliveries of the session while the in-flight window allows. */
static void pump(struct hub_session *s)
{
    struct hub_mqtt_conn *c = s->conn;
    if (c == NULL || !c->connected || c->closing)
        return; /* kept queued: sent, DUP 0, on the next connection of a persistent session */
    struct hub_delivery *d;
    while (!c->closing && s->inflight < c->b->o.max_inflight &&
           (d = hub_session_next_unsent(s)) != NULL) {
        d->pid = hub_session_next_pid(s);
        d->state = HUB_DELIVERY_SENT;
        hub_session_set_inflight(s, s->inflight + 1);
        send_publish(c, d->msg, d->qos, 0, d->pid, d->retain);
    }
}

/* Makes room for one more element in the array *arr of *cap elements of size elem, n of
 * them used: doubles it (from first) when full. 0 or HUB_ENOMEM (the array unchanged). */
static int grow(void *arr, size_t n, size_t *cap, size_t elem, size_t first)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : first;
    void *old, *p;
    memcpy(&old, arr, sizeof old); /* arr points to a T *: no aliasing through void ** */
    if ((p = realloc(old, c * elem)) == NULL)
        return HUB_ENOMEM;
    memcpy(arr, &p, sizeof p);
    *cap = c;
    return 0;
}

/* ---- flow control ---------------------------------------------------------------------- */

/* Sends a PUBACK/PUBREC for a client's PUBLISH, or keeps it (in order) while the client is
 * throttled. */
static void ack_publish(struct hub_mqtt_conn *c, int type, uint16_t pid)
{
    if (c->nwaits == 0 && c->nheld == 0) {
        send_ack(c, type, pid);
        return;
    }
    if (c->nheld >= HELD_MAX) {
        conn_close(c, 1, HUB_MQTT_CLOSE_PROTOCOL, "more than 65535 unacknowledged PUBLISHes");
        return;
    }
    if (grow(&c->held, c->nheld, &c->held_cap, sizeof *c->held, 16) != 0) {
        conn_close(c, 1, HUB_MQTT_CLOSE_ERROR, "out of memory");
        return;
    }
    if (c->nheld == 0)
        c->b->throttled++;
    c->held[c->nheld++] = (uint32_t)type << 16 | pid;
    if (!c->reading_paused && c->nheld >= c->b->o.max_inflight && c->t->pause != NULL) {
        c->reading_paused = 1;
        c->t->pause(c->tconn, 1);
    }
}

/* The connection waits on no session any more: its withheld acknowledgements go out. */
static void release_held(struct hub_mqtt_conn *c)
{
    if (c->nheld == 0)
        return;
    c->b->throttled--;
    for (size_t i = 0; i < c->nheld && !c->closing; i++)
        send_ack(c, (int)(c->held[i] >> 16), (uint16_t)c->held[i]);
    c->nheld = 0;
    if (c->reading_paused) {
        c->reading_paused = 0;
        c->last_rx_ms = c->b->now_ms; /* its keepalive was not its to keep while paused */
        if (!c->closing)
            c->t->pause(c->tconn, 0);
    }
}

/* Makes publisher c wait on session s (once). 0 or HUB_ENOMEM. */
static int wait_on(struct hub_mqtt_conn *c, struct hub_session *s)
{
    for (size_t i = 0; i < c->nwaits; i++)
        if (c->waits[i] == s)
            return 0;
    if (grow(&c->waits, c->nwaits, &c->waits_cap, sizeof *c->waits, 4) != 0 ||
        grow(&s->waiters, s->nwaiters, &s->waiters_cap, sizeof *s->waiters, 4) != 0)
        return HUB_ENOMEM;
    c->waits[c->nwaits++] = s;
    s->waiters[s->nwaiters++] = c;
    if (c->nheld == 0)
        c->held_ms = c->b->now_ms;
    return 0;
}

static void unlink_session(struct hub_mqtt_conn *c, const struct hub_session *s)
{
    for (size_t i = 0; i < c->nwaits; i++) {
        if (c->waits[i] == s) {
            c->waits[i] = c->waits[--c->nwaits];
            return;
        }
    }
}

static void unlink_conn(struct hub_session *s, const struct hub_mqtt_conn *c)
{
    for (size_t i = 0; i < s->nwaiters; i++) {
        if (s->waiters[i] == c) {
            s->waiters[i] = s->waiters[--s->nwaiters];
            return;
        }
    }
}

/* Session s no longer holds its publishers back (drained, offline or gone). */
static void wake_waiters(struct hub_session *s)
{
    while (s->nwaiters > 0) {
        struct hub_mqtt_conn *c = s->waiters[--s->nwaiters];
        unlink_session(c, s);
        if (c->nwaits == 0)
            release_held(c);
    }
}

/* Connection c stops waiting on anything (closing, or held too long). */
static void unwait_all(struct hub_mqtt_conn *c)
{
    while (c->nwaits > 0) {
        struct hub_session *s = c->waits[--c->nwaits];
        unlink_conn(s, c);
    }
}

/* Called when a session's queue shrank. */
static void queue_shrunk(struct hub_broker *b, struct hub_session *s)
{
    size_t low = b->o.max_queued - b->o.max_queued / 4;
    if (low == b->o.max_queued && low > 0)
        low--;
    if (s->nwaiters > 0 && s->queued <= low)
        wake_waiters(s);
}

/* Destroys a session and what the broker keeps about it. */
static void session_drop(struct hub_broker *b, struct hub_session *s)
{
    wake_waiters(s);
    hub_subtree_remove_all(b->subs, s, (const char *const *)s->filters, s->nsubs);
    hub_session_destroy(&b->sessions, s);
}

/* ---- routing --------------------------------------------------------------------------- */

static void match_cb(void *subscriber, uint8_t qos, void *ctx)
{
    struct hub_broker *b = ctx;
    struct hub_session *s = subscriber;
    if (s->stamp == b->stamp) {
        if (qos > s->stamp_qos)
            s->stamp_qos = qos;
        return;
    }
    s->stamp = b->stamp;
    s->stamp_qos = qos;
    if (grow(&b->targets, b->ntargets, &b->targets_cap, sizeof *b->targets, 64) != 0)
        return; /* this subscriber misses the message; logged by the caller's count */
    b->targets[b->ntargets++] = s;
}

/* A message for session s is dropped: counted, and reported at most every DROP_LOG_MS. */
static void drop(struct hub_broker *b, struct hub_session *s)
{
    b->st.dropped_queue++;
    s->dropped++;
    if (s->drop_logged_ms == 0 || b->now_ms - s->drop_logged_ms >= DROP_LOG_MS) {
        hub_warn("mqtt: session %s holds %zu messages (%s): dropped %llu new one%s", s->key,
                 s->queued, s->conn != NULL ? "slow subscriber" : "offline", s->dropped,
                 s->dropped == 1 ? "" : "s");
        s->dropped = 0;
        s->drop_logged_ms = b->now_ms ? b->now_ms : 1;
    }
}

/* 1 when session s may not take one more message: dropped (see the top of the file). A
 * client publisher pub (may be NULL) is made to wait instead while s is connected, unless s
 * is its own session (a client reading its PUBACKs before its deliveries would deadlock). */
static int queue_full(struct hub_broker *b, struct hub_session *s, struct hub_mqtt_conn *pub)
{
    if (hub_session_queued(s) < b->o.max_queued)
        return 0;
    /* Nor on a subscriber that is itself paused as a publisher: it could not read the
     * acknowledgements that would drain its queue, and the two would wait on each other. */
    if (pub != NULL && pub->s != s && s->conn != NULL && !s->conn->reading_paused &&
        pub->nheld < b->o.max_inflight && wait_on(pub, s) == 0)
        return 0;
    drop(b, s);
    return 1;
}

/* Delivers m to one session at qos; pub is the client that published it, if any. */
static void deliver(struct hub_broker *b, struct hub_session *s, struct hub_msg *m, int qos,
                    struct hub_mqtt_conn *pub)
{
    if (qos == 0) {
        if (s->conn != NULL && s->conn->connected)
            send_publish(s->conn, m, 0, 0, 0, 0);
        return;
    }
    if (queue_full(b, s, pub))
        return;
    if (hub_session_enqueue(s, m, (uint8_t)qos) != 0)
        return;
    pump(s);
}

/* Routes m to every matching subscription; returns how many sessions got it, and sets
 * *to_device when the connected session of device key got it. pub: the publishing client
 * connection, NULL for the server. */
static size_t route(struct hub_broker *b, struct hub_msg *m, const struct hub_session *device,
                    int *to_device, struct hub_mqtt_conn *pub)
{
    if (m->retain)
        hub_retained_set(&b->retained, m);
    b->stamp++;
    b->ntargets = 0;
    hub_subtree_match(b->subs, m->topic, m->topic_len, match_cb, b);
    for (size_t i = 0; i < b->ntargets; i++) {
        struct hub_session *s = b->targets[i];
        int qos = s->stamp_qos < m->qos ? s->stamp_qos : m->qos;
        deliver(b, s, m, qos, pub);
        if (to_device != NULL && s == device && s->conn != NULL)
            *to_device = 1;
    }
    b->q0_msg = NULL;
    return b->ntargets;
}

/* ---- packets --------------------------------------------------------------------------- */

static size_t count_patterns(const char *const *p)
{
    size_t n = 0;
    while (p != NULL && p[n] != NULL)
        n++;
    return n;
}

/* topic: a name the codec has validated (PUBLISH or will topic). */
static int may_publish(struct hub_mqtt_conn *c, const char *topic, size_t len)
{
    if (c->who.kind == HUB_MQTT_DEVICE)
        return hub_acl_device_checked(c->who.id, topic, len);
    return hub_acl_allows((const char *const *)c->pub_patterns, count_patterns(
                              (const char *const *)c->pub_patterns), topic, len, 0);
}

static int may_subscribe(struct hub_mqtt_conn *c, const char *filter, size_t len)
{
    if (c->who.kind == HUB_MQTT_DEVICE)
        return hub_acl_device(c->who.id, filter, len, 1);
    return hub_acl_allows((const char *const *)c->sub_patterns, count_patterns(
                              (const char *const *)c->sub_patterns), filter, len, 1);
}

static void on_connect(struct hub_mqtt_conn *c, const hub_mqtt_connect_t *p, uint64_t now_ms)
{
    struct hub_broker *b = c->b;
    uint8_t ack[4];
    c->level = p->level;
    if (p->refuse) {
        conn_write(c, ack, hub_mqtt_connack(ack, 0, p->refuse));
        conn_close(c, 0, HUB_MQTT_CLOSE_REFUSED,
                   p->refuse == 1 ? "unacceptable protocol version" : "client identifier rejected");
        return;
    }
    if (!p->clean && p->client_id.len == 0) {
        conn_write(c, ack, hub_mqtt_connack(ack, 0, HUB_MQTT_CONNACK_BAD_CLIENT_ID));
        conn_close(c, 0, HUB_MQTT_CLOSE_REFUSED, "empty client id with a persistent session");
        return;
    }
    if (p->will && !may_publish(c, p->will_topic.ptr, p->will_topic.len)) {
        conn_write(c, ack, hub_mqtt_connack(ack, 0, HUB_MQTT_CONNACK_NOT_AUTHORIZED));
        conn_close(c, 0, HUB_MQTT_CLOSE_REFUSED, "will topic not allowed");
        return;
    }
    if (p->client_id.len > HUB_MQTT_MAX_CLIENT_ID) {
        conn_write(c, ack, hub_mqtt_connack(ack, 0, HUB_MQTT_CONNACK_BAD_CLIENT_ID));
        conn_close(c, 0, HUB_MQTT_CLOSE_REFUSED, "client id longer than 256 bytes");
        return;
    }
    /* A service may run several consumers: its sessions are keyed by the whole client id. */
    char key[sizeof c->who.id + HUB_MQTT_MAX_CLIENT_ID + 4];
    if (c->who.kind == HUB_MQTT_DEVICE)
        snprintf(key, sizeof key, "d:%s", c->who.id);
    else
        snprintf(key, sizeof key, "s:%s/%.*s", c->who.id, (int)p->client_id.len,
                 p->client_id.ptr);

    struct hub_session *s = hub_session_find(&b->sessions, key);
    if (s != NULL && s->conn != NULL) { /* takeover: the older connection goes */
        struct hub_mqtt_conn *old = s->conn;
        s->conn = NULL;
        old->s = NULL; /* detached: its close will not report presence, so do it here */
        if (old->who.kind == HUB_MQTT_DEVICE && b->o.presence != NULL)
            b->o.presence(old->who.id, 0, b->o.ctx);
        conn_close(old, 0, HUB_MQTT_CLOSE_TAKEOVER, "session taken over by a new connection");
    }
    if (s != NULL && p->clean) {
        session_drop(b, s);
        s = NULL;
    }
    int present = s != NULL;
    if (s == NULL && (s = hub_session_create(&b->sessions, key)) == NULL) {
        conn_write(c, ack, hub_mqtt_connack(ack, 0, HUB_MQTT_CONNACK_UNAVAILABLE));
        conn_close(c, 0, HUB_MQTT_CLOSE_ERROR, "out of memory");
        return;
    }
    s->clean = p->clean;
    s->conn = c;
    c->s = s;
    c->keepalive = p->keepalive;
    c->last_rx_ms = now_ms;
    if (p->will) {
        c->will = hub_msg_new(p->will_topic.ptr, p->will_topic.len, p->will_payload.ptr,
                              p->will_payload.len, p->will_qos, p->will_retain);
    }
    c->connected = 1;
    conn_write(c, ack, hub_mqtt_connack(ack, c->level == HUB_MQTT_V311 && present, 0));
    if (c->t->accepted != NULL)
        c->t->accepted(c->tconn);
    if (c->who.kind == HUB_MQTT_DEVICE && b->o.presence != NULL)
        b->o.presence(c->who.id, 1, b->o.ctx);
    /* Resume: in-flight deliveries again with DUP, then whatever waited. */
    unsigned inflight = 0;
    for (struct hub_delivery *d = s->head; d != NULL; d = d->next) {
        if (d->state == HUB_DELIVERY_SENT) {
            send_publish(c, d->msg, d->qos, 1, d->pid, d->retain);
            inflight++;
        } else if (d->state == HUB_DELIVERY_RELEASED) {
            send_ack(c, HUB_MQTT_PUBREL, d->pid);
            inflight++;
        }
    }
    hub_session_set_inflight(s, inflight);
    pump(s);
}

/* A PUBLISH from the client: pkt (len bytes) is the whole packet. */
static void on_publish(struct hub_mqtt_conn *c, const hub_mqtt_publish_t *p, const uint8_t *pkt,
                       size_t len)
{
    struct hub_broker *b = c->b;
    struct hub_session *s = c->s;
    b->st.msgs_in++;
    b->st.in_by_qos[p->qos <= 2 ? p->qos : 2]++;
    if (p->qos == 2 && hub_session_has_incoming(s, p->packet_id)) {
        ack_publish(c, HUB_MQTT_PUBREC, p->packet_id); /* duplicate: already routed */
        return;
    }
    if (!may_publish(c, p->topic.ptr, p->topic.len)) {
        b->st.dropped_acl++;
        hub_warn("mqtt: %s %s may not publish to \"%.*s\": dropped",
                 c->who.kind == HUB_MQTT_DEVICE ? "device" : "service", c->who.id,
                 (int)(p->topic.len > 200 ? 200 : p->topic.len), p->topic.ptr);
    } else if (hub_msg_borrowable(pkt, len)) {
        /* QoS 0, no RETAIN: sent on as it came (QoS 0 copies are never kept). */
        struct hub_msg m;
        hub_msg_borrow(&m, pkt, len);
        route(b, &m, NULL, NULL, c);
    } else {
        struct hub_msg *m = hub_msg_new(p->topic.ptr, p->topic.len, p->payload, p->payload_len,
                                        p->qos, p->retain);
        if (m != NULL) {
            route(b, m, NULL, NULL, c);
            hub_msg_unref(m);
        }
    }
    if (p->qos == 1) {
        ack_publish(c, HUB_MQTT_PUBACK, p->packet_id);
    } else if (p->qos == 2) {
        hub_session_add_incoming(s, p->packet_id);
        ack_publish(c, HUB_MQTT_PUBREC, p->packet_id);
    }
}

static void on_ack(struct hub_mqtt_conn *c, int type, uint16_t pid)
{
    struct hub_session *s = c->s;
    if (type == HUB_MQTT_PUBREL) {
        hub_session_remove_incoming(s, pid);
        send_ack(c, HUB_MQTT_PUBCOMP, pid);
        return;
    }
    struct hub_delivery *d = hub_session_find_pid(s, pid);
    if (d == NULL)
        return; /* unknown or stale id: ignored, as the spec allows */
    if (type == HUB_MQTT_PUBREC && d->qos == 2 && d->state == HUB_DELIVERY_SENT) {
        d->state = HUB_DELIVERY_RELEASED;
        send_ack(c, HUB_MQTT_PUBREL, pid);
        return;
    }
    if ((type == HUB_MQTT_PUBACK && d->qos == 1) || (type == HUB_MQTT_PUBCOMP && d->qos == 2)) {
        hub_session_remove(s, d);
        if (s->inflight > 0)
            hub_session_set_inflight(s, s->inflight - 1);
        queue_shrunk(c->b, s);
        pump(s);
    }
}

static void send_retained_cb(const struct hub_msg *m, void *ctx)
{
    void **a = ctx;
    struct hub_mqtt_conn *c = a[0];
    const hub_mqtt_str_t *f = a[1];
    int granted = *(int *)a[2];
    if (!hub_topic_match(f->ptr, f->len, m->topic, m->topic_len))
        return;
    int qos = m->qos < granted ? m->qos : granted;
    if (qos == 0) {
        send_publish(c, m, 0, 0, 0, 1);
        return;
    }
    /* QoS 1/2 retained copies go through the session queue with the retain flag kept. */
    if (!queue_full(c->b, c->s, NULL) &&
        hub_session_enqueue_retained(c->s, (struct hub_msg *)m, (uint8_t)qos) == 0)
        pump(c->s);
}

static void on_subscribe(struct hub_mqtt_conn *c, const hub_mqtt_subscribe_t *p)
{
    struct hub_broker *b = c->b;
    uint8_t codes[256];
    size_t off = 0, n = 0;
    if (p->count > sizeof codes) {
        conn_close(c, 1, HUB_MQTT_CLOSE_PROTOCOL, "more than 256 filters in one SUBSCRIBE");
        return;
    }
    hub_mqtt_str_t f;
    uint8_t qos;
    hub_buf_t *out = &b->out;
    /* First the SUBACK, then retained messages (they must follow it). */
    size_t first = 0;
    while (n < sizeof codes && hub_mqtt_sub_next(p, &off, &f, &qos) == 1) {
        if (!may_subscribe(c, f.ptr, f.len)) {
            codes[n++] = HUB_MQTT_SUBACK_FAILURE;
            hub_warn("mqtt: %s %s may not subscribe to \"%.*s\": refused",
                     c->who.kind == HUB_MQTT_DEVICE ? "device" : "service", c->who.id,
                     (int)(f.len > 200 ? 200 : f.len), f.ptr);
            continue;
        }
        int rc = hub_subtree_insert(b->subs, f.ptr, f.len, c->s, qos);
        if (rc == 0 && hub_session_add_filter(c->s, f.ptr, f.len) != 0) {
            hub_subtree_remove(b->subs, f.ptr, f.len, c->s);
            rc = HUB_ENOMEM;
        }
        codes[n++] = rc < 0 ? HUB_MQTT_SUBACK_FAILURE : qos;
    }
    out->len = 0;
    if (hub_mqtt_suback(out, p->packet_id, codes, n) == 0)
        conn_write(c, out->data, out->len);
    off = 0;
    while (first < n && hub_mqtt_sub_next(p, &off, &f, &qos) == 1) {
        int granted = codes[first++];
        if (granted == HUB_MQTT_SUBACK_FAILURE)
            continue;
        void *ctx[3] = {c, &f, &granted};
        hub_retained_each(&b->retained, send_retained_cb, ctx);
        b->q0_msg = NULL; /* the QoS 0 copy is valid during one routing only */
    }
}

static void on_unsubscribe(struct hub_mqtt_conn *c, const hub_mqtt_subscribe_t *p)
{
    size_t off = 0;
    hub_mqtt_str_t f;
    uint8_t qos;
    while (hub_mqtt_sub_next(p, &off, &f, &qos) == 1) {
        if (hub_subtree_remove(c->b->subs, f.ptr, f.len, c->s) == 0)
            hub_session_remove_filter(c->s, f.ptr, f.len);
    }
    send_ack(c, HUB_MQTT_UNSUBACK, p->packet_id);
}

/* Handles one complete packet; returns 0, or -1 after closing the connection. */
static int handle(struct hub_mqtt_conn *c, const uint8_t *pkt, size_t len, uint64_t now_ms)
{
    hub_mqtt_packet_t p;
    const char *why = NULL;
    memset(&p, 0, sizeof p);
    int rc = hub_mqtt_decode(pkt, len, c->connected ? c->level : 0, &p, &why);
    if (rc != 0) {
        if (!c->connected && (pkt[0] >> 4) == HUB_MQTT_CONNECT && p.u.connect.refuse) {
            on_connect(c, &p.u.connect, now_ms); /* answers CONNACK with the code, closes */
            return -1;
        }
        hub_info("mqtt: malformed %s from %s: %s", hub_mqtt_type_name(pkt[0] >> 4), c->who.id,
                 why ? why : "?");
        conn_close(c, 1, HUB_MQTT_CLOSE_PROTOCOL, why ? why : "malformed packet");
        return -1;
    }
    if (!c->connected && p.type != HUB_MQTT_CONNECT) {
        conn_close(c, 0, HUB_MQTT_CLOSE_PROTOCOL, "first packet is not CONNECT");
        return -1;
    }
    c->last_rx_ms = now_ms;
    switch (p.type) {
    case HUB_MQTT_CONNECT:
        if (c->connected) {
            conn_close(c, 1, HUB_MQTT_CLOSE_PROTOCOL, "second CONNECT");
            return -1;
        }
        on_connect(c, &p.u.connect, now_ms);
        break;
    case HUB_MQTT_PUBLISH: on_publish(c, &p.u.publish, pkt, len); break;
    case HUB_MQTT_PUBACK:
    case HUB_MQTT_PUBREC:
    case HUB_MQTT_PUBREL:
    case HUB_MQTT_PUBCOMP: on_ack(c, p.type, p.u.packet_id); break;
    case HUB_MQTT_SUBSCRIBE: on_subscribe(c, &p.u.subscribe); break;
    case HUB_MQTT_UNSUBSCRIBE: on_unsubscribe(c, &p.u.subscribe); break;
    case HUB_MQTT_PINGREQ: {
        uint8_t buf[2];
        conn_write(c, buf, hub_mqtt_pingresp(buf));
        break;
    }
    case HUB_MQTT_DISCONNECT: conn_close(c, 0, HUB_MQTT_CLOSE_NORMAL, NULL); return -1;
    default: conn_close(c, 1, HUB_MQTT_CLOSE_PROTOCOL, "unexpected packet type"); return -1;
    }
    return c->closing ? -1 : 0;
}

/* ---- connections ----------------------------------------------------------------------- */

static char **copy_patterns(const char *const *in)
{
    size_t n = count_patterns(in);
    char **out = calloc(n + 1, sizeof *out);
    for (size_t i = 0; out != NULL && i < n; i++) {
        if ((out[i] = strdup(in[i])) == NULL) {
            for (size_t j = 0; j < i; j++)
                free(out[j]);
            free(out);
            return NULL;
        }
    }
    return out;
}

static void free_patterns(char **p)
{
    for (size_t i = 0; p != NULL && p[i] != NULL; i++)
        free(p[i]);
    free(p);
}

struct hub_mqtt_conn *hub_mqtt_conn_open(struct hub_broker *b,
                                         const struct hub_mqtt_transport *t, void *tconn,
                                         const struct hub_mqtt_identity *who, uint64_t now_ms)
{
    struct hub_mqtt_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->b = b;
    c->t = t;
    c->tconn = tconn;
    c->who = *who;
    c->who.publish = c->who.subscribe = NULL;
    if (who->kind == HUB_MQTT_SERVICE) {
        static const char *const none[] = {NULL};
        c->pub_patterns = copy_patterns(who->publish ? who->publish : none);
        c->sub_patterns = copy_patterns(who->subscribe ? who->subscribe : none);
        if (c->pub_patterns == NULL || c->sub_patterns == NULL) {
            free_patterns(c->pub_patterns);
            free_patterns(c->sub_patterns);
            free(c);
            return NULL;
        }
    }
    c->opened_ms = c->last_rx_ms = now_ms;
    c->next = b->conns;
    if (b->conns != NULL)
        b->conns->prev = c;
    b->conns = c;
    b->nconns++;
    return c;
}

/* Handles the complete packets at p[0..n); returns the bytes they took, or SIZE_MAX once
 * the connection is closing. */
static size_t handle_all(struct hub_mqtt_conn *c, const uint8_t *p, size_t n, uint64_t now_ms)
{
    size_t off = 0, plen;
    for (;;) {
        int rc = hub_mqtt_frame(p + off, n - off, c->b->o.max_packet, &plen);
        if (rc == 0)
            return off;
        if (rc < 0) {
            conn_close(c, 1, rc == HUB_ERANGE ? HUB_MQTT_CLOSE_LIMIT : HUB_MQTT_CLOSE_PROTOCOL,
                       rc == HUB_ERANGE ? "packet larger than the maximum"
                                        : "malformed remaining length");
            return SIZE_MAX;
        }
        off += plen;
        if (handle(c, p + off - plen, plen, now_ms) != 0)
            return SIZE_MAX;
    }
}

void hub_mqtt_conn_data(struct hub_mqtt_conn *c, const uint8_t *data, size_t len,
                        uint64_t now_ms)
{
    hub_buf_t *in = &c->in;
    size_t used;
    if (c->closing)
        return;
    c->b->now_ms = now_ms;
    if (in->len == 0) {
        /* Nothing pending: whole packets are handled where the transport holds them, only
         * a partial one at the end is kept. */
        if ((used = handle_all(c, data, len, now_ms)) == SIZE_MAX || used == len)
            return;
        if (hub_buf_append(in, data + used, len - used) != 0)
            conn_close(c, 1, HUB_MQTT_CLOSE_ERROR, "out of memory");
        return;
    }
    if (hub_buf_append(in, data, len) != 0) {
        conn_close(c, 1, HUB_MQTT_CLOSE_ERROR, "out of memory");
        return;
    }
    if ((used = handle_all(c, in->data, in->len, now_ms)) == SIZE_MAX)
        return;
    memmove(in->data, in->data + used, in->len - used);
    in->len -= used;
}

void hub_mqtt_conn_closed(struct hub_mqtt_conn *c, int revoked)
{
    struct hub_broker *b = c->b;
    struct hub_session *s = c->s;
    /* Its withheld acknowledgements are dropped with it (the client resends on reconnect). */
    unwait_all(c);
    if (c->nheld > 0)
        b->throttled--;
    c->nheld = 0;
    /* Detach the session first, so that what is routed to it from now on (the will
     * included) waits in its queue rather than being "sent" on this dead connection. */
    if (s != NULL && s->conn == c) {
        s->conn = NULL;
        wake_waiters(s); /* offline: its publishers are not held back any more */
        if (c->who.kind == HUB_MQTT_DEVICE && b->o.presence != NULL)
            b->o.presence(c->who.id, 0, b->o.ctx);
    } else {
        s = NULL;
    }
    /* The will goes out when the peer vanished or broke the protocol, not after a
     * DISCONNECT, a takeover or a revocation. */
    if (c->connected && c->will != NULL && !revoked && (!c->closing || c->keep_will)) {
        hub_info("mqtt: publishing the will of %s", c->who.id);
        route(b, c->will, NULL, NULL, NULL);
    }
    if (s != NULL && s->clean)
        session_drop(b, s);
    if (c->will != NULL)
        hub_msg_unref(c->will);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        b->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    b->nconns--;
    free_patterns(c->pub_patterns);
    free_patterns(c->sub_patterns);
    hub_buf_free(&c->in);
    free(c->held);
    free(c->waits);
    free(c);
}

/* ---- broker ---------------------------------------------------------------------------- */

struct hub_broker *hub_broker_new(const struct hub_broker_options *o)
{
    struct hub_broker *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->o = *o;
    b->subs = hub_subtree_new();
    if (b->subs == NULL || hub_session_table_init(&b->sessions) != 0) {
        hub_subtree_free(b->subs);
        free(b);
        return NULL;
    }
    return b;
}

void hub_broker_free(struct hub_broker *b)
{
    if (b == NULL)
        return;
    hub_session_table_free(&b->sessions);
    hub_retained_free(&b->retained);
    hub_subtree_free(b->subs);
    hub_buf_free(&b->out);
    hub_buf_free(&b->q0);
    free(b->targets);
    free(b);
}

void hub_broker_tick(struct hub_broker *b, uint64_t now_ms)
{
    b->now_ms = now_ms;
    for (struct hub_mqtt_conn *c = b->conns; c != NULL; c = c->next) {
        if (c->closing)
            continue;
        if (c->nheld > 0 && now_ms - c->held_ms > HOLD_MAX_MS) {
            hub_info("mqtt: %s %s: acknowledgements withheld for %d s: released",
                     c->who.kind == HUB_MQTT_DEVICE ? "device" : "service", c->who.id,
                     HOLD_MAX_MS / 1000);
            unwait_all(c);
            release_held(c);
        }
        if (!c->connected && now_ms - c->opened_ms > (uint64_t)b->o.connect_timeout * 1000)
            conn_close(c, 0, HUB_MQTT_CLOSE_TIMEOUT, "no CONNECT in time");
        else if (c->connected && c->keepalive > 0 && !c->reading_paused &&
                 now_ms - c->last_rx_ms > (uint64_t)c->keepalive * 1500)
            conn_close(c, 1, HUB_MQTT_CLOSE_TIMEOUT, "keepalive expired");
    }
}

size_t hub_broker_kick_serial(struct hub_broker *b, const char *serial_hex,
                              int (*is_revoked)(const char *serial_hex, void *ctx), void *ctx)
{
    size_t n = 0;
    for (struct hub_mqtt_conn *c = b->conns; c != NULL; c = c->next) {
        if (c->closing || c->who.serial[0] == 0)
            continue;
        int hit = serial_hex != NULL ? strcasecmp(c->who.serial, serial_hex) == 0
                                     : is_revoked(c->who.serial, ctx);
        if (hit) {
            conn_close(c, 0, HUB_MQTT_CLOSE_REVOKED, "certificate revoked");
            n++;
        }
    }
    return n;
}

size_t hub_broker_kick_principal(struct hub_broker *b, const char *id, const char *why)
{
    size_t n = 0;
    for (struct hub_mqtt_conn *c = b->conns; c != NULL; c = c->next) {
        if (!c->closing && strcmp(c->who.id, id) == 0) {
            conn_close(c, 0, HUB_MQTT_CLOSE_REVOKED, why);
            n++;
        }
    }
    return n;
}

int hub_broker_publish(struct hub_broker *b, const char *topic, const uint8_t *payload,
                       size_t len, int qos, int retain, const char *device_id)
{
    if (!hub_topic_name_valid(topic, strlen(topic)) || qos < 0 || qos > 2)
        return HUB_EINVAL;
    struct hub_msg *m = hub_msg_new(topic, strlen(topic), payload, len, (uint8_t)qos,
                                    (uint8_t)retain);
    if (m == NULL)
        return HUB_ENOMEM;
    const struct hub_session *device = NULL;
    if (device_id != NULL) {
        char key[64];
        snprintf(key, sizeof key, "d:%s", device_id);
        device = hub_session_find(&b->sessions, key);
    }
    int delivered = 0;
    route(b, m, device, &delivered, NULL);
    hub_msg_unref(m);
    return delivered;
}

int hub_broker_connected(struct hub_broker *b, const char *device_id)
{
    char key[64];
    snprintf(key, sizeof key, "d:%s", device_id);
    const struct hub_session *s = hub_session_find(&b->sessions, key);
    return s != NULL && s->conn != NULL;
}

void hub_broker_close_all(struct hub_broker *b)
{
    for (struct hub_mqtt_conn *c = b->conns; c != NULL; c = c->next)
        if (!c->closing)
            conn_close(c, 0, HUB_MQTT_CLOSE_SHUTDOWN, NULL);
}

void hub_broker_stats(const struct hub_broker *b, struct hub_broker_stats *out)
{
    *out = b->st;
    out->connections = b->nconns;
    out->sessions = b->sessions.count;
    out->subscriptions = hub_subtree_count(b->subs);
    out->retained = b->retained.count;
    out->queued = b->sessions.queued;
    out->inflight = b->sessions.inflight;
    out->throttled = b->throttled;
}

int hub_broker_check(const struct hub_broker *b)
{
    size_t queued = 0, inflight = 0, throttled = 0;
    for (size_t i = 0; i < b->sessions.nbuckets; i++) {
        for (const struct hub_session *s = b->sessions.buckets[i]; s != NULL; s = s->hnext) {
            size_t n = 0;
            for (const struct hub_delivery *d = s->head; d != NULL; d = d->next)
                n++;
            if (n != s->queued)
                return HUB_EINVAL;
            queued += s->queued;
            inflight += s->inflight;
            for (size_t k = 0; k < s->nwaiters; k++)
                if (s->conn == NULL)
                    return HUB_EINVAL; /* offline sessions hold nobody back */
        }
    }
    for (const struct hub_mqtt_conn *c = b->conns; c != NULL; c = c->next) {
        throttled += c->nheld > 0;
        if (c->nwaits > 0 && c->nheld == 0 && !c->closing)
            return HUB_EINVAL; /* waiting without anything withheld */
    }
    if (queued != b->sessions.queued || inflight != b->sessions.inflight ||
        throttled != b->throttled)
        return HUB_EINVAL;
    return 0;
}

enum hub_mqtt_close hub_mqtt_conn_close_reason(const struct hub_mqtt_conn *c)
{
    return c->close_reason;
}
