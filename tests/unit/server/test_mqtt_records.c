/* The record queue between the MQTT loop and the store's writer (server/mqtt_records.c):
 * records read back as appended, in order; the writer's buffer is reused; the byte limit
 * refuses message records first and counts refusals; a taken batch stays counted until done;
 * a waiting writer wakes on an append from another thread. */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "server/mqtt_records.h"
#include "tests/unit/harness.h"
#include "util/error.h"

static void test_round_trip(void)
{
    struct hub_mqtt_records q;
    CHECK_EQ(hub_mqtt_records_init(&q, 1 << 20), 0);
    uint8_t payload[300];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)i; /* NUL bytes included */
    struct hub_mqtt_rec in[] = {
        {.type = HUB_REC_SESSION_OPEN, .expiry = 604800, .key = "d:abc", .klen = 5},
        {.type = HUB_REC_MESSAGE, .qos = 1, .id = (7ull << 32) | 1, .key = "a/b", .klen = 3,
         .data = payload, .dlen = sizeof payload},
        {.type = HUB_REC_QUEUE, .qos = 1, .id = (7ull << 32) | 1, .key = "d:abc", .klen = 5},
        {.type = HUB_REC_INCOMING, .qos = 1, .pid = 65535, .key = "s:x/y", .klen = 5},
        {.type = HUB_REC_HOLD, .id = (7ull << 32) | 1},
    };
    for (size_t i = 0; i < 5; i++)
        CHECK_EQ(hub_mqtt_records_append(&q, &in[i]), 0);
    hub_buf_t b = HUB_BUF_INIT;
    int stop = 1;
    CHECK(hub_mqtt_records_take(&q, &b, 0, &stop) > 0);
    CHECK_EQ(stop, 0);
    CHECK_EQ(hub_mqtt_records_bytes(&q), b.len); /* held until done */
    size_t off = 0, n = 0;
    struct hub_mqtt_rec r;
    while (hub_mqtt_records_next(&b, &off, &r)) {
        CHECK(n < 5);
        if (n >= 5)
            break;
        CHECK_EQ(r.type, in[n].type);
        CHECK_EQ(r.qos, in[n].qos);
        CHECK_EQ(r.pid, in[n].pid);
        CHECK_EQ(r.expiry, in[n].expiry);
        CHECK(r.id == in[n].id);
        CHECK_EQ(r.klen, in[n].klen);
        CHECK_EQ(r.dlen, in[n].dlen);
        CHECK(r.klen == 0 || memcmp(r.key, in[n].key, r.klen) == 0);
        CHECK_EQ(r.key[r.klen], 0); /* usable as a C string */
        CHECK(r.dlen == 0 || memcmp(r.data, in[n].data, r.dlen) == 0);
        CHECK_EQ((uintptr_t)(b.data + off) % 8, 0);
        n++;
    }
    CHECK_EQ(n, 5);
    CHECK_EQ(off, b.len);
    hub_mqtt_records_done(&q);
    CHECK_EQ(hub_mqtt_records_bytes(&q), 0);
    /* the buffers are swapped, not reallocated: a second round reuses both */
    uint8_t *first = b.data;
    b.len = 0;
    CHECK_EQ(hub_mqtt_records_append(&q, &in[2]), 0);
    hub_mqtt_records_take(&q, &b, 0, &stop);
    hub_mqtt_records_done(&q);
    b.len = 0;
    CHECK_EQ(hub_mqtt_records_append(&q, &in[2]), 0);
    hub_mqtt_records_take(&q, &b, 0, &stop);
    CHECK(b.data == first);
    hub_buf_free(&b);
    hub_mqtt_records_destroy(&q);
}

static void test_limit(void)
{
    struct hub_mqtt_records q;
    CHECK_EQ(hub_mqtt_records_init(&q, 4096), 0);
    static uint8_t big[1000];
    struct hub_mqtt_rec msg = {.type = HUB_REC_MESSAGE, .id = 1, .key = "t", .klen = 1,
                               .data = big, .dlen = sizeof big};
    struct hub_mqtt_rec small = {.type = HUB_REC_DELIVERED, .id = 1, .key = "d:k", .klen = 3};
    int ok = 0;
    while (hub_mqtt_records_append(&q, &msg) == 0)
        ok++;
    CHECK_EQ(ok, 3); /* 3 x 1032 bytes fit in 4096, a fourth does not */
    CHECK_EQ(q.refused, 1);
    /* small records still fit in the reserve (max / 4) */
    CHECK_EQ(hub_mqtt_records_append(&q, &small), 0);
    /* what the writer took still counts until it is done */
    hub_buf_t b = HUB_BUF_INIT;
    int stop;
    hub_mqtt_records_take(&q, &b, 0, &stop);
    CHECK_EQ(hub_mqtt_records_append(&q, &msg), HUB_ERANGE);
    hub_mqtt_records_done(&q);
    CHECK_EQ(hub_mqtt_records_append(&q, &msg), 0);
    CHECK_EQ(q.refused, 2);
    CHECK_EQ(q.appended, 5);
    hub_buf_free(&b);
    hub_mqtt_records_destroy(&q);
}

static void *appender(void *arg)
{
    struct hub_mqtt_records *q = arg;
    usleep(50000);
    struct hub_mqtt_rec r = {.type = HUB_REC_HOLD, .id = 42};
    hub_mqtt_records_append(q, &r);
    return NULL;
}

