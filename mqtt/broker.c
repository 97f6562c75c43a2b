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

void hub_broker_drop_session(struct hub_broker *b, struct hub_session *s)
{
    hub_flow_wake(s);
    hub_subtree_remove_all(b->subs, s, (const char *const *)s->filters, s->nsubs);
    hub_session_destroy(&b->sessions, s);
}

struct hub_broker *hub_broker_new(const struct hub_broker_options *o)
{
    struct hub_broker *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->o = *o;
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
    hub_subtree_free(b->subs);
    hub_buf_free(&b->out);
    hub_buf_free(&b->q0);
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

size_t hub_broker_kick_principal(struct hub_broker *b, const char *id, const char *why)
{
    size_t n = 0;
    for (struct hub_mqtt_conn *c = b->conns; c != NULL; c = c->next) {
        if (!c->closing && strcmp(c->who.id, id) == 0) {
            hub_conn_close(c, 0, HUB_CLOSE_REVOKED, why);
            n++;
        }
    }
    return n;
}

int hub_broker_publish(struct hub_broker *b, const char *topic, const uint8_t *payload, size_t len,
                       int qos, int retain, const char *device_id)
{
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
    hub_route_message(b, m, device, &delivered, NULL);
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
        }
    }
    for (const struct hub_mqtt_conn *c = b->conns; c != NULL; c = c->next) {
        throttled += c->nheld > 0;
        if (c->nwaits > 0 && c->nheld == 0 && !c->closing)
            return HUB_EINVAL; /* waiting without anything withheld */
    }
    if (queued != b->sessions.queued || inflight != b->sessions.inflight ||
        throttled != b->throttled)
        return HUB_EINVAL;
    return 0;
}
