/* The queue of durable-state records between the MQTT loop (which appends one record per
 * broker hook) and the store's writer thread (which takes everything appended so far as one
 * batch). Records are packed into one reused buffer under a mutex, so a steady stream
 * allocates nothing; the writer swaps its (emptied) buffer for the pending one. A byte limit
 * bounds what waits while PostgreSQL is unreachable: past it, appends are refused. */
#ifndef HUB_SERVER_MQTT_RECORDS_H
#define HUB_SERVER_MQTT_RECORDS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

enum hub_mqtt_rec_type {
    HUB_REC_NONE = 0,         /* cancelled by hub_mqtt_records_cancel: nothing to write */
    HUB_REC_SESSION_OPEN,     /* key, expiry */
    HUB_REC_SESSION_GONE,     /* key */
    HUB_REC_SUB,              /* key, data = filter, qos */
    HUB_REC_UNSUB,            /* key, data = filter */
    HUB_REC_MESSAGE,          /* id, key = topic, data = payload, qos */
    HUB_REC_QUEUE,            /* key, id, qos */
    HUB_REC_DELIVERED,        /* key, id */
    HUB_REC_STATE,            /* key, id, qos = delivery state, pid */
    HUB_REC_INCOMING,         /* key, pid, qos = 1 added / 0 released */
    HUB_REC_RETAINED,         /* key = topic, id (0: cleared) */
    HUB_REC_HOLD,             /* id: release the publisher's acknowledgement once written */
    HUB_REC_BARRIER,          /* id: hub_mqtt_store_flush's barrier, done once written */
    HUB_REC_SESSION_OFFLINE,  /* key: the session's connection closed (expiry clock) */
};

/* One record as appended and as read back. Appending copies key and data; a record read
 * back points into the batch buffer (key NUL-terminated there). */
struct hub_mqtt_rec {
    uint8_t type;
    uint8_t qos;
    uint16_t pid;
    uint32_t expiry;
    uint64_t id;
    const char *key;
    size_t klen;
    const uint8_t *data;
    size_t dlen;
};

struct hub_mqtt_records {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    hub_buf_t pending;
    size_t held;  /* bytes the writer took and has not finished (hub_mqtt_records_done) */
    size_t max;   /* limit of pending + held for message records; others get max / 4 more */
    int sleeping; /* the writer waits on wake */
    int stop;
    unsigned long long appended, refused; /* records */
};

/* Initialises q with a limit of max bytes. Returns 0 or HUB_ENOMEM. */
int hub_mqtt_records_init(struct hub_mqtt_records *q, size_t max);
void hub_mqtt_records_destroy(struct hub_mqtt_records *q);
/* Appends a copy of r (any thread). Returns 0, or HUB_ERANGE when over the limit (refused
 * and counted) or HUB_ENOMEM. */
int hub_mqtt_records_append(struct hub_mqtt_records *q, const struct hub_mqtt_rec *r);
/* Writer: waits up to timeout_ms for records (or stop), then swaps the pending records into
 * *out, which must be empty (its capacity is reused). Returns the bytes taken; *stop gets
 * whether hub_mqtt_records_stop was called. The bytes stay counted against the limit until
 * hub_mqtt_records_done. */
size_t hub_mqtt_records_take(struct hub_mqtt_records *q, hub_buf_t *out, unsigned timeout_ms,
                             int *stop);
/* Writer: what it took is written (or given up). */
void hub_mqtt_records_done(struct hub_mqtt_records *q);
/* Wakes the writer and tells it to finish. */
void hub_mqtt_records_stop(struct hub_mqtt_records *q);
/* Bytes pending + held. */
size_t hub_mqtt_records_bytes(struct hub_mqtt_records *q);
/* Reads the record at *off of a taken buffer and advances *off. Returns 1, or 0 at the end. */
int hub_mqtt_records_next(const hub_buf_t *b, size_t *off, struct hub_mqtt_rec *r);

/* Reused scratch space of hub_mqtt_records_cancel (writer thread). */
struct hub_mqtt_records_scratch {
    uint32_t *slots; /* record offsets + 1; 0: empty */
    size_t cap;
    uint64_t *ids; /* message ids of the batch's HOLDs */
    size_t nids, ids_cap;
};
/* Cancels, in a taken batch, what need not be written (type set to HUB_REC_NONE): a QUEUE
 * followed by the DELIVERED of the same session and message (delivered before it was ever
 * written), and the MESSAGE of a message whose every QUEUE was cancelled, that no RETAINED
 * names, and whose HOLD is in the batch (so all its records are). Returns how many records
 * were cancelled, or HUB_ENOMEM (nothing cancelled). */
int hub_mqtt_records_cancel(hub_buf_t *b, struct hub_mqtt_records_scratch *sc);
void hub_mqtt_records_scratch_free(struct hub_mqtt_records_scratch *sc);

#endif
