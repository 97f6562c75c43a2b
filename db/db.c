#include "db/db.h"

#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/error.h"
#include "util/log.h"

/* Copies the first line of text into dst (cap bytes, truncated, NUL-terminated): libpq's
 * messages end with a newline and may continue with DETAIL lines. */
static void first_line(char *dst, size_t cap, const char *text)
{
    snprintf(dst, cap, "%s", text);
    dst[strcspn(dst, "\n")] = 0;
}

/* Server notices (warnings) go to the log, not to stderr raw. */
static void notice_cb(void *arg, const char *message)
{
    char line[512];
    first_line(line, sizeof line, message);
    hub_debug("database notice: %s", line);
}

/* Keeps every timestamp we read in UTC and fails fast rather than wait on locks forever. */
static void session_setup(PGconn *c)
{
    PQclear(PQexec(c, "SET TIME ZONE 'UTC'; SET lock_timeout = '10s'"));
}

int hub_db_connect(const char *url, PGconn **out)
{
    /* A default connect timeout; one given in url wins (it is expanded after). */
    const char *keys[] = {"connect_timeout", "dbname", NULL};
    const char *vals[] = {"5", url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        char line[512];
        first_line(line, sizeof line, c ? PQerrorMessage(c) : "out of memory");
        hub_error("database connection failed: %s", line);
        PQfinish(c);
        *out = NULL;
        return HUB_EDBDOWN;
    }
    PQsetNoticeProcessor(c, notice_cb, NULL);
    session_setup(c);
    *out = c;
    return 0;
}

int hub_db_reset(PGconn *c)
{
    PQreset(c);
    if (PQstatus(c) != CONNECTION_OK)
        return HUB_EDBDOWN;
    session_setup(c);
    hub_info("database connection re-established");
    return 0;
}

int hub_db_idle_ok(PGconn *c)
{
    if (c == NULL || PQstatus(c) != CONNECTION_OK)
        return 0;
    /* Nothing arrives on an idle connection unless the server is going away (a FATAL
     * "terminating connection", then EOF) or the connection was reset. */
    struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
    if (poll(&pfd, 1, 0) == 0)
        return 1;
    hub_info("database connection closed by the server while idle: reconnecting");
    return 0;
}

int hub_db_xact_lock(PGconn *c, long long key)
{
    char k[24];
    snprintf(k, sizeof k, "%lld", key);
    const char *p[] = {k};
    int rc = hub_db_exec(c, NULL, "SET LOCAL lock_timeout = '300s'", 0, NULL);
    return rc ? rc : hub_db_exec(c, NULL, "SELECT pg_advisory_xact_lock($1::bigint)", 1, p);
}

const struct hub_histogram_bounds hub_db_latency_bounds = {
    11, {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}};

/* Any thread runs queries: relaxed atomics, one add per query, no lock. */
static struct hub_histogram_atomic latency;
static _Atomic unsigned long long failures[2];

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void observe(uint64_t t0)
{
    hub_histogram_atomic_observe(&latency, &hub_db_latency_bounds, mono_us() - t0);
}

void hub_db_stats(struct hub_db_stats *out)
{
    hub_histogram_atomic_snapshot(&latency, &out->latency);
    out->errors = atomic_load_explicit(&failures[0], memory_order_relaxed);
    out->unavailable = atomic_load_explicit(&failures[1], memory_order_relaxed);
}

/* Logs a failed query with the start of its text and the server's message. */
static int query_failed(PGconn *c, PGresult *r, const char *sql)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    int rc = HUB_EDB;
    if (PQstatus(c) != CONNECTION_OK)
        rc = HUB_EDBDOWN;
    else if (state != NULL && strcmp(state, "23505") == 0)
        rc = HUB_EEXIST;
    if (rc != HUB_EEXIST) {
        atomic_fetch_add_explicit(&failures[rc == HUB_EDBDOWN], 1, memory_order_relaxed);
        char line[512], head[49];
        first_line(line, sizeof line, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        first_line(head, sizeof head, sql); /* the first 48 characters */
        hub_error("database query \"%s...\" failed: %s", head, line);
    }
    PQclear(r);
    return rc;
}

int hub_db_exec_script(PGconn *c, const char *sql)
{
    uint64_t t0 = mono_us();
    PGresult *r = PQexec(c, sql);
    observe(t0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        PQclear(r);
        return 0;
    }
    return query_failed(c, r, sql);
}

int hub_db_exec_bin(PGconn *c, PGresult **res, const char *sql, int n, const char *const *params,
                    const int *lengths, const int *formats, int result_format)
{
    if (res != NULL)
        *res = NULL;
    uint64_t t0 = mono_us();
    PGresult *r = PQexecParams(c, sql, n, NULL, params, lengths, formats, result_format);
    observe(t0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (res != NULL)
            *res = r;
        else
            PQclear(r);
        return 0;
    }
    return query_failed(c, r, sql);
}

int hub_db_exec(PGconn *c, PGresult **res, const char *sql, int n, const char *const *params)
{
    return hub_db_exec_bin(c, res, sql, n, params, NULL, NULL, 0);
}

