/* Blocking PostgreSQL access for commands (init, migrate, ca) and worker threads, and the
 * helpers the table modules share. Event loops never call these: they hand the work to a
 * thread (uv_queue_work). db/ is the only folder with SQL, one module per noun: products,
 * devices, services, tokens, audit, certificates, cas, crls, sealed, tickets. */
#ifndef HUB_DB_DB_H
#define HUB_DB_DB_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "util/buf.h"
#include "util/histogram.h"
#include "util/passhash.h"

/* Opens a connection to url. Returns 0, or HUB_EDBDOWN with the libpq message logged. */
int hub_db_connect(const char *url, PGconn **out);
/* Runs sql with n text parameters (NULL entries are SQL NULL). On success stores the
 * result in *res (caller PQclear()s it; res may be NULL to discard) and returns 0; else
 * logs the server message and returns HUB_EDB (HUB_EDBDOWN if the connection is gone,
 * HUB_EEXIST on a unique violation). */
int hub_db_exec(PGconn *c, PGresult **res, const char *sql, int n, const char *const *params);
/* Like hub_db_exec for a query that must return a row: HUB_ENOTFOUND (result cleared)
 * when it returns none. */
int hub_db_exec_row(PGconn *c, PGresult **res, const char *sql, int n, const char *const *params);
/* Like hub_db_exec, with per-parameter lengths/formats (1 = binary, for bytea) and the
 * result format (1 = binary). */
int hub_db_exec_bin(PGconn *c, PGresult **res, const char *sql, int n, const char *const *params,
                    const int *lengths, const int *formats, int result_format);
/* Runs a script of several statements (simple query protocol, no parameters). */
int hub_db_exec_script(PGconn *c, const char *sql);

/* Every query run through hub_db_exec* (any connection, any thread): latency histogram and
 * failures, as relaxed atomic counters. */
extern const struct hub_histogram_bounds hub_db_latency_bounds; /* seconds */
struct hub_db_stats {
    struct hub_histogram latency;
    unsigned long long errors;      /* failed queries (unique violations not counted) */
    unsigned long long unavailable; /* failed because the connection was lost */
};
void hub_db_stats(struct hub_db_stats *out);
/* Re-establishes a broken connection and its session settings. Returns 0 or HUB_EDBDOWN. */
int hub_db_reset(PGconn *c);
/* 1 when an idle connection may be trusted with a query: its status is OK and nothing
 * arrived on it while idle. libpq learns that the server closed a connection (a restart, an
 * outage, a proxy cutting it) only from the next query, which then fails: a connection kept
 * for lookups would refuse the first client after every outage. 0: reset it first (logged). */
int hub_db_idle_ok(PGconn *c);
/* Takes a transaction-scoped advisory lock (released at COMMIT/ROLLBACK). It serialises
 * admin commands (init, rekey), so it waits up to 5 minutes, not the usual lock_timeout; the
 * longer timeout holds for the rest of the transaction. */
int hub_db_xact_lock(PGconn *c, long long key);
/* BEGIN / COMMIT / ROLLBACK. Rollback never fails loudly (it is the cleanup path). */
int hub_db_begin(PGconn *c);
int hub_db_commit(PGconn *c);
void hub_db_rollback(PGconn *c);
/* NOTIFY channel, payload (delivered at commit). */
int hub_db_notify(PGconn *c, const char *channel, const char *payload);

/* Shared helpers of the table modules (db/products.c, db/devices.c, ...). Every one runs one
 * query on a caller-owned connection, like hub_db_exec, and logs the failures it reports. */

/* Runs a query whose single cell is JSON text built by PostgreSQL; *out gets it parsed (the
 * caller json_decref()s it). HUB_ENOTFOUND on no row or a NULL cell, HUB_EDB on bad JSON. */
int hub_db_query_json(PGconn *c, const char *sql, int n, const char *const *params, json_t **out);
/* Runs a query that must return a row and copies its first cell into out (cap bytes,
 * truncated, NUL-terminated): the id of an INSERT ... RETURNING id, a row-locked status. */
int hub_db_query_text(PGconn *c, const char *sql, int n, const char *const *params, char *out,
                      size_t cap);
/* Runs a statement expected to change one row; HUB_ENOTFOUND when none did. */
int hub_db_exec_one(PGconn *c, const char *sql, int n, const char *const *params);

/* Copies a text-format result cell into dst (cap bytes, truncated, NUL-terminated; "" for
 * NULL). */
void hub_db_get_text(const PGresult *r, int row, int col, char *dst, size_t cap);
/* Appends the bytea value of a text-format result cell to out. Returns 0 or HUB_EINVAL. */
int hub_db_get_bytea(const PGresult *r, int row, int col, hub_buf_t *out);
/* Formats a bytea as a text parameter ("\x..." hex) into out (NUL-terminated). */
int hub_db_bytea_param(const uint8_t *p, size_t n, hub_buf_t *out);

/* Row shapes that several table modules fill. */

#define HUB_SERIAL_HEX 41 /* a certificate serial: up to 20 bytes as hex, NUL */

/* A principal's stored credentials (db/products, db/devices, db/services). */
struct hub_db_secret {
    long long id; /* products.id (products only) */
    char hash[HUB_PASSHASH_MAX];
    char status[16]; /* devices/services: provisioned, active, revoked */
    char extra[64];  /* devices: product_key; services: name */
};
/* Runs sql with one parameter, key, and fills out from its row of (id, hash, status, extra)
 * text columns. HUB_ENOTFOUND when there is no such row. */
int hub_db_query_secret(PGconn *c, const char *sql, const char *key, struct hub_db_secret *out);

/* A sealed private key at rest: a CA's (db/cas) or a server certificate's
 * (db/certificates); db/sealed lists and rewrites them together. */
struct hub_db_sealed {
    int ca_id;                   /* cas.id, or 0 for a certificates row */
    char role[16];               /* cas.role, or "server" */
    char serial[HUB_SERIAL_HEX]; /* the certificate's serial (cas or certificates) */
    hub_buf_t blob;              /* owned: release with hub_db_sealed_free */
};
/* Runs sql (no parameters; rows of id, role, serial, sealed key) and appends its rows to the
 * malloc'ed array *list of *n entries. On failure the rows appended so far stay counted in
 * *n, for the caller's hub_db_sealed_free. */
int hub_db_query_sealed(PGconn *c, const char *sql, struct hub_db_sealed **list, size_t *n);

#endif
