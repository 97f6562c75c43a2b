/* Wills. The will of an accepted CONNECT is kept as a message of its own (c->will) for the
 * connection's lifetime; when the transport closes it is routed like a server publish (no
 * ACL: the will topic was checked at CONNECT) unless the client sent DISCONNECT, the
 * connection was taken over, kicked or revoked. A will is a message like any other: it gets
 * its id then, and hooks.accepted sees it (no acknowledgement to hold). */
#include "mqtt/broker_internal.h"
#include "util/log.h"

void hub_will_set(struct hub_mqtt_conn *c, const hub_mqtt_connect_t *p)
{
    if (p->will) {
        c->will = hub_msg_new(p->will_topic.ptr, p->will_topic.len, p->will_payload.ptr,
                              p->will_payload.len, p->will_qos, p->will_retain);
    }
}

void hub_will_close(struct hub_mqtt_conn *c, int revoked)
{
    /* The will goes out when the peer vanished or broke the protocol, not after a
     * DISCONNECT, a takeover or a revocation. */
    if (c->connected && c->will != NULL && !revoked && (!c->closing || c->keep_will)) {
        hub_info("mqtt: publishing the will of %s", c->who.id);
        c->will->id = hub_hooks_next_id(c->b);
        hub_route_message(c->b, c->will, NULL, NULL, NULL, 0);
        hub_hooks_accepted(c->b, c->will, c->who.kind == HUB_MQTT_DEVICE ? c->who.id : NULL);
    }
    if (c->will != NULL)
        hub_msg_unref(c->will);
    c->will = NULL;
}
