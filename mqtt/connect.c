/* CONNECT. Sessions are keyed by "d:<device id>" (a device has one session whatever its
 * client id) or "s:<service id>/<client id>" (a service may run several consumers). A
 * CONNECT for a session that already has a connection takes it over: the older connection
 * is closed without its will. A persistent session resumes: its in-flight deliveries go out
 * again with DUP set (PUBREL for released QoS 2 ones), then whatever waited in its queue.
 *
 * Parked CONNECTs: a persistent session not in memory may live on another node or in
 * PostgreSQL; hooks.claim may park the connection (no CONNACK, input buffered by conn.c,
 * the CONNECT timeout running) until hub_broker_claim_done, after the server restored the
 * session (restore.c) or gave up. */
#include <stdio.h>

#include "mqtt/broker_internal.h"
#include "util/log.h"

/* Answers CONNACK rc and closes c (refused) with why. */
static void refuse(struct hub_mqtt_conn *c, uint8_t rc, enum hub_close_reason reason,
                   const char *why)
{
    uint8_t ack[4];
    hub_conn_write(c, ack, hub_mqtt_connack(ack, 0, rc));
    hub_conn_close(c, 0, reason, why);
}

/* A resumed session may hold what no SUBSCRIBE of c's principal checked (restored from
 * PostgreSQL or another node, or its service's patterns narrowed since): its filters and
 * queued messages outside c's ACL are dropped (the store is told), with a log line. */
static void prune(struct hub_mqtt_conn *c, struct hub_session *s)
{
    struct hub_broker *b = c->b;
    size_t filters = 0, msgs = 0;
    for (size_t i = 0; i < s->nsubs;) {
        char *f = s->filters[i];
        size_t n = strlen(f);
        if (hub_conn_may_subscribe(c, f, n)) {
            i++;
            continue;
        }
        hub_subtree_remove(b->subs, f, n, s);
        if (b->h.unsubscribed != NULL)
            b->h.unsubscribed(b->h.ctx, s->key, !s->clean, f, n);
        hub_session_remove_filter(s, f, n); /* frees f; the last filter moves to i */
        filters++;
    }
    for (struct hub_delivery *d = s->head, *next; d != NULL; d = next) {
        next = d->next;
        if (hub_conn_may_receive(c, d->msg->topic, d->msg->topic_len))
            continue;
        if (!s->clean && !d->retain && d->msg->id != 0 && b->h.delivered != NULL)
            b->h.delivered(b->h.ctx, s->key, d->msg->id);
        hub_session_remove(s, d);
        msgs++;
    }
    if (filters > 0 || msgs > 0)
        hub_warn("mqtt: session %s resumed with %zu filter(s) and %zu message(s) outside the "
                 "ACL of %s: dropped",
                 s->key, filters, msgs, c->who.id);
    if (msgs > 0)
        hub_flow_queue_shrunk(b, s);
}

/* The decision for a persistent CONNECT, one info line: the session resumes (in memory,
 * perhaps restored just before by a claim) or a new one starts, and why. */
static void session_log(const struct hub_mqtt_conn *c, const char *key,
                        const struct hub_session *s, const char *why)
{
    if (s != NULL)
        hub_info("mqtt: session %s resumes (session present 1; %zu queued, %zu filter(s))", key,
                 s->queued, s->nsubs);
    else
        hub_info("mqtt: session %s starts anew (session present 0): %s", key,
                 why != NULL ? why
                 : c->b->h.claim == NULL ? "not in memory (no durable store)"
                                         : "not in memory, none stored or claimed");
}

/* Accepts the CONNECT of c (its level, keepalive, clean flag and will already kept) for
 * session key: takeover, session found or created, CONNACK, resume. */
