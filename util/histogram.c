#include "util/histogram.h"

/* The first bucket whose bound us does not exceed; b->n (+Inf) past the last. */
static size_t bucket_of(const struct hub_histogram_bounds *b, uint64_t us)
{
    size_t i = 0;
    while (i < b->n && (double)us > b->le[i] * 1e6)
        i++;
    return i;
}

void hub_histogram_observe(struct hub_histogram *h, const struct hub_histogram_bounds *b,
                           uint64_t us)
{
    h->bucket[bucket_of(b, us)]++;
    h->sum_us += us;
}

void hub_histogram_merge(struct hub_histogram *into, const struct hub_histogram *from)
{
    for (size_t i = 0; i <= HUB_HISTOGRAM_MAX_BOUNDS; i++)
        into->bucket[i] += from->bucket[i];
    into->sum_us += from->sum_us;
}

void hub_histogram_atomic_observe(struct hub_histogram_atomic *h,
                                  const struct hub_histogram_bounds *b, uint64_t us)
{
    atomic_fetch_add_explicit(&h->bucket[bucket_of(b, us)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

void hub_histogram_atomic_snapshot(struct hub_histogram_atomic *h, struct hub_histogram *out)
{
    for (size_t i = 0; i <= HUB_HISTOGRAM_MAX_BOUNDS; i++)
        out->bucket[i] = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    out->sum_us = atomic_load_explicit(&h->sum_us, memory_order_relaxed);
}

int hub_histogram_render(hub_buf_t *out, const char *name, const char *labels,
                         const struct hub_histogram_bounds *b, const struct hub_histogram *h)
{
    const char *sep = labels[0] ? "," : "";
    const char *open = labels[0] ? "{" : "", *close = labels[0] ? "}" : "";
    unsigned long long cum = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < b->n; i++) {
        cum += h->bucket[i];
        rc = hub_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, b->le[i],
                            cum);
    }
    cum += h->bucket[b->n];
    if (rc == 0)
        rc = hub_buf_printf(out,
                            "%s_bucket{%s%sle=\"+Inf\"} %llu\n"
                            "%s_sum%s%s%s %.6f\n"
                            "%s_count%s%s%s %llu\n",
                            name, labels, sep, cum, name, open, labels, close,
                            (double)h->sum_us / 1e6, name, open, labels, close, cum);
    return rc;
}
