/* Durable MQTT state (issue 18): persistent sessions, their subscriptions, queued and in-flight
 * QoS 1/2 deliveries, QoS 2 inbound ids and retained messages, kept in PostgreSQL
 * (db/mqtt_state.h) and restored at `serve` start.
 *
 * The broker's hooks (server/mqtt_hooks.c) call the hub_mqtt_store_* recorders on the loop
 * thread: they append compact records to a queue (server/mqtt_records.h) and never wait on
 * the database. A writer thread with its own connection takes everything queued so far and
 * writes it as one transaction (group commit, libpq pipeline mode); once it committed, the
 * loop releases (hub_broker_release, through a uv_async_t) the publishers' acknowledgements
 * that waited for it. The rule: a QoS 1/2 message queued on a persistent session or retained
 * holds its PUBACK/PUBREC until it is in PostgreSQL. Clean sessions and QoS 0 traffic never
 * reach the database.
 *
 * PostgreSQL unreachable: records wait in memory up to max_pending bytes (acknowledgements
 * stay held, so publishers to persistent sessions slow down through flow control), the
 * writer reconnects with a back-off (0.5 s doubling to 5 s), the outage is logged once and
 * counted. Past max_pending, records are refused (counted): a refused message's
 * acknowledgement is never released (the publisher resends it after reconnecting). */
#ifndef HUB_SERVER_MQTT_STORE_H
#define HUB_SERVER_MQTT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "mqtt/broker.h"
#include "mqtt/msg.h"
#include "util/buf.h"

struct hub_mqtt_store;

struct hub_mqtt_store_options {
    uv_loop_t *loop;
    const char *db_url;
    const char *node;      /* this node's name (sessions' owner); NULL on a single node */
    size_t max_pending;    /* bytes of records kept while PostgreSQL is unreachable */
};

/* Connects (blocking: `serve` start, before the loop runs) and takes a boot number for the
 * message ids. Returns 0 or HUB_EDBDOWN/HUB_EDB/HUB_ENOMEM (logged). */
int hub_mqtt_store_new(const struct hub_mqtt_store_options *o, struct hub_mqtt_store **out);
/* hub_broker_options.next_id: (boot << 32) | counter. ctx is the store. Loop thread. */
uint64_t hub_mqtt_store_next_id(void *ctx);
/* Loads this node's sessions, subscriptions, deliveries, QoS 2 ids and every retained message
 * into b (hub_broker_restore_*), then starts the writer thread. Blocking; call before the
 * listeners accept. Returns 0 or a HUB_E* code (logged). */
int hub_mqtt_store_start(struct hub_mqtt_store *s, struct hub_broker *b);
/* Closes the loop handle; closed(arg) runs once it is closed (keep running the loop). */
void hub_mqtt_store_stop(struct hub_mqtt_store *s, void (*closed)(void *arg), void *arg);
/* Writes what is still queued (waits up to 5 s for an unreachable database), stops the
 * thread, frees s. After hub_mqtt_store_stop's callback. NULL is ignored. */
void hub_mqtt_store_free(struct hub_mqtt_store *s);

/* Flush barrier (takeover: a session released to another node is loaded there from
 * PostgreSQL): done(0, arg) runs on the loop once every record appended before this call is
 * committed (or given up after PostgreSQL refused it); done(HUB_EDBDOWN, arg) when the store
 * stops first. ctx is the store. Returns 0, or HUB_ERANGE/HUB_ENOMEM/HUB_EINVAL (not started):
 * done is not called. Loop thread. */
int hub_mqtt_store_flush(void *ctx, void (*done)(int rc, void *arg), void *arg);

/* Recorders: loop thread; the arguments are those of the broker hooks (mqtt/broker.h). */
void hub_mqtt_store_session_open(struct hub_mqtt_store *s, const char *key, uint32_t expiry_s);
void hub_mqtt_store_session_gone(struct hub_mqtt_store *s, const char *key);
/* The persistent session's connection closed: its expiry counts from now, across restarts. */
void hub_mqtt_store_session_offline(struct hub_mqtt_store *s, const char *key);
void hub_mqtt_store_subscribed(struct hub_mqtt_store *s, const char *key, const char *filter,
                               size_t flen, uint8_t qos);
void hub_mqtt_store_unsubscribed(struct hub_mqtt_store *s, const char *key, const char *filter,
                                 size_t flen);
void hub_mqtt_store_queued(struct hub_mqtt_store *s, const char *key, const struct hub_msg *m,
                           uint8_t qos);
void hub_mqtt_store_delivered(struct hub_mqtt_store *s, const char *key, uint64_t msg_id);
void hub_mqtt_store_delivery_state(struct hub_mqtt_store *s, const char *key, uint64_t msg_id,
                                   int state, uint16_t pid);
void hub_mqtt_store_incoming(struct hub_mqtt_store *s, const char *key, uint16_t pid, int added);
void hub_mqtt_store_retained(struct hub_mqtt_store *s, const char *topic, size_t tlen,
                             const struct hub_msg *m);
/* 1 when m was queued on a persistent session or retained since the last call: its
 * acknowledgement is held until the batch holding it committed; else 0. */
unsigned hub_mqtt_store_accepted(struct hub_mqtt_store *s, const struct hub_msg *m);

/* Appends the store's metrics (Prometheus text). Any thread. */
int hub_mqtt_store_metrics(struct hub_mqtt_store *s, hub_buf_t *out);

#endif
