/* Durable MQTT state (migration 017): persistent sessions, subscriptions, queued deliveries,
 * QoS 2 inbound ids and retained messages. Writers send statements into a libpq pipeline
 * (hub_db_mqtt_send_*) and collect their results at sync points, so one transaction carries a
 * whole batch in a few round trips; every write is idempotent (replaying a batch after a lost
 * COMMIT changes nothing). The loads run once, at `serve` start. Only server/mqtt_store.c
 * calls these, on its own thread and connection. */
#ifndef HUB_DB_MQTT_STATE_H
#define HUB_DB_MQTT_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "util/buf.h"

/* Opens the store's connection (connect_timeout 5 s unless url says otherwise, lock_timeout
 * 10 s) without logging a failure: the caller logs an outage once. Returns 0 or HUB_EDBDOWN
 * with libpq's message in why (cap bytes). */
int hub_db_mqtt_connect(const char *url, PGconn **out, char *why, size_t cap);
/* Prepares the writers' statements on c (once per connection, outside a pipeline). Returns 0
 * or HUB_EDB/HUB_EDBDOWN. */
int hub_db_mqtt_prepare(PGconn *c);
/* The next boot number (mqtt_boot_seq): message ids of this run are boot << 32 | counter. */
int hub_db_mqtt_boot(PGconn *c, uint32_t *boot);

/* Pipeline: enter, send statements, sync (reads every result up to the sync point), exit.
 * Statements between two syncs without an explicit BEGIN form one implicit transaction. */
int hub_db_mqtt_pipeline_enter(PGconn *c);
void hub_db_mqtt_pipeline_exit(PGconn *c);
/* BEGIN / COMMIT as pipelined statements: one transaction across several syncs. */
int hub_db_mqtt_send_begin(PGconn *c);
int hub_db_mqtt_send_commit(PGconn *c);
/* Sends a sync point and reads the results of everything sent before it. *failed gets the
 * number of statements that failed (the first failure is logged). Returns 0, or HUB_EDBDOWN
 * when the connection is lost (the caller resets it). */
int hub_db_mqtt_sync(PGconn *c, size_t *failed);

/* Writers (pipelined; 0 or HUB_EDBDOWN when the statement could not be sent). owner: this
 * node's name, NULL on a single node. */
int hub_db_mqtt_send_session_open(PGconn *c, const char *key, const char *owner,
                                  uint32_t expiry_s);
/* The session went offline now (offline_at; session_open clears it), if owner holds it. */
int hub_db_mqtt_send_session_offline(PGconn *c, const char *key, const char *owner);
/* Deletes the session with its subscriptions, queue rows and QoS 2 ids, if owner holds it
 * (another node took it over: its rows are that node's). */
int hub_db_mqtt_send_session_gone(PGconn *c, const char *key, const char *owner);
int hub_db_mqtt_send_sub(PGconn *c, const char *key, const char *filter, size_t flen, int qos);
int hub_db_mqtt_send_unsub(PGconn *c, const char *key, const char *filter, size_t flen);
/* The message itself (once per id; a replay, or another node writing it too, is a no-op). */
int hub_db_mqtt_send_message(PGconn *c, uint64_t id, const char *topic, size_t tlen,
                             const uint8_t *payload, size_t len, int qos);
/* Many messages or queue rows in one statement: rows are added to r (reused buffers: the
 * names and bytes in one blob, offsets and numbers as array literals), then sent together
 * (r is emptied). Queue rows keep the order they were added in. */
struct hub_db_mqtt_rows {
    hub_buf_t blob;
    hub_buf_t col[6];
    size_t n;
};
int hub_db_mqtt_rows_message(struct hub_db_mqtt_rows *r, uint64_t id, const char *topic,
                             size_t tlen, const uint8_t *payload, size_t len, int qos);
