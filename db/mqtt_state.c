/* SQL of the durable MQTT state (db/mqtt_state.h). The writers are prepared once per
 * connection and sent into a libpq pipeline; topics, filters and payloads go as binary
 * parameters (the bytes as they are, no escaping, no NUL needed). tests/integration/
 * test_explain.sh EXPLAINs every statement of the table below against a populated
 * database. */
#include "db/mqtt_state.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "util/error.h"
#include "util/log.h"

enum {
    S_SESSION_OPEN,
    S_SESSION_GONE,
    S_SESSION_OFFLINE,
    S_SUB,
    S_UNSUB,
    S_MESSAGE,
    S_QUEUE,
    S_DELIVERED,
    S_STATE,
    S_INCOMING_ADD,
    S_INCOMING_DEL,
    S_RETAIN_SET,
    S_RETAIN_CLEAR,
    S_MESSAGES,
    S_QUEUES,
    S_COUNT
};

/* name, parameters, SQL: the writers (prepared). */
static const struct stmt {
    const char *name;
    int n;
    const char *sql;
} stmts[S_COUNT] = {
    [S_SESSION_OPEN] = {"mqtt_session_open", 3,
                        "INSERT INTO mqtt_sessions (key, owner, expiry_s) VALUES ($1, $2, $3)"
                        " ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner,"
                        " expiry_s = EXCLUDED.expiry_s, offline_at = NULL, updated_at = now()"},
    /* The end of a session, or its going offline, written by the node holding it ($2): a
     * node's late record for a session another node took over while it was cut from
     * PostgreSQL (a stale copy ended or expired there) leaves that node's rows alone. */
    [S_SESSION_OFFLINE] = {"mqtt_session_offline", 2,
                           "UPDATE mqtt_sessions SET offline_at = now() WHERE key = $1"
                           " AND owner IS NOT DISTINCT FROM $2"},
    [S_SESSION_GONE] = {"mqtt_session_gone", 2,
                        "WITH o AS (SELECT 1 FROM mqtt_sessions WHERE key = $1"
                        " AND owner IS DISTINCT FROM $2),"
                        " q AS (DELETE FROM mqtt_queue WHERE session_key = $1"
                        " AND NOT EXISTS (SELECT 1 FROM o)),"
                        " s AS (DELETE FROM mqtt_subscriptions WHERE session_key = $1"
                        " AND NOT EXISTS (SELECT 1 FROM o)),"
                        " i AS (DELETE FROM mqtt_incoming WHERE session_key = $1"
                        " AND NOT EXISTS (SELECT 1 FROM o))"
                        " DELETE FROM mqtt_sessions WHERE key = $1"
                        " AND owner IS NOT DISTINCT FROM $2"},
    [S_SUB] = {"mqtt_sub", 3,
               "INSERT INTO mqtt_subscriptions (session_key, filter, qos) VALUES ($1, $2, $3)"
               " ON CONFLICT (session_key, filter) DO UPDATE SET qos = EXCLUDED.qos"},
    [S_UNSUB] = {"mqtt_unsub", 2,
                 "DELETE FROM mqtt_subscriptions WHERE session_key = $1 AND filter = $2"},
    /* A message written again (a replay, another node) refreshes created_at when it is old,
     * which also row-locks it: the garbage collector's re-check then sees the new time. */
    [S_MESSAGE] = {"mqtt_message", 4,
                   "INSERT INTO mqtt_messages (id, topic, payload, qos) VALUES ($1, $2, $3, $4)"
                   " ON CONFLICT (id) DO UPDATE SET created_at = now()"
                   " WHERE mqtt_messages.created_at < now() - interval '30 seconds'"},
    [S_QUEUE] = {"mqtt_queue", 3,
                 "INSERT INTO mqtt_queue (session_key, msg_id, qos) VALUES ($1, $2, $3)"
                 " ON CONFLICT DO NOTHING"},
    [S_DELIVERED] = {"mqtt_delivered", 2,
                     "DELETE FROM mqtt_queue WHERE session_key = $1 AND msg_id = $2"},
    [S_STATE] = {"mqtt_delivery_state", 4,
                 "UPDATE mqtt_queue SET state = $3, packet_id = $4"
                 " WHERE session_key = $1 AND msg_id = $2"},
    [S_INCOMING_ADD] = {"mqtt_incoming_add", 2,
                        "INSERT INTO mqtt_incoming (session_key, packet_id) VALUES ($1, $2)"
                        " ON CONFLICT DO NOTHING"},
    [S_INCOMING_DEL] = {"mqtt_incoming_del", 2,
                        "DELETE FROM mqtt_incoming WHERE session_key = $1 AND packet_id = $2"},
    [S_RETAIN_SET] = {"mqtt_retain_set", 2,
                      "INSERT INTO mqtt_retained (topic, msg_id) VALUES ($1, $2)"
                      " ON CONFLICT (topic) DO UPDATE SET msg_id = EXCLUDED.msg_id"},
    [S_RETAIN_CLEAR] = {"mqtt_retain_clear", 1, "DELETE FROM mqtt_retained WHERE topic = $1"},
    /* Many rows at once; topics, payloads and keys are slices of one bytea ($1). */
    [S_MESSAGES] = {"mqtt_messages_many", 7,
                    "INSERT INTO mqtt_messages (id, topic, payload, qos) SELECT DISTINCT ON (u.id)"
                    " u.id, convert_from(substring($1::bytea FROM u.toff FOR u.tlen), 'UTF8'),"
                    " substring($1::bytea FROM u.poff FOR u.plen), u.qos FROM unnest($2::bigint[],"
                    " $3::int[], $4::int[], $5::int[], $6::int[], $7::smallint[])"
                    " AS u(id, toff, tlen, poff, plen, qos)"
                    " ON CONFLICT (id) DO UPDATE SET created_at = now()"
                    " WHERE mqtt_messages.created_at < now() - interval '30 seconds'"},
    [S_QUEUES] = {"mqtt_queue_many", 5,
                  "INSERT INTO mqtt_queue (session_key, msg_id, qos) SELECT"
                  " convert_from(substring($1::bytea FROM u.koff FOR u.klen), 'UTF8'), u.id, u.qos"
                  " FROM unnest($2::int[], $3::int[], $4::bigint[], $5::smallint[])"
                  " WITH ORDINALITY AS u(koff, klen, id, qos, n) ORDER BY u.n"
                  " ON CONFLICT DO NOTHING"},
};

