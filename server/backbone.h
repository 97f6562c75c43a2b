/* The message backbone between iothubd nodes: an MQTT 5 client (libmosquitto) of an existing
 * broker (Mosquitto, EMQX, HiveMQ, VerneMQ: nothing broker-specific is used).
 *
 * - Out: every message accepted from a local client or published by the server is forwarded
 *   on its topic with its QoS and retain flag and the user property "iothub-id" (the
 *   fleet-unique message id, 16 hex digits); control messages carry "iothub-node"
 *   (node_name) instead. For QoS >= 1 the
 *   publisher's acknowledgement is held (hub_backbone_accepted returns 1) until the backbone
 *   acknowledged the forward; then hub_broker_release runs on the loop.
 * - In: the node subscribes only to the filters its own sessions use (hub_backbone_subscribed
 *   / _unsubscribed, counted per session), at their highest QoS, with No Local (a node never
 *   gets its own forwards back) and Retain As Published; what arrives is queued to the loop
 *   and given to hub_broker_inject, which drops ids it saw recently (overlapping filters,
 *   resends after a reconnect).
 * - Control: topics under HUB_BACKBONE_CONTROL_PREFIX are node-to-node messages
 *   (server/cluster): never forwarded from clients, never injected; a registered callback
 *   gets them on the loop.
 *
 * Threads: libmosquitto runs on a thread of its own (connect, reconnect with back-off, I/O,
 * callbacks, and every publish); everything else is on the broker's loop: the hook calls
 * (a forward is appended to a reused buffer, handed over once per loop iteration), and a
 * uv_async_t that takes the received messages and the backbone's acknowledgements. The
 * loop never waits on the network: it only takes a mutex for a moment, once per batch.
 *
 * Backbone down: QoS >= 1 forwards are kept in order on the network thread (given to
 * libmosquitto only once connected) with their publishers' acknowledgements held, up to
 * backbone_max_queued bytes; beyond that, forwards wait on the
 * loop (a reference to the message) with their acknowledgements held too, so the broker's
 * flow control stops reading each publisher after max_inflight held acknowledgements; QoS 0
 * forwards are dropped and counted. Everything is sent again (and every filter subscribed
 * again) once the backbone is back. */
#ifndef HUB_SERVER_BACKBONE_H
#define HUB_SERVER_BACKBONE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "server/config.h"
#include "util/buf.h"

struct hub_backbone;
struct hub_broker;
struct hub_msg;

/* Node-to-node topics (server/cluster) start with this. */
#define HUB_BACKBONE_CONTROL_PREFIX "iothub-nodes/"

/* A control message (topic under HUB_BACKBONE_CONTROL_PREFIX) from node origin ("" when it
 * came without one). Loop thread; the callee copies what it keeps. */
typedef void (*hub_backbone_control_cb)(void *ctx, const char *topic, size_t tlen,
                                        const uint8_t *payload, size_t len, const char *origin);

struct hub_backbone_options {
    uv_loop_t *loop;             /* the broker's loop */
    const struct hub_config *cfg;
    struct hub_broker *broker;   /* borrowed; outlives the backbone */
    /* Ids for messages a backend published on the backbone without one (the same function as
     * hub_broker_options.next_id); NULL: such messages keep id 0. Loop thread. */
    uint64_t (*next_id)(void *ctx);
    void *next_id_ctx;
};

/* Counters (any thread: relaxed atomics inside; copied out here). */
struct hub_backbone_stats {
    int connected;
    unsigned long long connects;            /* successful CONNACKs */
    unsigned long long forwarded[3];        /* by QoS, handed to the backbone */
    unsigned long long received[3];         /* by QoS, injected */
    unsigned long long dropped_disconnected; /* QoS 0 forwards while the backbone was down */
    unsigned long long dropped_full;        /* forwards over the limits (see above) */
    unsigned long long refused;             /* forwards the backbone answered with an error */
    unsigned long long dropped_inbound;     /* received but invalid (topic, size) or our own */
    unsigned long long held;                /* acknowledgements held now */
    unsigned long long queued_bytes;        /* forwards not yet acknowledged by the backbone */
    unsigned long long waiting;             /* forwards waiting for room (over the limit) */
    unsigned long long filters;             /* filters subscribed on the backbone */
    unsigned long long sessions_lost;       /* reconnects where the backbone had lost our session */
};

/* Starts the client when cfg->backbone is set (else *out = NULL and nothing runs). Reads
 * backbone_password_file. Returns 0 or a HUB_E* code (logged). Loop thread. */
int hub_backbone_start(const struct hub_backbone_options *o, struct hub_backbone **out);
/* Disconnects, joins the client thread, drops what waits; the memory goes once the loop has
 * run the close callback. Held acknowledgements are not released (the connections close
 * anyway). NULL is ignored. Loop thread. */
void hub_backbone_stop(struct hub_backbone *bb);
/* This node's name (node_name or the host name). */
const char *hub_backbone_node(const struct hub_backbone *bb);

/* ---- the broker's hooks (mqtt-hooks-contract), loop thread; bb may be NULL -------------- */
void hub_backbone_subscribed(struct hub_backbone *bb, const char *key, const char *filter,
                             size_t flen, uint8_t qos);
void hub_backbone_unsubscribed(struct hub_backbone *bb, const char *key, const char *filter,
                               size_t flen);
/* Forwards m; returns the holds taken on its acknowledgement (0 or 1). */
unsigned hub_backbone_accepted(struct hub_backbone *bb, const struct hub_msg *m);

/* ---- control messages (server/cluster), loop thread ---------------------------------- */
/* Subscribes to filter (which must start with HUB_BACKBONE_CONTROL_PREFIX) for cb; one
 * callback for all control filters (the last one given wins). Returns 0, HUB_EINVAL or
 * HUB_ENOMEM. */
int hub_backbone_control_subscribe(struct hub_backbone *bb, const char *filter, uint8_t qos,
                                   hub_backbone_control_cb cb, void *ctx);
/* Publishes a control message (topic under HUB_BACKBONE_CONTROL_PREFIX). QoS 0 while the
 * backbone is down: dropped. Returns 0, HUB_EINVAL or HUB_ERANGE (queue full). */
int hub_backbone_control_publish(struct hub_backbone *bb, const char *topic,
                                 const void *payload, size_t len, uint8_t qos);

/* Copies the counters (bb NULL: zeros). Any thread. */
void hub_backbone_stats(struct hub_backbone *bb, struct hub_backbone_stats *out);
/* Appends the backbone's metrics (Prometheus text, docs/metrics.md); nothing when bb is
 * NULL. Any thread. Returns 0 or HUB_ENOMEM. */
int hub_backbone_metrics(struct hub_backbone *bb, hub_buf_t *out);

#endif