int hub_db_mqtt_send_messages(PGconn *c, struct hub_db_mqtt_rows *r);
int hub_db_mqtt_rows_queue(struct hub_db_mqtt_rows *r, const char *key, size_t klen,
                           uint64_t id, int qos);
int hub_db_mqtt_send_queues(PGconn *c, struct hub_db_mqtt_rows *r);
void hub_db_mqtt_rows_free(struct hub_db_mqtt_rows *r);

/* A delivery of message id queued on session key (ON CONFLICT DO NOTHING), and its end. */
int hub_db_mqtt_send_queue(PGconn *c, const char *key, uint64_t id, int qos);
int hub_db_mqtt_send_delivered(PGconn *c, const char *key, uint64_t id);
/* A delivery's state (enum hub_delivery_state) and packet id. */
int hub_db_mqtt_send_delivery_state(PGconn *c, const char *key, uint64_t id, int state,
                                    uint16_t pid);
int hub_db_mqtt_send_incoming(PGconn *c, const char *key, uint16_t pid, int added);
/* Retained message of topic: message id, or 0 to clear the topic. */
int hub_db_mqtt_send_retained(PGconn *c, const char *topic, size_t tlen, uint64_t id);

/* Deletes up to limit messages no queue row or retained row refers to, created more than
 * 60 s ago, among the next limit ids after *cursor (which advances, and wraps to 0 at the
 * end). *deleted gets how many. Not pipelined. */
int hub_db_mqtt_gc(PGconn *c, uint64_t *cursor, int limit, long *deleted);

/* Loads (at start, not pipelined, rows streamed one at a time). owner as above. Each
 * callback returns 0 to go on; a non-zero return stops the load and is returned. */
struct hub_db_mqtt_loader {
    void *ctx;
    /* offline_s: seconds since its connection closed (UINT32_MAX: not known, or connected
     * when its node stopped: the expiry then counts from the load) */
    int (*session)(void *ctx, const char *key, uint32_t expiry_s, uint32_t offline_s);
    int (*sub)(void *ctx, const char *key, const char *filter, int qos);
    /* In queue order per session. */
    int (*delivery)(void *ctx, const char *key, uint64_t id, const char *topic, size_t tlen,
                    const uint8_t *payload, size_t len, int qos, int state, uint16_t pid);
    int (*incoming)(void *ctx, const char *key, uint16_t pid);
    int (*retained)(void *ctx, uint64_t id, const char *topic, size_t tlen,
                    const uint8_t *payload, size_t len, int qos);
};
int hub_db_mqtt_load(PGconn *c, const char *owner, const struct hub_db_mqtt_loader *l);

/* Several nodes (server/takeover.c, server/directory.c; not pipelined). */
/* The owner of session key ("" when none recorded); *found 0 when there is no such session. */
int hub_db_mqtt_session_owner(PGconn *c, const char *key, char *owner, size_t cap, int *found);
/* Loads one session as hub_db_mqtt_load does (session, subscriptions, deliveries in queue order,
 * QoS 2 ids; no retained messages). */
int hub_db_mqtt_load_session(PGconn *c, const char *key, const struct hub_db_mqtt_loader *l);
/* Records owner as the node holding session key. */
int hub_db_mqtt_set_owner(PGconn *c, const char *key, const char *owner);
/* Of the sessions keys (a text[] literal), those another node than owner holds:
 * fn(ctx, key, their owner) per row; non-zero stops and is returned. */
int hub_db_mqtt_owned_elsewhere(PGconn *c, const char *keys, const char *owner,
                                int (*fn)(void *ctx, const char *key, const char *owner),
                                void *ctx);
/* Every QoS >= 1 subscription of a persistent session whose owner is not owner, by session:
 * entry(ctx, key, filter, qos) per row; non-zero stops and is returned. */
int hub_db_mqtt_directory(PGconn *c, const char *owner,
                          int (*entry)(void *ctx, const char *key, const char *filter, int qos),
                          void *ctx);

#endif