int hub_db_mqtt_connect(const char *url, PGconn **out, char *why, size_t cap)
{
    const char *keys[] = {"connect_timeout", "dbname", NULL};
    const char *vals[] = {"5", url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    *out = NULL;
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        snprintf(why, cap, "%s", c ? PQerrorMessage(c) : "out of memory");
        why[strcspn(why, "\n")] = 0;
        PQfinish(c);
        return HUB_EDBDOWN;
    }
    PGresult *r = PQexec(c, "SET lock_timeout = '10s'");
    PQclear(r);
    *out = c;
    return 0;
}

int hub_db_mqtt_prepare(PGconn *c)
{
    for (size_t i = 0; i < S_COUNT; i++) {
        PGresult *r = PQprepare(c, stmts[i].name, stmts[i].sql, stmts[i].n, NULL);
        int ok = r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) {
            hub_error("mqtt store: preparing %s failed: %s", stmts[i].name,
                      r ? PQresultErrorMessage(r) : PQerrorMessage(c));
            PQclear(r);
            return PQstatus(c) == CONNECTION_OK ? HUB_EDB : HUB_EDBDOWN;
        }
        PQclear(r);
    }
    return 0;
}

int hub_db_mqtt_boot(PGconn *c, uint32_t *boot)
{
    char v[32];
    int rc = hub_db_query_text(c, "SELECT nextval('mqtt_boot_seq')", 0, NULL, v, sizeof v);
    if (rc == 0)
        *boot = (uint32_t)strtoull(v, NULL, 10);
    return rc;
}

