/* A node's cache of firmware chunks for downloads. Images never change once ready, so a
 * chunk (firmware id, seq) read from PostgreSQL is shared, refcounted, by every download
 * that needs it: a thousand devices fetching one image cost one read of each chunk instead of
 * a thousand, and the API's small database pool stays free for the rest of the API. The
 * cache holds at most its capacity in bytes of chunks nobody reads (least recently used
 * first out); chunks being read are kept until released, so memory is bounded by the
 * capacity plus one chunk per download in progress. A miss is loaded once: concurrent
 * readers of the same chunk wait for the first one's query. Any thread. */
#ifndef HUB_API_FIRMWARE_CACHE_H
#define HUB_API_FIRMWARE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "db/pool.h"

struct hub_fw_chunk {
    const uint8_t *data;
    size_t len;
};

/* Sets the capacity (bytes; 0: no caching, every chunk is read for its reader alone). */
void hub_fw_cache_init(size_t capacity);
/* Gets chunk seq of image id (from the cache, or read with a connection of pool, waiting at
 * most wait_ms for one). On 0, *out is a reference the caller gives back with
 * hub_fw_cache_release. Returns 0, HUB_ENOTFOUND, or a pool/database HUB_E* code. */
int hub_fw_cache_get(hub_db_pool_t *pool, int wait_ms, const char *id, int seq,
                     const struct hub_fw_chunk **out);
/* Releases a reference from hub_fw_cache_get. */
void hub_fw_cache_release(const struct hub_fw_chunk *c);
/* Counters for /metrics: hits, misses (reads from the database), bytes held now. */
void hub_fw_cache_stats(unsigned long long *hits, unsigned long long *misses, size_t *bytes);

#endif
