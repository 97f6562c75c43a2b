/* Duration histograms as /metrics shows them (Prometheus "histogram": cumulative buckets
 * with upper bounds in seconds, +Inf, _sum and _count). Two kinds of counters share the
 * bucket rule: struct hub_histogram, plain integers for one writer thread (a listener's loop
 * owns its handshake histogram), and struct hub_histogram_atomic, relaxed atomics any thread
 * may add to without a lock (database queries). */
#ifndef HUB_UTIL_HISTOGRAM_H
#define HUB_UTIL_HISTOGRAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define HUB_HISTOGRAM_MAX_BOUNDS 12

/* Bucket upper bounds in seconds, ascending (n <= HUB_HISTOGRAM_MAX_BOUNDS); +Inf implied. */
struct hub_histogram_bounds {
    size_t n;
    double le[HUB_HISTOGRAM_MAX_BOUNDS];
};

/* Counts per bucket (not cumulative; index n is +Inf) and the total in microseconds. */
struct hub_histogram {
    uint64_t bucket[HUB_HISTOGRAM_MAX_BOUNDS + 1];
    uint64_t sum_us;
};

struct hub_histogram_atomic {
    _Atomic uint64_t bucket[HUB_HISTOGRAM_MAX_BOUNDS + 1];
    _Atomic uint64_t sum_us;
};

/* Counts one duration of us microseconds in h. The caller's thread must be h's only
 * writer. */
void hub_histogram_observe(struct hub_histogram *h, const struct hub_histogram_bounds *b,
                           uint64_t us);
/* Adds from's counts to into (both plain; the caller serialises). */
void hub_histogram_merge(struct hub_histogram *into, const struct hub_histogram *from);
/* Counts one duration in h with relaxed atomic adds, no lock; any thread. */
void hub_histogram_atomic_observe(struct hub_histogram_atomic *h,
                                  const struct hub_histogram_bounds *b, uint64_t us);
/* Copies h's counts into out (relaxed loads, each counter read once); any thread. */
void hub_histogram_atomic_snapshot(struct hub_histogram_atomic *h, struct hub_histogram *out);
/* Appends the _bucket, _sum and _count lines of metric name (no HELP/TYPE). labels is ""
 * or a label list without braces ("listener=\"mtls\""), put before le. Returns 0 or the
 * hub_buf error. */
int hub_histogram_render(hub_buf_t *out, const char *name, const char *labels,
                         const struct hub_histogram_bounds *b, const struct hub_histogram *h);

#endif
