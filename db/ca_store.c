#include "db/ca_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "util/error.h"

static void copy_text(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

int hub_db_ca_get(PGconn *c, const char *role, struct hub_db_ca *out)
{
    memset(out, 0, sizeof *out);
    const char *p[] = {role};
    PGresult *r;
    int rc = hub_db_exec_row(c, &r,
                             "SELECT id, serial, key_type, cert_der, key_sealed FROM cas"
                             " WHERE role = $1 AND active",
                             1, p);
    if (rc != 0)
        return rc;
    out->id = atoi(PQgetvalue(r, 0, 0));
    copy_text(out->serial, sizeof out->serial, PQgetvalue(r, 0, 1));
    copy_text(out->key_type, sizeof out->key_type, PQgetvalue(r, 0, 2));
    rc = hub_db_get_bytea(r, 0, 3, &out->cert_der);
    if (rc == 0)
        rc = hub_db_get_bytea(r, 0, 4, &out->key_sealed);
    PQclear(r);
    if (rc != 0)
        hub_db_ca_free(out);
    return rc;
}

int hub_db_sealed_list(PGconn *c, struct hub_db_sealed **out, size_t *n)
{
    static const char *const sql[] = {
        "SELECT id, role, serial, key_sealed FROM cas WHERE key_sealed IS NOT NULL"
        " ORDER BY id FOR UPDATE",
        "SELECT 0, kind, serial, key_sealed FROM certificates WHERE key_sealed IS NOT NULL"
        " ORDER BY serial FOR UPDATE",
    };
    *out = NULL;
    *n = 0;
    int rc = 0;
    for (size_t q = 0; q < 2 && rc == 0; q++) {
        PGresult *r;
        rc = hub_db_exec(c, &r, sql[q], 0, NULL);
        if (rc != 0)
            break;
        size_t rows = (size_t)PQntuples(r);
        struct hub_db_sealed *grown = realloc(*out, (*n + rows + 1) * sizeof **out);
        if (grown == NULL)
            rc = HUB_ENOMEM;
        else
            *out = grown;
        for (size_t i = 0; rc == 0 && i < rows; i++) {
            struct hub_db_sealed *k = &(*out)[*n];
            memset(k, 0, sizeof *k);
            k->ca_id = atoi(PQgetvalue(r, (int)i, 0));
            copy_text(k->role, sizeof k->role, PQgetvalue(r, (int)i, 1));
            copy_text(k->serial, sizeof k->serial, PQgetvalue(r, (int)i, 2));
            (*n)++;
            rc = hub_db_get_bytea(r, (int)i, 3, &k->blob);
        }
        PQclear(r);
    }
    if (rc != 0) {
        hub_db_sealed_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

void hub_db_sealed_free(struct hub_db_sealed *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hub_buf_free(&list[i].blob);
    free(list);
}

int hub_db_sealed_update(PGconn *c, const struct hub_db_sealed *key, const hub_buf_t *blob)
{
    hub_buf_t hex = HUB_BUF_INIT;
    char id[16];
    snprintf(id, sizeof id, "%d", key->ca_id);
    int rc = hub_db_bytea_param(blob->data, blob->len, &hex);
    if (rc == 0) {
        const char *p[] = {(char *)hex.data, key->ca_id ? id : key->serial};
        PGresult *r = NULL;
        rc = hub_db_exec_row(c, &r,
                             key->ca_id ? "UPDATE cas SET key_sealed = $1 WHERE id = $2::int"
                                          " RETURNING id"
                                        : "UPDATE certificates SET key_sealed = $1"
                                          " WHERE serial = $2 RETURNING serial",
                             2, p);
        PQclear(r);
    }
    hub_buf_free(&hex);
    return rc;
}

void hub_db_ca_free(struct hub_db_ca *ca)
{
    hub_buf_free(&ca->cert_der);
    hub_buf_free(&ca->key_sealed);
}

int hub_db_ca_list_retired(PGconn *c, struct hub_db_ca **out, size_t *n)
{
    PGresult *r;
    *out = NULL;
    *n = 0;
    int rc = hub_db_exec(c, &r,
                         "SELECT id, serial, key_type, cert_der, key_sealed FROM cas"
                         " WHERE role = 'issuing' AND NOT active AND not_after > now()"
                         " ORDER BY id",
                         0, NULL);
    if (rc != 0)
        return rc;
    size_t rows = (size_t)PQntuples(r);
    if (rows > 0 && (*out = calloc(rows, sizeof **out)) == NULL)
        rc = HUB_ENOMEM;
    for (size_t i = 0; rc == 0 && i < rows; i++) {
        struct hub_db_ca *ca = &(*out)[i];
        ca->id = atoi(PQgetvalue(r, (int)i, 0));
        copy_text(ca->serial, sizeof ca->serial, PQgetvalue(r, (int)i, 1));
        copy_text(ca->key_type, sizeof ca->key_type, PQgetvalue(r, (int)i, 2));
        (*n)++;
        rc = hub_db_get_bytea(r, (int)i, 3, &ca->cert_der);
        if (rc == 0)
            rc = hub_db_get_bytea(r, (int)i, 4, &ca->key_sealed);
    }
    PQclear(r);
    if (rc != 0) {
        for (size_t i = 0; i < *n; i++)
            hub_db_ca_free(&(*out)[i]);
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int hub_db_ca_retire_issuing(PGconn *c, int *generation)
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

int hub_db_ca_insert(PGconn *c, const char *role, const char *subject, const char *key_type,
                     const char *serial, const hub_buf_t *der, const hub_buf_t *key_sealed,
                     time_t not_before, time_t not_after, int *id_out)
{
    hub_buf_t der_hex = HUB_BUF_INIT, key_hex = HUB_BUF_INIT;
    char nb[24], na[24];
    snprintf(nb, sizeof nb, "%lld", (long long)not_before);
    snprintf(na, sizeof na, "%lld", (long long)not_after);
    PGresult *r = NULL;
    int rc = hub_db_bytea_param(der->data, der->len, &der_hex);
    if (rc == 0)
        rc = hub_db_bytea_param(key_sealed->data, key_sealed->len, &key_hex);
    if (rc == 0) {
        const char *p[] = {
            role, subject, key_type, serial, (char *)der_hex.data, (char *)key_hex.data, nb, na};
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

int hub_db_cert_insert(PGconn *c, const struct hub_db_cert *cert)
{
    hub_buf_t der_hex = HUB_BUF_INIT, key_hex = HUB_BUF_INIT;
    char ca[16], nb[24], na[24];
    snprintf(ca, sizeof ca, "%d", cert->ca_id);
    snprintf(nb, sizeof nb, "%lld", (long long)cert->not_before);
    snprintf(na, sizeof na, "%lld", (long long)cert->not_after);
    int rc = hub_db_bytea_param(cert->der, cert->der_len, &der_hex);
    if (rc == 0 && cert->key_sealed != NULL)
        rc = hub_db_bytea_param(cert->key_sealed, cert->key_sealed_len, &key_hex);
    if (rc == 0) {
        const char *p[] = {cert->serial,
                           ca,
                           cert->kind,
                           cert->device_id,
                           cert->service_id,
                           cert->subject,
                           (char *)der_hex.data,
                           cert->key_sealed ? (char *)key_hex.data : NULL,
                           nb,
                           na};
        rc = hub_db_exec(c, NULL,
                         "INSERT INTO certificates (serial, ca_id, kind, device_id, service_id,"
                         " subject, der, key_sealed, not_before, not_after) VALUES ($1, $2, $3,"
                         " $4, $5, $6, $7, $8, to_timestamp($9), to_timestamp($10))",
                         10, p);
    }
    hub_buf_free(&der_hex);
    hub_buf_free(&key_hex);
    return rc;
}

int hub_db_server_cert_get(PGconn *c, time_t min_not_after, char serial[HUB_SERIAL_HEX],
                           hub_buf_t *der, hub_buf_t *key_sealed)
{
    char t[24];
    snprintf(t, sizeof t, "%lld", (long long)min_not_after);
    const char *p[] = {t};
    PGresult *r;
    int rc =
        hub_db_exec_row(c, &r,
                        "SELECT serial, der, key_sealed FROM certificates WHERE kind = 'server'"
                        " AND status = 'valid' AND not_after > to_timestamp($1)"
                        " ORDER BY not_after DESC LIMIT 1",
                        1, p);
    if (rc != 0)
        return rc;
    copy_text(serial, HUB_SERIAL_HEX, PQgetvalue(r, 0, 0));
    rc = hub_db_get_bytea(r, 0, 1, der);
    if (rc == 0)
        rc = hub_db_get_bytea(r, 0, 2, key_sealed);
    PQclear(r);
    return rc;
}

int hub_db_cert_revoke(PGconn *c, const char *serial, int reason, int *ca_id)
{
    char reason_s[8];
    snprintf(reason_s, sizeof reason_s, "%d", reason);
    const char *p[] = {serial, reason_s};
    PGresult *r;
    int rc = hub_db_exec(c, &r,
                         "UPDATE certificates SET status = 'revoked', revoked_at = now(),"
                         " revocation_reason = $2 WHERE serial = $1 AND status = 'valid'"
                         " RETURNING ca_id",
                         2, p);
    if (rc != 0)
        return rc;
    int changed = PQntuples(r);
    if (changed > 0 && ca_id != NULL)
        *ca_id = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (changed > 0)
        return 0;
    rc = hub_db_exec(c, &r, "SELECT 1 FROM certificates WHERE serial = $1", 1, p);
    if (rc != 0)
        return rc;
    rc = PQntuples(r) > 0 ? HUB_EEXIST : HUB_ENOTFOUND;
    PQclear(r);
    return rc;
}

int hub_db_revoked_list(PGconn *c, int ca_id, struct hub_db_revoked **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    char ca[16];
    snprintf(ca, sizeof ca, "%d", ca_id);
    const char *p[] = {ca};
    PGresult *r;
    int rc = hub_db_exec(c, &r,
                         "SELECT serial, floor(extract(epoch FROM revoked_at))::bigint,"
                         " coalesce(revocation_reason, 0) FROM certificates"
                         " WHERE ca_id = $1 AND status = 'revoked' AND not_after > now()"
                         " ORDER BY revoked_at, serial",
                         1, p);
    if (rc != 0)
        return rc;
    size_t rows = (size_t)PQntuples(r);
    if (rows > 0) {
        *out = calloc(rows, sizeof **out);
        if (*out == NULL) {
            PQclear(r);
            return HUB_ENOMEM;
        }
    }
    for (size_t i = 0; i < rows; i++) {
        copy_text((*out)[i].serial, HUB_SERIAL_HEX, PQgetvalue(r, (int)i, 0));
        (*out)[i].revoked_at = (time_t)strtoll(PQgetvalue(r, (int)i, 1), NULL, 10);
        (*out)[i].reason = atoi(PQgetvalue(r, (int)i, 2));
    }
    *n = rows;
    PQclear(r);
    return 0;
}

int hub_db_crl_next_number(PGconn *c, int ca_id, uint64_t *number)
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

int hub_db_crl_insert(PGconn *c, int ca_id, uint64_t number, time_t this_update, time_t next_update,
                      size_t entries, const hub_buf_t *der)
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

int hub_db_crl_latest(PGconn *c, int ca_id, hub_buf_t *der, uint64_t *number, time_t *this_update,
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

/* Copies the first column of every row (serials) into a malloc'ed array; clears r. */
static int collect_serials(PGresult *r, char (**out)[HUB_SERIAL_HEX], size_t *n)
{
    size_t rows = (size_t)PQntuples(r);
    *out = NULL;
    *n = 0;
    if (rows > 0 && (*out = calloc(rows, HUB_SERIAL_HEX)) == NULL) {
        PQclear(r);
        return HUB_ENOMEM;
    }
    for (size_t i = 0; i < rows; i++)
        copy_text((*out)[i], HUB_SERIAL_HEX, PQgetvalue(r, (int)i, 0));
    *n = rows;
    PQclear(r);
    return 0;
}

int hub_db_revoked_serials(PGconn *c, char (**out)[HUB_SERIAL_HEX], size_t *n)
{
    PGresult *r;
    *out = NULL;
    *n = 0;
    int rc = hub_db_exec(c, &r,
                         "SELECT serial FROM certificates WHERE status = 'revoked'"
                         " AND not_after > now()",
                         0, NULL);
    return rc != 0 ? rc : collect_serials(r, out, n);
}

int hub_db_valid_serials(PGconn *c, const char *owner_column, const char *owner_id,
                         char (**serials)[HUB_SERIAL_HEX], size_t *n)
{
    const char *p[] = {owner_id};
    PGresult *r;
    *serials = NULL;
    *n = 0;
    int rc = hub_db_exec(c, &r,
                         strcmp(owner_column, "service_id") == 0
                             ? "SELECT serial FROM certificates WHERE service_id = $1::uuid"
                               " AND status = 'valid' ORDER BY serial"
                             : "SELECT serial FROM certificates WHERE device_id = $1::uuid"
                               " AND status = 'valid' ORDER BY serial",
                         1, p);
    return rc != 0 ? rc : collect_serials(r, serials, n);
}

int hub_db_listen_revocations(PGconn *c)
{
    return hub_db_exec(c, NULL, "LISTEN iothub_revocation", 0, NULL);
}
