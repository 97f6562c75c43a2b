#include "ca/pem.h"

#include <mbedtls/base64.h>

#include "util/error.h"

int hub_pem_encode(const char *label, const uint8_t *der, size_t len, hub_buf_t *out)
{
    unsigned char line[64 + 1];
    size_t olen;
    int rc = hub_buf_printf(out, "-----BEGIN %s-----\n", label);
    /* 48 input bytes make exactly one 64-column line. */
    for (size_t off = 0; rc == 0 && off < len; off += 48) {
        size_t n = len - off < 48 ? len - off : 48;
        if (mbedtls_base64_encode(line, sizeof line, &olen, der + off, n) != 0)
            return HUB_EINVAL;
        rc = hub_buf_append(out, line, olen);
        if (rc == 0)
            rc = hub_buf_append(out, "\n", 1);
    }
    if (rc == 0)
        rc = hub_buf_printf(out, "-----END %s-----\n", label);
    return rc;
}
