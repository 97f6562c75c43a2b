/* Unit tests for net/outbuf.c: growth from 512 B, a write in flight while the other buffer
 * fills (byte-exact content, order kept), backpressure threshold, trimming of large buffers
 * once written or idle, a failed write start. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/outbuf.h"
#include "tests/unit/harness.h"

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 31);
}

static void test_growth(void)
{
    struct hub_outbuf o = {0};
    CHECK_EQ(hub_outbuf_pending(&o), 0);
    CHECK_EQ(hub_outbuf_append(&o, "a", 1), 0);
    CHECK_EQ(o.part[0].cap, HUB_OUTBUF_FIRST);
    uint8_t big[1500];
    fill(big, sizeof big, 1);
    CHECK_EQ(hub_outbuf_append(&o, big, sizeof big), 0);
    CHECK_EQ(o.part[0].cap, 2048); /* 512 doubled until 1501 bytes fit */
    CHECK_EQ(hub_outbuf_pending(&o), 1501);
    CHECK(memcmp(o.part[0].data + 1, big, sizeof big) == 0);
    CHECK_EQ(o.part[0].data[0], 'a');
    CHECK_EQ(hub_outbuf_append(&o, big, 0), 0);
    CHECK_EQ(hub_outbuf_pending(&o), 1501);
    hub_outbuf_free(&o);
    CHECK_EQ(hub_outbuf_pending(&o), 0);
    CHECK(o.part[0].data == NULL);
}

/* One write in flight, the other buffer filling: what goes out is byte-exact and ordered. */
static void test_alternation(void)
{
    struct hub_outbuf o = {0};
    uint8_t a[700], b[300], c[200], out[1200];
    size_t got = 0;
    fill(a, sizeof a, 3);
    fill(b, sizeof b, 5);
    fill(c, sizeof c, 7);
    const uint8_t *d;
    size_t n;
    CHECK_EQ(hub_outbuf_take(&o, &d, &n), 0); /* nothing queued */
    CHECK_EQ(hub_outbuf_append(&o, a, sizeof a), 0);
    CHECK_EQ(hub_outbuf_take(&o, &d, &n), 1);
    CHECK_EQ(n, sizeof a);
    memcpy(out + got, d, n);
    got += n;
    CHECK_EQ(hub_outbuf_append(&o, b, sizeof b), 0);
    CHECK_EQ(hub_outbuf_append(&o, c, sizeof c), 0);
    CHECK_EQ(hub_outbuf_pending(&o), 1200);
    CHECK_EQ(hub_outbuf_take(&o, &d, &n), 0); /* one write at a time */
    hub_outbuf_written(&o);
    CHECK_EQ(hub_outbuf_pending(&o), 500);
    CHECK_EQ(hub_outbuf_take(&o, &d, &n), 1);
    CHECK_EQ(n, 500);
    memcpy(out + got, d, n);
    got += n;
    hub_outbuf_written(&o);
    CHECK_EQ(hub_outbuf_pending(&o), 0);
    CHECK_EQ(got, sizeof out);
    CHECK(memcmp(out, a, sizeof a) == 0);
    CHECK(memcmp(out + 700, b, sizeof b) == 0);
    CHECK(memcmp(out + 1000, c, sizeof c) == 0);
    hub_outbuf_free(&o);
}

static void test_backpressure(void)
{
    struct hub_outbuf o = {0};
    uint8_t *blk = calloc(1, 65536);
    CHECK(blk != NULL);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(hub_outbuf_append(&o, blk, 65536), 0);
    const uint8_t *d;
    size_t n;
    CHECK_EQ(hub_outbuf_take(&o, &d, &n), 1); /* 192 KiB in flight */
    CHECK_EQ(hub_outbuf_append(&o, blk, 65535), 0);
    CHECK_EQ(hub_outbuf_pending(&o), HUB_OUTBUF_READ_PAUSE - 1);
    CHECK(!hub_outbuf_over_pause(&o)); /* both buffers count */
    CHECK_EQ(hub_outbuf_append(&o, blk, 1), 0);
    CHECK(hub_outbuf_over_pause(&o));
    hub_outbuf_written(&o);
    CHECK(!hub_outbuf_over_pause(&o));
    CHECK_EQ(hub_outbuf_pending(&o), 65536);
    free(blk);
    hub_outbuf_free(&o);
}