/* ---- pipeline ----------------------------------------------------------------------------- */

int hub_db_mqtt_pipeline_enter(PGconn *c)
{
    return PQenterPipelineMode(c) == 1 ? 0 : HUB_EDBDOWN;
}

void hub_db_mqtt_pipeline_exit(PGconn *c)
{
    if (PQpipelineStatus(c) != PQ_PIPELINE_OFF && PQexitPipelineMode(c) != 1) {
        /* results left unread (a broken connection): the caller resets it */
    }
}

static int sent(int ok)
{
    return ok == 1 ? 0 : HUB_EDBDOWN;
}

int hub_db_mqtt_send_begin(PGconn *c)
{
    return sent(PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0));
}

int hub_db_mqtt_send_commit(PGconn *c)
{
    return sent(PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0));
}

int hub_db_mqtt_sync(PGconn *c, size_t *failed)
{
    *failed = 0;
    if (PQpipelineSync(c) != 1)
        return HUB_EDBDOWN;
    int nulls = 0;
    for (;;) {
        PGresult *r = PQgetResult(c);
        if (r == NULL) {
            /* the end of one statement's results; twice in a row (nothing left before the
             * sync) only when the connection is gone */
            if (PQstatus(c) != CONNECTION_OK || ++nulls > 1)
                return HUB_EDBDOWN;
            continue;
        }
        nulls = 0;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            return 0;
        }
        if (st == PGRES_FATAL_ERROR) {
            if (PQstatus(c) != CONNECTION_OK) {
                PQclear(r);
                return HUB_EDBDOWN;
            }
            if ((*failed)++ == 0) {
                char line[256];
                snprintf(line, sizeof line, "%s", PQresultErrorMessage(r));
                line[strcspn(line, "\n")] = 0;
                hub_error("mqtt store: a write failed: %s", line);
            }
        } else if (st == PGRES_PIPELINE_ABORTED) {
            (*failed)++;
        }
        PQclear(r);
    }
}

/* Sends prepared statement s with n parameters (lengths/formats may be NULL: text). */
static int send(PGconn *c, int s, const char *const *v, const int *lengths, const int *formats)
{
    return sent(PQsendQueryPrepared(c, stmts[s].name, stmts[s].n, v, lengths, formats, 0));
}

int hub_db_mqtt_send_session_open(PGconn *c, const char *key, const char *owner,
                                  uint32_t expiry_s)
{
    char e[16];
    snprintf(e, sizeof e, "%" PRIu32, expiry_s);
    const char *v[] = {key, owner, e};
    return send(c, S_SESSION_OPEN, v, NULL, NULL);
}

int hub_db_mqtt_send_session_gone(PGconn *c, const char *key, const char *owner)
{
    const char *v[] = {key, owner};
    return send(c, S_SESSION_GONE, v, NULL, NULL);
}

int hub_db_mqtt_send_session_offline(PGconn *c, const char *key, const char *owner)
{
    const char *v[] = {key, owner};
    return send(c, S_SESSION_OFFLINE, v, NULL, NULL);
}

int hub_db_mqtt_send_sub(PGconn *c, const char *key, const char *filter, size_t flen, int qos)
{
    char q[4];
    snprintf(q, sizeof q, "%d", qos);
    const char *v[] = {key, filter, q};
    const int len[] = {0, (int)flen, 0}, fmt[] = {0, 1, 0};
    return send(c, S_SUB, v, len, fmt);
}

int hub_db_mqtt_send_unsub(PGconn *c, const char *key, const char *filter, size_t flen)
{
    const char *v[] = {key, filter};
    const int len[] = {0, (int)flen}, fmt[] = {0, 1};
    return send(c, S_UNSUB, v, len, fmt);
}

