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
                                   " WHERE ca_id = $1 ORDER BY crl_number DESC LIMIT 1"
                                 : "SELECT crl_number, extract(epoch FROM this_update)::bigint,"
                                   " extract(epoch FROM next_update)::bigint FROM crls"
                                   " WHERE ca_id = $1 ORDER BY crl_number DESC LIMIT 1",
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
