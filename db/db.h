/* Blocking PostgreSQL access for commands (init, migrate, ca) and worker threads. Event
 * loops never call these: they hand the work to a thread (uv_queue_work). */
#ifndef HUB_DB_DB_H
#define HUB_DB_DB_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

/* Opens a connection to url. Returns 0, or HUB_EDBDOWN with the libpq message logged. */
int hub_db_connect(const char *url, PGconn **out);
/* Runs sql with n text parameters (NULL entries are SQL NULL). On success stores the
 * result in *res (caller PQclear()s it; res may be NULL to discard) and returns 0; else
 * logs the server message and returns HUB_EDB (HUB_EDBDOWN if the connection is gone,
 * HUB_EEXIST on a unique violation). */
int hub_db_exec(PGconn *c, PGresult **res, const char *sql, int n, const char *const *params);
/* Like hub_db_exec for a query that must return a row: HUB_ENOTFOUND (result cleared)
 * when it returns none. */
int hub_db_exec_row(PGconn *c, PGresult **res, const char *sql, int n,
                    const char *const *params);
/* Like hub_db_exec, with per-parameter lengths/formats (1 = binary, for bytea) and the
 * result format (1 = binary). */
int hub_db_exec_bin(PGconn *c, PGresult **res, const char *sql, int n,
                    const char *const *params, const int *lengths, const int *formats,
                    int result_format);
/* Runs a script of several statements (simple query protocol, no parameters). */
int hub_db_exec_script(PGconn *c, const char *sql);

/* Every query run through hub_db_exec* (any connection, any thread): latency histogram and
 * failures, as relaxed atomic counters. */
#define HUB_DB_BUCKETS 11
extern const double hub_db_latency_bounds[HUB_DB_BUCKETS]; /* seconds; +Inf implied */
struct hub_db_stats {
    unsigned long long bucket[HUB_DB_BUCKETS + 1]; /* per bucket, not cumulative; last +Inf */
    unsigned long long sum_us;
    unsigned long long errors;      /* failed queries (unique violations not counted) */
    unsigned long long unavailable; /* failed because the connection was lost */
};
void hub_db_stats(struct hub_db_stats *out);
/* Re-establishes a broken connection and its session settings. Returns 0 or HUB_EDBDOWN. */
int hub_db_reset(PGconn *c);
/* Takes a transaction-scoped advisory lock (released at COMMIT/ROLLBACK). It serialises
 * admin commands (init, rekey), so it waits up to 5 minutes, not the usual lock_timeout; the
 * longer timeout holds for the rest of the transaction. */
int hub_db_xact_lock(PGconn *c, long long key);
/* BEGIN / COMMIT / ROLLBACK. Rollback never fails loudly (it is the cleanup path). */
int hub_db_begin(PGconn *c);
int hub_db_commit(PGconn *c);
void hub_db_rollback(PGconn *c);



#include "util/buf.h"

/* Appends the bytea value of a text-format result cell to out. Returns 0 or HUB_EINVAL. */
int hub_db_get_bytea(const PGresult *r, int row, int col, hub_buf_t *out);
/* Formats a bytea as a text parameter ("\x..." hex) into out (NUL-terminated). */
int hub_db_bytea_param(const uint8_t *p, size_t n, hub_buf_t *out);
#endif