int hub_db_mqtt_send_message(PGconn *c, uint64_t id, const char *topic, size_t tlen,
                             const uint8_t *payload, size_t len, int qos)
{
    char i[24], q[4];
    snprintf(i, sizeof i, "%" PRId64, (int64_t)id);
    snprintf(q, sizeof q, "%d", qos);
    const char *v[] = {i, topic, (const char *)payload, q};
    const int lens[] = {0, (int)tlen, (int)len, 0}, fmt[] = {0, 1, 1, 0};
    return send(c, S_MESSAGE, v, lens, fmt);
}

int hub_db_mqtt_send_queue(PGconn *c, const char *key, uint64_t id, int qos)
{
    char i[24], q[4];
    snprintf(i, sizeof i, "%" PRId64, (int64_t)id);
    snprintf(q, sizeof q, "%d", qos);
    const char *v[] = {key, i, q};
    return send(c, S_QUEUE, v, NULL, NULL);
}

int hub_db_mqtt_send_delivered(PGconn *c, const char *key, uint64_t id)
{
    char i[24];
    snprintf(i, sizeof i, "%" PRId64, (int64_t)id);
    const char *v[] = {key, i};
    return send(c, S_DELIVERED, v, NULL, NULL);
}

int hub_db_mqtt_send_delivery_state(PGconn *c, const char *key, uint64_t id, int state,
                                    uint16_t pid)
{
    char i[24], s[4], p[8];
    snprintf(i, sizeof i, "%" PRId64, (int64_t)id);
    snprintf(s, sizeof s, "%d", state);
    snprintf(p, sizeof p, "%u", (unsigned)pid);
    const char *v[] = {key, i, s, p};
    return send(c, S_STATE, v, NULL, NULL);
}

int hub_db_mqtt_send_incoming(PGconn *c, const char *key, uint16_t pid, int added)
{
    char p[8];
    snprintf(p, sizeof p, "%u", (unsigned)pid);
    const char *v[] = {key, p};
    return send(c, added ? S_INCOMING_ADD : S_INCOMING_DEL, v, NULL, NULL);
}

int hub_db_mqtt_send_retained(PGconn *c, const char *topic, size_t tlen, uint64_t id)
{
    char i[24];
    snprintf(i, sizeof i, "%" PRId64, (int64_t)id);
    const char *v[] = {topic, i};
    const int len[] = {(int)tlen, 0}, fmt[] = {1, 0};
    return id ? send(c, S_RETAIN_SET, v, len, fmt) : send(c, S_RETAIN_CLEAR, v, len, fmt);
}

/* ---- many rows in one statement ---------------------------------------------------------- */

/* Appends a number to column i's array literal ("{1,2"; closed when sent). */
static int col_num(struct hub_db_mqtt_rows *r, int i, long long v)
{
    return hub_buf_printf(&r->col[i], "%s%lld", r->n == 0 ? "{" : ",", v);
}

/* Appends bytes to the blob; *off gets their 1-based offset (SQL substring). */
static int blob(struct hub_db_mqtt_rows *r, const void *p, size_t n, long long *off)
{
    *off = (long long)r->blob.len + 1;
    return n ? hub_buf_append(&r->blob, p, n) : 0;
}

int hub_db_mqtt_rows_message(struct hub_db_mqtt_rows *r, uint64_t id, const char *topic,
                             size_t tlen, const uint8_t *payload, size_t len, int qos)
{
    long long toff, poff;
    int rc = blob(r, topic, tlen, &toff);
    if (rc == 0)
        rc = blob(r, payload, len, &poff);
    if (rc == 0)
        rc = col_num(r, 0, (long long)id) || col_num(r, 1, toff) ||
             col_num(r, 2, (long long)tlen) || col_num(r, 3, poff) ||
             col_num(r, 4, (long long)len) || col_num(r, 5, qos);
    if (rc == 0)
        r->n++;
    return rc ? HUB_ENOMEM : 0;
}

