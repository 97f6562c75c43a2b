/* The broker object: the session table, the subscription trie, the retained messages, the
 * list of connections and the counters, and what the transport or the server calls on the
 * broker as a whole (tick, kicks, server-side publish, stats). The rest is split by what it
 * handles (the list is at the top of broker_internal.h): a connection's bytes and packets
 * in conn.c, CONNECT in connect.c, PUBLISH and its acknowledgements in publish.c,
 * (UN)SUBSCRIBE in subscribe.c, routing in route.c, flow control in flow.c, wills in
 * will.c.
 *
 * Totals (queued, in flight, throttled, subscriptions) are kept as they change, so
 * hub_broker_stats is O(1); hub_broker_check recounts them for tests and fuzzing. */
#include "mqtt/broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mqtt/broker_internal.h"
#include "mqtt/topic.h"
#include "util/error.h"

void hub_broker_drop_session(struct hub_broker *b, struct hub_session *s, int gone)
{
    hub_flow_wake(s);
    hub_subtree_remove_all(b->subs, s, (const char *const *)s->filters, s->nsubs);
    for (size_t i = 0; b->h.unsubscribed != NULL && i < s->nsubs; i++)
        b->h.unsubscribed(b->h.ctx, s->key, 0, s->filters[i], strlen(s->filters[i]));
    if (gone && !s->clean && b->h.session_gone != NULL)
        b->h.session_gone(b->h.ctx, s->key);
    hub_session_destroy(&b->sessions, s);
}

struct hub_broker *hub_broker_new(const struct hub_broker_options *o)
{
    struct hub_broker *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->o = *o;
    b->expiring = o->session_expiry_s != 0;
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
    hub_quota_table_free(&b->quota);
    hub_subtree_free(b->subs);
    hub_buf_free(&b->out);
    hub_buf_free(&b->q0);
    hub_idmap_free(&b->holds);
    hub_idmap_free(&b->server_holds);
    hub_idmap_free(&b->recent);
    free(b->ring);
    free(b->targets);
    free(b);
}

void hub_broker_tick(struct hub_broker *b, uint64_t now_ms)
{
    b->now_ms = now_ms;
    for (struct hub_mqtt_conn *c = b->conns; c != NULL; c = c->next) {
        if (c->closing)
            continue;
        hub_flow_expire(c, now_ms);
        hub_conn_tick(c, now_ms);
    }
    hub_hooks_expire(b, now_ms);
    hub_quota_tick(b, now_ms);
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
            hub_conn_close(c, 0, HUB_CLOSE_REVOKED, "certificate revoked");
            n++;
        }
    }
    return n;
}

/* 1 when session key belongs to principal id ("d:<id>", "s:<id>/<client id>"). */
static int key_of(const char *key, const char *id)
{
    size_t n = strlen(id);
    return (key[0] == 'd' || key[0] == 's') && key[1] == ':' && strncmp(key + 2, id, n) == 0 &&
           (key[0] == 'd' ? key[2 + n] == 0 : key[2 + n] == '/');
}

size_t hub_broker_kick_principal(struct hub_broker *b, const char *id, const char *why)
{
    size_t n = 0;
    for (struct hub_mqtt_conn *c = b->conns; c != NULL; c = c->next) {
        if (!c->closing && strcmp(c->who.id, id) == 0) {
            hub_conn_close(c, 0, HUB_CLOSE_REVOKED, why);
            n++;
        }
    }
    /* Its sessions end with it (a revoked or reset principal starts afresh). */
    for (size_t i = 0; i < b->sessions.nbuckets; i++) {
        struct hub_session *s = b->sessions.buckets[i], *next;
        for (; s != NULL; s = next) {
            next = s->hnext;
            if (!key_of(s->key, id))
                continue;
            if (s->conn != NULL) {
                s->conn->s = NULL; /* closing already; it reports its presence itself */
                if (s->conn->who.kind == HUB_MQTT_DEVICE && b->o.presence != NULL)
                    b->o.presence(s->conn->who.id, 0, b->o.ctx);
                s->conn = NULL;
            }
            hub_broker_drop_session(b, s, 1);
        }
    }
    return n;
}

