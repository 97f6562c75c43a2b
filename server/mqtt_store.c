/* The store (server/mqtt_store.h). Loop side: recorders append records; hub_mqtt_store_accepted
 * decides the hold from what the routing of the current message recorded (the hooks of one
 * message come together: queued/retained, then accepted). Writer side: one thread, one
 * connection; each batch is BEGIN, the records' statements pipelined (a sync every SEGMENT
 * statements to read their results), COMMIT. A batch PostgreSQL refuses (a row it cannot
 * take) is written again record by record, each its own transaction, so one bad record costs
 * itself only. After a commit the batch's HOLD ids go to the loop. */
#include "server/mqtt_store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/mqtt_state.h"
#include "server/mqtt_records.h"
#include "util/error.h"
#include "util/histogram.h"
#include "util/log.h"

#define SEGMENT 256       /* statements between two syncs of a batch */
#define GC_MS 1000        /* garbage collection of unreferenced messages, this often */
#define GC_WINDOW 5000    /* message ids examined per statement */
#define GC_BUDGET_MS 100  /* per round */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 5000
#define STOP_WAIT_MS 5000 /* at shutdown, how long an unreachable database is waited for */
#define SPARE_BOOT_AT 0xC0000000u /* counter value from which a spare boot number is taken */

/* A hub_mqtt_store_flush waiting for its HUB_REC_BARRIER to be written. */
struct barrier {
    uint64_t seq;
    void (*done)(int rc, void *arg);
    void *arg;
    struct barrier *next;
};

struct hub_mqtt_store {
    uv_loop_t *loop;
    uv_async_t async; /* released ids are ready */
    struct hub_broker *broker;
    char *db_url;
    char *node;
    size_t max_pending;
    PGconn *db; /* the writer's (before start: the restore's) */
    struct hub_mqtt_records q;
    struct hub_db_mqtt_rows rows[2]; /* the writer's: messages, queue rows */
    pthread_t thread;
    int started;
    /* message ids (loop thread) */
    uint32_t boot, counter;
    _Atomic uint32_t spare_boot; /* 0: none yet */
    _Atomic int want_boot;
    /* the message being routed (loop thread) */
    uint64_t cur_id;
    int cur_durable, cur_lost;
    /* released ids: the writer appends, the loop swaps */
    pthread_mutex_t rel_lock;
    hub_buf_t released, releasing;
    /* flush barriers (loop thread, oldest first) and the last one written (writer) */
    struct barrier *barriers, **barriers_tail;
    uint64_t barrier_seq;
    _Atomic uint64_t flushed;
    int closing; /* under rel_lock: the async handle is closing, no more sends */
    void (*closed)(void *arg);
    void *closed_arg;
    /* writer state */
    uint64_t gc_cursor, gc_at;
    int up;
    /* counters: relaxed atomics (writer and loop write, /metrics reads) */
    _Atomic unsigned long long batches, written, skipped, failed, outages, gc_deleted, unreleased;
    _Atomic int down;
    struct hub_histogram_atomic commit;
    unsigned long long restored[6]; /* sessions, subscriptions, deliveries, QoS 2 ids, retained,
                                    * sessions expired while stored */
};

