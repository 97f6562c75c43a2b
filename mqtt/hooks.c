/* Durability and several nodes: the hooks the server sets (store, backbone, cluster; the
 * contract is in broker.h), the message ids, the holds on publishers' acknowledgements,
 * messages injected from other nodes, and session expiry.
 *
 * Holds: hooks.accepted says how many holds it takes on a client message's PUBACK/PUBREC;
 * the acknowledgement then waits in its publisher's line of withheld acknowledgements
 * (flow.c) and b->holds maps the message id to the publisher until hub_broker_release
 * released them all. A release between routing and the end of the accepted call (nothing
 * withheld yet) is counted in b->early and taken off the holds accepted returns.
 *
 * Injected messages: the last RECENT injected QoS >= 1 ids are kept in a ring (arrival
 * order) and a map (lookup), both allocated once: an id seen again is ignored. */
#include <stdio.h>

#include "mqtt/broker_internal.h"
#include "mqtt/topic.h"
#include "util/log.h"

#define RECENT 16384 /* injected ids remembered for de-duplication */

void hub_broker_set_hooks(struct hub_broker *b, const struct hub_broker_hooks *h)
{
    if (h != NULL)
        b->h = *h;
    else
        memset(&b->h, 0, sizeof b->h);
}

uint64_t hub_hooks_next_id(struct hub_broker *b)
{
    uint64_t id = b->o.next_id != NULL ? b->o.next_id(b->o.next_id_ctx) : 0;
    return id != 0 ? id : ++b->last_id;
}

unsigned hub_hooks_accepted(struct hub_broker *b, const struct hub_msg *m, const char *origin)
{
    if (b->h.accepted == NULL)
        return 0;
    b->accepting = m->id; /* set by hub_route_message already, unless m was not routed */
    unsigned holds = b->h.accepted(b->h.ctx, m, origin);
    unsigned early = b->early;
    b->accepting = 0;
    if (m->qos == 0)
        return 0;
    return holds > early ? holds - early : 0;
}

void hub_broker_release(struct hub_broker *b, uint64_t msg_id)
{
    struct hub_mqtt_conn *c = hub_idmap_get(&b->holds, msg_id);
    if (c == NULL) {
        uintptr_t left = (uintptr_t)hub_idmap_get(&b->server_holds, msg_id);
        if (left > 1) {
            hub_idmap_put(&b->server_holds, msg_id, (void *)(left - 1)); /* replaces */
        } else if (left == 1) {
            hub_idmap_del(&b->server_holds, msg_id);
            if (b->h.durable != NULL)
                b->h.durable(b->h.ctx, msg_id);
        } else if (msg_id != 0 && msg_id == b->accepting) {
            b->early++;
        }
        return;
    }
    if (hub_flow_release(c, msg_id))
        hub_idmap_del(&b->holds, msg_id);
}

/* 1 when id was injected lately; else remembers it (forgetting the oldest). HUB_ENOMEM. */
static int seen(struct hub_broker *b, uint64_t id)
{
    if (hub_idmap_get(&b->recent, id) != NULL)
        return 1;
    if (b->ring == NULL && (b->ring = calloc(RECENT, sizeof *b->ring)) == NULL)
        return HUB_ENOMEM;
    if (b->ring[b->ring_pos] != 0)
        hub_idmap_del(&b->recent, b->ring[b->ring_pos]);
    if (hub_idmap_put(&b->recent, id, b) != 0) {
        b->ring[b->ring_pos] = 0;
        return HUB_ENOMEM;
    }
    b->ring[b->ring_pos] = id;
    b->ring_pos = (b->ring_pos + 1) % RECENT;
    return 0;
}

int hub_broker_inject(struct hub_broker *b, const char *topic, size_t tlen, const uint8_t *payload,
                      size_t len, uint8_t qos, int retain, uint64_t id)
{
    if (qos > 2 || tlen > 65535 || !hub_topic_name_valid(topic, tlen) || len > b->o.max_packet)
        return HUB_EINVAL;
    if (qos > 0 && id != 0) {
        int rc = seen(b, id);
        if (rc != 0) {
            b->st.inject_dupes += rc == 1;
            return rc == 1 ? 0 : rc;
        }
    }
    struct hub_msg *m = hub_msg_new(topic, tlen, payload, len, qos, retain ? 1 : 0);
    if (m == NULL)
        return HUB_ENOMEM;
    m->id = id;
    size_t n = hub_route_message(b, m, NULL, NULL, NULL, 1);
    hub_msg_unref(m);
    b->st.injected++;
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* 1 when a CONNECT is parked for key (its session must not expire meanwhile). */
static int parked_on(const struct hub_broker *b, const char *key)
{
    for (const struct hub_mqtt_conn *c = b->parked; c != NULL; c = c->parked_next)
        if (strcmp(c->park_key, key) == 0)
            return 1;
    return 0;
}

void hub_hooks_expire(struct hub_broker *b, uint64_t now_ms)
{
    if (!b->expiring)
        return;
    for (size_t i = 0; i < b->sessions.nbuckets; i++) {
        struct hub_session *s = b->sessions.buckets[i], *next;
        for (; s != NULL; s = next) {
            next = s->hnext;
            if (s->clean || s->conn != NULL || s->expiry_s == UINT32_MAX)
                continue;
            if (s->offline_ms == 0 || s->offline_ms > now_ms) {
                s->offline_ms = now_ms; /* offline since before the clock was known */
                continue;
            }
            if (now_ms - s->offline_ms < (uint64_t)s->expiry_s * 1000 ||
                (b->nparked > 0 && parked_on(b, s->key)))
                continue;
            hub_info("mqtt: session %s expired (offline %llu s): dropped", s->key,
                     (unsigned long long)((now_ms - s->offline_ms) / 1000));
            b->st.sessions_expired++;
            hub_broker_drop_session(b, s, 1);
        }
    }
}
