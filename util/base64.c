/* Strict base64: see util/base64.h. */
#include "util/base64.h"

#include "util/error.h"

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of c, -1 outside the alphabet. */
static int value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int hub_base64_decode(const char *text, size_t len, hub_buf_t *out)
{
    size_t start = out->len, n = 0, pad = 0;
    uint32_t quad = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        int v = value(c);
        if (c == '=') {
            if (n % 4 < 2 || pad == 2)
                goto bad;
            pad++;
            v = 0;
        } else if (v < 0 || pad > 0) {
            goto bad; /* outside the alphabet, or data after padding */
        }
        quad = quad << 6 | (uint32_t)v;
        n++;
        if (n % 4 == 0) {
            uint8_t b[3] = {(uint8_t)(quad >> 16), (uint8_t)(quad >> 8), (uint8_t)quad};
            size_t keep = 3 - pad;
            /* The bits padding leaves over must be zero (RFC 4648 §3.5). */
            if ((pad == 1 && b[2] != 0) || (pad == 2 && b[1] != 0))
                goto bad;
            if (hub_buf_append(out, b, keep) != 0) {
                out->len = start;
                return HUB_ENOMEM;
            }
            quad = 0;
        }
    }
    if (n == 0 || n % 4 != 0)
        goto bad;
    return 0;
bad:
    out->len = start;
    return HUB_EINVAL;
}

int hub_base64_encode(const uint8_t *data, size_t len, hub_buf_t *out)
{
    char line[66];
    size_t col = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t q = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            q |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len)
            q |= data[i + 2];
        line[col++] = ALPHABET[q >> 18 & 63];
        line[col++] = ALPHABET[q >> 12 & 63];
        line[col++] = i + 1 < len ? ALPHABET[q >> 6 & 63] : '=';
        line[col++] = i + 2 < len ? ALPHABET[q & 63] : '=';
        if (col == 64 || i + 3 >= len) {
            line[col++] = '\n';
            if (hub_buf_append(out, line, col) != 0)
                return HUB_ENOMEM;
            col = 0;
        }
    }
    return hub_buf_puts(out, "");
}
