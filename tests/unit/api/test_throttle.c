/* Unit tests for api/throttle.c: free failures, the doubling delay, per-source keys (IPv6 /64,
 * "ip:port" forms), forgiveness once per window, the bounded table and audit aggregates. */
#include <string.h>

#include "api/throttle.h"
#include "tests/unit/harness.h"

static void configure(long long sources)
{
    struct hub_throttle_limits l = {3, 60, 8, sources};
    CHECK_EQ(hub_throttle_configure(&l), 0);
}

static void test_free_then_delay(void)
{
    unsigned retry = 0;
    configure(16);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(hub_throttle_check("192.0.2.1", HUB_THROTTLE_DEVICE, &retry), HUB_THROTTLE_FREE);
        hub_throttle_failed("192.0.2.1", HUB_THROTTLE_DEVICE, "id\nforged");
    }
    CHECK_EQ(hub_throttle_check("192.0.2.1", HUB_THROTTLE_DEVICE, &retry), HUB_THROTTLE_FREE);
    hub_throttle_failed("192.0.2.1:5555", HUB_THROTTLE_DEVICE, NULL); /* same source, a port */
    CHECK_EQ(hub_throttle_check("192.0.2.1", HUB_THROTTLE_DEVICE, &retry), HUB_THROTTLE_BLOCKED);
    CHECK_EQ(retry, 1);
    CHECK_EQ(hub_throttle_check("192.0.2.2", HUB_THROTTLE_DEVICE, &retry), HUB_THROTTLE_FREE);
    hub_throttle_failed("192.0.2.1", HUB_THROTTLE_DEVICE, NULL); /* a fourth, checked */
    CHECK_EQ(hub_throttle_check("::ffff:192.0.2.1", HUB_THROTTLE_TOKEN, &retry),
             HUB_THROTTLE_BLOCKED);
    CHECK_EQ(retry, 2);
    for (int i = 0; i < 5; i++)
        hub_throttle_failed("192.0.2.1", HUB_THROTTLE_DEVICE, NULL);
    CHECK_EQ(hub_throttle_check("192.0.2.1", HUB_THROTTLE_DEVICE, &retry), HUB_THROTTLE_BLOCKED);
    CHECK_EQ(retry, 8); /* the maximum */
}

static void test_ipv6_prefix(void)
{
    unsigned retry = 0;
    configure(16);
    for (int i = 0; i < 3; i++)
        hub_throttle_failed("2001:db8:1:2::1", HUB_THROTTLE_MQTT, NULL);
    CHECK_EQ(hub_throttle_check("[2001:db8:1:2:ffff::9]:1883", HUB_THROTTLE_MQTT, &retry),
             HUB_THROTTLE_BLOCKED);
    CHECK_EQ(hub_throttle_check("2001:db8:1:3::1", HUB_THROTTLE_MQTT, &retry), HUB_THROTTLE_FREE);
}

static void test_success_forgives_once(void)
{
    unsigned retry = 0;
    configure(16);
    hub_throttle_failed("198.51.100.7", HUB_THROTTLE_TOKEN, NULL);
    hub_throttle_failed("198.51.100.7", HUB_THROTTLE_TOKEN, NULL);
    hub_throttle_succeeded("198.51.100.7");
    hub_throttle_failed("198.51.100.7", HUB_THROTTLE_TOKEN, NULL);
    hub_throttle_failed("198.51.100.7", HUB_THROTTLE_TOKEN, NULL);
    CHECK_EQ(hub_throttle_check("198.51.100.7", HUB_THROTTLE_TOKEN, &retry), HUB_THROTTLE_FREE);
    hub_throttle_succeeded("198.51.100.7"); /* within the window: forgives nothing */
    hub_throttle_failed("198.51.100.7", HUB_THROTTLE_TOKEN, NULL);
    CHECK_EQ(hub_throttle_check("198.51.100.7", HUB_THROTTLE_TOKEN, &retry), HUB_THROTTLE_BLOCKED);
}

static void test_bounded_table(void)
{
    char ip[32];
    unsigned retry = 0;
    hub_buf_t m = HUB_BUF_INIT;
    configure(16);
    for (int i = 0; i < 3; i++)
        hub_throttle_failed("203.0.113.1", HUB_THROTTLE_PRODUCT, NULL);
    for (int i = 0; i < 1000; i++) {
        snprintf(ip, sizeof ip, "10.0.%d.%d", i / 250, i % 250);
        hub_throttle_failed(ip, HUB_THROTTLE_PRODUCT, NULL);
    }
    /* the oldest source was evicted: forgotten */
    CHECK_EQ(hub_throttle_check("203.0.113.1", HUB_THROTTLE_PRODUCT, &retry), HUB_THROTTLE_FREE);
    CHECK_EQ(hub_throttle_metrics(&m), 0);
    CHECK(strstr((char *)m.data, "iothub_auth_throttle_sources{state=\"used\"} 16\n") != NULL);
    CHECK(strstr((char *)m.data, "iothub_auth_throttle_evictions_total 985\n") != NULL);
    hub_buf_free(&m);
}

static void test_audit_aggregates(void)
{
    struct hub_throttle_audit a[8];
    configure(16);
    for (int i = 0; i < 50; i++)
        hub_throttle_audit_count("192.0.2.9", i % 2 ? 401 : 429);
    hub_throttle_audit_count("2001:db8::1", 403);
    size_t n = hub_throttle_audit_take(a, 8);
    CHECK_EQ(n, 2);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(a[i].source, "192.0.2.9") == 0) {
            CHECK_EQ(a[i].unauthorized, 25);
            CHECK_EQ(a[i].throttled, 25);
        } else {
            CHECK_STR(a[i].source, "2001:db8::/64");
            CHECK_EQ(a[i].forbidden, 1);
        }
    }
    CHECK_EQ(hub_throttle_audit_take(a, 8), 0);
    hub_throttle_free();
}

int main(void)
{
    RUN(test_free_then_delay);
    RUN(test_ipv6_prefix);
    RUN(test_success_forgives_once);
    RUN(test_bounded_table);
    RUN(test_audit_aggregates);
    HARNESS_EXIT();
}
