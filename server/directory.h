/* The directory of persistent sessions held elsewhere (issue 18): every persistent session's
 * QoS >= 1 subscriptions in PostgreSQL (mqtt_subscriptions, mqtt_sessions) whose owner is not
 * this node, kept in memory and reloaded whenever a trigger of migration 019 says they
 * changed (NOTIFY iothub_directory, on the node's LISTEN connection, server/pgfeed.h). For a
 * QoS >= 1 message a client published here, the node writes the queue rows of those sessions
 * itself (server/mqtt_store.h, idempotent: the holder may write the same row), so the
 * publisher's acknowledgement waits for them: a session held by a node that dies, or offline
 * on a dead node, still gets every message acknowledged after it subscribed. Loop thread. */
#ifndef HUB_SERVER_DIRECTORY_H
#define HUB_SERVER_DIRECTORY_H

#include <stddef.h>

#include "mqtt/msg.h"
#include "server/pgfeed.h"
#include "util/buf.h"

#define HUB_DIRECTORY_MAX 100000 /* subscriptions kept; past it the rest are not covered (logged) */

struct hub_directory;
struct hub_mqtt_store;

/* Adds the directory's listener to pg (before hub_pgfeed_start); node: this node's name
 * (copied); store: where queue rows are recorded. Returns 0 or HUB_ENOMEM. */
int hub_directory_start(struct hub_pgfeed *pg, const char *node, struct hub_mqtt_store *store,
                        struct hub_directory **out);
/* hooks.accepted, before the store's: records a delivery of m (QoS >= 1) on every persistent
 * session held elsewhere whose subscription matches (the store then holds m's
 * acknowledgement). Returns how many. */
size_t hub_directory_route(struct hub_directory *d, const struct hub_msg *m);
/* Appends the directory metrics (Prometheus text). Any thread. */
int hub_directory_metrics(struct hub_directory *d, hub_buf_t *out);
/* Stops its callbacks; memory goes with the feed. NULL accepted. */
void hub_directory_stop(struct hub_directory *d);

#endif
