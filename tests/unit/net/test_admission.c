/* Unit tests for net/admission.c: listener-wide caps (handshakes, unauthenticated,
 * connections) hit and released, the per-address handshake cap (IPv4, IPv6 grouped by /64,
 * v4-mapped), counts shared by the listeners of one port, plain listeners exempt from the
 * handshake caps, and a per-address table churned by many addresses. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "net/admission.h"
#include "tests/unit/harness.h"

static void key4(const char *ip, uint8_t key[16])
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    hub_admission_addr_key((const struct sockaddr *)&a, key);
}

static void key6(const char *ip, uint8_t key[16])
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    hub_admission_addr_key((const struct sockaddr *)&a, key);
}

static void test_addr_key(void)
{
    uint8_t a[16], b[16];
    key4("192.0.2.7", a);
    key6("::ffff:192.0.2.7", b);
    CHECK(memcmp(a, b, 16) == 0); /* IPv4 and its mapped form are one address */
    static const uint8_t want[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7};
    CHECK(memcmp(a, want, 16) == 0);
    key4("192.0.2.8", b);
    CHECK(memcmp(a, b, 16) != 0);
    key6("2001:db8:1:2::1", a);
    key6("2001:db8:1:2:ffff:eeee:dddd:cccc", b);
    CHECK(memcmp(a, b, 16) == 0); /* one /64 */
    key6("2001:db8:1:3::1", b);
    CHECK(memcmp(a, b, 16) != 0);
    static const uint8_t want6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2};
    CHECK(memcmp(a, want6, 16) == 0);
}

static void test_listener_caps(void)
{
    struct hub_admission a;
    struct hub_admission_caps caps = {
        .max_handshakes = 2, .max_unauthenticated = 3, .max_connections = 4};
    CHECK_EQ(hub_admission_init(&a, &caps, 1, NULL), 0);
    CHECK(!hub_admission_full(&a));
    /* handshakes: 2 */
    hub_admission_conn_add(&a);
    hub_admission_handshake_begin(&a);
    hub_admission_conn_add(&a);
    hub_admission_handshake_begin(&a);
    CHECK(hub_admission_full(&a));
    hub_admission_handshake_end(&a);
    CHECK(!hub_admission_full(&a));
    /* unauthenticated: 3 */
    hub_admission_conn_add(&a);
    CHECK_EQ(a.unauth, 3);
    CHECK(hub_admission_full(&a));
    hub_admission_authenticated(&a);
    hub_admission_authenticated(&a);
    CHECK_EQ(a.unauth, 1);
    CHECK(hub_admission_full(&a) == 0);
    /* connections: 4 */
    hub_admission_conn_add(&a);
    CHECK_EQ(a.conns, 4);
    CHECK(hub_admission_full(&a));
    hub_admission_conn_remove(&a, 0); /* an authenticated one */
    CHECK_EQ(a.conns, 3);
    CHECK_EQ(a.unauth, 2);
    CHECK(!hub_admission_full(&a));
    hub_admission_conn_remove(&a, 1);
    CHECK_EQ(a.unauth, 1);
    hub_admission_fini(&a);

    /* the handshake cap defaults to 512; a plain listener has none */
    struct hub_admission_caps none = {0};
    CHECK_EQ(hub_admission_init(&a, &none, 1, NULL), 0);
    CHECK_EQ(a.caps.max_handshakes, 512);
    for (int i = 0; i < 511; i++)
        hub_admission_handshake_begin(&a);
    CHECK(!hub_admission_full(&a));
    hub_admission_handshake_begin(&a);
    CHECK(hub_admission_full(&a));
    hub_admission_fini(&a);
    CHECK_EQ(hub_admission_init(&a, &none, 0, NULL), 0);
    for (int i = 0; i < 600; i++)
        hub_admission_handshake_begin(&a);
    CHECK(!hub_admission_full(&a));
    hub_admission_fini(&a);
}

