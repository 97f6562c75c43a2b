/* Unit tests for mqtt/msg.c: the pieces of a shared delivery (hub_msg_pieces) put together
 * are the packet hub_msg_packet makes in place, at every QoS and flag, without writing into
 * the message; the block lives until the last of its loop references and shared references
 * is dropped, on another thread too. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "mqtt/msg.h"
#include "tests/unit/harness.h"

static size_t join(const struct hub_rcbuf_piece *v, size_t n, uint8_t *out)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(out + len, v[i].p, v[i].len);
        len += v[i].len;
    }
    return len;
}

static void test_pieces_match_packet(void)
{
    static uint8_t payload[300];
    memset(payload, 'p', sizeof payload);
    const size_t sizes[] = {0, 1, 100, 300};
    for (int mq = 0; mq <= 2; mq++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            struct hub_msg *m = hub_msg_new("a/b/c", 5, payload, sizes[s], (uint8_t)mq, 0);
            CHECK(m != NULL);
            for (int qos = 0; qos <= 2; qos++)
                for (int flags = 0; flags < 4; flags++) {
                    int retain = flags & 1, dup = flags >> 1 & 1;
                    uint8_t head[7], got[400], want[400];
                    struct hub_rcbuf_piece v[HUB_MSG_PIECES];
                    uint8_t before[400];
                    memcpy(before, m->wire, m->wire_len);
                    size_t k = hub_msg_pieces(m, qos, retain, dup, 0x1234, head, v);
                    if ((qos > 0) != (mq > 0)) {
                        CHECK_EQ(k, 0);
                        continue;
                    }
                    CHECK(k >= 2 && k <= HUB_MSG_PIECES);
                    for (size_t i = 0; i < k; i++) /* shared pieces lie inside the message */
                        CHECK_EQ(v[i].shared, (const uint8_t *)v[i].p >= m->wire &&
                                                  (const uint8_t *)v[i].p < m->wire + m->wire_len);
                    CHECK_EQ(memcmp(before, m->wire, m->wire_len), 0); /* nothing written */
                    size_t n = join(v, k, got);
                    const uint8_t *pkt;
                    size_t wn = hub_msg_packet(m, qos, retain, dup, 0x1234, &pkt);
                    memcpy(want, pkt, wn);
                    CHECK_EQ(n, wn);
                    CHECK_EQ(memcmp(got, want, n), 0);
                }
            hub_msg_unref(m);
        }
}

static void test_borrowed_not_shared(void)
{
    uint8_t pkt[] = {0x30, 7, 0, 1, 't', 'h', 'e', 'y', '!'};
    struct hub_msg m;
    uint8_t head[7];
    struct hub_rcbuf_piece v[HUB_MSG_PIECES];
    CHECK_EQ(hub_msg_borrowable(pkt, sizeof pkt), 1);
    hub_msg_borrow(&m, pkt, sizeof pkt);
    CHECK_EQ(hub_msg_pieces(&m, 0, 0, 0, 0, head, v), 0);
}

static void *drop_later(void *arg)
{
    hub_rcbuf_unref(arg);
    return NULL;
}

/* The loop's references and the shared ones count apart; the last drop frees (LSan and ASan
 * tell a leak or a use after free). */
static void test_refs_across_threads(void)
{
    struct hub_msg *m = hub_msg_new("t", 1, "x", 1, 1, 0);
    CHECK(m != NULL);
    hub_msg_ref(m);
    struct hub_rcbuf *shared[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++)
        shared[i] = hub_rcbuf_ref(&m->rc);
    hub_msg_unref(m);
    hub_msg_unref(m); /* the loop is done with it; the threads still hold it */
    for (int i = 0; i < 8; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, drop_later, shared[i]), 0);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    struct hub_msg *only = hub_msg_new("t", 1, "x", 1, 0, 0);
    hub_msg_unref(only); /* no shared reference: freed at once */
}

int main(void)
{
    RUN(test_pieces_match_packet);
    RUN(test_borrowed_not_shared);
    RUN(test_refs_across_threads);
    HARNESS_EXIT();
}