int hub_broker_publish(struct hub_broker *b, const char *topic, const uint8_t *payload, size_t len,
                       int qos, int retain, const char *device_id)
{
    return hub_broker_publish_durable(b, topic, payload, len, qos, retain, device_id, NULL);
}

int hub_broker_publish_durable(struct hub_broker *b, const char *topic, const uint8_t *payload,
                               size_t len, int qos, int retain, const char *device_id,
                               uint64_t *id)
{
    if (id != NULL)
        *id = 0;
    if (!hub_topic_name_valid(topic, strlen(topic)) || qos < 0 || qos > 2)
        return HUB_EINVAL;
    struct hub_msg *m =
        hub_msg_new(topic, strlen(topic), payload, len, (uint8_t)qos, (uint8_t)retain);
    if (m == NULL)
        return HUB_ENOMEM;
    const struct hub_session *device = NULL;
    if (device_id != NULL) {
        char key[64];
        snprintf(key, sizeof key, "d:%s", device_id);
        device = hub_session_find(&b->sessions, key);
    }
    int delivered = 0;
    m->id = hub_hooks_next_id(b);
    hub_route_message(b, m, device, &delivered, NULL, 0);
    unsigned holds = hub_hooks_accepted(b, m, NULL); /* no client acknowledgement to hold */
    if (id != NULL && holds > 0 &&
        hub_idmap_put(&b->server_holds, m->id, (void *)(uintptr_t)holds) == 0)
        *id = m->id;
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
            hub_conn_close(c, 0, HUB_CLOSE_SHUTDOWN, NULL);
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
    out->held_acks = b->holds.count;
    out->parked = b->nparked;
    out->retained_bytes = b->quota.retained_bytes;
    out->rate_paused = b->quota.paused;
    out->quota_principals = b->quota.count;
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
            if (s->fset.count != s->nsubs)
                return HUB_EINVAL; /* the filter set and array disagree */
            for (size_t k = 0; k < s->nsubs; k++)
                if (hub_filterset_find(&s->fset, s->filters, s->filters[k],
                                       strlen(s->filters[k])) != (long)k)
                    return HUB_EINVAL;
        }
    }
    size_t held = 0, parked = 0;
    for (const struct hub_mqtt_conn *c = b->conns; c != NULL; c = c->next) {
        throttled += c->nwaits > 0;
        if (c->nwaits > 0 && c->nheld == 0 && !c->closing)
            return HUB_EINVAL; /* waiting without anything withheld */
        for (size_t i = 0; i < c->nheld; i++) {
            const struct hub_held_ack *a = &c->held[c->held_off + i];
            if (a->flow && c->nwaits == 0)
                return HUB_EINVAL; /* withheld by flow control without a wait */
            if (a->holds > 0 && (held++, hub_idmap_get(&b->holds, a->id) != c))
                return HUB_EINVAL; /* a hold the map does not lead to */
        }
        if (c->nheld > 0 && c->held[c->held_off].holds == 0 && !c->held[c->held_off].flow)
            return HUB_EINVAL; /* the front could have gone out */
        parked += c->park_key != NULL;
    }
    size_t listed = 0, server = 0;
    for (const struct hub_mqtt_conn *c = b->parked; c != NULL; c = c->parked_next)
        listed++;
    /* hub_broker_publish_durable's holds: each reachable, with holds left, not a client's. */
    for (size_t i = 0; i < b->server_holds.cap; i++) {
        const struct hub_idmap_slot *sl = &b->server_holds.slots[i];
        if (sl->id == 0)
            continue;
        server++;
        if (sl->v == NULL || hub_idmap_get(&b->server_holds, sl->id) != sl->v ||
            hub_idmap_get(&b->holds, sl->id) != NULL)
            return HUB_EINVAL;
    }
    if (server != b->server_holds.count)
        return HUB_EINVAL;
    if (b->quota.retained != b->retained.count) /* every change goes through quota_check.c */
        return HUB_EINVAL;
    if (queued != b->sessions.queued || inflight != b->sessions.inflight ||
        throttled != b->throttled || held != b->holds.count || parked != listed ||
        listed != b->nparked)
        return HUB_EINVAL;
    if (b->retained.topics != NULL && hub_topictrie_count(b->retained.topics) != b->retained.count)
        return HUB_EINVAL; /* the retained trie and table disagree */
    return 0;
}