static void accept_connect(struct hub_mqtt_conn *c, const char *key, uint64_t now_ms)
{
    struct hub_broker *b = c->b;
    uint8_t ack[4];
    struct hub_session *s = hub_session_find(&b->sessions, key);
    if (s != NULL && s->conn != NULL) { /* takeover: the older connection goes */
        struct hub_mqtt_conn *old = s->conn;
        s->conn = NULL;
        old->s = NULL; /* detached: its close will not report presence, so do it here */
        if (old->who.kind == HUB_MQTT_DEVICE && b->o.presence != NULL)
            b->o.presence(old->who.id, 0, b->o.ctx);
        hub_conn_close(old, 0, HUB_CLOSE_TAKEOVER, "session taken over by a new connection");
    }
    /* A clean start ends the session; a clean session ends with its connection, even when a
     * persistent CONNECT takes it over. */
    const char *why = NULL; /* a persistent CONNECT's new session: why (logged) */
    if (s != NULL && (c->clean_start || s->clean)) {
        why = "the session in memory was a clean one";
        hub_broker_drop_session(b, s, 1);
        s = NULL;
    }
    int present = s != NULL;
    if (!c->clean_start)
        session_log(c, key, s, why);
    if (s == NULL && (s = hub_session_create(&b->sessions, key)) == NULL) {
        refuse(c, HUB_MQTT_CONNACK_UNAVAILABLE, HUB_CLOSE_ERROR, "out of memory");
        return;
    }
    if (!present)
        s->expiry_s = b->o.session_expiry_s != 0 ? b->o.session_expiry_s : UINT32_MAX;
    s->clean = c->clean_start;
    s->conn = c;
    c->s = s;
    c->last_rx_ms = now_ms;
    c->connected = 1;
    hub_conn_write(c, ack, hub_mqtt_connack(ack, c->level == HUB_MQTT_V311 && present, 0));
    if (c->t->accepted != NULL)
        c->t->accepted(c->tconn);
    if (c->who.kind == HUB_MQTT_DEVICE && b->o.presence != NULL)
        b->o.presence(c->who.id, 1, b->o.ctx);
    if (!s->clean && b->h.session_open != NULL)
        b->h.session_open(b->h.ctx, s->key, s->expiry_s);
    if (present)
        prune(c, s);
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

void hub_connect_handle(struct hub_mqtt_conn *c, const hub_mqtt_connect_t *p, uint64_t now_ms)
{
    struct hub_broker *b = c->b;
    c->level = p->level;
    if (p->refuse) {
        refuse(c, p->refuse, HUB_CLOSE_REFUSED,
               p->refuse == 1 ? "unacceptable protocol version" : "client identifier rejected");
        return;
    }
    if (!hub_quota_connect(c)) { /* mqtt_max_connects_per_min: before any takeover */
        refuse(c, HUB_MQTT_CONNACK_UNAVAILABLE, HUB_CLOSE_REFUSED, NULL); /* logged there */
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
    c->clean_start = p->clean;
    c->keepalive = p->keepalive;
    hub_will_set(c, p);
    if (!p->clean && b->h.claim != NULL && hub_session_find(&b->sessions, key) == NULL &&
        b->h.claim(b->h.ctx, key) == 1) {
        if ((c->park_key = strdup(key)) == NULL) {
            refuse(c, HUB_MQTT_CONNACK_UNAVAILABLE, HUB_CLOSE_ERROR, "out of memory");
            return;
        }
        c->parked_next = b->parked;
        b->parked = c;
        b->nparked++;
        return;
    }
    accept_connect(c, key, now_ms);
}

void hub_connect_unpark(struct hub_mqtt_conn *c)
{
    struct hub_broker *b = c->b;
    if (c->park_key == NULL)
        return;
    for (struct hub_mqtt_conn **pp = &b->parked; *pp != NULL; pp = &(*pp)->parked_next) {
        if (*pp == c) {
            *pp = c->parked_next;
            b->nparked--;
            break;
        }
    }
    free(c->park_key);
    c->park_key = NULL;
    c->parked_next = NULL;
}

void hub_broker_claim_done(struct hub_broker *b, const char *key, int ok)
{
    struct hub_mqtt_conn *c;
    /* From the head again after each: what one does (its buffered input) may change the list. */
    for (;;) {
        for (c = b->parked; c != NULL && strcmp(c->park_key, key) != 0; c = c->parked_next)
            ;
        if (c == NULL)
            return;
        char k[sizeof c->who.id + HUB_MQTT_MAX_CLIENT_ID + 4];
        snprintf(k, sizeof k, "%s", c->park_key);
        hub_connect_unpark(c);
        if (c->closing)
            continue;
        if (!ok) {
            refuse(c, HUB_MQTT_CONNACK_UNAVAILABLE, HUB_CLOSE_ERROR,
                   "session could not be claimed");
            continue;
        }
        accept_connect(c, k, b->now_ms);
        hub_conn_input(c, b->now_ms);
    }
}
