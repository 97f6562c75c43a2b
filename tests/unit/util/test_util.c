/* Unit tests for util/: buffers, hex, constant-time compare. */
#include <string.h>

#include "tests/unit/harness.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/secure.h"

static void test_buf(void)
{
    hub_buf_t b = HUB_BUF_INIT;
    CHECK_EQ(hub_buf_puts(&b, "abc"), 0);
    CHECK_EQ(hub_buf_printf(&b, "-%d-", 42), 0);
    CHECK_EQ(b.len, 7);
    CHECK_STR((char *)b.data, "abc-42-");
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(hub_buf_append(&b, "0123456789", 10), 0);
    CHECK_EQ(b.len, 10007);
    CHECK_EQ(b.data[b.len], 0);
    hub_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0);
}

static void test_hex(void)
{
    uint8_t in[] = {0x00, 0xAB, 0x7F, 0xff}, out[4];
    char hex[9];
    hub_hex_upper(in, 4, hex);
    CHECK_STR(hex, "00AB7FFF");
    hub_hex_lower(in, 4, hex);
    CHECK_STR(hex, "00ab7fff");
    CHECK_EQ(hub_hex_decode("00AB7fff", out, sizeof out), 4);
    CHECK(memcmp(in, out, 4) == 0);
    CHECK_EQ(hub_hex_decode("0", out, sizeof out), HUB_EINVAL);
    CHECK_EQ(hub_hex_decode("zz", out, sizeof out), HUB_EINVAL);
    CHECK_EQ(hub_hex_decode("0011223344", out, sizeof out), HUB_EINVAL);
}

static void test_ct_equal_and_random(void)
{
    uint8_t a[32], b[32];
    CHECK_EQ(hub_random(a, sizeof a), 0);
    memcpy(b, a, sizeof b);
    CHECK(hub_ct_equal(a, b, sizeof a));
    b[31] ^= 1;
    CHECK(!hub_ct_equal(a, b, sizeof a));
    CHECK_EQ(hub_random(b, sizeof b), 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
}

int main(void)
{
    RUN(test_buf);
    RUN(test_hex);
    RUN(test_ct_equal_and_random);
    HARNESS_EXIT();
}
