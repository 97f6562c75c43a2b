/* Unit tests for util/histogram: the bucket rule (a bound is inclusive), merging, the atomic
 * kind, and the Prometheus lines with and without labels. */
#include <string.h>

#include "tests/unit/harness.h"
#include "util/histogram.h"

static const struct hub_histogram_bounds B = {3, {0.001, 0.01, 0.1}};

static void test_buckets(void)
{
    struct hub_histogram h;
    memset(&h, 0, sizeof h);
    hub_histogram_observe(&h, &B, 0);
    hub_histogram_observe(&h, &B, 1000);   /* exactly 1 ms: first bucket */
    hub_histogram_observe(&h, &B, 1001);   /* just over: second */
    hub_histogram_observe(&h, &B, 100000); /* exactly the last bound */
    hub_histogram_observe(&h, &B, 100001); /* +Inf */
    CHECK_EQ(h.bucket[0], 2);
    CHECK_EQ(h.bucket[1], 1);
    CHECK_EQ(h.bucket[2], 1);
    CHECK_EQ(h.bucket[3], 1);
    CHECK_EQ(h.sum_us, 0 + 1000 + 1001 + 100000 + 100001);

    struct hub_histogram sum;
    memset(&sum, 0, sizeof sum);
    hub_histogram_merge(&sum, &h);
    hub_histogram_merge(&sum, &h);
    CHECK_EQ(sum.bucket[0], 4);
    CHECK_EQ(sum.bucket[3], 2);
    CHECK_EQ(sum.sum_us, 2 * h.sum_us);
}

static void test_atomic(void)
{
    static struct hub_histogram_atomic a;
    hub_histogram_atomic_observe(&a, &B, 5000);
    hub_histogram_atomic_observe(&a, &B, 5000);
    hub_histogram_atomic_observe(&a, &B, 2000000);
    struct hub_histogram s;
    hub_histogram_atomic_snapshot(&a, &s);
    CHECK_EQ(s.bucket[0], 0);
    CHECK_EQ(s.bucket[1], 2);
    CHECK_EQ(s.bucket[3], 1);
    CHECK_EQ(s.sum_us, 2010000);
}

static void test_render(void)
{
    struct hub_histogram h;
    memset(&h, 0, sizeof h);
    hub_histogram_observe(&h, &B, 500);
    hub_histogram_observe(&h, &B, 50000);
    hub_histogram_observe(&h, &B, 3000000);
    hub_buf_t out = HUB_BUF_INIT;
    CHECK_EQ(hub_histogram_render(&out, "x_seconds", "", &B, &h), 0);
    CHECK_STR((char *)out.data, "x_seconds_bucket{le=\"0.001\"} 1\n"
                                "x_seconds_bucket{le=\"0.01\"} 1\n"
                                "x_seconds_bucket{le=\"0.1\"} 2\n"
                                "x_seconds_bucket{le=\"+Inf\"} 3\n"
                                "x_seconds_sum 3.050500\n"
                                "x_seconds_count 3\n");
    out.len = 0;
    CHECK_EQ(hub_histogram_render(&out, "x_seconds", "listener=\"mtls\"", &B, &h), 0);
    CHECK_STR((char *)out.data, "x_seconds_bucket{listener=\"mtls\",le=\"0.001\"} 1\n"
                                "x_seconds_bucket{listener=\"mtls\",le=\"0.01\"} 1\n"
                                "x_seconds_bucket{listener=\"mtls\",le=\"0.1\"} 2\n"
                                "x_seconds_bucket{listener=\"mtls\",le=\"+Inf\"} 3\n"
                                "x_seconds_sum{listener=\"mtls\"} 3.050500\n"
                                "x_seconds_count{listener=\"mtls\"} 3\n");
    hub_buf_free(&out);
}

int main(void)
{
    RUN(test_buckets);
    RUN(test_atomic);
    RUN(test_render);
    HARNESS_EXIT();
}