int hub_db_mqtt_rows_queue(struct hub_db_mqtt_rows *r, const char *key, size_t klen,
                           uint64_t id, int qos)
{
    long long koff;
    int rc = blob(r, key, klen, &koff);
    if (rc == 0)
        rc = col_num(r, 0, koff) || col_num(r, 1, (long long)klen) ||
             col_num(r, 2, (long long)id) || col_num(r, 3, qos);
    if (rc == 0)
        r->n++;
    return rc ? HUB_ENOMEM : 0;
}

/* Sends statement s with the blob and ncol array columns, then empties r. */
static int send_rows(PGconn *c, int s, struct hub_db_mqtt_rows *r, int ncol)
{
    const char *v[7];
    int len[7] = {0}, fmt[7] = {0};
    int rc = 0;
    if (r->n == 0)
        return 0;
    if (r->blob.len > INT32_MAX)
        return HUB_ERANGE;
    v[0] = r->blob.len ? (const char *)r->blob.data : "";
    len[0] = (int)r->blob.len;
    fmt[0] = 1;
    for (int i = 0; i < ncol && rc == 0; i++) {
        rc = hub_buf_puts(&r->col[i], "}");
        v[i + 1] = (const char *)r->col[i].data;
    }
    if (rc == 0)
        rc = sent(PQsendQueryPrepared(c, stmts[s].name, stmts[s].n, v, len, fmt, 0));
    r->blob.len = 0;
    for (int i = 0; i < 6; i++)
        r->col[i].len = 0;
    r->n = 0;
    return rc;
}

int hub_db_mqtt_send_messages(PGconn *c, struct hub_db_mqtt_rows *r)
{
    return send_rows(c, S_MESSAGES, r, 6);
}

int hub_db_mqtt_send_queues(PGconn *c, struct hub_db_mqtt_rows *r)
{
    return send_rows(c, S_QUEUES, r, 4);
}

void hub_db_mqtt_rows_free(struct hub_db_mqtt_rows *r)
{
    hub_buf_free(&r->blob);
    for (int i = 0; i < 6; i++)
        hub_buf_free(&r->col[i]);
    r->n = 0;
}

/* ---- garbage collection ------------------------------------------------------------------- */

int hub_db_mqtt_gc(PGconn *c, uint64_t *cursor, int limit, long *deleted)
{
    char cur[24], lim[16];
    snprintf(cur, sizeof cur, "%" PRId64, (int64_t)*cursor);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {cur, lim};
    PGresult *r;
    int rc = hub_db_exec_row(
        c, &r,
        "WITH w AS (SELECT id FROM mqtt_messages WHERE id > $1 ORDER BY id LIMIT $2),"
        " d AS (DELETE FROM mqtt_messages m WHERE m.id = ANY (ARRAY(SELECT id FROM w))"
        " AND m.created_at < now() - interval '60 seconds'"
        " AND NOT EXISTS (SELECT 1 FROM mqtt_queue q WHERE q.msg_id = m.id)"
        " AND NOT EXISTS (SELECT 1 FROM mqtt_retained t WHERE t.msg_id = m.id) RETURNING 1)"
        " SELECT (SELECT count(*) FROM w), (SELECT max(id) FROM w), (SELECT count(*) FROM d)",
        2, p);
    if (rc != 0)
        return rc;
    long seen = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    *cursor = seen < limit ? 0 : (uint64_t)strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    *deleted = strtol(PQgetvalue(r, 0, 2), NULL, 10);
    PQclear(r);
    return 0;
}

/* ---- loads -------------------------------------------------------------------------------- */

