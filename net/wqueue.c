/* The record queues between a worker loop and home (net/workers): see the design note at
 * the top of net/workers.c. */
#include "net/wqueue.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define CHUNK_SIZE 65536
#define SPARE_MAX 4 /* chunks kept for reuse per queue */

void hub_wqueue_init(struct queue *q, uv_async_t *wake)
{
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->mu, NULL);
    q->wake = wake;
}

/* Drops the buffer references of the shared writes in k's records that were never
 * processed. */
static void chunk_drop_refs(const struct chunk *k)
{
    for (size_t off = 0; off < k->used;) {
        struct rec r;
        memcpy(&r, k->data + off, sizeof r);
        if (r.type == R_WRITE_SHARED) {
            struct shared_write sw;
            memcpy(&sw, k->data + off + sizeof r, sizeof sw);
            hub_rcbuf_unref(sw.buf);
        }
        off += sizeof r + (((size_t)r.len + 7) & ~(size_t)7);
    }
}

static void chunks_free(struct chunk *k)
{
    while (k != NULL) {
        struct chunk *next = k->next;
        if (k->cap != 0) /* slots belong to their connection or worker */
            free(k);
        k = next;
    }
}

void hub_wqueue_free(struct queue *q)
{
    for (const struct chunk *k = q->head; k != NULL; k = k->next)
        chunk_drop_refs(k); /* spare chunks hold stale records: not theirs */
    chunks_free(q->head);
    chunks_free(q->spare);
    pthread_mutex_destroy(&q->mu);
}

static void append_chunk(struct queue *q, struct chunk *k)
{
    k->next = NULL;
    if (q->tail != NULL)
        q->tail->next = k;
    else
        q->head = k;
    q->tail = k;
}

/* Appends a record under q->mu. With slot != NULL (a header-only record that must not fail)
 * the slot is queued when no room exists without allocating; else returns HUB_ENOMEM when
 * memory is short. Returns 1 when this DATA record took the queue over HUB_WQUEUE_HIGH. */
int hub_wqueue_push_locked(struct queue *q, enum rec_type type, unsigned arg, struct hub_wconn *c,
                           const void *data, size_t len, struct slot *slot)
{
    size_t need = sizeof(struct rec) + ((len + 7) & ~(size_t)7);
    struct rec r = {(uint16_t)type, (uint16_t)arg, (uint32_t)len, c};
    struct chunk *k = q->tail;
    if (k == NULL || k->used + need > k->cap) {
        if (q->spare != NULL && need <= CHUNK_SIZE) {
            k = q->spare;
            q->spare = k->next;
            q->nspare--;
        } else if (slot != NULL) {
            slot->r = r;
            slot->k.data = (uint8_t *)&slot->r;
            slot->k.used = sizeof slot->r;
            slot->k.cap = 0;
            append_chunk(q, &slot->k);
            return 0;
        } else {
            size_t cap = need > CHUNK_SIZE ? need : CHUNK_SIZE;
            if ((k = malloc(sizeof *k + cap)) == NULL)
                return HUB_ENOMEM;
            k->cap = cap;
            k->data = (uint8_t *)(k + 1);
        }
        k->used = 0;
        append_chunk(q, k);
    }
    memcpy(k->data + k->used, &r, sizeof r);
    if (len > 0)
        memcpy(k->data + k->used + sizeof r, data, len);
    k->used += need;
    q->bytes += len;
    if (type == R_DATA && q->bytes > HUB_WQUEUE_HIGH && !q->paused)
        return q->paused = 1;
    return 0;
}

/* Appends a record and wakes the consumer. Returns 1 when this DATA record took the queue
 * over HUB_WQUEUE_HIGH (the caller should stop reading), 0, or HUB_ENOMEM. */
int hub_wqueue_push(struct queue *q, enum rec_type type, unsigned arg, struct hub_wconn *c,
                    const void *data, size_t len)
{
    pthread_mutex_lock(&q->mu);
    int rc = hub_wqueue_push_locked(q, type, arg, c, data, len, NULL);
    pthread_mutex_unlock(&q->mu);
    if (rc >= 0)
        uv_async_send(q->wake);
    return rc;
}

/* Pushes a record that must not be lost (a lost CLOSED, RELEASE, CLOSE, AUTH, PAUSE, RESUME,
 * STOP or DONE would leave a connection or a worker stuck) through its reserved slot, which
 * must not be queued already: never fails, never waits. */
void hub_wqueue_push_sure(struct queue *q, enum rec_type type, unsigned arg, struct hub_wconn *c,
                          struct slot *slot)
{
    pthread_mutex_lock(&q->mu);
    (void)hub_wqueue_push_locked(q, type, arg, c, NULL, 0, slot);
    pthread_mutex_unlock(&q->mu);
    uv_async_send(q->wake);
}

/* Takes every waiting record; *paused tells whether the producer had stopped reading. */
struct chunk *hub_wqueue_take(struct queue *q, int *paused)
{
    pthread_mutex_lock(&q->mu);
    struct chunk *k = q->head;
    q->head = q->tail = NULL;
    q->bytes = 0;
    if (paused != NULL)
        *paused = q->paused;
    q->paused = 0;
    pthread_mutex_unlock(&q->mu);
    return k;
}

/* Gives a processed chunk back: up to SPARE_MAX standard ones are kept. */
static void give_back(struct queue *q, struct chunk *k)
{
    pthread_mutex_lock(&q->mu);
    if (k->cap == CHUNK_SIZE && q->nspare < SPARE_MAX) {
        k->next = q->spare;
        q->spare = k;
        q->nspare++;
        k = NULL;
    }
    pthread_mutex_unlock(&q->mu);
    free(k);
}

/* Steps through a list taken from q: fills *r and *payload with the next record (the
 * payload stays valid until the next call) and gives each chunk back once past it. A slot is
 * stepped past before its record is handled, since handling it may free it (RELEASE) or let
 * its owner queue it again (PAUSE, RESUME). Returns 0 at the end. */
int hub_wqueue_next(struct queue *q, struct chunk **k, size_t *off, struct rec *r,
                    const uint8_t **payload)
{
    while (*k != NULL && *off >= (*k)->used) {
        struct chunk *done = *k;
        *k = done->next;
        *off = 0;
        give_back(q, done);
    }
    if (*k == NULL)
        return 0;
    memcpy(r, (*k)->data + *off, sizeof *r);
    *payload = (*k)->data + *off + sizeof *r;
    *off += sizeof *r + (((size_t)r->len + 7) & ~(size_t)7);
    if ((*k)->cap == 0) { /* a slot: one record, nothing to give back */
        *k = (*k)->next;
        *off = 0;
    }
    return 1;
}