int hub_db_exec_row(PGconn *c, PGresult **res, const char *sql, int n, const char *const *params)
{
    int rc = hub_db_exec(c, res, sql, n, params);
    if (rc == 0 && PQntuples(*res) == 0) {
        PQclear(*res);
        *res = NULL;
        return HUB_ENOTFOUND;
    }
    return rc;
}

int hub_db_begin(PGconn *c)
{
    return hub_db_exec(c, NULL, "BEGIN", 0, NULL);
}

int hub_db_commit(PGconn *c)
{
    return hub_db_exec(c, NULL, "COMMIT", 0, NULL);
}

void hub_db_rollback(PGconn *c)
{
    PQclear(PQexec(c, "ROLLBACK"));
}

int hub_db_notify(PGconn *c, const char *channel, const char *payload)
{
    const char *p[] = {channel, payload};
    return hub_db_exec(c, NULL, "SELECT pg_notify($1, $2)", 2, p);
}

int hub_db_query_json(PGconn *c, const char *sql, int n, const char *const *params, json_t **out)
{
    PGresult *r;
    *out = NULL;
    int rc = hub_db_exec_row(c, &r, sql, n, params);
    if (rc != 0)
        return rc;
    if (PQgetisnull(r, 0, 0)) {
        PQclear(r);
        return HUB_ENOTFOUND;
    }
    json_error_t e;
    *out = json_loads(PQgetvalue(r, 0, 0), 0, &e);
    PQclear(r);
    if (*out == NULL) {
        hub_error("database returned invalid JSON: %s", e.text);
        return HUB_EDB;
    }
    return 0;
}

int hub_db_query_text(PGconn *c, const char *sql, int n, const char *const *params, char *out,
                      size_t cap)
{
    PGresult *r;
    int rc = hub_db_exec_row(c, &r, sql, n, params);
    if (rc != 0)
        return rc;
    hub_db_get_text(r, 0, 0, out, cap);
    PQclear(r);
    return 0;
}

int hub_db_exec_one(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r;
    int rc = hub_db_exec(c, &r, sql, n, params);
    if (rc != 0)
        return rc;
    rc = atoi(PQcmdTuples(r)) > 0 ? 0 : HUB_ENOTFOUND;
    PQclear(r);
    return rc;
}

void hub_db_get_text(const PGresult *r, int row, int col, char *dst, size_t cap)
{
    snprintf(dst, cap, "%s", PQgetvalue(r, row, col));
}

int hub_db_get_bytea(const PGresult *r, int row, int col, hub_buf_t *out)
{
    size_t n;
    unsigned char *p = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
    if (p == NULL)
        return HUB_EINVAL;
    int rc = hub_buf_append(out, p, n);
    PQfreemem(p);
    return rc;
}

int hub_db_bytea_param(const uint8_t *p, size_t n, hub_buf_t *out)
{
    static const char digits[] = "0123456789abcdef";
    int rc = hub_buf_reserve(out, 2 + 2 * n);
    if (rc != 0)
        return rc;
    hub_buf_append(out, "\\x", 2);
    for (size_t i = 0; i < n; i++) {
        out->data[out->len++] = (uint8_t)digits[p[i] >> 4];
        out->data[out->len++] = (uint8_t)digits[p[i] & 15];
    }
    out->data[out->len] = 0;
    return 0;
}

int hub_db_query_secret(PGconn *c, const char *sql, const char *key, struct hub_db_secret *out)
{
    const char *p[] = {key};
    PGresult *r;
    memset(out, 0, sizeof *out);
    int rc = hub_db_exec_row(c, &r, sql, 1, p);
    if (rc != 0)
        return rc;
    out->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    hub_db_get_text(r, 0, 1, out->hash, sizeof out->hash);
    hub_db_get_text(r, 0, 2, out->status, sizeof out->status);
    hub_db_get_text(r, 0, 3, out->extra, sizeof out->extra);
    PQclear(r);
    return 0;
}

int hub_db_query_sealed(PGconn *c, const char *sql, struct hub_db_sealed **list, size_t *n)
{
    PGresult *r;
    int rc = hub_db_exec(c, &r, sql, 0, NULL);
    if (rc != 0)
        return rc;
    size_t rows = (size_t)PQntuples(r);
    struct hub_db_sealed *grown = realloc(*list, (*n + rows + 1) * sizeof **list);
    if (grown == NULL)
        rc = HUB_ENOMEM;
    else
        *list = grown;
    for (size_t i = 0; rc == 0 && i < rows; i++) {
        struct hub_db_sealed *k = &(*list)[*n];
        memset(k, 0, sizeof *k);
        k->ca_id = atoi(PQgetvalue(r, (int)i, 0));
        hub_db_get_text(r, (int)i, 1, k->role, sizeof k->role);
        hub_db_get_text(r, (int)i, 2, k->serial, sizeof k->serial);
        (*n)++;
        rc = hub_db_get_bytea(r, (int)i, 3, &k->blob);
    }
    PQclear(r);
    return rc;
}
