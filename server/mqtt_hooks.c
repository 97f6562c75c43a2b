/* One small block per user in each hook; the order inside a hook is the order of the
 * blocks (store, then backbone, then cluster). */
#include "server/mqtt_hooks.h"

#include "mqtt/broker.h"
#include "server/backbone.h"

static void subscribed(void *ctx, const char *key, int persistent, const char *filter,
                       size_t flen, uint8_t qos)
{
    struct hub_mqtt_hook_users *u = ctx;
    /* backbone: the node subscribes to what its sessions need */
    hub_backbone_subscribed(u->backbone, key, filter, flen, qos);
}

static void unsubscribed(void *ctx, const char *key, int persistent, const char *filter,
                         size_t flen)
{
    struct hub_mqtt_hook_users *u = ctx;
    /* backbone */
    hub_backbone_unsubscribed(u->backbone, key, filter, flen);
}

static unsigned accepted(void *ctx, const struct hub_msg *m, const char *origin_device_id)
{
    struct hub_mqtt_hook_users *u = ctx;
    unsigned holds = 0;
    /* backbone: forwarded to the other nodes; QoS >= 1 acknowledged once the backbone has it */
    holds += hub_backbone_accepted(u->backbone, m);
    return holds;
}

void hub_mqtt_hooks_set(struct hub_broker *b, struct hub_mqtt_hook_users *u)
{
    struct hub_broker_hooks h = {
        .ctx = u,
        .subscribed = subscribed,
        .unsubscribed = unsubscribed,
        .accepted = accepted,
    };
    hub_broker_set_hooks(b, &h);
}