static void test_per_address(void)
{
    struct hub_admission a;
    struct hub_admission_caps caps = {.max_handshakes = 8, .max_handshakes_per_ip = 2};
    CHECK_EQ(hub_admission_init(&a, &caps, 1, NULL), 0);
    CHECK(hub_admission_addr_counted(&a));
    uint8_t x[16], y[16], x2[16];
    key6("2001:db8::1", x);
    key6("2001:db8::2", x2); /* same /64 */
    key4("198.51.100.1", y);
    CHECK(hub_admission_addr_acquire(&a, x));
    CHECK(hub_admission_addr_acquire(&a, x2));
    CHECK(!hub_admission_addr_acquire(&a, x)); /* cap hit for the /64 */
    CHECK(hub_admission_addr_acquire(&a, y));  /* another address is not affected */
    CHECK(hub_admission_addr_acquire(&a, y));
    CHECK(!hub_admission_addr_acquire(&a, y));
    hub_admission_addr_release(&a, x);
    CHECK(hub_admission_addr_acquire(&a, x2)); /* released */
    CHECK(!hub_admission_addr_acquire(&a, x2));
    hub_admission_addr_release(&a, x);
    hub_admission_addr_release(&a, x);
    hub_admission_addr_release(&a, y);
    hub_admission_addr_release(&a, y);
    CHECK(hub_admission_addr_acquire(&a, x));
    CHECK(hub_admission_addr_acquire(&a, y));
    hub_admission_fini(&a);

    /* no cap, or a plain listener: every address admitted, nothing counted */
    struct hub_admission_caps nocap = {.max_handshakes = 8};
    CHECK_EQ(hub_admission_init(&a, &nocap, 1, NULL), 0);
    CHECK(!hub_admission_addr_counted(&a));
    for (int i = 0; i < 20; i++)
        CHECK(hub_admission_addr_acquire(&a, x));
    hub_admission_fini(&a);
    CHECK_EQ(hub_admission_init(&a, &caps, 0, NULL), 0);
    CHECK(!hub_admission_addr_counted(&a));
    for (int i = 0; i < 20; i++)
        CHECK(hub_admission_addr_acquire(&a, x));
    hub_admission_fini(&a);
}

/* Many addresses come and go (backward-shift deletion): every count stays exact. */
static void test_per_address_churn(void)
{
    struct hub_admission a;
    struct hub_admission_caps caps = {.max_handshakes = 64, .max_handshakes_per_ip = 1};
    CHECK_EQ(hub_admission_init(&a, &caps, 1, NULL), 0);
    uint8_t k[64][16];
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 64; i++) {
            struct sockaddr_in s = {.sin_family = AF_INET};
            s.sin_addr.s_addr = htonl(0x0a000000u + (uint32_t)(round * 37 + i * 1009));
            hub_admission_addr_key((const struct sockaddr *)&s, k[i]);
            CHECK(hub_admission_addr_acquire(&a, k[i]));
        }
        for (int i = 0; i < 64; i++)
            CHECK(!hub_admission_addr_acquire(&a, k[i]));
        for (int i = round % 2; i < 64; i += 2)
            hub_admission_addr_release(&a, k[i]);
        for (int i = 0; i < 64; i++)
            CHECK_EQ(hub_admission_addr_acquire(&a, k[i]), i % 2 == round % 2);
        for (int i = 0; i < 64; i++)
            hub_admission_addr_release(&a, k[i]);
    }
    hub_admission_fini(&a);
}

/* Two listeners of one port (two loops) count together. */
static void test_shared(void)
{
    hub_admission_shared_t *s = hub_admission_shared_new(3, 1);
    CHECK(s != NULL);
    struct hub_admission a, b;
    struct hub_admission_caps caps = {
        .max_handshakes = 3, .max_handshakes_per_ip = 1, .max_connections = 5};
    CHECK_EQ(hub_admission_init(&a, &caps, 1, s), 0);
    CHECK_EQ(hub_admission_init(&b, &caps, 1, s), 0);
    uint8_t x[16];
    key4("203.0.113.9", x);
    CHECK(hub_admission_addr_acquire(&a, x));
    CHECK(!hub_admission_addr_acquire(&b, x)); /* the per-address table is the port's */
    hub_admission_conn_add(&a);
    hub_admission_handshake_begin(&a);
    hub_admission_conn_add(&b);
    hub_admission_handshake_begin(&b);
    CHECK(!hub_admission_full(&a));
    hub_admission_conn_add(&b);
    hub_admission_handshake_begin(&b);
    CHECK(hub_admission_full(&a)); /* 3 handshakes on the port, 1 on a */
    CHECK_EQ(a.handshakes, 1);
    CHECK_EQ(b.handshakes, 2);
    hub_admission_handshake_end(&b);
    CHECK(!hub_admission_full(&a));
    hub_admission_conn_add(&a);
    hub_admission_conn_add(&a);
    CHECK(hub_admission_full(&b)); /* 5 connections on the port */
    hub_admission_conn_remove(&a, 1);
    CHECK(!hub_admission_full(&b));
    hub_admission_addr_release(&a, x);
    CHECK(hub_admission_addr_acquire(&b, x));
    hub_admission_fini(&a);
    hub_admission_fini(&b);
    hub_admission_shared_free(s);

    /* no per-address cap: shared counts only */
    s = hub_admission_shared_new(0, 0);
    CHECK(s != NULL);
    CHECK_EQ(hub_admission_init(&a, &caps, 1, s), 0);
    CHECK(!hub_admission_addr_counted(&a));
    hub_admission_fini(&a);
    hub_admission_shared_free(s);
}

int main(void)
{
    RUN(test_addr_key);
    RUN(test_listener_caps);
    RUN(test_per_address);
    RUN(test_per_address_churn);
    RUN(test_shared);
    HARNESS_EXIT();
}
