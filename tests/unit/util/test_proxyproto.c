/* Unit tests for util/proxyproto: version 2 and version 1 headers (complete, incomplete,
 * malformed), the reader taking exactly the header off a socket, and proxy_trusted. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/unit/harness.h"
#include "util/error.h"
#include "util/proxyproto.h"

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 header: command/version byte vc, family fam, then body (blen bytes). */
static size_t v2(uint8_t *out, uint8_t vc, uint8_t fam, const uint8_t *body, size_t blen)
{
    memcpy(out, SIG, 12);
    out[12] = vc;
    out[13] = fam;
    out[14] = (uint8_t)(blen >> 8);
    out[15] = (uint8_t)blen;
    memcpy(out + 16, body, blen);
    return 16 + blen;
}

static const uint8_t ADDR4[12] = {203, 0, 113, 7, 127, 0, 0, 1, 0x9c, 0x40, 0x22, 0xb3};

static void test_v2(void)
{
    uint8_t b[1200];
    struct hub_proxy_header h;
    const char *why = NULL;
    size_t n = v2(b, 0x21, 0x11, ADDR4, sizeof ADDR4);
    CHECK_EQ(hub_proxy_parse(b, n, &h, &why), 28);
    CHECK_EQ(h.version, 2);
    CHECK_EQ(h.local, 0);
    const struct sockaddr_in *s = (const struct sockaddr_in *)&h.src;
    CHECK_EQ(s->sin_family, AF_INET);
    CHECK_EQ(ntohs(s->sin_port), 40000);
    char str[64];
    hub_proxy_addr_str((const struct sockaddr *)&h.src, str, sizeof str);
    CHECK_STR(str, "203.0.113.7:40000");
    for (size_t k = 0; k < n; k++) /* every prefix: not yet */
        CHECK_EQ(hub_proxy_parse(b, k, &h, &why), 0);
    /* IPv6 with a TLV */
    uint8_t body[36 + 7] = {0};
    body[15] = 1; /* ::1 */
    body[32] = 0x1f;
    body[33] = 0x90; /* port 8080 */
    body[36] = 0xE0;
    body[38] = 4;
    n = v2(b, 0x21, 0x21, body, sizeof body);
    CHECK_EQ(hub_proxy_parse(b, n, &h, &why), (int)n);
    hub_proxy_addr_str((const struct sockaddr *)&h.src, str, sizeof str);
    CHECK_STR(str, "[::1]:8080");
    /* LOCAL */
    n = v2(b, 0x20, 0x00, NULL, 0);
    CHECK_EQ(hub_proxy_parse(b, n, &h, &why), 16);
    CHECK_EQ(h.local, 1);
    /* refusals */
    n = v2(b, 0x31, 0x11, ADDR4, sizeof ADDR4);
    CHECK_EQ(hub_proxy_parse(b, n, &h, &why), HUB_EINVAL); /* version 3 */
    n = v2(b, 0x22, 0x11, ADDR4, sizeof ADDR4);
    CHECK_EQ(hub_proxy_parse(b, n, &h, &why), HUB_EINVAL); /* command 2 */
    uint8_t unix_body[216] = {0};
    n = v2(b, 0x21, 0x31, unix_body, sizeof unix_body);
    CHECK_EQ(hub_proxy_parse(b, n, &h, &why), HUB_EINVAL); /* UNIX */
    n = v2(b, 0x21, 0x12, ADDR4, sizeof ADDR4);
    CHECK_EQ(hub_proxy_parse(b, n, &h, &why), HUB_EINVAL); /* UDP */
    n = v2(b, 0x21, 0x11, ADDR4, 6);
    CHECK_EQ(hub_proxy_parse(b, n, &h, &why), HUB_EINVAL); /* shorter than the addresses */
    uint8_t big[600] = {0};
    memcpy(big, ADDR4, 12);
    n = v2(b, 0x21, 0x11, big, sizeof big);
    CHECK_EQ(hub_proxy_parse(b, 16, &h, &why), HUB_EINVAL); /* too long: known at 16 bytes */
    uint8_t bad_tlv[12 + 5] = {0};
    memcpy(bad_tlv, ADDR4, 12);
    bad_tlv[12] = 0xE0;
    bad_tlv[14] = 9; /* 9 bytes announced, 2 there */
    n = v2(b, 0x21, 0x11, bad_tlv, sizeof bad_tlv);
    CHECK_EQ(hub_proxy_parse(b, n, &h, &why), HUB_EINVAL);
    uint8_t tlv_stub[12 + 2] = {0}; /* 2 bytes: not even a TLV header */
    memcpy(tlv_stub, ADDR4, 12);
    n = v2(b, 0x21, 0x11, tlv_stub, sizeof tlv_stub);
    CHECK_EQ(hub_proxy_parse(b, n, &h, &why), HUB_EINVAL);
    b[5] = 0x00; /* wrong signature */
    CHECK_EQ(hub_proxy_parse(b, 6, &h, &why), HUB_EINVAL);
    const uint8_t hello[] = {0x16, 0x03, 0x01, 0x00, 0xa5};
    CHECK_EQ(hub_proxy_parse(hello, sizeof hello, &h, &why), HUB_EINVAL);
}

