/* The two record queues between a worker loop and home (net/workers; design note at the top
 * of net/workers.c): lists of 64 KiB chunks of records (header + bytes) appended under a
 * mutex, taken whole by the consumer and handed back for reuse; reserved one-record slots for
 * the records that must not be lost. A record of a shared write holds a reference to its
 * buffer, dropped by its consumer or, if never consumed, by hub_wqueue_free. */
#ifndef HUB_NET_WQUEUE_H
#define HUB_NET_WQUEUE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "util/rcbuf.h"

struct hub_wconn;

#define HUB_WQUEUE_HIGH (8u << 20) /* bytes waiting to go home: the worker stops reading */
#define HUB_WQUEUE_PIECES 4        /* pieces of one shared write */

enum rec_type {
    R_OPEN,
    R_DATA,
    R_CLOSED,
    R_DONE, /* worker -> home */
    R_WRITE,
    R_WRITE_SHARED, /* a struct shared_write, then the bytes of its unshared pieces */
    R_CLOSE,
    R_AUTH,
    R_PAUSE,
    R_RELEASE,
    R_RECHECK,
    R_RESUME,
    R_STOP /* home -> worker */
};

struct rec {
    uint16_t type;
    uint16_t arg; /* CLOSED: enum hub_close_reason */
    uint32_t len; /* bytes following the header (padded to 8 in the chunk) */
    struct hub_wconn *c;
};

/* A write whose shared pieces stay in a refcounted buffer (hub_wconn_write_shared). */
struct shared_write {
    struct hub_rcbuf *buf; /* one reference, dropped by the worker */
    uint32_t n;
    struct {
        const uint8_t *p; /* in buf; NULL: the next len bytes after this struct */
        size_t len;
    } v[HUB_WQUEUE_PIECES];
};

struct chunk {
    struct chunk *next;
    size_t used, cap; /* cap 0: a reserved slot (struct slot), never freed or reused here */
    uint8_t *data;    /* 8-aligned: right after the header, or the slot's record */
};

/* A record reserved in advance (see the design note): a chunk holding exactly one record. */
struct slot {
    struct chunk k;
    struct rec r;
};

struct queue {
    pthread_mutex_t mu; /* also guards the pause/resume wishes of records queued here */
    struct chunk *head, *tail, *spare;
    unsigned nspare;
    size_t bytes; /* payload bytes waiting */
    int paused;   /* the producer stopped reading (worker -> home only) */
    uv_async_t *wake;
};

/* Empties q; pushes wake it with uv_async_send(wake). */
void hub_wqueue_init(struct queue *q, uv_async_t *wake);
/* Frees q's chunks (not the slots, which belong to their owners) and drops the buffer
 * references of the shared writes never consumed. */
void hub_wqueue_free(struct queue *q);
/* Appends a record under q->mu. With slot != NULL (a header-only record that must not fail)
 * the slot is queued when no room exists without allocating; else returns HUB_ENOMEM when
 * memory is short. Returns 1 when this DATA record took the queue over HUB_WQUEUE_HIGH. */
int hub_wqueue_push_locked(struct queue *q, enum rec_type type, unsigned arg, struct hub_wconn *c,
                           const void *data, size_t len, struct slot *slot);
/* Appends a record and wakes the consumer. Returns 1 when this DATA record took the queue
 * over HUB_WQUEUE_HIGH (the caller should stop reading), 0, or HUB_ENOMEM. */
int hub_wqueue_push(struct queue *q, enum rec_type type, unsigned arg, struct hub_wconn *c,
                    const void *data, size_t len);
/* Pushes a record that must not be lost through its reserved slot, which must not be queued
 * already: never fails, never waits. */
void hub_wqueue_push_sure(struct queue *q, enum rec_type type, unsigned arg, struct hub_wconn *c,
                          struct slot *slot);
/* Takes every waiting record (consumer); *paused (if not NULL) tells whether the producer had
 * stopped reading. */
struct chunk *hub_wqueue_take(struct queue *q, int *paused);
/* Steps through a list taken from q: fills *r and *payload with the next record (valid until
 * the next call), gives each chunk back once past it, steps past a slot before its record is
 * handled. Returns 0 at the end. Consumer thread. */
int hub_wqueue_next(struct queue *q, struct chunk **k, size_t *off, struct rec *r,
                    const uint8_t **payload);

#endif
