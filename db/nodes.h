/* The nodes of a cluster (migration 019): registration under a name, liveness through a
 * session-level advisory lock held on the node's LISTEN connection, heartbeats, the sweep
 * of dead nodes. Blocking; thread pool only. */
#ifndef HUB_DB_NODES_H
#define HUB_DB_NODES_H

#include <stddef.h>

#include <jansson.h>
#include <libpq-fe.h>

#define HUB_DB_NODE_LOCK 19019 /* advisory lock (HUB_DB_NODE_LOCK, nodes.id): node alive */
#define HUB_DB_NODE_NAME_MAX 65

/* Registers name (creating its row) and tries to take its advisory lock on c. *id gets its
 * id, *locked 1 when the lock is now held by c (another live process with this name: 0).
 * When locked, the addresses and version are written; when fresh too, the row's start time
 * is reset and the devices it was said to hold are cleared (a restart). Returns 0 or a HUB_E*
 * code. */
int hub_db_nodes_register(PGconn *c, const char *name, const char *api_address,
                          const char *mqtt_address, const char *version, int fresh, int *id,
                          int *locked);
/* Writes the node's heartbeat with its MQTT connection and session counts (migration 025).
 * *peers gets the number of other nodes not known stopped. */
int hub_db_nodes_heartbeat(PGconn *c, int id, long long connections, long long sessions,
                           int *peers);
/* Finds the other nodes not yet known dead whose lock is free, clears the devices they held
 * and marks them stopped. names gets their names, comma-separated (cap bytes). *n their
 * count. Never takes self's lock (c holds it). */
int hub_db_nodes_reap(PGconn *c, int self, char *names, size_t cap, int *n);
/* 1 when node id's lock is held (it lives), 0 when free, negative HUB_E* on error. c must not
 * hold that node's lock itself. */
int hub_db_nodes_alive(PGconn *c, int id);
/* The same by node name; 0 for a name no node registered. */
int hub_db_nodes_alive_name(PGconn *c, const char *name);

/* GET /v1/nodes: every registered node, by name: {name, alive (its lock held), version,
 * started_at, heartbeat_at, stopped_at, connections, sessions, api_address, mqtt_address}. */
int hub_db_nodes_list(PGconn *c, json_t **out);

#endif