static int p1(const char *s, struct hub_proxy_header *h)
{
    const char *why;
    return hub_proxy_parse((const uint8_t *)s, strlen(s), h, &why);
}

static void test_v1(void)
{
    struct hub_proxy_header h;
    char str[64];
    CHECK_EQ(p1("PROXY TCP4 192.0.2.1 192.0.2.2 5000 8883\r\n", &h), 42);
    hub_proxy_addr_str((const struct sockaddr *)&h.src, str, sizeof str);
    CHECK_STR(str, "192.0.2.1:5000");
    CHECK_EQ(p1("PROXY TCP4 192.0.2.1 192.0.2.2 5000 8883\r\n\x16\x03", &h), 42);
    CHECK_EQ(p1("PROXY TCP6 2001:db8::1 2001:db8::2 65535 1\r\n", &h), 44);
    hub_proxy_addr_str((const struct sockaddr *)&h.src, str, sizeof str);
    CHECK_STR(str, "[2001:db8::1]:65535");
    CHECK_EQ(p1("PROXY UNKNOWN\r\n", &h), 15);
    CHECK_EQ(h.local, 1);
    CHECK_EQ(p1("PROXY UNKNOWN whatever 1 2\r\n", &h), 28);
    CHECK_EQ(p1("PROXY TCP4 192.0.2.1 192.0.2.2 5000 8883\r", &h), 0);
    CHECK_EQ(p1("PROX", &h), 0);
    CHECK_EQ(p1("", &h), 0);
    CHECK_EQ(p1("PROXY TCP4 192.0.2.1 192.0.2.2 5000 65536\r\n", &h), HUB_EINVAL);
    CHECK_EQ(p1("PROXY TCP4 192.0.2.1 192.0.2.2 05000 1\r\n", &h), HUB_EINVAL);
    CHECK_EQ(p1("PROXY TCP4 192.0.2.1  192.0.2.2 5000 1\r\n", &h), HUB_EINVAL);
    CHECK_EQ(p1("PROXY TCP4 2001:db8::1 192.0.2.2 5000 1\r\n", &h), HUB_EINVAL);
    CHECK_EQ(p1("PROXY TCP6 192.0.2.1 192.0.2.2 5000 1\r\n", &h), HUB_EINVAL);
    CHECK_EQ(p1("PROXY UDP4 192.0.2.1 192.0.2.2 5000 1\r\n", &h), HUB_EINVAL);
    CHECK_EQ(p1("PROXY TCP4 192.0.2.1 192.0.2.2 5000 1 7\r\n", &h), HUB_EINVAL);
    CHECK_EQ(p1("PROXY TCP4 192.0.2.1 192.0.2.2 5000\r\n", &h), HUB_EINVAL);
    CHECK_EQ(p1("PROXY TCP4 192.0.2.1\n", &h), HUB_EINVAL);
    CHECK_EQ(p1("PROXY TCP4 1\r2", &h), HUB_EINVAL);
    CHECK_EQ(p1("GET / HTTP/1.1\r\n", &h), HUB_EINVAL);
    char longline[200];
    memset(longline, 'A', sizeof longline);
    memcpy(longline, "PROXY ", 6);
    longline[199] = 0;
    CHECK_EQ(p1(longline, &h), HUB_EINVAL); /* no CRLF within 107 bytes */
    longline[150] = '\r';
    longline[151] = 0;
    CHECK_EQ(p1(longline, &h), HUB_EINVAL); /* ends in CR, but far past 107 bytes */
    longline[105] = '\r';
    longline[106] = '\n';
    longline[107] = 0;
    memcpy(longline, "PROXY UNKNOWN ", 14);
    CHECK_EQ(p1(longline, &h), 107); /* the longest line */
    longline[105] = 'A';
    longline[106] = '\r';
    CHECK_EQ(p1(longline, &h), HUB_EINVAL); /* one byte longer */
}

