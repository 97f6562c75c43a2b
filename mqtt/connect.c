/* CONNECT. Sessions are keyed by "d:<device id>" (a device has one session whatever its
 * client id) or "s:<service id>/<client id>" (a service may run several consumers). A
 * CONNECT for a session that already has a connection takes it over: the older connection
 * is closed without its will. A persistent session resumes: its in-flight deliveries go out
 * again with DUP set (PUBREL for released QoS 2 ones), then whatever waited in its queue. */
#include <stdio.h>

#include "mqtt/broker_internal.h"

/* Answers CONNACK rc and closes c (refused) with why. */
static void refuse(struct hub_mqtt_conn *c, uint8_t rc, enum hub_close_reason reason,
                   const char *why)
{
    uint8_t ack[4];
    hub_conn_write(c, ack, hub_mqtt_connack(ack, 0, rc));
    hub_conn_close(c, 0, reason, why);
}

void hub_connect_handle(struct hub_mqtt_conn *c, const hub_mqtt_connect_t *p, uint64_t now_ms)
{
    struct hub_broker *b = c->b;
    uint8_t ack[4];
    c->level = p->level;
    if (p->refuse) {
        refuse(c, p->refuse, HUB_CLOSE_REFUSED,
               p->refuse == 1 ? "unacceptable protocol version" : "client identifier rejected");
        return;
    }
    if (!p->clean && p->client_id.len == 0) {
        refuse(c, HUB_MQTT_CONNACK_BAD_CLIENT_ID, HUB_CLOSE_REFUSED,
               "empty client id with a persistent session");
        return;
    }
    if (p->will && !hub_conn_may_publish(c, p->will_topic.ptr, p->will_topic.len)) {
        refuse(c, HUB_MQTT_CONNACK_NOT_AUTHORIZED, HUB_CLOSE_REFUSED, "will topic not allowed");
        return;
    }
    if (p->client_id.len > HUB_MQTT_MAX_CLIENT_ID) {
        refuse(c, HUB_MQTT_CONNACK_BAD_CLIENT_ID, HUB_CLOSE_REFUSED,
               "client id longer than 256 bytes");
        return;
    }
    char key[sizeof c->who.id + HUB_MQTT_MAX_CLIENT_ID + 4];
    if (c->who.kind == HUB_MQTT_DEVICE)
        snprintf(key, sizeof key, "d:%s", c->who.id);
    else
        snprintf(key, sizeof key, "s:%s/%.*s", c->who.id, (int)p->client_id.len, p->client_id.ptr);

    struct hub_session *s = hub_session_find(&b->sessions, key);
    if (s != NULL && s->conn != NULL) { /* takeover: the older connection goes */
        struct hub_mqtt_conn *old = s->conn;
        s->conn = NULL;
        old->s = NULL; /* detached: its close will not report presence, so do it here */
        if (old->who.kind == HUB_MQTT_DEVICE && b->o.presence != NULL)
            b->o.presence(old->who.id, 0, b->o.ctx);
        hub_conn_close(old, 0, HUB_CLOSE_TAKEOVER, "session taken over by a new connection");
    }
    if (s != NULL && p->clean) {
        hub_broker_drop_session(b, s);
        s = NULL;
    }
    int present = s != NULL;
    if (s == NULL && (s = hub_session_create(&b->sessions, key)) == NULL) {
        refuse(c, HUB_MQTT_CONNACK_UNAVAILABLE, HUB_CLOSE_ERROR, "out of memory");
        return;
    }
    s->clean = p->clean;
    s->conn = c;
    c->s = s;
    c->keepalive = p->keepalive;
    c->last_rx_ms = now_ms;
    hub_will_set(c, p);
    c->connected = 1;
    hub_conn_write(c, ack, hub_mqtt_connack(ack, c->level == HUB_MQTT_V311 && present, 0));
    if (c->t->accepted != NULL)
        c->t->accepted(c->tconn);
    if (c->who.kind == HUB_MQTT_DEVICE && b->o.presence != NULL)
        b->o.presence(c->who.id, 1, b->o.ctx);
    /* Resume: in-flight deliveries again with DUP, then whatever waited. */
    unsigned inflight = 0;
    for (struct hub_delivery *d = s->head; d != NULL; d = d->next) {
        if (d->state == HUB_DELIVERY_SENT) {
            hub_route_send(c, d->msg, d->qos, 1, d->pid, d->retain);
            inflight++;
        } else if (d->state == HUB_DELIVERY_RELEASED) {
            hub_conn_send_ack(c, HUB_MQTT_PUBREL, d->pid);
            inflight++;
        }
    }
    hub_session_set_inflight(s, inflight);
    hub_route_pump(s);
}
