/* libFuzzer target for util/proxyproto.c: the input is the start of a connection to a
 * listener with the PROXY protocol on. Checks: a complete header's length is within the
 * input and HUB_PROXY_MAX; it parses the same without the bytes after it; every shorter
 * prefix of it is "not yet" (so the socket reader never takes a byte past a header); a
 * PROXY command yields an IPv4 or IPv6 TCP source. The input is also tried as a
 * proxy_trusted list, matched against that source. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/error.h"
#include "util/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hub_proxy_header h, h2;
    const char *why = NULL;
    int rc = hub_proxy_parse(data, size, &h, &why);
    if (rc < 0 && (rc != HUB_EINVAL || why == NULL))
        abort();
    if (rc == 0 && size >= HUB_PROXY_MAX)
        abort(); /* "not yet" with a full buffer would wait for ever */
    if (rc > 0) {
        size_t n = (size_t)rc;
        if (n > size || n > HUB_PROXY_MAX)
            abort();
        if (hub_proxy_parse(data, n, &h2, &why) != rc || h2.local != h.local ||
            h2.src_len != h.src_len || memcmp(&h2.src, &h.src, sizeof h.src) != 0)
            abort();
        for (size_t k = 0; k < n; k += 1 + k / 8)
            if (hub_proxy_parse(data, k, &h2, &why) != 0)
                abort();
        if (!h.local && h.src.ss_family != AF_INET && h.src.ss_family != AF_INET6)
            abort();
        char str[64];
        if (!h.local)
            hub_proxy_addr_str((const struct sockaddr *)&h.src, str, sizeof str);
    }
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    struct hub_proxy_trust *t = NULL;
    char err[256];
    if (hub_proxy_trust_parse(text, &t, err, sizeof err) == 0 && rc > 0 && !h.local)
        (void)hub_proxy_trusted(t, (const struct sockaddr *)&h.src);
    hub_proxy_trust_free(t);
    free(text);
    return 0;
}
