/* Latency histogram for iothub-bench: log-linear buckets (64 per power of two, < 1.6 %
 * error) over nanoseconds in a fixed array, so recording never allocates. */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#define BENCH_HIST_BUCKETS (58 * 64 + 64)

typedef struct bench_hist {
    uint64_t counts[BENCH_HIST_BUCKETS];
    uint64_t n;
    uint64_t max;
} bench_hist_t;

/* Records one value (nanoseconds). */
void bench_hist_add(bench_hist_t *h, uint64_t ns);

/* The value at quantile q (0..1), as the middle of its bucket; 0 when empty. The maximum is
 * exact (h->max). */
uint64_t bench_hist_quantile(const bench_hist_t *h, double q);

#endif
