/* util/base64.c: strict decoding (alphabet, padding, unused bits, whitespace) and wrapping. */
#include "util/base64.h"

#include "tests/unit/harness.h"
#include "util/error.h"

/* Decodes s; returns the result code, the bytes in out (NUL-terminated). */
static int dec(const char *s, hub_buf_t *out)
{
    out->len = 0;
    int rc = hub_base64_decode(s, strlen(s), out);
    hub_buf_puts(out, "");
    return rc;
}

static void test_decode(void)
{
    hub_buf_t b = HUB_BUF_INIT;
    CHECK_EQ(dec("aGVsbG8=", &b), 0);
    CHECK_STR((char *)b.data, "hello");
    CHECK_EQ(dec("aGVs\r\nbG8h\n", &b), 0);
    CHECK_STR((char *)b.data, "hello!");
    CHECK_EQ(dec(" aGk= ", &b), 0);
    CHECK_STR((char *)b.data, "hi");
    CHECK_EQ(dec("YQ==", &b), 0);
    CHECK_STR((char *)b.data, "a");
    const char *bad[] = {"", "   \n", "YQ=", "YQ", "Y===", "=YQ=", "YQ==YQ==", "aGk=a",
                         "aGk-", "aGk_", "aGk\x01", "YR==", "aGl=", "aG=k", "a@==", "YQ==="};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = dec(bad[i], &b);
        if (rc != HUB_EINVAL)
            fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
        CHECK_EQ(rc, HUB_EINVAL);
        CHECK_EQ(b.len, 0);
    }
    hub_buf_free(&b);
}

static void test_encode(void)
{
    hub_buf_t b = HUB_BUF_INIT, d = HUB_BUF_INIT;
    uint8_t data[100];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 37 + 1);
    CHECK_EQ(hub_base64_encode(data, sizeof data, &b), 0);
    /* 100 bytes: 136 characters, lines of 64, 64 and 8, each ending with \n. */
    CHECK_EQ(b.len, 136 + 3);
    CHECK_EQ(b.data[64], '\n');
    CHECK_EQ(b.data[129], '\n');
    CHECK_EQ(b.data[b.len - 1], '\n');
    CHECK_EQ(hub_base64_decode((char *)b.data, b.len, &d), 0);
    CHECK_EQ(d.len, sizeof data);
    CHECK(memcmp(d.data, data, sizeof data) == 0);
    b.len = 0;
    CHECK_EQ(hub_base64_encode((const uint8_t *)"ab", 2, &b), 0);
    CHECK_STR((char *)b.data, "YWI=\n");
    hub_buf_free(&b);
    hub_buf_free(&d);
}

int main(void)
{
    RUN(test_decode);
    RUN(test_encode);
    HARNESS_EXIT();
}
