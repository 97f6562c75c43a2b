/* Each hook calls the parts in a fixed order: store, then (blocks added by their owners)
 * backbone, cluster. accepted adds up the holds: the publisher's acknowledgement goes out
 * once every part released its own. */
#include "server/mqtt_hooks.h"

#include <stdlib.h>
#include <string.h>

#include "server/backbone.h"
#include "server/directory.h"
#include "server/mqtt_store.h"
#include "server/takeover.h"

static void session_open(void *ctx, const char *key, uint32_t expiry_s)
{
    struct hub_mqtt_hooks *h = ctx;
    if (h->store != NULL)
        hub_mqtt_store_session_open(h->store, key, expiry_s);
}

static void session_gone(void *ctx, const char *key)
{
    struct hub_mqtt_hooks *h = ctx;
    if (h->store != NULL)
        hub_mqtt_store_session_gone(h->store, key);
}

static void subscribed(void *ctx, const char *key, int persistent, const char *filter,
                       size_t flen, uint8_t qos)
{
    struct hub_mqtt_hooks *h = ctx;
    if (h->store != NULL && persistent)
        hub_mqtt_store_subscribed(h->store, key, filter, flen, qos);
    /* backbone: the node subscribes to what its sessions need */
    if (h->backbone != NULL)
        hub_backbone_subscribed(h->backbone, key, filter, flen, qos);
}

static void unsubscribed(void *ctx, const char *key, int persistent, const char *filter,
                         size_t flen)
{
    struct hub_mqtt_hooks *h = ctx;
    if (h->store != NULL && persistent)
        hub_mqtt_store_unsubscribed(h->store, key, filter, flen);
    /* backbone */
    if (h->backbone != NULL)
        hub_backbone_unsubscribed(h->backbone, key, filter, flen);
}

static void queued(void *ctx, const char *key, const struct hub_msg *m, uint8_t qos, int remote)
{
    struct hub_mqtt_hooks *h = ctx;
    (void)remote; /* a remote message's queue row is this node's to write too (idempotent) */
    if (h->store != NULL)
        hub_mqtt_store_queued(h->store, key, m, qos);
}

static void delivered(void *ctx, const char *key, uint64_t msg_id)
{
    struct hub_mqtt_hooks *h = ctx;
    if (h->store != NULL)
        hub_mqtt_store_delivered(h->store, key, msg_id);
}

static void incoming(void *ctx, const char *key, uint16_t pid, int added)
{
    struct hub_mqtt_hooks *h = ctx;
    if (h->store != NULL)
        hub_mqtt_store_incoming(h->store, key, pid, added);
}

static void retained(void *ctx, const char *topic, size_t tlen, const struct hub_msg *m,
                     int remote)
{
    struct hub_mqtt_hooks *h = ctx;
    (void)remote;
    if (h->store != NULL)
        hub_mqtt_store_retained(h->store, topic, tlen, m);
}

static unsigned accepted(void *ctx, const struct hub_msg *m, const char *origin_device_id)
{
    struct hub_mqtt_hooks *h = ctx;
    unsigned holds = 0;
    (void)origin_device_id;
    /* cluster: queue rows for persistent sessions held elsewhere, before the store's hold. */
    if (h->directory != NULL && h->store != NULL)
        hub_directory_route(h->directory, m);
    if (h->store != NULL)
        holds += hub_mqtt_store_accepted(h->store, m);
    /* backbone: forwarded to the other nodes; QoS >= 1 acknowledged once the backbone has it */
    if (h->backbone != NULL)
        holds += hub_backbone_accepted(h->backbone, m);
    return holds;
}

/* cluster: a persistent session not in memory may live on another node. */
static int claim(void *ctx, const char *key)
{
    struct hub_mqtt_hooks *h = ctx;
    return h->takeover != NULL ? hub_takeover_claim(h->takeover, key) : 0;
}

static void durable(void *ctx, uint64_t msg_id)
{
    struct hub_mqtt_hooks *h = ctx;
    if (h->durable != NULL)
        h->durable(h->durable_arg, msg_id);
}

/* store2: the expiry clock and QoS 2 outbound state survive restarts. */
static void session_offline(void *ctx, const char *key)
{
    struct hub_mqtt_hooks *h = ctx;
    if (h->store != NULL)
        hub_mqtt_store_session_offline(h->store, key);
}

/* A PUBREL waiting for its state's commit (the store's flush barrier). */
struct pubrel {
    struct hub_broker *b;
    uint64_t msg_id;
    uint16_t pid;
    char key[];
};

static void pubrel_stored(int rc, void *arg)
{
    struct pubrel *p = arg;
    if (rc == 0) /* else the store stopped: the broker is going away */
        hub_broker_pubrel(p->b, p->key, p->msg_id, p->pid);
    free(p);
}

static int delivery_state(void *ctx, const char *key, uint64_t msg_id, int state, uint16_t pid)
{
    struct hub_mqtt_hooks *h = ctx;
    if (h->store == NULL)
        return 0;
    hub_mqtt_store_delivery_state(h->store, key, msg_id, state, pid);
    size_t n = strlen(key) + 1;
    struct pubrel *p = h->broker != NULL ? malloc(sizeof *p + n) : NULL;
    if (p == NULL)
        return 0; /* sent at once */
    *p = (struct pubrel){h->broker, msg_id, pid};
    memcpy(p->key, key, n);
    if (hub_mqtt_store_flush(h->store, pubrel_stored, p) != 0) {
        free(p);
        return 0;
    }
    return 1;
}

void hub_mqtt_hooks_fill(struct hub_mqtt_hooks *ctx, struct hub_broker_hooks *h)
{
    *h = (struct hub_broker_hooks){
        .ctx = ctx,
        .session_open = session_open,
        .session_gone = session_gone,
        .subscribed = subscribed,
        .unsubscribed = unsubscribed,
        .queued = queued,
        .delivered = delivered,
        .incoming = incoming,
        .retained = retained,
        .accepted = accepted,
        .claim = claim,
        .durable = durable,
        .session_offline = session_offline,
        .delivery_state = delivery_state,
    };
}
