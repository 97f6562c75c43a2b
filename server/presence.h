/* Which devices are connected to this node, readable from any thread (the REST API), and
 * their last_seen (and, with several nodes, the node holding them) written to PostgreSQL in
 * batches by a thread of its own, so the MQTT loop never waits on the database. */
#ifndef HUB_SERVER_PRESENCE_H
#define HUB_SERVER_PRESENCE_H

struct hub_presence;

/* Starts the writer thread on db_url. NULL on failure (logged). */
struct hub_presence *hub_presence_new(const char *db_url);
/* Flushes pending last_seen updates (best effort) and stops the thread. */
void hub_presence_free(struct hub_presence *p);
/* Records a device connecting (connected = 1) or leaving (0). Any thread; never blocks on
 * the database. */
void hub_presence_set(struct hub_presence *p, const char *device_id, int connected);
/* 1 if device_id is connected to this node. Any thread. */
int hub_presence_connected(struct hub_presence *p, const char *device_id);
/* Several nodes: from now on the writer records this node (nodes.id) as the holder of the
 * devices connected here (devices.connected_node), every connected one written again. */
void hub_presence_set_node(struct hub_presence *p, int node);

#endif
