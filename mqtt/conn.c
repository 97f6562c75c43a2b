/* A connection of the broker, from hub_mqtt_conn_open to hub_mqtt_conn_closed. Packets are
 * decoded where the transport holds them: only a partial packet at the end of what arrived
 * is copied (to c->in) until the rest comes. Each complete packet is dispatched to the
 * module that handles it (connect.c, publish.c, subscribe.c); PINGREQ and DISCONNECT are
 * answered here, with the CONNECT timeout and keepalive of hub_conn_tick.
 *
 * Closing is two steps: hub_conn_close asks the transport to close and ignores further
 * input; the transport's hub_mqtt_conn_closed later detaches the session, publishes the will
 * when due and frees the connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/acl.h"
#include "mqtt/broker_internal.h"
#include "util/error.h"
#include "util/log.h"

void hub_conn_close(struct hub_mqtt_conn *c, int keep_will, enum hub_close_reason reason,
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

/* ---- ACLs ------------------------------------------------------------------------------ */

static size_t count_patterns(const char *const *p)
{
    size_t n = 0;
    while (p != NULL && p[n] != NULL)
        n++;
    return n;
}

int hub_conn_may_publish(const struct hub_mqtt_conn *c, const char *topic, size_t len)
{
    if (c->who.kind == HUB_MQTT_DEVICE) /* hub_acl_device_checked, the id checked once */
        return c->acl_id_len > 0 && hub_acl_device_under(c->who.id, c->acl_id_len, topic, len);
    return hub_acl_allows((const char *const *)c->pub_patterns,
                          count_patterns((const char *const *)c->pub_patterns), topic, len, 0);
}

int hub_conn_may_subscribe(const struct hub_mqtt_conn *c, const char *filter, size_t len)
{
    if (c->who.kind == HUB_MQTT_DEVICE)
        return hub_acl_device(c->who.id, filter, len, 1);
    return hub_acl_allows((const char *const *)c->sub_patterns,
                          count_patterns((const char *const *)c->sub_patterns), filter, len, 1);
}

int hub_conn_may_receive(const struct hub_mqtt_conn *c, const char *topic, size_t len)
{
    if (c->who.kind == HUB_MQTT_DEVICE)
        return hub_acl_device(c->who.id, topic, len, 0);
    return hub_acl_allows((const char *const *)c->sub_patterns,
                          count_patterns((const char *const *)c->sub_patterns), topic, len, 0);
}

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

/* ---- packets --------------------------------------------------------------------------- */

/* Handles one complete packet; returns 0, or -1 after closing the connection. */
static int handle(struct hub_mqtt_conn *c, const uint8_t *pkt, size_t len, uint64_t now_ms)
{
    hub_mqtt_packet_t p;
    const char *why = NULL;
    memset(&p, 0, sizeof p);
    int rc = hub_mqtt_decode(pkt, len, c->connected ? c->level : 0, &p, &why);
    if (rc != 0) {
        if (!c->connected && (pkt[0] >> 4) == HUB_MQTT_CONNECT && p.u.connect.refuse) {
            hub_connect_handle(c, &p.u.connect, now_ms); /* answers CONNACK with the code, closes */
            return -1;
        }
        hub_info("mqtt: malformed %s from %s: %s", hub_mqtt_type_name(pkt[0] >> 4), c->who.id,
                 why ? why : "?");
        hub_conn_close(c, 1, HUB_CLOSE_PROTOCOL, why ? why : "malformed packet");
        return -1;
    }
    if (!c->connected && p.type != HUB_MQTT_CONNECT) {
        hub_conn_close(c, 0, HUB_CLOSE_PROTOCOL, "first packet is not CONNECT");
        return -1;
    }
    c->last_rx_ms = now_ms;
    switch (p.type) {
    case HUB_MQTT_CONNECT:
        if (c->connected) {
            hub_conn_close(c, 1, HUB_CLOSE_PROTOCOL, "second CONNECT");
            return -1;
        }
        hub_connect_handle(c, &p.u.connect, now_ms);
        break;
    case HUB_MQTT_PUBLISH: hub_publish_handle(c, &p.u.publish, pkt, len); break;
    case HUB_MQTT_PUBACK:
    case HUB_MQTT_PUBREC:
    case HUB_MQTT_PUBREL:
    case HUB_MQTT_PUBCOMP: hub_publish_ack(c, p.type, p.u.packet_id); break;
    case HUB_MQTT_SUBSCRIBE: hub_subscribe_add(c, &p.u.subscribe); break;
    case HUB_MQTT_UNSUBSCRIBE: hub_subscribe_remove(c, &p.u.subscribe); break;
    case HUB_MQTT_PINGREQ: {
        uint8_t buf[2];
        hub_conn_write(c, buf, hub_mqtt_pingresp(buf));
        break;
    }
    case HUB_MQTT_DISCONNECT: hub_conn_close(c, 0, HUB_CLOSE_NORMAL, NULL); return -1;
    default: hub_conn_close(c, 1, HUB_CLOSE_PROTOCOL, "unexpected packet type"); return -1;
    }
    return c->closing ? -1 : 0;
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
            hub_conn_close(c, 1, rc == HUB_ERANGE ? HUB_CLOSE_LIMIT : HUB_CLOSE_PROTOCOL,
                           rc == HUB_ERANGE ? "packet larger than the maximum"
                                            : "malformed remaining length");
            return SIZE_MAX;
        }
        off += plen;
        if (handle(c, p + off - plen, plen, now_ms) != 0)
            return SIZE_MAX;
        if (c->park_key != NULL)
            return off; /* the CONNECT is parked: what follows waits for its CONNACK */
    }
}

