/* The revocation feed: keeps a revocation set in step with PostgreSQL. A listener of the
 * node's LISTEN connection (server/pgfeed.h): after each (re)connect and LISTEN on
 * iothub_revocation it loads every revoked serial (in that order, so nothing revoked in
 * between is missed); each NOTIFY is applied at once on the loop. When the connection drops
 * the set is kept until the next load. Everything but the load runs on the loop thread. */
#ifndef HUB_SERVER_REVFEED_H
#define HUB_SERVER_REVFEED_H

#include <stdint.h>

#include <uv.h>

#include "net/revset.h"
#include "server/pgfeed.h"

struct hub_revfeed;

/* Called on the loop for each serial (upper-case hex) revoked while the feed runs, with
 * "device:<id>" when a device is revoked or reset, and with NULL after a reconnect reloaded
 * the set (re-check every live connection). */
typedef void (*hub_revfeed_cb)(const char *serial_hex, void *ctx);

/* Adds the feed to pg (before hub_pgfeed_start). set is borrowed and must outlive the
 * feed's callbacks (they stop with hub_revfeed_stop). Returns 0 or HUB_ENOMEM. */
int hub_revfeed_start(uv_loop_t *loop, struct hub_pgfeed *pg, hub_revset_t *set,
                      hub_revfeed_cb on_revoked, void *ctx, struct hub_revfeed **out);
/* Stops the feed's callbacks; its memory goes when pg has stopped (hub_pgfeed_stop). */
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