/* Written buffers over 64 KiB are freed; over 1 KiB once nothing is queued; a small one
 * keeps its 512 B. The next append starts again from 512 B. */
static void test_trim(void)
{
    struct hub_outbuf o = {0};
    uint8_t blk[4096];
    const uint8_t *d;
    size_t n;
    fill(blk, sizeof blk, 9);
    /* small: kept */
    CHECK_EQ(hub_outbuf_append(&o, blk, 100), 0);
    CHECK_EQ(hub_outbuf_take(&o, &d, &n), 1);
    hub_outbuf_written(&o);
    CHECK_EQ(o.part[0].cap, HUB_OUTBUF_FIRST);
    CHECK(o.part[0].data != NULL);
    CHECK_EQ(o.part[0].len, 0);
    /* 4 KiB written while 10 bytes wait in the other: kept (not idle, not over 64 KiB) */
    CHECK_EQ(hub_outbuf_append(&o, blk, sizeof blk), 0);
    int written = o.cur;
    CHECK_EQ(hub_outbuf_take(&o, &d, &n), 1);
    CHECK_EQ(hub_outbuf_append(&o, blk, 10), 0);
    hub_outbuf_written(&o);
    CHECK_EQ(o.part[written].cap, 4096);
    /* the 10 bytes go out: idle now, so the 4 KiB one is freed too */
    CHECK_EQ(hub_outbuf_take(&o, &d, &n), 1);
    CHECK_EQ(n, 10);
    CHECK(memcmp(d, blk, 10) == 0);
    hub_outbuf_written(&o);
    CHECK(o.part[written].data == NULL);
    CHECK_EQ(o.part[written].cap, 0);
    CHECK_EQ(o.part[written ^ 1].cap, HUB_OUTBUF_FIRST);
    /* over 64 KiB: freed once written even with more queued */
    uint8_t *huge = calloc(1, 70000);
    CHECK(huge != NULL);
    CHECK_EQ(hub_outbuf_append(&o, huge, 70000), 0);
    written = o.cur;
    CHECK_EQ(hub_outbuf_take(&o, &d, &n), 1);
    CHECK_EQ(hub_outbuf_append(&o, blk, 2000), 0);
    hub_outbuf_written(&o);
    CHECK(o.part[written].data == NULL);
    CHECK_EQ(o.part[written ^ 1].cap, 2048); /* queued: kept */
    /* regrowth starts from 512 B */
    CHECK_EQ(hub_outbuf_take(&o, &d, &n), 1);
    CHECK_EQ(hub_outbuf_append(&o, blk, 1), 0);
    CHECK_EQ(o.part[written].cap, HUB_OUTBUF_FIRST);
    free(huge);
    hub_outbuf_free(&o);
}

/* A write that could not start drops its bytes and lets the next one go. */
static void test_drop(void)
{
    struct hub_outbuf o = {0};
    const uint8_t *d;
    size_t n;
    CHECK_EQ(hub_outbuf_append(&o, "lost", 4), 0);
    CHECK_EQ(hub_outbuf_take(&o, &d, &n), 1);
    hub_outbuf_drop(&o);
    CHECK_EQ(hub_outbuf_pending(&o), 0);
    CHECK_EQ(hub_outbuf_append(&o, "next", 4), 0);
    hub_outbuf_filling(&o, &d, &n);
    CHECK_EQ(n, 4);
    CHECK(memcmp(d, "next", 4) == 0);
    CHECK_EQ(hub_outbuf_take(&o, &d, &n), 1);
    CHECK(memcmp(d, "next", 4) == 0);
    hub_outbuf_free(&o);
}

int main(void)
{
    RUN(test_growth);
    RUN(test_alternation);
    RUN(test_backpressure);
    RUN(test_trim);
    RUN(test_drop);
    HARNESS_EXIT();
}
