/* The broker's hooks (mqtt/broker.h struct hub_broker_hooks) as `serve` composes them: the
 * durable store (server/mqtt_store.h) first; the message backbone and the cluster directory
 * add their calls as blocks of their own in server/mqtt_hooks.c. Loop thread. */
#ifndef HUB_SERVER_MQTT_HOOKS_H
#define HUB_SERVER_MQTT_HOOKS_H

#include "mqtt/broker.h"

struct hub_mqtt_store;
struct hub_backbone;

/* What the hooks call; each member may be NULL (that part is off). Owned by the caller,
 * which keeps it alive as long as the broker. */
struct hub_mqtt_hooks {
    struct hub_mqtt_store *store;
    struct hub_backbone *backbone; /* several nodes: the message backbone (server/backbone.h) */
    /* Several nodes (server/takeover.h, server/directory.h). */
    struct hub_takeover *takeover;
    struct hub_directory *directory;
    /* hub_broker_publish_durable's messages once stored and forwarded (server commands). */
    void (*durable)(void *arg, uint64_t msg_id);
    void *durable_arg;
    /* store2: QoS 2 PUBRELs go out once their state is stored (hub_broker_pubrel). */
    struct hub_broker *broker;
};

/* Fills h with the hooks of ctx (h->ctx = ctx), for hub_broker_set_hooks. */
void hub_mqtt_hooks_fill(struct hub_mqtt_hooks *ctx, struct hub_broker_hooks *h);

#endif
