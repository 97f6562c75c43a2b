/* This node among several on one PostgreSQL (docs/operations.md): its row in `nodes`, the
 * advisory lock that says it lives (held on the node's LISTEN connection, server/pgfeed.h, so
 * it goes the moment the process or its connection dies), a heartbeat every 2 s that also
 * sweeps dead peers (clears the devices they were said to hold) and writes the node's MQTT
 * counts (GET /v1/nodes), fencing (a node that could not renew its lock for cluster_fence_s
 * closes its MQTT connections and admits none until it is registered again), and, for the
 * REST API threads, which node holds a device. Loop thread unless said otherwise. */
#ifndef HUB_SERVER_CLUSTER_H
#define HUB_SERVER_CLUSTER_H

#include <stddef.h>

#include <uv.h>

#include "server/config.h"
#include "server/pgfeed.h"
#include "server/presence.h"
#include "util/buf.h"

#define HUB_CLUSTER_NAME_MAX 65

struct hub_cluster;

struct hub_cluster_options {
    uv_loop_t *loop;
    const struct hub_config *cfg; /* db_url, node_name, listeners (their addresses) */
    struct hub_pgfeed *pg;        /* the node's LISTEN connection (before hub_pgfeed_start) */
    struct hub_presence *presence; /* told this node's id once registered */
    struct hub_broker *broker;     /* its counts go with the heartbeat; closed when fenced */
};

/* The node's name: node_name, else the host name (truncated to 64 bytes). */
void hub_cluster_node_name(const struct hub_config *cfg, char out[HUB_CLUSTER_NAME_MAX]);
/* Registers the node's listener on o->pg and starts the heartbeat. Returns 0 or HUB_ENOMEM. */
int hub_cluster_start(const struct hub_cluster_options *o, struct hub_cluster **out);
/* nodes.id of this node, 0 until registered (its lock held). */
int hub_cluster_node_id(const struct hub_cluster *c);
/* Any thread (blocks on PostgreSQL): 1 when device_id's connection is held by another live
 * node according to devices.connected_node, else 0. */
int hub_cluster_held_elsewhere(struct hub_cluster *c, const char *device_id);
/* Whether a new MQTT connection may go to the broker: 0 while the node is fenced (cut from
 * PostgreSQL longer than cluster_fence_s while peers could take over its sessions; counted). */
int hub_cluster_admit(struct hub_cluster *c);
/* Appends the cluster metrics (Prometheus text). Any thread. */
int hub_cluster_metrics(struct hub_cluster *c, hub_buf_t *out);
/* Stops the heartbeat; memory goes with the feed (hub_pgfeed_stop) and the timer's close. */
void hub_cluster_stop(struct hub_cluster *c);

#endif
