/* PUBLISH from a client and the acknowledgements of the QoS 1/2 flows (MQTT 3.1.1 §4.3).
 * Incoming: QoS 1 is acknowledged with PUBACK after routing; QoS 2 is routed once, its
 * packet id kept until PUBREL, a duplicate before then only acknowledged again (PUBREC).
 * Both acknowledgements go through flow control (flow.c), which may withhold them, also
 * while the hooks hold them (hooks.c). Every accepted message gets its id before routing.
 * Outgoing deliveries: PUBACK ends a QoS 1 one; PUBREC moves a QoS 2 one to RELEASED
 * (PUBREL sent), PUBCOMP ends it; the window then lets the next queued one out. */
#include "mqtt/broker_internal.h"
#include "util/log.h"

/* Shows an allowed device PUBLISH to the server's hook (firmware state reports). */
static void device_publish(struct hub_mqtt_conn *c, const hub_mqtt_publish_t *p)
{
    const struct hub_broker_options *o = &c->b->o;
    if (c->who.kind == HUB_MQTT_DEVICE && o->device_publish != NULL)
        o->device_publish(c->who.id, p->topic.ptr, p->topic.len, p->payload, p->payload_len,
                          o->device_publish_ctx);
}

/* Keeps QoS 2 packet id pid received from c until PUBREL (once; the store is told for a
 * persistent session). */
static void add_incoming(struct hub_mqtt_conn *c, uint16_t pid)
{
    struct hub_broker *b = c->b;
    struct hub_session *s = c->s;
    if (hub_session_has_incoming(s, pid))
        return;
    hub_session_add_incoming(s, pid);
    if (!s->clean && b->h.incoming != NULL && hub_session_has_incoming(s, pid))
        b->h.incoming(b->h.ctx, s->key, pid, 1);
}

void hub_publish_handle(struct hub_mqtt_conn *c, const hub_mqtt_publish_t *p, const uint8_t *pkt,
                        size_t len)
{
    struct hub_broker *b = c->b;
    struct hub_session *s = c->s;
    hub_quota_publish(c, len); /* mqtt_rate_*: reading stops when over */
    b->st.msgs_in++;
    b->st.in_by_qos[p->qos <= 2 ? p->qos : 2]++;
    uint64_t id = 0;
    unsigned holds = 0;
    const char *origin = c->who.kind == HUB_MQTT_DEVICE ? c->who.id : NULL;
    if (p->qos == 2 && hub_session_has_incoming(s, p->packet_id)) {
        hub_flow_ack(c, HUB_MQTT_PUBREC, p->packet_id, 0, 0); /* duplicate: already routed */
        return;
    }
    if (!hub_conn_may_publish(c, p->topic.ptr, p->topic.len)) {
        b->st.dropped_acl++;
        hub_warn("mqtt: %s %s may not publish to \"%.*s\": dropped",
                 c->who.kind == HUB_MQTT_DEVICE ? "device" : "service", c->who.id,
                 (int)(p->topic.len > 200 ? 200 : p->topic.len), p->topic.ptr);
    } else if (hub_msg_borrowable(pkt, len)) {
        /* QoS 0, no RETAIN: sent on as it came (QoS 0 copies are never kept). */
        struct hub_msg m;
        device_publish(c, p);
        hub_msg_borrow(&m, pkt, len);
        m.id = id = hub_hooks_next_id(b);
        hub_route_message(b, &m, NULL, NULL, c, 0);
        hub_hooks_accepted(b, &m, origin);
    } else {
        struct hub_msg *m =
            hub_msg_new(p->topic.ptr, p->topic.len, p->payload, p->payload_len, p->qos, p->retain);
        device_publish(c, p);
        if (m != NULL) {
            m->id = id = hub_hooks_next_id(b);
            hub_route_message(b, m, NULL, NULL, c, 0);
            if (p->qos == 2)
                add_incoming(c, p->packet_id); /* stored with the message it stands for */
            holds = hub_hooks_accepted(b, m, origin);
            hub_msg_unref(m);
        }
    }
    if (p->qos == 1)
        hub_flow_ack(c, HUB_MQTT_PUBACK, p->packet_id, id, holds);
    else if (p->qos == 2) {
        add_incoming(c, p->packet_id);
        hub_flow_ack(c, HUB_MQTT_PUBREC, p->packet_id, id, holds);
    }
}

void hub_publish_ack(struct hub_mqtt_conn *c, int type, uint16_t pid)
{
    struct hub_session *s = c->s;
    struct hub_broker *b = c->b;
    if (type == HUB_MQTT_PUBREL) {
        if (hub_session_has_incoming(s, pid)) {
            hub_session_remove_incoming(s, pid);
            if (!s->clean && b->h.incoming != NULL)
                b->h.incoming(b->h.ctx, s->key, pid, 0);
        }
        hub_conn_send_ack(c, HUB_MQTT_PUBCOMP, pid);
        return;
    }
    struct hub_delivery *d = hub_session_find_pid(s, pid);
    if (d == NULL)
        return; /* unknown or stale id: ignored, as the spec allows */
    if (type == HUB_MQTT_PUBREC && d->qos == 2 && d->state == HUB_DELIVERY_SENT) {
        d->state = HUB_DELIVERY_RELEASED;
        if (!s->clean && !d->retain && d->msg->id != 0 && b->h.delivery_state != NULL &&
            b->h.delivery_state(b->h.ctx, s->key, d->msg->id, HUB_DELIVERY_RELEASED, pid) == 1)
            return; /* PUBREL once the state is stored: hub_broker_pubrel */
        hub_conn_send_ack(c, HUB_MQTT_PUBREL, pid);
        return;
    }
    if ((type == HUB_MQTT_PUBACK && d->qos == 1) || (type == HUB_MQTT_PUBCOMP && d->qos == 2)) {
        /* Retained copies sent at SUBSCRIBE were never reported queued. */
        if (!s->clean && !d->retain && d->msg->id != 0 && b->h.delivered != NULL)
            b->h.delivered(b->h.ctx, s->key, d->msg->id);
        hub_session_remove(s, d);
        if (s->inflight > 0)
            hub_session_set_inflight(s, s->inflight - 1);
        hub_flow_queue_shrunk(b, s);
        hub_route_pump(s);
    }
}

void hub_broker_pubrel(struct hub_broker *b, const char *key, uint64_t msg_id, uint16_t pid)
{
    struct hub_session *s = hub_session_find(&b->sessions, key);
    if (s == NULL || s->conn == NULL || !s->conn->connected)
        return; /* a reconnection resends it */
    struct hub_delivery *d = hub_session_find_pid(s, pid);
    if (d != NULL && d->state == HUB_DELIVERY_RELEASED && d->msg->id == msg_id)
        hub_conn_send_ack(s->conn, HUB_MQTT_PUBREL, pid);
}