static uint64_t be(const PGresult *r, int row, int col)
{
    const uint8_t *p = (const uint8_t *)PQgetvalue(r, row, col);
    int n = PQgetlength(r, row, col);
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Runs sql with n parameters (0, or 1: owner) in single-row mode (binary results) and calls row for
 * each row. */
static int stream(PGconn *c, const char *sql, int n, const char *owner,
                  int (*row)(const PGresult *r, const struct hub_db_mqtt_loader *l),
                  const struct hub_db_mqtt_loader *l)
{
    const char *p[] = {owner};
    if (PQsendQueryParams(c, sql, n, NULL, p, NULL, NULL, 1) != 1 || PQsetSingleRowMode(c) != 1) {
        hub_error("mqtt store: load failed: %s", PQerrorMessage(c));
        return HUB_EDBDOWN;
    }
    int rc = 0;
    PGresult *r;
    while ((r = PQgetResult(c)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_SINGLE_TUPLE && rc == 0) {
            rc = row(r, l);
        } else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && rc == 0) {
            hub_error("mqtt store: load failed: %s", PQresultErrorMessage(r));
            rc = PQstatus(c) == CONNECTION_OK ? HUB_EDB : HUB_EDBDOWN;
        }
        PQclear(r);
    }
    return rc;
}

static int session_row(const PGresult *r, const struct hub_db_mqtt_loader *l)
{
    return l->session(l->ctx, PQgetvalue(r, 0, 0), (uint32_t)be(r, 0, 1), (uint32_t)be(r, 0, 2));
}

/* The columns of session_row: key, expiry_s, seconds offline (4294967295: not known). */
#define SESSION_COLS                                                                              \
    "SELECT key, expiry_s, coalesce(least(greatest(floor(extract(epoch FROM now() - offline_at)),"  \
    " 0), 4294967294)::bigint, 4294967295) FROM mqtt_sessions"


static int sub_row(const PGresult *r, const struct hub_db_mqtt_loader *l)
{
    return l->sub(l->ctx, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), (int)be(r, 0, 2));
}

static int delivery_row(const PGresult *r, const struct hub_db_mqtt_loader *l)
{
    return l->delivery(l->ctx, PQgetvalue(r, 0, 0), be(r, 0, 1), PQgetvalue(r, 0, 2),
                       (size_t)PQgetlength(r, 0, 2), (const uint8_t *)PQgetvalue(r, 0, 3),
                       (size_t)PQgetlength(r, 0, 3), (int)be(r, 0, 4), (int)be(r, 0, 5),
                       (uint16_t)be(r, 0, 6));
}

static int incoming_row(const PGresult *r, const struct hub_db_mqtt_loader *l)
{
    return l->incoming(l->ctx, PQgetvalue(r, 0, 0), (uint16_t)be(r, 0, 1));
}

static int retained_row(const PGresult *r, const struct hub_db_mqtt_loader *l)
{
    return l->retained(l->ctx, be(r, 0, 0), PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1),
                       (const uint8_t *)PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2),
                       (int)be(r, 0, 3));
}

int hub_db_mqtt_load(PGconn *c, const char *owner, const struct hub_db_mqtt_loader *l)
{
    int rc = stream(c,
                    SESSION_COLS " WHERE owner IS NOT DISTINCT FROM $1::text",
                    1, owner, session_row, l);
    if (rc == 0)
        rc = stream(c,
                    "SELECT b.session_key, b.filter, b.qos FROM mqtt_subscriptions b"
                    " JOIN mqtt_sessions s ON s.key = b.session_key"
                    " WHERE s.owner IS NOT DISTINCT FROM $1::text",
                    1, owner, sub_row, l);
    /* A queue row whose message is missing (written by a node whose batch lost the race
     * with the collector) cannot be delivered: the inner join skips it. */
    if (rc == 0)
        rc = stream(c,
                    "SELECT q.session_key, m.id, m.topic, m.payload, q.qos, q.state,"
                    " coalesce(q.packet_id, 0) FROM mqtt_queue q"
                    " JOIN mqtt_sessions s ON s.key = q.session_key"
                    " JOIN mqtt_messages m ON m.id = q.msg_id"
                    " WHERE s.owner IS NOT DISTINCT FROM $1::text ORDER BY q.session_key, q.seq",
                    1, owner, delivery_row, l);
    if (rc == 0)
        rc = stream(c,
                    "SELECT i.session_key, i.packet_id FROM mqtt_incoming i"
                    " JOIN mqtt_sessions s ON s.key = i.session_key"
                    " WHERE s.owner IS NOT DISTINCT FROM $1::text",
                    1, owner, incoming_row, l);
    /* Retained messages are the fleet's, whichever node wrote them. */
    if (rc == 0)
        rc = stream(c,
                    "SELECT m.id, t.topic, m.payload, m.qos FROM mqtt_retained t"
                    " JOIN mqtt_messages m ON m.id = t.msg_id",
                    0, NULL, retained_row, l);
    return rc;
}

