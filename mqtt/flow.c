/* Flow control and acknowledgement holds. When a QoS 1/2 PUBLISH from a client meets a connected
 * session whose queue holds max_queued messages, the message is still queued and the publisher's
 * acknowledgements (PUBACK/PUBREC, kept in order) are withheld until that queue has drained
 * to 3/4, the session goes offline or HOLD_MAX_MS pass: the publisher's own in-flight window
 * then slows it to the subscriber's pace. A publisher may have max_inflight acknowledgements
 * withheld, so a queue exceeds max_queued by at most max_inflight per publisher. Messages
 * beyond that, for offline sessions, to the publisher's own session or published by the
 * server (commands, wills) are dropped, counted per session and logged at most every
 * DROP_LOG_MS per session.
 *
 * A publisher c waits on the full sessions in c->waits; each session lists its waiting
 * publishers in s->waiters. The two lists are kept in step: a publisher's acknowledgements
 * go out when its last wait ends.
 *
 * The same line of withheld acknowledgements serves the hooks' holds (hooks.c): a message
 * the store or the backbone must make safe first is acknowledged only once each hold was
 * released (hub_broker_release), and never before an earlier packet's acknowledgement. Each
 * entry says what still holds it (holds, flow); the line goes out from its front. A hold
 * never expires (HOLD_MAX_MS ends flow control's waits only): an acknowledged message must
 * be safe. b->holds maps a held message id to its publisher. */
#include <stdlib.h>
#include <string.h>

#include "mqtt/broker_internal.h"
#include "util/error.h"
#include "util/log.h"

#define HOLD_MAX_MS 10000 /* longest a publisher's acknowledgements are withheld */
#define DROP_LOG_MS 10000 /* a session's dropped messages are reported this often */
#define HELD_MAX 65535    /* withheld acknowledgements per connection (distinct ids) */

void hub_flow_withhold(struct hub_mqtt_conn *c, int type, uint16_t pid, uint64_t id, unsigned holds)
{
    struct hub_broker *b = c->b;
    if (c->nheld >= HELD_MAX) {
        hub_conn_close(c, 1, HUB_CLOSE_PROTOCOL, "more than 65535 unacknowledged PUBLISHes");
        return;
    }
    if (c->held_off + c->nheld == c->held_cap && c->held_off > 0) {
        memmove(c->held, c->held + c->held_off, c->nheld * sizeof *c->held);
        c->held_off = 0;
    }
    if (hub_broker_grow(&c->held, c->nheld, &c->held_cap, sizeof *c->held, 16) != 0 ||
        (holds > 0 && hub_idmap_put(&b->holds, id, c) != 0)) {
        hub_conn_close(c, 1, HUB_CLOSE_ERROR, "out of memory");
        return;
    }
    c->held[c->held_off + c->nheld++] = (struct hub_held_ack){
        .id = id,
        .ack = (uint32_t)type << 16 | pid,
        .holds = (uint8_t)(holds > 255 ? 255 : holds),
        .flow = c->nwaits > 0,
    };
    if (!c->reading_paused && c->nheld >= b->o.max_inflight && c->t->pause != NULL) {
        c->reading_paused = 1;
        c->t->pause(c->tconn, 1);
    }
}

/* Sends the withheld acknowledgements at the front of the line that nothing holds any more;
 * reading restarts below max_inflight withheld. */
static void flush(struct hub_mqtt_conn *c)
{
    struct hub_broker *b = c->b;
    while (c->nheld > 0) {
        const struct hub_held_ack *a = &c->held[c->held_off];
        if (a->holds > 0 || a->flow)
            break;
        if (!c->closing)
            hub_conn_send_ack(c, (int)(a->ack >> 16), (uint16_t)a->ack);
        c->held_off++;
        c->nheld--;
    }
    if (c->nheld == 0)
        c->held_off = 0;
    if (c->reading_paused && c->nheld < b->o.max_inflight) {
        c->reading_paused = 0;
        c->last_rx_ms = b->now_ms; /* its keepalive was not its to keep while paused */
        if (!c->closing && !c->rate_paused) /* else quota_check.c restarts it */
            c->t->pause(c->tconn, 0);
    }
}