static const struct hub_histogram_bounds commit_bounds = {
    11, {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

#define ADD(field, n) atomic_fetch_add_explicit(&s->field, (n), memory_order_relaxed)
#define GET(field) atomic_load_explicit(&s->field, memory_order_relaxed)

/* ---- writer thread ------------------------------------------------------------------------ */

/* Logs the start of an outage once and counts it. */
static void outage(struct hub_mqtt_store *s, const char *why)
{
    if (!s->up && GET(down))
        return;
    s->up = 0;
    atomic_store_explicit(&s->down, 1, memory_order_relaxed);
    ADD(outages, 1);
    hub_warn("mqtt store: PostgreSQL unreachable (%s): durable-state records wait in memory "
             "(%zu bytes, at most mqtt_store_max_pending = %zu) and the acknowledgements of "
             "messages for persistent sessions stay held; retrying",
             why, hub_mqtt_records_bytes(&s->q), s->max_pending);
}

static int connect_db(struct hub_mqtt_store *s)
{
    char why[256];
    if (s->db != NULL && PQstatus(s->db) == CONNECTION_OK)
        return 0;
    PQfinish(s->db);
    s->db = NULL;
    if (hub_db_mqtt_connect(s->db_url, &s->db, why, sizeof why) != 0) {
        outage(s, why);
        return HUB_EDBDOWN;
    }
    if (hub_db_mqtt_prepare(s->db) != 0) {
        PQfinish(s->db);
        s->db = NULL;
        outage(s, "preparing the statements failed");
        return HUB_EDBDOWN;
    }
    return 0;
}

static int send_record(PGconn *c, const struct hub_mqtt_rec *r, const char *node)
{
    switch (r->type) {
    case HUB_REC_SESSION_OPEN:
        return hub_db_mqtt_send_session_open(c, r->key, (const char *)(r->dlen ? r->data : NULL),
                                             r->expiry);
    case HUB_REC_SESSION_GONE:
        return hub_db_mqtt_send_session_gone(c, r->key, node);
    case HUB_REC_SESSION_OFFLINE:
        return hub_db_mqtt_send_session_offline(c, r->key, node);
    case HUB_REC_SUB:
        return hub_db_mqtt_send_sub(c, r->key, (const char *)r->data, r->dlen, r->qos);
    case HUB_REC_UNSUB:
        return hub_db_mqtt_send_unsub(c, r->key, (const char *)r->data, r->dlen);
    case HUB_REC_MESSAGE:
        return hub_db_mqtt_send_message(c, r->id, r->key, r->klen, r->data, r->dlen, r->qos);
    case HUB_REC_QUEUE:
        return hub_db_mqtt_send_queue(c, r->key, r->id, r->qos);
    case HUB_REC_DELIVERED:
        return hub_db_mqtt_send_delivered(c, r->key, r->id);
    case HUB_REC_STATE:
        return hub_db_mqtt_send_delivery_state(c, r->key, r->id, r->qos, r->pid);
    case HUB_REC_INCOMING:
        return hub_db_mqtt_send_incoming(c, r->key, r->pid, r->qos);
    case HUB_REC_RETAINED:
        return hub_db_mqtt_send_retained(c, r->key, r->klen, r->id);
    default:
        return 0; /* HUB_REC_HOLD, HUB_REC_BARRIER: nothing to write */
    }
}

#define RUN_ROWS 1000          /* rows of one multi-row statement */
#define RUN_BYTES (4u << 20)   /* bytes of topics, payloads and keys in one */

/* The whole batch in one transaction: messages and queue rows go many to a statement (a
 * run of QUEUEs is sent before any other record, which keeps the order that matters: a
 * queue row before its delivery's end or its session's end). HUB_EDB when PostgreSQL
 * refused a statement (the transaction rolled back). */
static int write_batch(struct hub_mqtt_store *s, const hub_buf_t *batch, size_t *n)
{
    PGconn *c = s->db;
    struct hub_db_mqtt_rows *msgs = &s->rows[0], *queues = &s->rows[1];
    struct hub_mqtt_rec r;
    size_t off = 0, failed = 0, f, sent = 0;
    *n = 0;
    msgs->n = queues->n = 0;
    msgs->blob.len = queues->blob.len = 0;
    if (hub_db_mqtt_pipeline_enter(c) != 0)
        return HUB_EDBDOWN;
    int rc = hub_db_mqtt_send_begin(c);
    while (rc == 0 && hub_mqtt_records_next(batch, &off, &r)) {
        size_t before = sent;
        switch (r.type) {
        case HUB_REC_HOLD:
        case HUB_REC_BARRIER:
        case HUB_REC_NONE:
            continue;
        case HUB_REC_MESSAGE:
            rc = hub_db_mqtt_rows_message(msgs, r.id, r.key, r.klen, r.data, r.dlen, r.qos);
            if (rc == 0 && (msgs->n >= RUN_ROWS || msgs->blob.len >= RUN_BYTES)) {
                rc = hub_db_mqtt_send_messages(c, msgs);
                sent++;
            }
            break;
        case HUB_REC_QUEUE:
            rc = hub_db_mqtt_rows_queue(queues, r.key, r.klen, r.id, r.qos);
            if (rc == 0 && queues->n >= RUN_ROWS) {
                rc = hub_db_mqtt_send_queues(c, queues);
                sent++;
            }
            break;
        default:
            if (queues->n > 0) {
                rc = hub_db_mqtt_send_queues(c, queues);
                sent++;
            }
            if (rc == 0)
                rc = send_record(c, &r, s->node);
            sent++;
            break;
        }
        ++*n;
        if (rc == 0 && sent / SEGMENT != before / SEGMENT && (rc = hub_db_mqtt_sync(c, &f)) == 0)
            failed += f;
    }
    if (rc == 0 && msgs->n > 0)
        rc = hub_db_mqtt_send_messages(c, msgs);
    if (rc == 0 && queues->n > 0)
        rc = hub_db_mqtt_send_queues(c, queues);
    if (rc == 0)
        rc = hub_db_mqtt_send_commit(c);
    if (rc == 0 && (rc = hub_db_mqtt_sync(c, &f)) == 0)
        failed += f;
    hub_db_mqtt_pipeline_exit(c);
    if (rc == HUB_ENOMEM || rc == HUB_ERANGE)
        rc = HUB_EDBDOWN; /* the pipeline is left half sent: a new connection, a retry */
    return rc != 0 ? rc : failed ? HUB_EDB : 0;
}

/* Record by record, each in its own transaction; the ids of messages whose MESSAGE or QUEUE
 * record failed go to lost (their holds are never released). */
static int write_each(struct hub_mqtt_store *s, const hub_buf_t *batch, hub_buf_t *lost)
{
    PGconn *c = s->db;
    struct hub_mqtt_rec r;
    size_t off = 0, f;
    if (hub_db_mqtt_pipeline_enter(c) != 0)
        return HUB_EDBDOWN;
    int rc = 0;
    while (rc == 0 && hub_mqtt_records_next(batch, &off, &r)) {
        if (r.type == HUB_REC_HOLD || r.type == HUB_REC_BARRIER || r.type == HUB_REC_NONE)
            continue;
        if ((rc = send_record(c, &r, s->node)) != 0 || (rc = hub_db_mqtt_sync(c, &f)) != 0)
            break;
        if (f > 0) {
            ADD(failed, 1);
            if (r.type == HUB_REC_MESSAGE || r.type == HUB_REC_QUEUE)
                hub_buf_append(lost, &r.id, sizeof r.id);
        }
    }
    hub_db_mqtt_pipeline_exit(c);
    return rc;
}

static int is_lost(const hub_buf_t *lost, uint64_t id)
{
    for (size_t i = 0; i + sizeof id <= lost->len; i += sizeof id)
        if (memcmp(lost->data + i, &id, sizeof id) == 0)
            return 1;
    return 0;
}

/* Hands the batch's held ids to the loop. */
static void release(struct hub_mqtt_store *s, const hub_buf_t *batch, const hub_buf_t *lost)
{
    struct hub_mqtt_rec r;
    size_t off = 0, n = 0;
    pthread_mutex_lock(&s->rel_lock);
    while (hub_mqtt_records_next(batch, &off, &r)) {
        if (r.type == HUB_REC_BARRIER) { /* in order: the last one covers the others */
            atomic_store(&s->flushed, r.id);
            n++;
        }
        if (r.type != HUB_REC_HOLD)
            continue;
        if (lost->len > 0 && is_lost(lost, r.id)) {
            ADD(unreleased, 1);
            continue;
        }
        hub_buf_append(&s->released, &r.id, sizeof r.id);
        n++;
    }
    if (n > 0 && !s->closing)
        uv_async_send(&s->async);
    pthread_mutex_unlock(&s->rel_lock);
}

/* Deletes unreferenced messages, GC_WINDOW ids at a time, for at most GC_BUDGET_MS. */
static void collect(struct hub_mqtt_store *s)
{
    uint64_t t0 = mono_ms();
    s->gc_at = t0;
    if (s->db == NULL || !s->up)
        return;
    do {
        long deleted = 0;
        if (hub_db_mqtt_gc(s->db, &s->gc_cursor, GC_WINDOW, &deleted) != 0)
            return;
        ADD(gc_deleted, (unsigned long long)deleted);
    } while (s->gc_cursor != 0 && mono_ms() - t0 < GC_BUDGET_MS);
}

static void take_spare_boot(struct hub_mqtt_store *s)
{
    uint32_t boot;
    if (!atomic_load(&s->want_boot) || atomic_load(&s->spare_boot) != 0 || s->db == NULL)
        return;
    if (hub_db_mqtt_boot(s->db, &boot) == 0)
        atomic_store(&s->spare_boot, boot);
}

/* The end of an outage: logged once. */
static void back_up(struct hub_mqtt_store *s)
{
    if (s->up)
        return;
    s->up = 1;
    atomic_store_explicit(&s->down, 0, memory_order_relaxed);
    hub_info("mqtt store: PostgreSQL reachable again; the records kept meanwhile are written");
}

static void *writer(void *arg)
{
    struct hub_mqtt_store *s = arg;
    hub_buf_t batch = HUB_BUF_INIT, lost = HUB_BUF_INIT;
    struct hub_mqtt_records_scratch sc = {0};
    unsigned backoff = 0;
    uint64_t stop_at = 0;
    int stop = 0;
    s->up = 1;
    for (;;) {
        if (batch.len == 0) {
            hub_mqtt_records_take(&s->q, &batch, GC_MS, &stop);
            if (batch.len == 0) {
                if (stop)
                    break;
                if (connect_db(s) == 0) {
                    back_up(s);
                    collect(s);
                    take_spare_boot(s);
                }
                continue;
            }
            int c = hub_mqtt_records_cancel(&batch, &sc);
            if (c > 0)
                ADD(skipped, (unsigned long long)c);
        }
        size_t n = 0;
        uint64_t t0 = mono_us();
        int rc = connect_db(s);
        if (rc == 0 && (rc = write_batch(s, &batch, &n)) == HUB_EDB)
            rc = write_each(s, &batch, &lost);
        if (rc == HUB_EDBDOWN) {
            PQfinish(s->db);
            s->db = NULL;
            outage(s, "the connection was lost");
            if (stop && stop_at == 0)
                stop_at = mono_ms() + STOP_WAIT_MS;
            if (stop && mono_ms() > stop_at) {
                hub_error("mqtt store: PostgreSQL unreachable at shutdown: %zu bytes of "
                          "records not written (their acknowledgements were not sent)",
                          batch.len);
                break;
            }
            backoff = backoff ? (backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2)
                              : BACKOFF_MIN_MS;
            struct timespec ts = {backoff / 1000, (long)(backoff % 1000) * 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        hub_histogram_atomic_observe(&s->commit, &commit_bounds, mono_us() - t0);
        backoff = 0;
        back_up(s);
        ADD(batches, 1);
        ADD(written, (unsigned long long)n);
        release(s, &batch, &lost);
        batch.len = 0;
        lost.len = 0;
        hub_mqtt_records_done(&s->q);
        if (mono_ms() - s->gc_at >= GC_MS) {
            collect(s);
            take_spare_boot(s);
        }
    }
    hub_buf_free(&batch);
    hub_buf_free(&lost);
    hub_mqtt_records_scratch_free(&sc);
    return NULL;
}

/* ---- loop side ---------------------------------------------------------------------------- */

static void finish_barriers(struct hub_mqtt_store *s, uint64_t seq, int rc);

static void released_cb(uv_async_t *a)
{
    struct hub_mqtt_store *s = a->data;
    pthread_mutex_lock(&s->rel_lock);
    hub_buf_t t = s->releasing;
    s->releasing = s->released;
    s->released = t;
    s->released.len = 0;
    pthread_mutex_unlock(&s->rel_lock);
    for (size_t i = 0; i + 8 <= s->releasing.len; i += 8) {
        uint64_t id;
        memcpy(&id, s->releasing.data + i, 8);
        if (s->broker != NULL)
            hub_broker_release(s->broker, id);
    }
    s->releasing.len = 0;
    finish_barriers(s, atomic_load(&s->flushed), 0);
}

/* Calls back the barriers up to seq (with rc) and forgets them. */
static void finish_barriers(struct hub_mqtt_store *s, uint64_t seq, int rc)
{
    while (s->barriers != NULL && s->barriers->seq <= seq) {
        struct barrier *w = s->barriers;
        if ((s->barriers = w->next) == NULL)
            s->barriers_tail = &s->barriers;
        w->done(rc, w->arg);
        free(w);
    }
}

int hub_mqtt_store_flush(void *ctx, void (*done)(int rc, void *arg), void *arg)
{
    struct hub_mqtt_store *s = ctx;
    struct barrier *w = malloc(sizeof *w);
    if (w == NULL)
        return HUB_ENOMEM;
    *w = (struct barrier){++s->barrier_seq, done, arg, NULL};
    struct hub_mqtt_rec r = {.type = HUB_REC_BARRIER, .id = w->seq};
    int rc = s->started && s->broker != NULL ? hub_mqtt_records_append(&s->q, &r) : HUB_EINVAL;
    if (rc != 0) {
        free(w);
        return rc;
    }
    *s->barriers_tail = w;
    s->barriers_tail = &w->next;
    return 0;
}

uint64_t hub_mqtt_store_next_id(void *ctx)
{
    struct hub_mqtt_store *s = ctx;
    if (s->counter == SPARE_BOOT_AT)
        atomic_store(&s->want_boot, 1);
    if (s->counter == UINT32_MAX) {
        uint32_t spare = atomic_exchange(&s->spare_boot, 0);
        if (spare == 0) {
            /* The writer could not take one (database unreachable for 1 billion messages):
             * ids of this boot start over, which only collides with messages still queued. */
            hub_error("mqtt store: message ids of boot %u exhausted and no new boot number yet",
                      s->boot);
        } else {
            s->boot = spare;
            atomic_store(&s->want_boot, 0);
        }
        s->counter = 0;
    }
    return (uint64_t)s->boot << 32 | ++s->counter;
}

static int put(struct hub_mqtt_store *s, uint8_t type, const char *key, size_t klen,
               const void *data, size_t dlen, uint64_t id, uint8_t qos)
{
    struct hub_mqtt_rec r = {.type = type, .qos = qos, .id = id, .key = key, .klen = klen,
                             .data = data, .dlen = dlen};
    return hub_mqtt_records_append(&s->q, &r);
}

void hub_mqtt_store_session_open(struct hub_mqtt_store *s, const char *key, uint32_t expiry_s)
{
    struct hub_mqtt_rec r = {.type = HUB_REC_SESSION_OPEN, .expiry = expiry_s, .key = key,
                             .klen = strlen(key), .data = (const uint8_t *)s->node,
                             .dlen = s->node ? strlen(s->node) : 0};
    hub_mqtt_records_append(&s->q, &r);
}

void hub_mqtt_store_session_gone(struct hub_mqtt_store *s, const char *key)
{
    put(s, HUB_REC_SESSION_GONE, key, strlen(key), NULL, 0, 0, 0);
}

void hub_mqtt_store_session_offline(struct hub_mqtt_store *s, const char *key)
{
    put(s, HUB_REC_SESSION_OFFLINE, key, strlen(key), NULL, 0, 0, 0);
}

void hub_mqtt_store_subscribed(struct hub_mqtt_store *s, const char *key, const char *filter,
                               size_t flen, uint8_t qos)
{
    put(s, HUB_REC_SUB, key, strlen(key), filter, flen, 0, qos);
}

void hub_mqtt_store_unsubscribed(struct hub_mqtt_store *s, const char *key, const char *filter,
                                 size_t flen)
{
    put(s, HUB_REC_UNSUB, key, strlen(key), filter, flen, 0, 0);
}

/* The MESSAGE record of m, once per message: its hooks come one after the other. */
static void message(struct hub_mqtt_store *s, const struct hub_msg *m, uint64_t id)
{
    if (id == s->cur_id)
        return;
    s->cur_id = id;
    s->cur_durable = 0;
    s->cur_lost = put(s, HUB_REC_MESSAGE, m->topic, m->topic_len, m->payload, m->payload_len,
                      id, m->qos) != 0;
}

void hub_mqtt_store_queued(struct hub_mqtt_store *s, const char *key, const struct hub_msg *m,
                           uint8_t qos)
{
    if (m->id == 0)
        return;
    message(s, m, m->id);
    if (put(s, HUB_REC_QUEUE, key, strlen(key), NULL, 0, m->id, qos) != 0)
        s->cur_lost = 1;
    s->cur_durable = 1;
}

void hub_mqtt_store_delivered(struct hub_mqtt_store *s, const char *key, uint64_t msg_id)
{
    put(s, HUB_REC_DELIVERED, key, strlen(key), NULL, 0, msg_id, 0);
}

void hub_mqtt_store_delivery_state(struct hub_mqtt_store *s, const char *key, uint64_t msg_id,
                                   int state, uint16_t pid)
{
    struct hub_mqtt_rec r = {.type = HUB_REC_STATE, .qos = (uint8_t)state, .pid = pid,
                             .id = msg_id, .key = key, .klen = strlen(key)};
    hub_mqtt_records_append(&s->q, &r);
}

void hub_mqtt_store_incoming(struct hub_mqtt_store *s, const char *key, uint16_t pid, int added)
{
    struct hub_mqtt_rec r = {.type = HUB_REC_INCOMING, .qos = added != 0, .pid = pid,
                             .key = key, .klen = strlen(key)};
    hub_mqtt_records_append(&s->q, &r);
}

void hub_mqtt_store_retained(struct hub_mqtt_store *s, const char *topic, size_t tlen,
                             const struct hub_msg *m)
{
    if (m == NULL) {
        put(s, HUB_REC_RETAINED, topic, tlen, NULL, 0, 0, 0);
        return;
    }
    /* Every accepted message has an id; one restored from an older run may not. */
    uint64_t id = m->id ? m->id : hub_mqtt_store_next_id(s);
    message(s, m, id);
    if (put(s, HUB_REC_RETAINED, topic, tlen, NULL, 0, id, 0) != 0)
        s->cur_lost = 1;
    if (m->qos > 0) /* no hold for QoS 0 */
        s->cur_durable = 1;
}

unsigned hub_mqtt_store_accepted(struct hub_mqtt_store *s, const struct hub_msg *m)
{
    if (m->id == 0 || m->id != s->cur_id || !s->cur_durable)
        return 0;
    s->cur_durable = 0;
    if (s->cur_lost || put(s, HUB_REC_HOLD, NULL, 0, NULL, 0, m->id, 0) != 0) {
        /* Not written: never acknowledged (the publisher resends after reconnecting). */
        ADD(unreleased, 1);
    }
    return 1;
}

/* ---- start / stop ------------------------------------------------------------------------- */

/* A row of a session that expired while stored (HUB_ENOTFOUND) is skipped. */
#define RESTORED(rc) ((rc) < 0 && (rc) != HUB_ENOTFOUND ? HUB_ENOMEM : 0)

static int restore_session(void *ctx, const char *key, uint32_t expiry_s, uint32_t offline_s)
{
    struct hub_mqtt_store *s = ctx;
    int rc = hub_broker_restore_session_since(s->broker, key, expiry_s, offline_s);
    s->restored[rc == 1 ? 5 : 0]++;
    return rc < 0 ? HUB_ENOMEM : 0;
}

static int restore_sub(void *ctx, const char *key, const char *filter, int qos)
{
    struct hub_mqtt_store *s = ctx;
    int rc = hub_broker_restore_sub(s->broker, key, filter, (uint8_t)qos);
    s->restored[1] += rc == 0;
    return RESTORED(rc);
}

static int restore_delivery(void *ctx, const char *key, uint64_t id, const char *topic,
                            size_t tlen, const uint8_t *payload, size_t len, int qos, int state,
                            uint16_t pid)
{
    struct hub_mqtt_store *s = ctx;
    int rc = hub_broker_restore_delivery(s->broker, key, topic, tlen, payload, len,
                                         (uint8_t)qos, id, state, pid);
    s->restored[2] += rc >= 0;
    return RESTORED(rc);
}

static int restore_incoming(void *ctx, const char *key, uint16_t pid)
{
    struct hub_mqtt_store *s = ctx;
    int rc = hub_broker_restore_incoming(s->broker, key, pid);
    s->restored[3] += rc == 0;
    return RESTORED(rc);
}

static int restore_retained(void *ctx, uint64_t id, const char *topic, size_t tlen,
                            const uint8_t *payload, size_t len, int qos)
{
    struct hub_mqtt_store *s = ctx;
    s->restored[4]++;
    return hub_broker_restore_retained(s->broker, topic, tlen, payload, len, (uint8_t)qos, id) <
                   0
               ? HUB_ENOMEM
               : 0;
}

int hub_mqtt_store_new(const struct hub_mqtt_store_options *o, struct hub_mqtt_store **out)
{
    char why[256];
    *out = NULL;
    struct hub_mqtt_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return HUB_ENOMEM;
    s->loop = o->loop;
    s->max_pending = o->max_pending;
    pthread_mutex_init(&s->rel_lock, NULL);
    int rc = hub_mqtt_records_init(&s->q, o->max_pending);
    if (rc != 0) {
        pthread_mutex_destroy(&s->rel_lock);
        free(s);
        return rc;
    }
    s->barriers_tail = &s->barriers;
    uv_async_init(s->loop, &s->async, released_cb);
    s->async.data = s;
    *out = s; /* from here on, released by hub_mqtt_store_stop + _free */
    s->db_url = strdup(o->db_url);
    s->node = o->node ? strdup(o->node) : NULL;
    if (s->db_url == NULL || (o->node != NULL && s->node == NULL))
        return HUB_ENOMEM;
    if (hub_db_mqtt_connect(o->db_url, &s->db, why, sizeof why) != 0) {
        hub_error("mqtt store: cannot connect to PostgreSQL: %s", why);
        return HUB_EDBDOWN;
    }
    if ((rc = hub_db_mqtt_boot(s->db, &s->boot)) != 0)
        return rc;
    hub_info("mqtt store: boot number %u (message ids %llu and up)", s->boot,
             (unsigned long long)s->boot << 32);
    return 0;
}

int hub_mqtt_store_start(struct hub_mqtt_store *s, struct hub_broker *b)
{
    s->broker = b;
    struct hub_db_mqtt_loader l = {s, restore_session, restore_sub, restore_delivery,
                                   restore_incoming, restore_retained};
    uint64_t t0 = mono_ms();
    int rc = hub_db_mqtt_load(s->db, s->node, &l);
    if (rc != 0) {
        hub_error("mqtt store: restoring the MQTT state failed: %s", hub_strerror(rc));
        return rc;
    }
    hub_info("mqtt store: restored %llu persistent session(s), %llu subscription(s), %llu "
             "queued deliveries, %llu QoS 2 packet id(s), %llu retained message(s) in %llu ms; "
             "%llu session(s) expired while stored, deleted",
             s->restored[0], s->restored[1], s->restored[2], s->restored[3], s->restored[4],
             (unsigned long long)(mono_ms() - t0), s->restored[5]);
    if (hub_db_mqtt_prepare(s->db) != 0)
        return HUB_EDB;
    if (pthread_create(&s->thread, NULL, writer, s) != 0) {
        hub_error("mqtt store: cannot start the writer thread");
        return HUB_ENOMEM;
    }
    s->started = 1;
    return 0;
}

static void async_closed(uv_handle_t *h)
{
    struct hub_mqtt_store *s = h->data;
    if (s->closed != NULL)
        s->closed(s->closed_arg);
}

void hub_mqtt_store_stop(struct hub_mqtt_store *s, void (*closed)(void *arg), void *arg)
{
    s->closed = closed;
    s->closed_arg = arg;
    s->broker = NULL; /* nothing is released after this */
    finish_barriers(s, UINT64_MAX, HUB_EDBDOWN); /* not known to be written */
    pthread_mutex_lock(&s->rel_lock);
    s->closing = 1;
    pthread_mutex_unlock(&s->rel_lock);
    uv_close((uv_handle_t *)&s->async, async_closed);
}

void hub_mqtt_store_free(struct hub_mqtt_store *s)
{
    if (s == NULL)
        return;
    hub_mqtt_records_stop(&s->q);
    if (s->started)
        pthread_join(s->thread, NULL);
    PQfinish(s->db);
    hub_mqtt_records_destroy(&s->q);
    hub_db_mqtt_rows_free(&s->rows[0]);
    hub_db_mqtt_rows_free(&s->rows[1]);
    hub_buf_free(&s->released);
    hub_buf_free(&s->releasing);
    pthread_mutex_destroy(&s->rel_lock);
    free(s->db_url);
    free(s->node);
    free(s);
}

/* ---- metrics ------------------------------------------------------------------------------ */

int hub_mqtt_store_metrics(struct hub_mqtt_store *s, hub_buf_t *out)
{
    struct hub_histogram h;
    pthread_mutex_lock(&s->q.lock);
    unsigned long long refused = s->q.refused;
    size_t pending = s->q.pending.len + s->q.held;
    pthread_mutex_unlock(&s->q.lock);
    hub_histogram_atomic_snapshot(&s->commit, &h);
    int rc = hub_buf_printf(
        out,
        "# HELP iothub_mqtt_store_up 1 while the durable MQTT state's writer reaches "
        "PostgreSQL.\n# TYPE iothub_mqtt_store_up gauge\niothub_mqtt_store_up %d\n"
        "# HELP iothub_mqtt_store_pending_bytes Records waiting to be written (limit "
        "mqtt_store_max_pending).\n# TYPE iothub_mqtt_store_pending_bytes gauge\n"
        "iothub_mqtt_store_pending_bytes %zu\n"
        "# HELP iothub_mqtt_store_batches_total Transactions committed by the writer.\n"
        "# TYPE iothub_mqtt_store_batches_total counter\niothub_mqtt_store_batches_total %llu\n"
        "# HELP iothub_mqtt_store_writes_total Records committed by the writer.\n"
        "# TYPE iothub_mqtt_store_writes_total counter\niothub_mqtt_store_writes_total %llu\n"
        "# HELP iothub_mqtt_store_skipped_total Records not written: a delivery that ended "
        "before its batch was written, and its message when nothing else needed it.\n"
        "# TYPE iothub_mqtt_store_skipped_total counter\niothub_mqtt_store_skipped_total %llu\n"
        "# HELP iothub_mqtt_store_refused_total Records refused because "
        "mqtt_store_max_pending bytes were waiting.\n"
        "# TYPE iothub_mqtt_store_refused_total counter\niothub_mqtt_store_refused_total %llu\n"
        "# HELP iothub_mqtt_store_failed_total Records PostgreSQL refused.\n"
        "# TYPE iothub_mqtt_store_failed_total counter\niothub_mqtt_store_failed_total %llu\n"
        "# HELP iothub_mqtt_store_unacknowledged_total Messages whose acknowledgement is never "
        "sent because their records were refused or failed.\n"
        "# TYPE iothub_mqtt_store_unacknowledged_total counter\n"
        "iothub_mqtt_store_unacknowledged_total %llu\n"
        "# HELP iothub_mqtt_store_outages_total Times the writer lost PostgreSQL.\n"
        "# TYPE iothub_mqtt_store_outages_total counter\niothub_mqtt_store_outages_total %llu\n"
        "# HELP iothub_mqtt_store_gc_deleted_total Unreferenced messages deleted.\n"
        "# TYPE iothub_mqtt_store_gc_deleted_total counter\n"
        "iothub_mqtt_store_gc_deleted_total %llu\n"
        "# HELP iothub_mqtt_store_restored Rows restored at start, by kind.\n"
        "# TYPE iothub_mqtt_store_restored gauge\n"
        "iothub_mqtt_store_restored{kind=\"sessions\"} %llu\n"
        "iothub_mqtt_store_restored{kind=\"subscriptions\"} %llu\n"
        "iothub_mqtt_store_restored{kind=\"deliveries\"} %llu\n"
        "iothub_mqtt_store_restored{kind=\"incoming\"} %llu\n"
        "iothub_mqtt_store_restored{kind=\"retained\"} %llu\n"
        "iothub_mqtt_store_restored{kind=\"expired\"} %llu\n"
        "# HELP iothub_mqtt_store_batch_seconds Time to write and commit one batch.\n"
        "# TYPE iothub_mqtt_store_batch_seconds histogram\n",
        !GET(down), pending, GET(batches), GET(written), GET(skipped), refused, GET(failed), GET(unreleased),
        GET(outages), GET(gc_deleted), s->restored[0], s->restored[1], s->restored[2],
        s->restored[3], s->restored[4], s->restored[5]);
    return rc == 0 ? hub_histogram_render(out, "iothub_mqtt_store_batch_seconds", "",
                                                     &commit_bounds, &h)
                   : rc;
}
