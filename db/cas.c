#include "db/cas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

/* Fills ca from columns 0-5 (id, serial, key_type, cert_der, key_sealed, key_uri) of row i. On
 * failure the buffers filled so far stay in ca, for hub_db_cas_free. */
static int ca_from_row(const PGresult *r, int i, struct hub_db_ca *ca)
{
    ca->id = atoi(PQgetvalue(r, i, 0));
    hub_db_get_text(r, i, 1, ca->serial, sizeof ca->serial);
    hub_db_get_text(r, i, 2, ca->key_type, sizeof ca->key_type);
    hub_db_get_text(r, i, 5, ca->key_uri, sizeof ca->key_uri);
    int rc = hub_db_get_bytea(r, i, 3, &ca->cert_der);
    return rc != 0 || PQgetisnull(r, i, 4) ? rc : hub_db_get_bytea(r, i, 4, &ca->key_sealed);
}

int hub_db_cas_get(PGconn *c, const char *role, struct hub_db_ca *out)
{
    memset(out, 0, sizeof *out);
    const char *p[] = {role};
    PGresult *r;
    int rc = hub_db_exec_row(c, &r,
                             "SELECT id, serial, key_type, cert_der, key_sealed, key_uri FROM cas"
                             " WHERE role = $1 AND active",
                             1, p);
    if (rc != 0)
        return rc;
    rc = ca_from_row(r, 0, out);
    PQclear(r);
    if (rc != 0)
        hub_db_cas_free(out);
    return rc;
}

void hub_db_cas_free(struct hub_db_ca *ca)
{
    hub_buf_free(&ca->cert_der);
    hub_buf_free(&ca->key_sealed);
}

int hub_db_cas_list_retired(PGconn *c, struct hub_db_ca **out, size_t *n)
{
    PGresult *r;
    *out = NULL;
    *n = 0;
    int rc = hub_db_exec(c, &r,
                         "SELECT id, serial, key_type, cert_der, key_sealed, key_uri FROM cas"
                         " WHERE role = 'issuing' AND NOT active AND not_after > now()"
                         " ORDER BY id",
                         0, NULL);
    if (rc != 0)
        return rc;
    size_t rows = (size_t)PQntuples(r);
    if (rows > 0 && (*out = calloc(rows, sizeof **out)) == NULL)
        rc = HUB_ENOMEM;
    for (size_t i = 0; rc == 0 && i < rows; i++) {
        (*n)++;
        rc = ca_from_row(r, (int)i, &(*out)[i]);
    }
    PQclear(r);
    if (rc != 0) {
        for (size_t i = 0; i < *n; i++)
            hub_db_cas_free(&(*out)[i]);
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int hub_db_cas_retire_issuing(PGconn *c, int *generation)
{
    PGresult *r;
    int rc = hub_db_exec_row(c, &r,
                             "WITH retired AS (UPDATE cas SET active = false"
                             " WHERE role = 'issuing' AND active RETURNING id)"
                             " SELECT count(*) + (SELECT count(*) FROM retired) FROM cas"
                             " WHERE role = 'issuing' AND NOT active",
                             0, NULL);
    if (rc != 0)
        return rc;
    *generation = atoi(PQgetvalue(r, 0, 0)) + 1;
    PQclear(r);
    return 0;
}

int hub_db_cas_insert(PGconn *c, const char *role, const char *subject, const char *key_type,
                      const char *serial, const hub_buf_t *der, const hub_buf_t *key_sealed,
                      time_t not_before, time_t not_after, int *id_out)
{
    hub_buf_t der_hex = HUB_BUF_INIT, key_hex = HUB_BUF_INIT;
    char nb[24], na[24];
    snprintf(nb, sizeof nb, "%lld", (long long)not_before);
    snprintf(na, sizeof na, "%lld", (long long)not_after);
    PGresult *r = NULL;
    int rc = hub_db_bytea_param(der->data, der->len, &der_hex);
    if (rc == 0 && key_sealed != NULL) /* NULL: an external root, no key here */
        rc = hub_db_bytea_param(key_sealed->data, key_sealed->len, &key_hex);
    if (rc == 0) {
        const char *p[] = {role,         subject,
                           key_type,     serial,
                           (char *)der_hex.data, key_sealed ? (char *)key_hex.data : NULL,
                           nb,           na};
        rc = hub_db_exec(c, &r,
                         "INSERT INTO cas (role, subject, key_type, serial, cert_der, key_sealed,"
                         " not_before, not_after) VALUES ($1, $2, $3, $4, $5, $6,"
                         " to_timestamp($7), to_timestamp($8)) RETURNING id",
                         8, p);
    }
    if (rc == 0)
        *id_out = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    hub_buf_free(&der_hex);
    hub_buf_free(&key_hex);
    return rc;
}

int hub_db_cas_insert_token(PGconn *c, const char *role, const char *subject,
                            const char *key_type, const char *serial, const hub_buf_t *der,
                            const char *key_uri, time_t not_before, time_t not_after,
                            int *id_out)
{
    hub_buf_t der_hex = HUB_BUF_INIT;
    char nb[24], na[24];
    snprintf(nb, sizeof nb, "%lld", (long long)not_before);
    snprintf(na, sizeof na, "%lld", (long long)not_after);
    PGresult *r = NULL;
    int rc = hub_db_bytea_param(der->data, der->len, &der_hex);
    if (rc == 0) {
        const char *p[] = {role, subject, key_type, serial, (char *)der_hex.data, key_uri, nb, na};
        rc = hub_db_exec(c, &r,
                         "INSERT INTO cas (role, subject, key_type, serial, cert_der, key_uri,"
                         " not_before, not_after) VALUES ($1, $2, $3, $4, $5, $6,"
                         " to_timestamp($7), to_timestamp($8)) RETURNING id",
                         8, p);
    }
    if (rc == 0)
        *id_out = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    hub_buf_free(&der_hex);
    return rc;
}

int hub_db_cas_list_sealed(PGconn *c, struct hub_db_sealed **list, size_t *n)
{
    return hub_db_query_sealed(c,
                               "SELECT id, role, serial, key_sealed FROM cas"
                               " WHERE key_sealed IS NOT NULL ORDER BY id FOR UPDATE",
                               list, n);
}

int hub_db_cas_set_sealed(PGconn *c, int ca_id, const hub_buf_t *blob)
{
    hub_buf_t hex = HUB_BUF_INIT;
    char id[16], back[16];
    snprintf(id, sizeof id, "%d", ca_id);
    int rc = hub_db_bytea_param(blob->data, blob->len, &hex);
    if (rc == 0) {
        const char *p[] = {(char *)hex.data, id};
        rc = hub_db_query_text(c, "UPDATE cas SET key_sealed = $1 WHERE id = $2::int RETURNING id",
                               2, p, back, sizeof back);
    }
    hub_buf_free(&hex);
    return rc;
}