/* ---- lifecycle ------------------------------------------------------------------------- */

struct hub_mqtt_conn *hub_mqtt_conn_open(struct hub_broker *b, const struct hub_mqtt_transport *t,
                                         void *tconn, const struct hub_mqtt_identity *who,
                                         uint64_t now_ms)
{
    struct hub_mqtt_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->b = b;
    c->t = t;
    c->tconn = tconn;
    c->who = *who;
    c->who.publish = c->who.subscribe = NULL;
    if (who->kind == HUB_MQTT_DEVICE && hub_acl_device_id_valid(c->who.id))
        c->acl_id_len = strlen(c->who.id);
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

void hub_mqtt_conn_data(struct hub_mqtt_conn *c, const uint8_t *data, size_t len, uint64_t now_ms)
{
    hub_buf_t *in = &c->in;
    size_t used;
    if (c->closing)
        return;
    c->b->now_ms = now_ms;
    if (c->park_key != NULL) { /* kept until the claim is done, within two packets' size */
        if (in->len + len > 2 * c->b->o.max_packet + 10)
            hub_conn_close(c, 0, HUB_CLOSE_LIMIT, "too much input before CONNACK");
        else if (hub_buf_append(in, data, len) != 0)
            hub_conn_close(c, 0, HUB_CLOSE_ERROR, "out of memory");
        return;
    }
    if (in->len == 0) {
        /* Nothing pending: whole packets are handled where the transport holds them, only
         * a partial one at the end is kept. */
        if ((used = handle_all(c, data, len, now_ms)) == SIZE_MAX || used == len)
            return;
        if (hub_buf_append(in, data + used, len - used) != 0)
            hub_conn_close(c, 1, HUB_CLOSE_ERROR, "out of memory");
        return;
    }
    if (hub_buf_append(in, data, len) != 0) {
        hub_conn_close(c, 1, HUB_CLOSE_ERROR, "out of memory");
        return;
    }
    if ((used = handle_all(c, in->data, in->len, now_ms)) == SIZE_MAX)
        return;
    memmove(in->data, in->data + used, in->len - used);
    in->len -= used;
}

void hub_conn_input(struct hub_mqtt_conn *c, uint64_t now_ms)
{
    hub_buf_t *in = &c->in;
    size_t used;
    if (c->closing || c->park_key != NULL || in->len == 0)
        return;
    if ((used = handle_all(c, in->data, in->len, now_ms)) == SIZE_MAX)
        return;
    memmove(in->data, in->data + used, in->len - used);
    in->len -= used;
}

void hub_mqtt_conn_closed(struct hub_mqtt_conn *c, int revoked)
{
    struct hub_broker *b = c->b;
    struct hub_session *s = c->s;
    hub_flow_conn_closed(c);
    hub_quota_conn_closed(c);
    hub_connect_unpark(c);
    /* Detach the session first, so that what is routed to it from now on (the will
     * included) waits in its queue rather than being "sent" on this dead connection. */
    if (s != NULL && s->conn == c) {
        s->conn = NULL;
        s->offline_ms = b->now_ms;
        if (!s->clean && b->h.session_offline != NULL)
            b->h.session_offline(b->h.ctx, s->key);
        hub_flow_wake(s); /* offline: its publishers are not held back any more */
        if (c->who.kind == HUB_MQTT_DEVICE && b->o.presence != NULL)
            b->o.presence(c->who.id, 0, b->o.ctx);
    } else {
        s = NULL;
    }
    hub_will_close(c, revoked);
    if (s != NULL && s->clean)
        hub_broker_drop_session(b, s, 1);
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

enum hub_close_reason hub_mqtt_conn_close_reason(const struct hub_mqtt_conn *c)
{
    return c->close_reason;
}

void hub_conn_tick(struct hub_mqtt_conn *c, uint64_t now_ms)
{
    if (!c->connected && now_ms - c->opened_ms > (uint64_t)c->b->o.connect_timeout * 1000)
        hub_conn_close(c, 0, HUB_CLOSE_TIMEOUT, "no CONNECT in time");
    else if (c->connected && c->keepalive > 0 && !c->reading_paused && !c->rate_paused &&
             now_ms - c->last_rx_ms > (uint64_t)c->keepalive * 1500)
        hub_conn_close(c, 1, HUB_CLOSE_TIMEOUT, "keepalive expired");
}
