#include "db/tickets.h"

#include <stdio.h>
#include <stdlib.h>

#include "db/db.h"
#include "util/error.h"

int hub_db_tickets_get_wrap(PGconn *c, int lock, hub_buf_t *out)
{
    PGresult *r;
    int rc = hub_db_exec_row(c, &r,
                             lock ? "SELECT key_sealed FROM ticket_wrap_key WHERE id = 1 FOR UPDATE"
                                  : "SELECT key_sealed FROM ticket_wrap_key WHERE id = 1",
                             0, NULL);
    if (rc != 0)
        return rc;
    rc = hub_db_get_bytea(r, 0, 0, out);
    PQclear(r);
    return rc;
}

int hub_db_tickets_put_wrap(PGconn *c, const uint8_t *sealed, size_t len, int replace)
{
    hub_buf_t hex = HUB_BUF_INIT;
    int rc = hub_db_bytea_param(sealed, len, &hex);
    if (rc == 0) {
        const char *p[] = {(char *)hex.data};
        rc = hub_db_exec(c, NULL,
                         replace ? "UPDATE ticket_wrap_key SET key_sealed = $1 WHERE id = 1"
                                 : "INSERT INTO ticket_wrap_key (id, key_sealed) VALUES (1, $1)"
                                   " ON CONFLICT (id) DO NOTHING",
                         1, p);
    }
    hub_buf_free(&hex);
    return rc;
}

void hub_db_tickets_free_keys(struct hub_db_ticket_key *k, size_t n)
{
    if (k == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        hub_buf_free(&k[i].wrapped);
    free(k);
}

int hub_db_tickets_list_keys(PGconn *c, uint32_t max_age_s, struct hub_db_ticket_key **out,
                             size_t *n, int64_t *now)
{
    char age[16];
    PGresult *r;
    *out = NULL;
    *n = 0;
    snprintf(age, sizeof age, "%u", max_age_s);
    const char *p[] = {age};
    int rc = hub_db_exec(c, &r,
                         "SELECT id, extract(epoch FROM created_at)::bigint, key_wrapped,"
                         " extract(epoch FROM now())::bigint FROM ticket_keys"
                         " WHERE created_at > now() - make_interval(secs => $1::int)"
                         " ORDER BY created_at, id",
                         1, p);
    if (rc != 0)
        return rc;
    size_t rows = (size_t)PQntuples(r);
    struct hub_db_ticket_key *k = rows ? calloc(rows, sizeof *k) : NULL;
    if (rows > 0 && k == NULL)
        rc = HUB_ENOMEM;
    for (size_t i = 0; rc == 0 && i < rows; i++) {
        k[i].id = (uint32_t)strtoul(PQgetvalue(r, (int)i, 0), NULL, 10);
        k[i].created = strtoll(PQgetvalue(r, (int)i, 1), NULL, 10);
        rc = hub_db_get_bytea(r, (int)i, 2, &k[i].wrapped);
    }
    if (rc == 0) {
        PGresult *t = NULL;
        if (rows == 0)
            rc = hub_db_exec(c, &t, "SELECT extract(epoch FROM now())::bigint", 0, NULL);
        if (rc == 0)
            *now = strtoll(PQgetvalue(rows ? r : t, 0, rows ? 3 : 0), NULL, 10);
        PQclear(t);
    }
    PQclear(r);
    if (rc != 0) {
        hub_db_tickets_free_keys(k, rows);
        return rc;
    }
    *out = k;
    *n = rows;
    return 0;
}

int hub_db_tickets_insert_key(PGconn *c, int (*wrap)(uint32_t id, hub_buf_t *out, void *arg),
                              void *arg, uint32_t *id, int64_t *created)
{
    PGresult *r;
    hub_buf_t blob = HUB_BUF_INIT, hex = HUB_BUF_INIT;
    int rc =
        hub_db_exec(c, &r, "SELECT nextval(pg_get_serial_sequence('ticket_keys', 'id'))", 0, NULL);
    if (rc != 0)
        return rc;
    char ids[24];
    hub_db_get_text(r, 0, 0, ids, sizeof ids);
    PQclear(r);
    unsigned long v = strtoul(ids, NULL, 10);
    if (v == 0 || v > UINT32_MAX)
        return HUB_ERANGE;
    rc = wrap((uint32_t)v, &blob, arg);
    if (rc == 0)
        rc = hub_db_bytea_param(blob.data, blob.len, &hex);
    if (rc == 0) {
        const char *p[] = {ids, (char *)hex.data};
        rc = hub_db_exec(c, &r,
                         "INSERT INTO ticket_keys (id, key_wrapped) VALUES ($1, $2)"
                         " RETURNING extract(epoch FROM created_at)::bigint",
                         2, p);
    }
    if (rc == 0) {
        *id = (uint32_t)v;
        *created = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    hub_buf_free(&blob);
    hub_buf_free(&hex);
    return rc;
}

int hub_db_tickets_prune_keys(PGconn *c, uint32_t max_age_s, int *deleted)
{
    char age[16];
    PGresult *r;
    snprintf(age, sizeof age, "%u", max_age_s);
    const char *p[] = {age};
    int rc = hub_db_exec(c, &r,
                         "DELETE FROM ticket_keys"
                         " WHERE created_at <= now() - make_interval(secs => $1::int)",
                         1, p);
    if (rc != 0)
        return rc;
    if (deleted != NULL)
        *deleted = atoi(PQcmdTuples(r));
    PQclear(r);
    return 0;
}
