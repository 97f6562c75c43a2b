/* A fixed-size pool of blocking PostgreSQL connections shared by the REST API threads.
 * A connection found broken is reset on acquire; when the database is down, acquire fails
 * fast with HUB_EDBDOWN so callers answer 503 instead of hanging. */
#ifndef HUB_DB_POOL_H
#define HUB_DB_POOL_H

#include <libpq-fe.h>

typedef struct hub_db_pool hub_db_pool_t;

/* Creates a pool of size connections to url; connections open lazily. NULL on ENOMEM. */
hub_db_pool_t *hub_db_pool_new(const char *url, int size);
/* Closes every connection; no connection may be checked out. */
void hub_db_pool_free(hub_db_pool_t *p);
/* Checks out a working connection, waiting up to timeout_ms for a free one. Returns 0,
 * HUB_EDBDOWN (database unreachable) or HUB_ERANGE (pool exhausted for timeout_ms). */
int hub_db_pool_acquire(hub_db_pool_t *p, int timeout_ms, PGconn **out);
/* Returns a connection. An open transaction is rolled back first. */
void hub_db_pool_release(hub_db_pool_t *p, PGconn *c);
struct hub_db_pool_stats {
    int size;                /* connections the pool may hold */
    int in_use;              /* checked out now */
    int open;                /* opened (in use or idle); the rest open lazily */
    unsigned long long busy; /* acquires that timed out with every connection busy */
    unsigned long long down; /* acquires that failed: database unreachable */
};
/* Copies the pool's state (under its mutex; any thread). */
void hub_db_pool_stats(hub_db_pool_t *p, struct hub_db_pool_stats *out);
/* Returns 1 if a short query succeeds on a pooled connection (health check). */
int hub_db_pool_ping(hub_db_pool_t *p);

#endif
