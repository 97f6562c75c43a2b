/* State kept elsewhere put back into the broker: at start from PostgreSQL, or while a
 * CONNECT is parked for claim (connect.c) from another node's stored session. Restoring
 * calls no hook but subscribed (persistent 0: the trie changed, not the stored state), so the
 * store never writes back what it restores. And the reverse: a session released to another
 * node (takeover across nodes) leaves memory without a word to the store. */
#include <stdio.h>

#include "mqtt/broker_internal.h"
#include "mqtt/topic.h"
#include "util/log.h"

/* The offline persistent session key, or NULL with *rc set (not found; connected). */
static struct hub_session *offline(struct hub_broker *b, const char *key, int *rc)
{
    struct hub_session *s = hub_session_find(&b->sessions, key);
    *rc = s == NULL ? HUB_ENOTFOUND : s->conn != NULL || s->clean ? HUB_EINVAL : 0;
    return *rc == 0 ? s : NULL;
}

int hub_broker_restore_session(struct hub_broker *b, const char *key, uint32_t expiry_s)
{
    if (key == NULL || (strncmp(key, "d:", 2) != 0 && strncmp(key, "s:", 2) != 0))
        return HUB_EINVAL;
    struct hub_session *s = hub_session_find(&b->sessions, key);
    if (s != NULL)
        return s->conn != NULL || s->clean ? HUB_EINVAL : 0;
    if ((s = hub_session_create(&b->sessions, key)) == NULL)
        return HUB_ENOMEM;
    if (b->o.session_expiry_s != 0 && expiry_s > b->o.session_expiry_s)
        expiry_s = b->o.session_expiry_s;
    s->expiry_s = expiry_s;
    s->offline_ms = b->now_ms; /* 0 (not known yet): the next tick starts the clock */
    if (expiry_s != UINT32_MAX)
        b->expiring = 1;
    return 0;
}

int hub_broker_restore_session_since(struct hub_broker *b, const char *key, uint32_t expiry_s,
                                     uint32_t offline_s)
{
    if (b->o.session_expiry_s != 0 && expiry_s > b->o.session_expiry_s)
        expiry_s = b->o.session_expiry_s;
    if (offline_s == UINT32_MAX || expiry_s == UINT32_MAX ||
        hub_session_find(&b->sessions, key) != NULL)
        return hub_broker_restore_session(b, key, expiry_s);
    if (offline_s < expiry_s)
        return hub_broker_restore_session(b, key, expiry_s - offline_s);
    if (key == NULL || (strncmp(key, "d:", 2) != 0 && strncmp(key, "s:", 2) != 0))
        return HUB_EINVAL;
    hub_info("mqtt: session %s expired while stored (offline %u s, expiry %u s): dropped", key,
             offline_s, expiry_s);
    b->st.sessions_expired++;
    if (b->h.session_gone != NULL)
        b->h.session_gone(b->h.ctx, key);
    return 1;
}

int hub_broker_restore_sub(struct hub_broker *b, const char *key, const char *filter, uint8_t qos)
{
    int rc;
    struct hub_session *s = offline(b, key, &rc);
    if (s == NULL)
        return rc;
    size_t flen = strlen(filter);
    if (qos > 2 || !hub_topic_filter_valid(filter, flen))
        return HUB_EINVAL;
    if ((rc = hub_subtree_insert(b->subs, filter, flen, s, qos)) < 0)
        return rc;
    if (rc == 0 && hub_session_add_filter(s, filter, flen) != 0) {
        hub_subtree_remove(b->subs, filter, flen, s);
        return HUB_ENOMEM;
    }
    if (b->h.subscribed != NULL)
        b->h.subscribed(b->h.ctx, s->key, 0, filter, flen, qos);
    return 0;
}

int hub_broker_restore_delivery(struct hub_broker *b, const char *key, const char *topic,
                                size_t tlen, const uint8_t *payload, size_t len, uint8_t qos,
                                uint64_t id, int state, uint16_t pid)
{
    int rc;
    struct hub_session *s = offline(b, key, &rc);
    if (s == NULL)
        return rc;
    if (qos < 1 || qos > 2 || tlen > 65535 || !hub_topic_name_valid(topic, tlen))
        return HUB_EINVAL;
    if (s->queued >= b->o.max_queued) {
        b->st.dropped_queue++;
        hub_warn("mqtt: session %s holds %zu messages: restored message %llu dropped", s->key,
                 s->queued, (unsigned long long)id);
        if (b->h.delivered != NULL && id != 0)
            b->h.delivered(b->h.ctx, s->key, id);
        return 1;
    }
    struct hub_msg *m = hub_msg_new(topic, tlen, payload, len, qos, 0);
    if (m == NULL)
        return HUB_ENOMEM;
    m->id = id;
    int inflight = (state == HUB_DELIVERY_SENT || (state == HUB_DELIVERY_RELEASED && qos == 2)) &&
                   pid != 0 && hub_session_find_pid(s, pid) == NULL;
    if (inflight)
        rc = hub_session_enqueue_inflight(s, m, qos, (uint8_t)state, pid);
    else
        rc = hub_session_enqueue(s, m, qos);
    if (rc == 0 && inflight)
        hub_session_set_inflight(s, s->inflight + 1);
    hub_msg_unref(m);
    return rc;
}

int hub_broker_restore_incoming(struct hub_broker *b, const char *key, uint16_t pid)
{
    int rc;
    struct hub_session *s = offline(b, key, &rc);
    if (s == NULL)
        return rc;
    if (pid == 0)
        return HUB_EINVAL;
    hub_session_add_incoming(s, pid);
    return hub_session_has_incoming(s, pid) ? 0 : HUB_ERANGE;
}

int hub_broker_restore_retained(struct hub_broker *b, const char *topic, size_t tlen,
                                const uint8_t *payload, size_t len, uint8_t qos, uint64_t id)
{
    if (qos > 2 || tlen > 65535 || !hub_topic_name_valid(topic, tlen))
        return HUB_EINVAL;
    struct hub_msg *m = hub_msg_new(topic, tlen, payload, len, qos, 1);
    if (m == NULL)
        return HUB_ENOMEM;
    m->id = id;
    int rc = hub_quota_retain(b, m, NULL, 1); /* counted, never refused */
    hub_msg_unref(m);
    return rc;
}

int hub_broker_release_session(struct hub_broker *b, const char *key)
{
    struct hub_session *s = hub_session_find(&b->sessions, key);
    if (s == NULL)
        return 0;
    struct hub_mqtt_conn *c = s->conn;
    if (c != NULL) { /* detached first: its close neither publishes a will nor drops s */
        s->conn = NULL;
        c->s = NULL;
        if (c->who.kind == HUB_MQTT_DEVICE && b->o.presence != NULL)
            b->o.presence(c->who.id, 0, b->o.ctx);
        hub_conn_close(c, 0, HUB_CLOSE_TAKEOVER, "session taken over on another node");
    }
    hub_broker_drop_session(b, s, 0);
    return 1;
}

void hub_broker_each_offline(struct hub_broker *b, void (*fn)(const char *key, void *ctx),
                             void *ctx)
{
    for (size_t i = 0; i < b->sessions.nbuckets; i++)
        for (const struct hub_session *s = b->sessions.buckets[i]; s != NULL; s = s->hnext)
            if (!s->clean && s->conn == NULL)
                fn(s->key, ctx);
}

int hub_broker_release_offline(struct hub_broker *b, const char *key)
{
    int rc;
    return offline(b, key, &rc) != NULL ? hub_broker_release_session(b, key) : 0;
}