static void test_wakeup_and_stop(void)
{
    struct hub_mqtt_records q;
    CHECK_EQ(hub_mqtt_records_init(&q, 1 << 20), 0);
    pthread_t t;
    pthread_create(&t, NULL, appender, &q);
    hub_buf_t b = HUB_BUF_INIT;
    int stop;
    /* waits (up to 5 s) and is woken by the append, long before the timeout */
    size_t n = 0;
    for (int i = 0; i < 3 && n == 0; i++)
        n = hub_mqtt_records_take(&q, &b, 5000, &stop);
    pthread_join(t, NULL);
    CHECK(n > 0);
    size_t off = 0;
    struct hub_mqtt_rec r;
    CHECK(hub_mqtt_records_next(&b, &off, &r) && r.type == HUB_REC_HOLD && r.id == 42);
    hub_mqtt_records_done(&q);
    hub_mqtt_records_stop(&q);
    b.len = 0;
    CHECK_EQ(hub_mqtt_records_take(&q, &b, 5000, &stop), 0); /* no wait once stopped */
    CHECK_EQ(stop, 1);
    hub_buf_free(&b);
    hub_mqtt_records_destroy(&q);
}

/* Appends a record; returns its offset in the queue's pending buffer. */
static void add(struct hub_mqtt_records *q, uint8_t type, const char *key, uint64_t id)
{
    struct hub_mqtt_rec r = {.type = type, .id = id, .key = key, .klen = key ? strlen(key) : 0,
                             .qos = 1};
    CHECK_EQ(hub_mqtt_records_append(q, &r), 0);
}

/* The types of a batch's records, one letter each (N cancelled, M message, Q queue,
 * D delivered, H hold, R retained, S session open). */
static void types(const hub_buf_t *b, char *out)
{
    static const char letter[] = "NSGsuMQDTIRH";
    size_t off = 0;
    struct hub_mqtt_rec r;
    while (hub_mqtt_records_next(b, &off, &r))
        *out++ = letter[r.type];
    *out = 0;
}

static void test_cancel(void)
{
    struct hub_mqtt_records q;
    struct hub_mqtt_records_scratch sc = {0};
    hub_buf_t b = HUB_BUF_INIT;
    char t[64];
    int stop;
    CHECK_EQ(hub_mqtt_records_init(&q, 1 << 20), 0);
    /* message 1: queued on A, delivered within the batch, held: nothing to write but the hold.
     * message 2: queued on A and B, only A delivered: B's row and the message stay.
     * message 3: queued on A and delivered, but retained too: the message stays.
     * message 4: queued and delivered, its hold in the next batch: the message stays.
     * message 5: delivered in this batch, queued in an earlier one: the DELIVERED stays. */
    add(&q, HUB_REC_SESSION_OPEN, "s:a", 0);
    add(&q, HUB_REC_MESSAGE, "t", 1);
    add(&q, HUB_REC_QUEUE, "s:a", 1);
    add(&q, HUB_REC_HOLD, NULL, 1);
    add(&q, HUB_REC_MESSAGE, "t", 2);
    add(&q, HUB_REC_QUEUE, "s:a", 2);
    add(&q, HUB_REC_QUEUE, "s:b", 2);
    add(&q, HUB_REC_HOLD, NULL, 2);
    add(&q, HUB_REC_DELIVERED, "s:a", 1);
    add(&q, HUB_REC_DELIVERED, "s:a", 2);
    add(&q, HUB_REC_MESSAGE, "t", 3);
    add(&q, HUB_REC_QUEUE, "s:a", 3);
    add(&q, HUB_REC_RETAINED, "t", 3);
    add(&q, HUB_REC_HOLD, NULL, 3);
    add(&q, HUB_REC_DELIVERED, "s:a", 3);
    add(&q, HUB_REC_MESSAGE, "t", 4);
    add(&q, HUB_REC_QUEUE, "s:a", 4);
    add(&q, HUB_REC_DELIVERED, "s:a", 4);
    add(&q, HUB_REC_DELIVERED, "s:a", 5);
    hub_mqtt_records_take(&q, &b, 0, &stop);
    types(&b, t);
    CHECK_STR(t, "SMQHMQQHDDMQRHDMQDD");
    CHECK_EQ(hub_mqtt_records_cancel(&b, &sc), 9);
    types(&b, t);
    CHECK_STR(t, "SNNHMNQHNNMNRHNMNND");
    CHECK_EQ(hub_mqtt_records_cancel(&b, &sc), 0); /* a retried batch: nothing more */
    hub_mqtt_records_done(&q);
    /* nothing to cancel without a QUEUE */
    b.len = 0;
    add(&q, HUB_REC_DELIVERED, "s:a", 9);
    hub_mqtt_records_take(&q, &b, 0, &stop);
    CHECK_EQ(hub_mqtt_records_cancel(&b, &sc), 0);
    hub_buf_free(&b);
    hub_mqtt_records_scratch_free(&sc);
    hub_mqtt_records_destroy(&q);
}

int main(void)
{
    RUN(test_cancel);
    RUN(test_round_trip);
    RUN(test_limit);
    RUN(test_wakeup_and_stop);
    HARNESS_EXIT();
}
