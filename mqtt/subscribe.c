/* SUBSCRIBE and UNSUBSCRIBE. A subscription lives twice: in the broker's topic trie (filter
 * -> session, granted QoS) for routing, and in the session's filter list so it can leave the
 * trie with the session. After the SUBACK (never before it, MQTT 3.1.1 §3.8.4), each
 * granted filter gets the retained messages it matches (found through the retained trie,
 * visiting only the topics the filter can match): at QoS 0 straight to the wire, at QoS 1/2
 * through the session queue with the RETAIN flag kept. The session's filter list is a hash
 * set (filterset.h): adding or removing a filter does not depend on how many it holds.
 * hooks.subscribed and unsubscribed see each filter that enters or leaves the trie. */
#include "mqtt/broker_internal.h"
#include "util/error.h"
#include "util/log.h"

struct retained_ctx {
    struct hub_mqtt_conn *c;
    int granted;
};

static void send_retained_cb(const struct hub_msg *m, void *ctx)
{
    const struct retained_ctx *a = ctx;
    struct hub_mqtt_conn *c = a->c;
    int qos = m->qos < a->granted ? m->qos : a->granted;
    if (qos == 0) {
        hub_route_send(c, m, 0, 0, 0, 1);
        return;
    }
    /* QoS 1/2 retained copies go through the session queue with the retain flag kept. */
    if (!hub_flow_queue_full(c->b, c->s, NULL) &&
        hub_session_enqueue_retained(c->s, (struct hub_msg *)m, (uint8_t)qos) == 0)
        hub_route_pump(c->s);
}

void hub_subscribe_add(struct hub_mqtt_conn *c, const hub_mqtt_subscribe_t *p)
{
    struct hub_broker *b = c->b;
    uint8_t codes[256];
    size_t off = 0, n = 0;
    if (p->count > sizeof codes) {
        hub_conn_close(c, 1, HUB_CLOSE_PROTOCOL, "more than 256 filters in one SUBSCRIBE");
        return;
    }
    hub_mqtt_str_t f;
    uint8_t qos;
    hub_buf_t *out = &b->out;
    /* First the SUBACK, then retained messages (they must follow it). */
    size_t first = 0;
    while (n < sizeof codes && hub_mqtt_sub_next(p, &off, &f, &qos) == 1) {
        if (!hub_conn_may_subscribe(c, f.ptr, f.len)) {
            codes[n++] = HUB_MQTT_SUBACK_FAILURE;
            hub_warn("mqtt: %s %s may not subscribe to \"%.*s\": refused",
                     c->who.kind == HUB_MQTT_DEVICE ? "device" : "service", c->who.id,
                     (int)(f.len > 200 ? 200 : f.len), f.ptr);
            continue;
        }
        if (!hub_quota_subscribe(c, f.ptr, f.len)) { /* mqtt_max_subscriptions */
            codes[n++] = HUB_MQTT_SUBACK_FAILURE;
            continue;
        }
        int rc = hub_subtree_insert(b->subs, f.ptr, f.len, c->s, qos);
        if (rc == 0 && hub_session_add_filter(c->s, f.ptr, f.len) != 0) {
            hub_subtree_remove(b->subs, f.ptr, f.len, c->s);
            rc = HUB_ENOMEM;
        }
        if (rc >= 0 && b->h.subscribed != NULL)
            b->h.subscribed(b->h.ctx, c->s->key, !c->s->clean, f.ptr, f.len, qos);
        codes[n++] = rc < 0 ? HUB_MQTT_SUBACK_FAILURE : qos;
    }
    out->len = 0;
    if (hub_mqtt_suback(out, p->packet_id, codes, n) == 0)
        hub_conn_write(c, out->data, out->len);
    off = 0;
    while (first < n && hub_mqtt_sub_next(p, &off, &f, &qos) == 1) {
        struct retained_ctx ctx = {c, codes[first++]};
        if (ctx.granted == HUB_MQTT_SUBACK_FAILURE)
            continue;
        hub_retained_match(&b->retained, f.ptr, f.len, send_retained_cb, &ctx);
        b->q0_msg = NULL; /* the QoS 0 copy is valid during one routing only */
    }
}

void hub_subscribe_remove(struct hub_mqtt_conn *c, const hub_mqtt_subscribe_t *p)
{
    size_t off = 0;
    hub_mqtt_str_t f;
    uint8_t qos;
    struct hub_broker *b = c->b;
    while (hub_mqtt_sub_next(p, &off, &f, &qos) == 1) {
        if (hub_subtree_remove(b->subs, f.ptr, f.len, c->s) != 0)
            continue;
        hub_session_remove_filter(c->s, f.ptr, f.len);
        if (b->h.unsubscribed != NULL)
            b->h.unsubscribed(b->h.ctx, c->s->key, !c->s->clean, f.ptr, f.len);
    }
    hub_conn_send_ack(c, HUB_MQTT_UNSUBACK, p->packet_id);
}
