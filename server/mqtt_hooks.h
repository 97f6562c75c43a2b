/* The broker's hooks (mqtt/broker.h, mqtt-hooks-contract.md) composed from the parts of the
 * server that need them: each hook calls the backbone (server/backbone.h), and the store and
 * the cluster when they are there. Loop thread. */
#ifndef HUB_SERVER_MQTT_HOOKS_H
#define HUB_SERVER_MQTT_HOOKS_H

struct hub_broker;
struct hub_backbone;

/* Who the hooks call; each member may be NULL. Owned by the caller, who keeps it for the
 * broker's lifetime (server/mqtt_server_internal.h embeds it). */
struct hub_mqtt_hook_users {
    struct hub_backbone *backbone;
};

/* Installs the hooks on b, with u as their context. */
void hub_mqtt_hooks_set(struct hub_broker *b, struct hub_mqtt_hook_users *u);

#endif
