/* The rollout engine of one iothubd node: a thread of its own with its own PostgreSQL
 * connection, so neither the MQTT loop nor the REST API ever waits for it. Every second it
 *  - applies the state reports devices published on devices/<id>/firmware/state (queued by
 *    the MQTT loop through hub_rollouts_report, parsed and batched here);
 *  - re-sends the notice of pending/notified rows to devices that connected to this node
 *    (queued by hub_rollouts_connected, looked up 2 s later so the device has subscribed);
 *  - drives the running rollouts it can lock (FOR UPDATE SKIP LOCKED: one node at a time
 *    per rollout): settles a wave when its devices are all final or after wave_timeout_s,
 *    starts the next one wave_pause_s later, halts when failures reach the threshold,
 *    completes after the last wave;
 *  - sends the notices of newly started waves (and of every started wave after a resume)
 *    to the devices connected to this node; the others get theirs when they connect.
 * Notices go out through the publish callback (the MQTT server queues them to its loop). */
#ifndef HUB_SERVER_ROLLOUTS_H
#define HUB_SERVER_ROLLOUTS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "server/config.h"
#include "server/presence.h"
#include "util/buf.h"

struct hub_rollouts;

#define HUB_ROLLOUTS_STATE_MAX 2048       /* bytes of one firmware/state payload */
#define HUB_ROLLOUTS_NOTICES_QUEUED 10000 /* notices the MQTT loop may have waiting */

struct hub_rollouts_options {
    /* db_url; hostname (the first) and api_listen's port make the notices' download URLs */
    const struct hub_config *cfg;
    struct hub_presence *presence; /* which devices are connected here (borrowed) */
    /* Queues a QoS 1 PUBLISH to a device; never blocks on the network. Returns 0, or
     * HUB_ERANGE when the loop's queue is full (the engine retries on its next round).
     * Engine thread. */
    int (*publish)(void *ctx, const char *device_id, const char *topic, const void *payload,
                   size_t len);
    void *ctx;
};

/* Starts the engine thread (copies what it keeps of cfg). NULL on failure (logged). */
struct hub_rollouts *hub_rollouts_new(const struct hub_rollouts_options *o);
/* Stops the thread (waits for its current round): after it returns the publish callback is
 * not called again; reports and connections are still accepted (and discarded). NULL and a
 * second call are ignored. */
void hub_rollouts_stop(struct hub_rollouts *r);
/* Stops (if needed) and frees. NULL is ignored. */
void hub_rollouts_free(struct hub_rollouts *r);
/* A device connected to this node. Any thread; never blocks on the database. */
void hub_rollouts_connected(struct hub_rollouts *r, const char *device_id);
/* A device published on its devices/<id>/firmware/state: the payload is copied (dropped and
 * counted when larger than HUB_ROLLOUTS_STATE_MAX or the queue is full). Any thread. */
void hub_rollouts_report(struct hub_rollouts *r, const char *device_id, const void *payload,
                         size_t len);
/* The broker's device_publish hook (ctx: the engine): hub_rollouts_report for a device's
 * devices/<id>/firmware/state, nothing for other topics. MQTT loop. */
void hub_rollouts_publish_seen(const char *device_id, const char *topic, size_t tlen,
                               const uint8_t *payload, size_t len, void *ctx);
/* Appends the engine's metrics (Prometheus text; per-rollout gauges at most 5 s old). */
int hub_rollouts_metrics(struct hub_rollouts *r, hub_buf_t *out);

/* Checks one firmware/state payload (JSON per docs/mqtt.md) and appends its row to the
 * batches: reports (for rollout_devices, when it names a rollout) and versions (for
 * devices.firmware_version, when it names a version). Returns 0, or HUB_EINVAL with *why
 * set. Pure: tests/unit/server/test_rollouts.c. */
int hub_rollouts_parse_state(const char *device_id, const void *payload, size_t len,
                             json_t *reports, json_t *versions, const char **why);

#endif
