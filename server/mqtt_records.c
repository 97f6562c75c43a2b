/* Packed records: a 24-byte header (type, qos, pid, expiry, id, key length, data length),
 * the key and a NUL, the data, padding to 8 bytes. */
#include "server/mqtt_records.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/error.h"

#define HEAD 24
#define PAD(n) (((n) + 7) & ~(size_t)7)

int hub_mqtt_records_init(struct hub_mqtt_records *q, size_t max)
{
    memset(q, 0, sizeof *q);
    q->max = max;
    if (pthread_mutex_init(&q->lock, NULL) != 0)
        return HUB_ENOMEM;
    if (pthread_cond_init(&q->wake, NULL) != 0) {
        pthread_mutex_destroy(&q->lock);
        return HUB_ENOMEM;
    }
    return 0;
}

void hub_mqtt_records_destroy(struct hub_mqtt_records *q)
{
    hub_buf_free(&q->pending);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->wake);
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

int hub_mqtt_records_append(struct hub_mqtt_records *q, const struct hub_mqtt_rec *r)
{
    size_t size = PAD(HEAD + r->klen + 1 + r->dlen);
    if (r->klen > UINT32_MAX || r->dlen > UINT32_MAX)
        return HUB_ERANGE;
    pthread_mutex_lock(&q->lock);
    size_t limit = r->type == HUB_REC_MESSAGE ? q->max : q->max + q->max / 4;
    if (q->pending.len + q->held + size > limit ||
        hub_buf_reserve(&q->pending, size) != 0) {
        q->refused++;
        pthread_mutex_unlock(&q->lock);
        return HUB_ERANGE;
    }
    uint8_t *p = q->pending.data + q->pending.len;
    p[0] = r->type;
    p[1] = r->qos;
    memcpy(p + 2, &r->pid, 2);
    put32(p + 4, r->expiry);
    memcpy(p + 8, &r->id, 8);
    put32(p + 16, (uint32_t)r->klen);
    put32(p + 20, (uint32_t)r->dlen);
    if (r->klen)
        memcpy(p + HEAD, r->key, r->klen);
    p[HEAD + r->klen] = 0;
    if (r->dlen)
        memcpy(p + HEAD + r->klen + 1, r->data, r->dlen);
    memset(p + HEAD + r->klen + 1 + r->dlen, 0, size - (HEAD + r->klen + 1 + r->dlen));
    q->pending.len += size;
    q->appended++;
    if (q->sleeping) {
        q->sleeping = 0;
        pthread_cond_signal(&q->wake);
    }
    pthread_mutex_unlock(&q->lock);
    return 0;
}

size_t hub_mqtt_records_take(struct hub_mqtt_records *q, hub_buf_t *out, unsigned timeout_ms,
                             int *stop)
{
    pthread_mutex_lock(&q->lock);
    if (q->pending.len == 0 && !q->stop && timeout_ms > 0) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        q->sleeping = 1;
        pthread_cond_timedwait(&q->wake, &q->lock, &until);
        q->sleeping = 0;
    }
    hub_buf_t t = *out;
    *out = q->pending;
    q->pending = t;
    q->pending.len = 0;
    q->held += out->len;
    *stop = q->stop;
    pthread_mutex_unlock(&q->lock);
    return out->len;
}

void hub_mqtt_records_done(struct hub_mqtt_records *q)
{
    pthread_mutex_lock(&q->lock);
    q->held = 0;
    pthread_mutex_unlock(&q->lock);
}

void hub_mqtt_records_stop(struct hub_mqtt_records *q)
{
    pthread_mutex_lock(&q->lock);
    q->stop = 1;
    pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&q->lock);
}

size_t hub_mqtt_records_bytes(struct hub_mqtt_records *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->pending.len + q->held;
    pthread_mutex_unlock(&q->lock);
    return n;
}

int hub_mqtt_records_next(const hub_buf_t *b, size_t *off, struct hub_mqtt_rec *r)
{
    if (*off + HEAD > b->len)
        return 0;
    const uint8_t *p = b->data + *off;
    uint32_t klen, dlen;
    r->type = p[0];
    r->qos = p[1];
    memcpy(&r->pid, p + 2, 2);
    memcpy(&r->expiry, p + 4, 4);
    memcpy(&r->id, p + 8, 8);
    memcpy(&klen, p + 16, 4);
    memcpy(&dlen, p + 20, 4);
    r->klen = klen;
    r->dlen = dlen;
    r->key = (const char *)p + HEAD;
    r->data = p + HEAD + klen + 1;
    *off += PAD(HEAD + (size_t)klen + 1 + dlen);
    return 1;
}

/* ---- cancellation ------------------------------------------------------------------------- */

