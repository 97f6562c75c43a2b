/* Log-linear histogram: values below 128 have a bucket each; above, a value with its top bit
 * at position p lands in bucket (p - 6) * 64 + (v >> (p - 6)). */
#include "tests/bench/hist.h"

static unsigned bucket_of(uint64_t v)
{
    if (v < 128)
        return (unsigned)v;
    unsigned shift = 63u - (unsigned)__builtin_clzll(v) - 6u;
    return shift * 64u + (unsigned)(v >> shift);
}

static uint64_t bucket_mid(unsigned idx)
{
    if (idx < 128)
        return idx;
    unsigned shift = idx / 64u - 1u;
    uint64_t low = (uint64_t)(idx - shift * 64u) << shift;
    return low + ((1ull << shift) >> 1);
}

void bench_hist_add(bench_hist_t *h, uint64_t ns)
{
    unsigned b = bucket_of(ns);
    if (b >= BENCH_HIST_BUCKETS)
        b = BENCH_HIST_BUCKETS - 1;
    h->counts[b]++;
    h->n++;
    if (ns > h->max)
        h->max = ns;
}

uint64_t bench_hist_quantile(const bench_hist_t *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->n);
    if (rank >= h->n)
        rank = h->n - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen > rank) {
            uint64_t mid = bucket_mid(i);
            return mid > h->max ? h->max : mid;
        }
    }
    return h->max;
}
