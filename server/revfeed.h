/* The revocation feed: keeps a revocation set in step with PostgreSQL. A thread-pool job
 * connects, LISTENs on iothub_revocation and then loads every revoked serial (in that
 * order, so nothing revoked in between is missed); the loop then polls the connection's
 * socket and applies each NOTIFY at once. When the connection drops the set is kept, and
 * the job runs again after a back-off. Everything but the job runs on the loop thread. */
#ifndef HUB_SERVER_REVFEED_H
#define HUB_SERVER_REVFEED_H

#include <stdint.h>

#include <uv.h>

#include "net/revset.h"

struct hub_revfeed;

/* Called on the loop for each serial (upper-case hex) revoked while the feed runs, with
 * "device:<id>" when a device is revoked or reset, and with NULL after a reconnect reloaded
 * the set (re-check every live connection). */
typedef void (*hub_revfeed_cb)(const char *serial_hex, void *ctx);

/* Starts the feed on loop. set is borrowed and must outlive the feed. Returns 0 or
 * HUB_ENOMEM; connection failures are retried, not returned. */
int hub_revfeed_start(uv_loop_t *loop, const char *db_url, hub_revset_t *set,
                      hub_revfeed_cb on_revoked, void *ctx, struct hub_revfeed **out);
/* Stops the feed; its memory is released once pending work and handles have closed (the
 * loop must keep running until then). */
void hub_revfeed_stop(struct hub_revfeed *f);
/* Counters, written on the loop thread. */
struct hub_revfeed_stats {
    unsigned long long attempts; /* connect + LISTEN + load jobs started (the first included) */
    unsigned long long loads;    /* of which succeeded */
    uint64_t last_load_ms;       /* uv_now() of the last successful load; 0: never */
};

/* Copies the counters. Loop thread only. */
void hub_revfeed_stats(const struct hub_revfeed *f, struct hub_revfeed_stats *out);
/* 1 once the set has been loaded from the database at least once. */
int hub_revfeed_ready(const struct hub_revfeed *f);

#endif
