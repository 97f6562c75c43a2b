/* Packed records: a 24-byte header (type, qos, pid, expiry, id, key length, data length),
 * the key and a NUL, the data, padding to 8 bytes. */
#include "server/mqtt_records.h"

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
