#include "db/crls.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "db/db.h"

int hub_db_crls_next_number(PGconn *c, int ca_id, uint64_t *number)
{
    char ca[16];
    snprintf(ca, sizeof ca, "%d", ca_id);
    const char *p[] = {ca};
    PGresult *r;
    int rc = hub_db_exec_row(c, &r,
                             "UPDATE cas SET crl_number = crl_number + 1 WHERE id = $1"
                             " RETURNING crl_number",
                             1, p);
    if (rc != 0)
        return rc;
    *number = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

int hub_db_crls_insert(PGconn *c, int ca_id, uint64_t number, time_t this_update,
                       time_t next_update, size_t entries, const hub_buf_t *der)
{
    hub_buf_t der_hex = HUB_BUF_INIT;
    char ca[16], num[24], tu[24], nu[24], cnt[24];
    snprintf(ca, sizeof ca, "%d", ca_id);
    snprintf(num, sizeof num, "%" PRIu64, number);
    snprintf(tu, sizeof tu, "%lld", (long long)this_update);
    snprintf(nu, sizeof nu, "%lld", (long long)next_update);
    snprintf(cnt, sizeof cnt, "%zu", entries);
    int rc = hub_db_bytea_param(der->data, der->len, &der_hex);
    if (rc == 0) {
        const char *p[] = {ca, num, tu, nu, cnt, (char *)der_hex.data};
        rc = hub_db_exec(c, NULL,
                         "INSERT INTO crls (ca_id, crl_number, this_update, next_update, entries,"
                         " der) VALUES ($1, $2, to_timestamp($3), to_timestamp($4), $5, $6)",
                         6, p);
    }
    hub_buf_free(&der_hex);
    return rc;
}

int hub_db_crls_latest(PGconn *c, int ca_id, hub_buf_t *der, uint64_t *number, time_t *this_update,
                       time_t *next_update)
{
    char ca[16];
    snprintf(ca, sizeof ca, "%d", ca_id);
    const char *p[] = {ca};
    PGresult *r;
    int rc = hub_db_exec_row(c, &r,
                             der ? "SELECT crl_number, extract(epoch FROM this_update)::bigint,"
                                   " extract(epoch FROM next_update)::bigint, der FROM crls"
                                   " WHERE ca_id = $1 AND base_number IS NULL"
                                   " ORDER BY crl_number DESC LIMIT 1"
                                 : "SELECT crl_number, extract(epoch FROM this_update)::bigint,"
                                   " extract(epoch FROM next_update)::bigint FROM crls"
                                   " WHERE ca_id = $1 AND base_number IS NULL"
                                   " ORDER BY crl_number DESC LIMIT 1",
                             1, p);
    if (rc != 0)
        return rc;
    *number = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    *this_update = (time_t)strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    *next_update = (time_t)strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    if (der != NULL)
        rc = hub_db_get_bytea(r, 0, 3, der);
    PQclear(r);
    return rc;
}

int hub_db_crls_record(PGconn *c, int ca_id, const struct hub_db_crl *row, const hub_buf_t *der)
{
    char ca[16], num[24], tu[24], nu[24], cnt[24], base[24], wm[24];
    snprintf(ca, sizeof ca, "%d", ca_id);
    snprintf(num, sizeof num, "%" PRIu64, row->number);
    snprintf(tu, sizeof tu, "%lld", (long long)row->this_update);
    snprintf(nu, sizeof nu, "%lld", (long long)row->next_update);
    snprintf(cnt, sizeof cnt, "%zu", row->entries);
    snprintf(base, sizeof base, "%" PRIu64, row->base_number);
    snprintf(wm, sizeof wm, "%lld", (long long)row->watermark);
    /* The DER as a binary parameter: a 50 MB CRL is not hex-encoded twice over. */
    const char *p[] = {ca, num, tu, nu, cnt, (const char *)der->data,
                       row->base_number ? base : NULL, row->watermark ? wm : NULL};
    const int lens[] = {0, 0, 0, 0, 0, (int)der->len, 0, 0};
    const int formats[] = {0, 0, 0, 0, 0, 1, 0, 0};
    return hub_db_exec_bin(c, NULL,
                           "INSERT INTO crls (ca_id, crl_number, this_update, next_update, entries,"
                           " der, base_number, watermark) VALUES ($1, $2, to_timestamp($3),"
                           " to_timestamp($4), $5, $6, $7, to_timestamp($8))",
                           8, p, lens, formats, 0);
}

int hub_db_crls_newest(PGconn *c, int ca_id, int delta, hub_buf_t *der, struct hub_db_crl *out)
{
    char ca[16];
    snprintf(ca, sizeof ca, "%d", ca_id);
    const char *p[] = {ca};
    PGresult *r;
#define NEWEST_COLUMNS                                                                       \
    "SELECT crl_number, extract(epoch FROM this_update)::bigint,"                            \
    " extract(epoch FROM next_update)::bigint, entries, coalesce(base_number, 0),"           \
    " coalesce(floor(extract(epoch FROM watermark))::bigint, 0),"                            \
    " floor(extract(epoch FROM now() - created_at) * 1000)::bigint"
    int rc = hub_db_exec_row(
        c, &r,
        delta ? (der ? NEWEST_COLUMNS ", der FROM crls WHERE ca_id = $1 AND base_number IS NOT"
                                      " NULL ORDER BY crl_number DESC LIMIT 1"
                     : NEWEST_COLUMNS " FROM crls WHERE ca_id = $1 AND base_number IS NOT NULL"
                                      " ORDER BY crl_number DESC LIMIT 1")
              : (der ? NEWEST_COLUMNS ", der FROM crls WHERE ca_id = $1 AND base_number IS"
                                      " NULL ORDER BY crl_number DESC LIMIT 1"
                     : NEWEST_COLUMNS " FROM crls WHERE ca_id = $1 AND base_number IS NULL"
                                      " ORDER BY crl_number DESC LIMIT 1"),
        1, p);
#undef NEWEST_COLUMNS
    if (rc != 0)
        return rc;
    out->number = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    out->this_update = (time_t)strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    out->next_update = (time_t)strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    out->entries = (size_t)strtoull(PQgetvalue(r, 0, 3), NULL, 10);
    out->base_number = strtoull(PQgetvalue(r, 0, 4), NULL, 10);
    out->watermark = (time_t)strtoll(PQgetvalue(r, 0, 5), NULL, 10);
    out->age_ms = strtoll(PQgetvalue(r, 0, 6), NULL, 10);
    if (der != NULL)
        rc = hub_db_get_bytea(r, 0, 7, der);
    PQclear(r);
    return rc;
}

int hub_db_crls_try_lock(PGconn *c, int ca_id, int *got)
{
    char ca[16];
    snprintf(ca, sizeof ca, "%d", ca_id);
    const char *p[] = {ca};
    char t[8];
    int rc = hub_db_query_text(c, "SELECT pg_try_advisory_xact_lock(" HUB_DB_CRL_LOCK_CLASS
                                  ", $1::integer)",
                               1, p, t, sizeof t);
    *got = rc == 0 && t[0] == 't';
    return rc;
}

int hub_db_crls_watermark(PGconn *c, time_t *out)
{
    char t[24];
    /* Every revocation sets revoked_at = now(), its transaction's start (xact_start here):
     * one not committed yet is a transaction still open now, which started no earlier
     * than the oldest xact_start of this database's sessions (ours included). Read in a
     * statement before the one that lists the revocations, whose snapshot is newer. */
    int rc = hub_db_query_text(c,
                               "SELECT floor(extract(epoch FROM least(now(), (SELECT"
                               " min(xact_start) FROM pg_stat_activity WHERE datname ="
                               " current_database()))))::bigint",
                               0, NULL, t, sizeof t);
    if (rc == 0)
        *out = (time_t)strtoll(t, NULL, 10);
    return rc;
}

int hub_db_crls_prune(PGconn *c, int ca_id, uint64_t base, uint64_t delta, int history,
                      int limit, int *deleted)
{
    char ca[16], b[24], d[24], h[16], l[16];
    snprintf(ca, sizeof ca, "%d", ca_id);
    snprintf(b, sizeof b, "%" PRIu64, base);
    snprintf(d, sizeof d, "%" PRIu64, delta);
    snprintf(h, sizeof h, "%d", history);
    snprintf(l, sizeof l, "%d", limit);
    const char *p[] = {ca, b, d, h, l};
    PGresult *r;
    /* The history rows skipped, then one batch, newest first, on the primary key's index;
     * ARRAY(...) is computed once, so the DELETE itself is an index scan too. */
    int rc = hub_db_exec(c, &r,
                         "DELETE FROM crls WHERE ca_id = $1 AND crl_number = ANY (ARRAY("
                         "SELECT crl_number FROM crls WHERE ca_id = $1 AND crl_number <> $2 AND"
                         " crl_number <> $3 ORDER BY crl_number DESC OFFSET $4 LIMIT $5))",
                         5, p);
    if (rc != 0)
        return rc;
    *deleted = atoi(PQcmdTuples(r));
    PQclear(r);
    return 0;
}