/* ---- several nodes (server/takeover.c, server/directory.c) ------------------------------- */

int hub_db_mqtt_session_owner(PGconn *c, const char *key, char *owner, size_t cap, int *found)
{
    const char *p[] = {key};
    PGresult *r;
    *found = 0;
    owner[0] = 0;
    int rc = hub_db_exec(c, &r, "SELECT coalesce(owner, '') FROM mqtt_sessions WHERE key = $1", 1,
                         p);
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 1) {
        *found = 1;
        hub_db_get_text(r, 0, 0, owner, cap);
    }
    PQclear(r);
    return 0;
}

int hub_db_mqtt_load_session(PGconn *c, const char *key, const struct hub_db_mqtt_loader *l)
{
    int rc = stream(c, SESSION_COLS " WHERE key = $1", 1, key, session_row, l);
    if (rc == 0)
        rc = stream(c,
                    "SELECT session_key, filter, qos FROM mqtt_subscriptions WHERE session_key = $1",
                    1, key, sub_row, l);
    if (rc == 0)
        rc = stream(c,
                    "SELECT q.session_key, m.id, m.topic, m.payload, q.qos, q.state,"
                    " coalesce(q.packet_id, 0) FROM mqtt_queue q"
                    " JOIN mqtt_messages m ON m.id = q.msg_id"
                    " WHERE q.session_key = $1 ORDER BY q.seq",
                    1, key, delivery_row, l);
    if (rc == 0)
        rc = stream(c,
                    "SELECT session_key, packet_id FROM mqtt_incoming WHERE session_key = $1", 1,
                    key, incoming_row, l);
    return rc;
}

int hub_db_mqtt_set_owner(PGconn *c, const char *key, const char *owner)
{
    const char *p[] = {key, owner};
    return hub_db_exec(c, NULL, "UPDATE mqtt_sessions SET owner = $2 WHERE key = $1", 2, p);
}

int hub_db_mqtt_owned_elsewhere(PGconn *c, const char *keys, const char *owner,
                                int (*fn)(void *ctx, const char *key, const char *owner),
                                void *ctx)
{
    const char *p[] = {keys, owner};
    PGresult *r;
    int rc = hub_db_exec(c, &r,
                         "SELECT key, owner FROM mqtt_sessions WHERE key = ANY ($1::text[])"
                         " AND owner <> $2",
                         2, p);
    if (rc != 0)
        return rc;
    for (int i = 0; rc == 0 && i < PQntuples(r); i++)
        rc = fn(ctx, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
    PQclear(r);
    return rc;
}

int hub_db_mqtt_directory(PGconn *c, const char *owner,
                          int (*entry)(void *ctx, const char *key, const char *filter, int qos),
                          void *ctx)
{
    struct hub_db_mqtt_loader l = {.ctx = ctx, .sub = entry};
    return stream(c,
                  "SELECT b.session_key, b.filter, b.qos FROM mqtt_subscriptions b"
                  " JOIN mqtt_sessions s ON s.key = b.session_key"
                  " WHERE b.qos > 0 AND s.owner IS DISTINCT FROM $1::text ORDER BY b.session_key",
                  1, owner, sub_row, &l);
}