static uint64_t hash(const struct hub_mqtt_rec *r)
{
    uint64_t h = 1469598103934665603ull ^ r->id;
    for (size_t i = 0; i < r->klen; i++)
        h = (h ^ (unsigned char)r->key[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static int same(const struct hub_mqtt_rec *a, const struct hub_mqtt_rec *b)
{
    return a->id == b->id && a->klen == b->klen && memcmp(a->key, b->key, a->klen) == 0;
}

/* Makes room: slots for want entries (cleared), and three id lists of want entries. */
static int reserve(struct hub_mqtt_records_scratch *sc, size_t want)
{
    size_t cap = 64;
    while (cap < want * 2)
        cap *= 2;
    if (cap > sc->cap) {
        uint32_t *p = malloc(cap * sizeof *p);
        if (p == NULL)
            return HUB_ENOMEM;
        free(sc->slots);
        sc->slots = p;
        sc->cap = cap;
    }
    memset(sc->slots, 0, sc->cap * sizeof *sc->slots);
    if (want > sc->ids_cap) {
        uint64_t *p = malloc(3 * want * sizeof *p);
        if (p == NULL)
            return HUB_ENOMEM;
        free(sc->ids);
        sc->ids = p;
        sc->ids_cap = want;
    }
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* 1 when id is in the sorted list v of n ids. */
static int has(const uint64_t *v, size_t n, uint64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && v[lo] == id;
}

int hub_mqtt_records_cancel(hub_buf_t *b, struct hub_mqtt_records_scratch *sc)
{
    struct hub_mqtt_rec r, q;
    size_t off = 0, at, n = 0, queues = 0;
    int cancelled = 0;
    if (b->len >= UINT32_MAX)
        return 0;
    while (hub_mqtt_records_next(b, &off, &r)) {
        n++;
        queues += r.type == HUB_REC_QUEUE;
    }
    if (queues == 0)
        return 0;
    if (reserve(sc, n) != 0)
        return HUB_ENOMEM;
    /* QUEUE then DELIVERED of the same (session, message): neither is written. The table
     * holds QUEUE offsets + 1; a cancelled one keeps its slot (probe chains stay whole). */
    size_t mask = sc->cap - 1;
    for (off = 0; at = off, hub_mqtt_records_next(b, &off, &r);) {
        if (r.type != HUB_REC_QUEUE && r.type != HUB_REC_DELIVERED)
            continue;
        size_t i = hash(&r) & mask;
        for (; sc->slots[i] != 0; i = (i + 1) & mask) {
            size_t qoff = sc->slots[i] - 1;
            hub_mqtt_records_next(b, &qoff, &q);
            if (q.type == HUB_REC_QUEUE && same(&q, &r))
                break;
        }
        if (r.type == HUB_REC_QUEUE) {
            if (sc->slots[i] == 0)
                sc->slots[i] = (uint32_t)at + 1;
        } else if (sc->slots[i] != 0) {
            b->data[sc->slots[i] - 1] = HUB_REC_NONE;
            b->data[at] = HUB_REC_NONE;
            cancelled += 2;
        }
    }
    if (cancelled == 0)
        return 0;
    /* A MESSAGE nothing in the batch refers to any more, whose QUEUEs were cancelled and
     * whose HOLD is here (appended after every record of its message: all are here). */
    uint64_t *holds = sc->ids, *refs = sc->ids + n, *gone = sc->ids + 2 * n;
    size_t nh = 0, nr = 0, ng = 0;
    for (off = 0; hub_mqtt_records_next(b, &off, &r);) {
        if (r.type == HUB_REC_HOLD)
            holds[nh++] = r.id;
        else if (r.type == HUB_REC_QUEUE || (r.type == HUB_REC_RETAINED && r.id != 0))
            refs[nr++] = r.id;
    }
    for (size_t i = 0; i < sc->cap; i++) {
        size_t qoff = sc->slots[i];
        if (qoff != 0 && hub_mqtt_records_next(b, &(size_t){qoff - 1}, &q) &&
            q.type == HUB_REC_NONE)
            gone[ng++] = q.id;
    }
    qsort(holds, nh, sizeof *holds, cmp_id);
    qsort(refs, nr, sizeof *refs, cmp_id);
    qsort(gone, ng, sizeof *gone, cmp_id);
    for (off = 0; at = off, hub_mqtt_records_next(b, &off, &r);) {
        if (r.type == HUB_REC_MESSAGE && has(gone, ng, r.id) && has(holds, nh, r.id) &&
            !has(refs, nr, r.id)) {
            b->data[at] = HUB_REC_NONE;
            cancelled++;
        }
    }
    return cancelled;
}

void hub_mqtt_records_scratch_free(struct hub_mqtt_records_scratch *sc)
{
    free(sc->slots);
    free(sc->ids);
    memset(sc, 0, sizeof *sc);
}