/* The connection waits on no session any more: what flow control withheld may go out. */
static void release_held(struct hub_mqtt_conn *c)
{
    for (size_t i = 0; i < c->nheld; i++)
        c->held[c->held_off + i].flow = 0;
    flush(c);
}

int hub_flow_release(struct hub_mqtt_conn *c, uint64_t id)
{
    for (size_t i = 0; i < c->nheld; i++) {
        struct hub_held_ack *a = &c->held[c->held_off + i];
        if (a->id == id && a->holds > 0) {
            if (--a->holds > 0)
                return 0;
            if (i == 0)
                flush(c);
            return 1;
        }
    }
    return 1;
}

/* Makes publisher c wait on session s (once). 0 or HUB_ENOMEM. */
static int wait_on(struct hub_mqtt_conn *c, struct hub_session *s)
{
    for (size_t i = 0; i < c->nwaits; i++)
        if (c->waits[i] == s)
            return 0;
    if (hub_broker_grow(&c->waits, c->nwaits, &c->waits_cap, sizeof *c->waits, 4) != 0 ||
        hub_broker_grow(&s->waiters, s->nwaiters, &s->waiters_cap, sizeof *s->waiters, 4) != 0)
        return HUB_ENOMEM;
    if (c->nwaits == 0) {
        c->held_ms = c->b->now_ms;
        c->b->throttled++;
    }
    c->waits[c->nwaits++] = s;
    s->waiters[s->nwaiters++] = c;
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

void hub_flow_wake(struct hub_session *s)
{
    while (s->nwaiters > 0) {
        struct hub_mqtt_conn *c = s->waiters[--s->nwaiters];
        unlink_session(c, s);
        if (c->nwaits == 0) {
            c->b->throttled--;
            release_held(c);
        }
    }
}

/* Connection c stops waiting on anything (closing, or held too long). */
static void unwait_all(struct hub_mqtt_conn *c)
{
    if (c->nwaits > 0)
        c->b->throttled--;
    while (c->nwaits > 0) {
        struct hub_session *s = c->waits[--c->nwaits];
        unlink_conn(s, c);
    }
}

void hub_flow_drained(struct hub_broker *b, struct hub_session *s)
{
    size_t low = b->o.max_queued - b->o.max_queued / 4;
    if (low == b->o.max_queued && low > 0)
        low--;
    if (s->nwaiters > 0 && s->queued <= low)
        hub_flow_wake(s);
}

void hub_flow_expire(struct hub_mqtt_conn *c, uint64_t now_ms)
{
    if (c->nwaits > 0 && now_ms - c->held_ms > HOLD_MAX_MS) {
        hub_info("mqtt: %s %s: acknowledgements withheld for %d s: released",
                 c->who.kind == HUB_MQTT_DEVICE ? "device" : "service", c->who.id,
                 HOLD_MAX_MS / 1000);
        unwait_all(c);
        release_held(c);
    }
}

void hub_flow_conn_closed(struct hub_mqtt_conn *c)
{
    /* Its withheld acknowledgements are dropped with it (the client resends on reconnect),
     * and the holds on them forgotten (a late hub_broker_release finds nothing). */
    unwait_all(c);
    for (size_t i = 0; i < c->nheld; i++)
        if (c->held[c->held_off + i].holds > 0)
            hub_idmap_del(&c->b->holds, c->held[c->held_off + i].id);
    c->nheld = c->held_off = 0;
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

/* A client publisher is made to wait while s is connected, unless s is its own session (a
 * client reading its PUBACKs before its deliveries would deadlock). */
int hub_flow_at_limit(struct hub_broker *b, struct hub_session *s, struct hub_mqtt_conn *pub)
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
