/* PUBLISH from a client and the acknowledgements of the QoS 1/2 flows (MQTT 3.1.1 §4.3).
 * Incoming: QoS 1 is acknowledged with PUBACK after routing; QoS 2 is routed once, its
 * packet id kept until PUBREL, a duplicate before then only acknowledged again (PUBREC).
 * Both acknowledgements go through flow control (flow.c), which may withhold them.
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

void hub_publish_handle(struct hub_mqtt_conn *c, const hub_mqtt_publish_t *p, const uint8_t *pkt,
                        size_t len)
{
    struct hub_broker *b = c->b;
    struct hub_session *s = c->s;
    b->st.msgs_in++;
    b->st.in_by_qos[p->qos <= 2 ? p->qos : 2]++;
    if (p->qos == 2 && hub_session_has_incoming(s, p->packet_id)) {
        hub_flow_ack(c, HUB_MQTT_PUBREC, p->packet_id); /* duplicate: already routed */
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
        hub_route_message(b, &m, NULL, NULL, c);
    } else {
        struct hub_msg *m =
            hub_msg_new(p->topic.ptr, p->topic.len, p->payload, p->payload_len, p->qos, p->retain);
        device_publish(c, p);
        if (m != NULL) {
            hub_route_message(b, m, NULL, NULL, c);
            hub_msg_unref(m);
        }
    }
    if (p->qos == 1) {
        hub_flow_ack(c, HUB_MQTT_PUBACK, p->packet_id);
    } else if (p->qos == 2) {
        hub_session_add_incoming(s, p->packet_id);
        hub_flow_ack(c, HUB_MQTT_PUBREC, p->packet_id);
    }
}

void hub_publish_ack(struct hub_mqtt_conn *c, int type, uint16_t pid)
{
    struct hub_session *s = c->s;
    if (type == HUB_MQTT_PUBREL) {
        hub_session_remove_incoming(s, pid);
        hub_conn_send_ack(c, HUB_MQTT_PUBCOMP, pid);
        return;
    }
    struct hub_delivery *d = hub_session_find_pid(s, pid);
    if (d == NULL)
        return; /* unknown or stale id: ignored, as the spec allows */
    if (type == HUB_MQTT_PUBREC && d->qos == 2 && d->state == HUB_DELIVERY_SENT) {
        d->state = HUB_DELIVERY_RELEASED;
        hub_conn_send_ack(c, HUB_MQTT_PUBREL, pid);
        return;
    }
    if ((type == HUB_MQTT_PUBACK && d->qos == 1) || (type == HUB_MQTT_PUBCOMP && d->qos == 2)) {
        hub_session_remove(s, d);
        if (s->inflight > 0)
            hub_session_set_inflight(s, s->inflight - 1);
        hub_flow_queue_shrunk(c->b, s);
        hub_route_pump(s);
    }
}
