#include "db/db.h"

#include <string.h>

#include "util/error.h"
#include "util/log.h"

/* Server notices (warnings) go to the log, not to stderr raw. */
static void notice_cb(void *arg, const char *message)
{
    char line[512];
    snprintf(line, sizeof line, "%s", message);
    line[strcspn(line, "\n")] = 0;
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
        const char *msg = c ? PQerrorMessage(c) : "out of memory";
        char line[512];
        snprintf(line, sizeof line, "%s", msg);
        line[strcspn(line, "\n")] = 0;
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

int hub_db_xact_lock(PGconn *c, long long key)
{
    char k[24];
    snprintf(k, sizeof k, "%lld", key);
    const char *p[] = {k};
    return hub_db_exec(c, NULL, "SELECT pg_advisory_xact_lock($1::bigint)", 1, p);
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
        char line[512];
        snprintf(line, sizeof line, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        line[strcspn(line, "\n")] = 0;
        char head[64];
        snprintf(head, sizeof head, "%.48s", sql);
        head[strcspn(head, "\n")] = 0;
        hub_error("database query \"%s...\" failed: %s", head, line);
    }
    PQclear(r);
    return rc;
}

int hub_db_exec_script(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        PQclear(r);
        return 0;
    }
    return query_failed(c, r, sql);
}

int hub_db_exec_bin(PGconn *c, PGresult **res, const char *sql, int n,
                    const char *const *params, const int *lengths, const int *formats,
                    int result_format)
{
    if (res != NULL)
        *res = NULL;
    PGresult *r = PQexecParams(c, sql, n, NULL, params, lengths, formats, result_format);
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

int hub_db_exec_row(PGconn *c, PGresult **res, const char *sql, int n,
                    const char *const *params)
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
