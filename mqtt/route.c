/* Routing. Subscriptions are in a topic trie whose subscriber pointers are sessions. Each
 * session keeps one FIFO of QoS 1/2 deliveries (queued, then in flight up to max_inflight);
 * QoS 0 goes straight to the wire and is not kept for offline sessions. Routing stamps each
 * session with the message number so a session matched by several filters gets one copy at
 * its highest granted QoS.
 *
 * Hot path: a received QoS 0 PUBLISH goes on as it came (no allocation, no copy); QoS 1/2
 * ones are copied once into a refcounted message laid out as the wire packet (mqtt/msg.h),
 * so each delivery is one write; a transport on another thread (write_shared) gets a reference
 * to the message and the few per-delivery header bytes instead of a copy. A received QoS 0
 * PUBLISH (borrowed, not refcounted) is still copied by such a transport. A QoS 0 copy of a QoS 1/2
 * message is encoded once per routing. A full queue is flow control's to decide (flow.c). */
#include "mqtt/broker_internal.h"

void hub_route_send(struct hub_mqtt_conn *c, const struct hub_msg *m, int qos, int dup,
                    uint16_t pid, int retain)
{
    struct hub_broker *b = c->b;
    if (m->refs > 0 && c->t->write_shared != NULL) { /* another thread writes it: share m */
        uint8_t head[7];
        struct hub_rcbuf_piece v[HUB_MSG_PIECES];
        size_t k = hub_msg_pieces((struct hub_msg *)m, qos, retain, dup, pid, head, v);
        if (k > 0) {
            hub_conn_write_shared(c, &((struct hub_msg *)m)->rc, v, k);
            b->st.msgs_out++;
            b->st.out_by_qos[qos > 2 ? 2 : qos]++;
            return;
        }
    }
    const uint8_t *pkt;
    size_t n = hub_msg_packet(m, qos, retain, dup, pid, &pkt);
    if (n == 0) { /* a QoS 0 copy of a QoS 1/2 message: encoded once per routing */
        if (b->q0_msg != m || b->q0_retain != retain) {
            b->q0.len = 0;
            b->q0_msg = NULL;
            if (hub_mqtt_publish_append(&b->q0, m->topic, m->topic_len, 0, retain, 0, 0, m->payload,
                                        m->payload_len) != 0) {
                hub_conn_close(c, 1, HUB_CLOSE_ERROR, "out of memory");
                return;
            }
            b->q0_msg = m;
            b->q0_retain = retain;
        }
        pkt = b->q0.data;
        n = b->q0.len;
    }
    hub_conn_write(c, pkt, n);
    b->st.msgs_out++;
    b->st.out_by_qos[qos > 2 ? 2 : qos]++;
}

void hub_route_pump(struct hub_session *s)
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
        hub_route_send(c, d->msg, d->qos, 0, d->pid, d->retain);
    }
}

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
    if (hub_broker_grow(&b->targets, b->ntargets, &b->targets_cap, sizeof *b->targets, 64) != 0)
        return; /* this subscriber misses the message; logged by the caller's count */
    b->targets[b->ntargets++] = s;
}

/* Delivers m to one session at qos; pub is the client that published it, if any; remote:
 * m was injected. */
static void deliver(struct hub_broker *b, struct hub_session *s, struct hub_msg *m, int qos,
                    struct hub_mqtt_conn *pub, int remote)
{
    if (qos == 0) {
        if (s->conn != NULL && s->conn->connected)
            hub_route_send(s->conn, m, 0, 0, 0, 0);
        return;
    }
    if (hub_flow_queue_full(b, s, pub))
        return;
    if (hub_session_enqueue(s, m, (uint8_t)qos) != 0)
        return;
    if (!s->clean && b->h.queued != NULL)
        b->h.queued(b->h.ctx, s->key, m, (uint8_t)qos, remote);
    hub_route_pump(s);
}

size_t hub_route_message(struct hub_broker *b, struct hub_msg *m, const struct hub_session *device,
                         int *to_device, struct hub_mqtt_conn *pub, int remote)
{
    if (!remote) { /* releases of m's holds from here on count (hooks.c) */
        b->accepting = m->id;
        b->early = 0;
    }
    if (m->retain && hub_quota_retain(b, m, pub, remote) == 0 && b->h.retained != NULL)
        b->h.retained(b->h.ctx, m->topic, m->topic_len, m->payload_len > 0 ? m : NULL, remote);
    b->stamp++;
    b->ntargets = 0;
    hub_subtree_match(b->subs, m->topic, m->topic_len, match_cb, b);
    for (size_t i = 0; i < b->ntargets; i++) {
        struct hub_session *s = b->targets[i];
        int qos = s->stamp_qos < m->qos ? s->stamp_qos : m->qos;
        deliver(b, s, m, qos, pub, remote);
        if (to_device != NULL && s == device && s->conn != NULL)
            *to_device = 1;
    }
    b->q0_msg = NULL;
    return b->ntargets;
}