/* The reader leaves the bytes after the header in the socket, whatever the chunks. */
static void test_reader(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    uint8_t b[64];
    size_t n = v2(b, 0x21, 0x11, ADDR4, sizeof ADDR4);
    memcpy(b + n, "\x16\x03\x01", 3);
    struct hub_proxy_reader *r = calloc(1, sizeof *r);
    struct hub_proxy_header h;
    const char *why = NULL;
    CHECK_EQ(hub_proxy_read(sv[0], r, &h, &why), 0); /* nothing yet */
    CHECK(write(sv[1], b, 5) == 5);
    CHECK_EQ(hub_proxy_read(sv[0], r, &h, &why), 0);
    CHECK(write(sv[1], b + 5, 15) == 15);
    CHECK_EQ(hub_proxy_read(sv[0], r, &h, &why), 0);
    CHECK(write(sv[1], b + 20, n + 3 - 20) == (ssize_t)(n + 3 - 20));
    CHECK_EQ(hub_proxy_read(sv[0], r, &h, &why), (int)n);
    uint8_t rest[8];
    CHECK_EQ(read(sv[0], rest, sizeof rest), 3);
    CHECK(memcmp(rest, "\x16\x03\x01", 3) == 0);
    /* v1 "UNKNOWN" (15 bytes) followed at once by data */
    memset(r, 0, sizeof *r);
    CHECK(write(sv[1], "PROXY UNKNOWN\r\nAB", 17) == 17);
    CHECK_EQ(hub_proxy_read(sv[0], r, &h, &why), 15);
    CHECK_EQ(read(sv[0], rest, sizeof rest), 2);
    /* closed before the end */
    memset(r, 0, sizeof *r);
    CHECK(write(sv[1], "PROXY TCP4", 10) == 10);
    close(sv[1]);
    CHECK_EQ(hub_proxy_read(sv[0], r, &h, &why), 0);
    CHECK_EQ(hub_proxy_read(sv[0], r, &h, &why), HUB_EIO);
    close(sv[0]);
    free(r);
}

static void test_trust(void)
{
    struct hub_proxy_trust *t;
    char why[128];
    CHECK_EQ(hub_proxy_trust_parse(" 10.0.0.5, 10.89.0.0/16 ,fd00::/8", &t, why, sizeof why), 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "10.89.3.4", &a.sin_addr);
    CHECK(hub_proxy_trusted(t, (struct sockaddr *)&a));
    inet_pton(AF_INET, "10.90.0.1", &a.sin_addr);
    CHECK(!hub_proxy_trusted(t, (struct sockaddr *)&a));
    inet_pton(AF_INET, "10.0.0.5", &a.sin_addr);
    CHECK(hub_proxy_trusted(t, (struct sockaddr *)&a));
    inet_pton(AF_INET, "10.0.0.6", &a.sin_addr);
    CHECK(!hub_proxy_trusted(t, (struct sockaddr *)&a));
    struct sockaddr_in6 b = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "fd12::1", &b.sin6_addr);
    CHECK(hub_proxy_trusted(t, (struct sockaddr *)&b));
    inet_pton(AF_INET6, "::ffff:10.0.0.5", &b.sin6_addr); /* mapped IPv4 */
    CHECK(hub_proxy_trusted(t, (struct sockaddr *)&b));
    inet_pton(AF_INET6, "fe80::1", &b.sin6_addr);
    CHECK(!hub_proxy_trusted(t, (struct sockaddr *)&b));
    hub_proxy_trust_free(t);
    CHECK_EQ(hub_proxy_trust_parse("10.0.0.0/33", &t, why, sizeof why), HUB_EINVAL);
    CHECK_EQ(hub_proxy_trust_parse("10.0.0.0/", &t, why, sizeof why), HUB_EINVAL);
    CHECK_EQ(hub_proxy_trust_parse("example.com", &t, why, sizeof why), HUB_EINVAL);
    CHECK_EQ(hub_proxy_trust_parse("", &t, why, sizeof why), 0);
    CHECK(!hub_proxy_trusted_any(t));
    hub_proxy_trust_free(t);
}

int main(void)
{
    RUN(test_v2);
    RUN(test_v1);
    RUN(test_reader);
    RUN(test_trust);
    return harness_failed_tests != 0;
}
