#include "db/certificates.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

int hub_db_certificates_insert(PGconn *c, const struct hub_db_cert *cert)
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

int hub_db_certificates_get(PGconn *c, const char *serial, json_t **out)
{
    const char *p[] = {serial};
    return hub_db_query_json(
        c, "SELECT certificate_json(x, true) FROM certificates x WHERE serial = $1", 1, p, out);
}

int hub_db_certificates_list(PGconn *c, const char *device_id, int limit, json_t **out)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {device_id, lim};
    return hub_db_query_json(c,
                             "SELECT coalesce(json_agg(certificate_json(x, true) ORDER BY"
                             " x.created_at DESC), '[]') FROM (SELECT * FROM certificates"
                             " WHERE $1::uuid IS NULL OR device_id = $1::uuid"
                             " ORDER BY created_at DESC LIMIT $2) x",
                             2, p, out);
}

int hub_db_certificates_get_server(PGconn *c, time_t min_not_after, char serial[HUB_SERIAL_HEX],
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
    hub_db_get_text(r, 0, 0, serial, HUB_SERIAL_HEX);
    rc = hub_db_get_bytea(r, 0, 1, der);
    if (rc == 0)
        rc = hub_db_get_bytea(r, 0, 2, key_sealed);
    PQclear(r);
    return rc;
}

int hub_db_certificates_revoke(PGconn *c, const char *serial, int reason, int *ca_id)
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
    if (changed > 0 && ca_id != NULL && !PQgetisnull(r, 0, 0)) /* NULL: a device CA's */
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

/* Copies rows (serial, revoked_at epoch, reason) into a malloc'ed array; clears r. */
static int collect_revoked(PGresult *r, struct hub_db_revoked **out, size_t *n)
{
    size_t rows = (size_t)PQntuples(r);
    if (rows > 0 && (*out = calloc(rows, sizeof **out)) == NULL) {
        PQclear(r);
        return HUB_ENOMEM;
    }
    for (size_t i = 0; i < rows; i++) {
        hub_db_get_text(r, (int)i, 0, (*out)[i].serial, HUB_SERIAL_HEX);
        (*out)[i].revoked_at = (time_t)strtoll(PQgetvalue(r, (int)i, 1), NULL, 10);
        (*out)[i].reason = atoi(PQgetvalue(r, (int)i, 2));
    }
    *n = rows;
    PQclear(r);
    return 0;
}

int hub_db_certificates_revoked_list(PGconn *c, int ca_id, struct hub_db_revoked **out, size_t *n)
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
    return rc != 0 ? rc : collect_revoked(r, out, n);
}

int hub_db_certificates_revoked_since(PGconn *c, int ca_id, time_t since,
                                      struct hub_db_revoked **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    char ca[16], t[24];
    snprintf(ca, sizeof ca, "%d", ca_id);
    snprintf(t, sizeof t, "%lld", (long long)since);
    const char *p[] = {ca, t};
    PGresult *r;
    int rc = hub_db_exec(c, &r,
                         "SELECT serial, floor(extract(epoch FROM revoked_at))::bigint,"
                         " coalesce(revocation_reason, 0) FROM certificates"
                         " WHERE ca_id = $1 AND status = 'revoked'"
                         " AND revoked_at >= to_timestamp($2) ORDER BY revoked_at, serial",
                         2, p);
    return rc != 0 ? rc : collect_revoked(r, out, n);
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
        hub_db_get_text(r, (int)i, 0, (*out)[i], HUB_SERIAL_HEX);
    *n = rows;
    PQclear(r);
    return 0;
}

int hub_db_certificates_revoked_serials(PGconn *c, char (**out)[HUB_SERIAL_HEX], size_t *n)
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

int hub_db_certificates_valid_serials(PGconn *c, const char *owner_column, const char *owner_id,
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

int hub_db_certificates_listen_revoked(PGconn *c)
{
    return hub_db_exec(c, NULL, "LISTEN iothub_revocation", 0, NULL);
}

int hub_db_certificates_list_sealed(PGconn *c, struct hub_db_sealed **list, size_t *n)
{
    return hub_db_query_sealed(c,
                               "SELECT 0, kind, serial, key_sealed FROM certificates"
                               " WHERE key_sealed IS NOT NULL ORDER BY serial FOR UPDATE",
                               list, n);
}

int hub_db_certificates_set_sealed(PGconn *c, const char *serial, const hub_buf_t *blob)
{
    hub_buf_t hex = HUB_BUF_INIT;
    int rc = hub_db_bytea_param(blob->data, blob->len, &hex);
    if (rc == 0) {
        const char *p[] = {(char *)hex.data, serial};
        char back[HUB_SERIAL_HEX];
        rc = hub_db_query_text(c,
                               "UPDATE certificates SET key_sealed = $1 WHERE serial = $2"
                               " RETURNING serial",
                               2, p, back, sizeof back);
    }
    hub_buf_free(&hex);
    return rc;
}
