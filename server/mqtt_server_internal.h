/* The state of the MQTT side of `serve`, shared by server/mqtt_server.c (listeners,
 * connections, start and stop) and server/mqtt_commands.c (commands and notices handed over
 * from other threads). Nothing outside these two files includes it. */
#ifndef HUB_SERVER_MQTT_SERVER_INTERNAL_H
#define HUB_SERVER_MQTT_SERVER_INTERNAL_H

#include <pthread.h>
#include <stddef.h>

#include <libpq-fe.h>
#include <uv.h>

#include "net/revset.h"
#include "net/tls_ctx.h"
#include "net/tls_listener.h"
#include "net/workers.h"
#include "server/mqtt_hooks.h"
#include "server/mqtt_metrics.h"

struct command {
    char topic[160];
    char device_id[40];
    void *payload;
    size_t len;
    int done, delivered, refs, async; /* async: a rollout notice, nobody waits */
    uint64_t id; /* waiting in durable_wait until the store and the backbone have it */
    struct command *next;
};

struct hub_mqtt_server {
    uv_loop_t *loop;
    struct hub_broker *broker;
    hub_tls_ctx_t *ctx;
    hub_tls_ctx_t *pw_ctx;  /* TLS without client certificates */
    hub_workers_t *workers; /* the loops that own the connections (net/workers.h) */
    int listening[HUB_LISTENER_COUNT];
    struct link *waiting; /* password connections before their CONNECT is accepted */
    hub_revset_t *revset;
    struct hub_revfeed *feed;
    struct hub_pgfeed *pgfeed; /* the node's LISTEN connection, shared by the feeds */
    struct hub_cluster *cluster; /* this node among several (server/cluster.h) */
    struct hub_takeover *takeover;   /* sessions taken from other nodes (server/takeover.h) */
    struct hub_directory *directory; /* their persistent sessions (server/directory.h) */
    struct hub_presence *presence;
    struct hub_registration *reg; /* device CAs: trust, JIT registration (issue 15) */
    struct hub_rollouts *rollouts;
    struct hub_mqtt_store *store; /* durable sessions and retained messages (issue 18) */
    struct hub_mqtt_hooks hooks;  /* what the broker's hooks call (server/mqtt_hooks.c) */
    struct hub_backbone *backbone; /* several nodes (server/backbone.h); NULL: one node */
    size_t async_queued; /* rollout notices in queue (under lock) */
    uv_timer_t tick;
    uv_async_t wakeup;
    pthread_mutex_t lock; /* commands queue */
    pthread_cond_t done;
    struct command *queue;
    struct command *durable_wait; /* loop thread: published, the answer waits (commands.c) */
    pthread_mutex_t lookup_lock; /* lookup_db, used by thread-pool jobs one at a time */
    PGconn *lookup_db;
    char *db_url;
    size_t max_packet;
    unsigned connect_timeout_s;
    int stopping;
    int handles_open;
    /* Loop-thread counters (no atomics: only the loop writes them) and the snapshot the
     * tick publishes for API threads (server/mqtt_metrics.h). */
    unsigned long long closed[HUB_CLOSE_COUNT], bytes_in, bytes_out;
    pthread_mutex_t metrics_lock;
    struct hub_mqtt_metrics snap;
};

/* The loop's uv_async_t callback: publishes every queued command and notice. */
void hub_mqtt_commands_wakeup(uv_async_t *a);
/* hooks.durable (server/mqtt_hooks.h): the command published as msg_id is stored for the
 * persistent sessions it was queued on and forwarded: its caller gets its answer. */
void hub_mqtt_commands_durable(void *arg, uint64_t msg_id);
/* At stop: answers every command still waiting for the store (loop thread). */
void hub_mqtt_commands_stop(struct hub_mqtt_server *m);
/* The rollout engine's publish function (struct hub_rollouts_options): queues a notice for
 * the loop without waiting; HUB_ERANGE when HUB_ROLLOUTS_NOTICES_QUEUED are queued already. */
int hub_mqtt_commands_publish_async(void *ctx, const char *device_id, const char *topic,
                                    const void *payload, size_t len);

#endif
