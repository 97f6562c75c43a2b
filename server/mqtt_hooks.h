/* The broker's hooks (mqtt/broker.h, mqtt-hooks-contract.md) composed from the parts of the
 * server that need them: each hook calls the backbone (server/backbone.h), and the store and
 * the cluster when they are there. Loop thread. */
#ifndef HUB_SERVER_MQTT_HOOKS_H
#define HUB_SERVER_MQTT_HOOKS_H

struct hub_mqtt_server;

/* Installs the hooks on m->broker, with m as their context. */
void hub_mqtt_hooks_set(struct hub_mqtt_server *m);

#endif
