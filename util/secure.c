#include "util/secure.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "util/error.h"

int hub_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return HUB_EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int hub_rng_cb(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    /* MBEDTLS_ERR_ENTROPY_SOURCE_FAILED: the value is stable across 2.x. */
    return hub_random(out, len) == 0 ? 0 : -0x003C;
}

int hub_ct_equal(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

void hub_wipe(void *p, size_t n)
{
    volatile uint8_t *v = p;
    while (n--)
        *v++ = 0;
}

static void hex_encode(const uint8_t *in, size_t len, char *out, const char *digits)
{
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = 0;
}

void hub_hex_upper(const uint8_t *in, size_t len, char *out)
{
    hex_encode(in, len, out, "0123456789ABCDEF");
}

void hub_hex_lower(const uint8_t *in, size_t len, char *out)
{
    hex_encode(in, len, out, "0123456789abcdef");
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hub_hex_decode(const char *hex, uint8_t *out, size_t outcap)
{
    size_t n = strlen(hex);
    if (n % 2 != 0 || n / 2 > outcap)
        return HUB_EINVAL;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_val(hex[2 * i]), lo = hex_val(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return HUB_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (int)(n / 2);
}
