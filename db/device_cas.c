#include "db/device_cas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define DEVICE_CA_JSON                                                                             \
    "json_build_object('id', d.id, 'product_key', p.product_key, 'subject', d.subject,"            \
    " 'serial', d.serial, 'fingerprint', d.fingerprint, 'not_before', rfc3339(d.not_before),"      \
    " 'not_after', rfc3339(d.not_after), 'status', d.status, 'registration', d.registration,"      \
    " 'crl_url', d.crl_url, 'crl_number', d.crl_number::text,"                                     \
    " 'crl_this_update', rfc3339(d.crl_this_update),"                                              \
    " 'crl_next_update', rfc3339(d.crl_next_update), 'created_by', d.created_by,"                  \
    " 'created_at', rfc3339(d.created_at), 'disabled_at', rfc3339(d.disabled_at),"                 \
    " 'devices', (SELECT count(*) FROM devices v WHERE v.device_ca_id = d.id)"

#define DEVICE_CA_PEM                                                                              \
    ", 'certificate_pem', der_pem('CERTIFICATE', d.cert_der),"                                     \
    " 'crl_pem', der_pem('X509 CRL', d.crl_der))"

int hub_db_device_cas_code_insert(PGconn *c, const char *code, const char *created_by, int ttl_s,
                                  json_t **out)
{
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *p[] = {code, created_by, ttl};
    return hub_db_query_json(c,
                             "INSERT INTO device_ca_codes (code, created_by, expires_at)"
                             " VALUES ($1, $2, now() + $3 * interval '1 second')"
                             " RETURNING json_build_object('code', code,"
                             " 'expires_at', rfc3339(expires_at))",
                             3, p, out);
}

int hub_db_device_cas_code_take(PGconn *c, const char *code)
{
    char state[16];
    const char *p[] = {code};
    int rc = hub_db_query_text(c,
                               "SELECT CASE WHEN used_at IS NOT NULL THEN 'used'"
                               " WHEN expires_at <= now() THEN 'expired' ELSE 'ok' END"
                               " FROM device_ca_codes WHERE code = $1 FOR UPDATE",
                               1, p, state, sizeof state);
    if (rc != 0)
        return rc;
    if (strcmp(state, "used") == 0)
        return HUB_EEXIST;
    if (strcmp(state, "expired") == 0)
        return HUB_ERANGE;
    return hub_db_exec_one(c, "UPDATE device_ca_codes SET used_at = now() WHERE code = $1", 1, p);
}

int hub_db_device_cas_count(PGconn *c, long long product_id, long long *n)
{
    char pid[24], cnt[24];
    snprintf(pid, sizeof pid, "%lld", product_id);
    const char *p[] = {pid};
    int rc = hub_db_query_text(c,
                               "SELECT count(*) FROM device_cas WHERE product_id = $1"
                               " AND status = 'enabled'",
                               1, p, cnt, sizeof cnt);
    *n = rc == 0 ? strtoll(cnt, NULL, 10) : 0;
    return rc;
}

int hub_db_device_cas_insert(PGconn *c, const struct hub_db_device_ca *ca, json_t **out)
{
    hub_buf_t der = HUB_BUF_INIT;
    char pid[24], nb[24], na[24];
    snprintf(pid, sizeof pid, "%lld", ca->product_id);
    snprintf(nb, sizeof nb, "%lld", (long long)ca->not_before);
    snprintf(na, sizeof na, "%lld", (long long)ca->not_after);
    int rc = hub_db_bytea_param(ca->der, ca->der_len, &der);
    if (rc == 0) {
        const char *p[] = {pid, ca->subject, ca->serial,       ca->fingerprint, (char *)der.data,
                           nb,  na,          ca->registration, ca->crl_url,     ca->created_by};
        rc = hub_db_query_json(
            c,
            "WITH d AS (INSERT INTO device_cas (product_id, subject, serial, fingerprint, cert_der,"
            " not_before, not_after, registration, crl_url, created_by) VALUES ($1, $2, $3, $4,"
            " $5, to_timestamp($6), to_timestamp($7), $8, $9, $10) RETURNING *)"
            " SELECT " DEVICE_CA_JSON ") FROM d JOIN products p ON p.id = d.product_id",
            10, p, out);
    }
    hub_buf_free(&der);
    return rc;
}

int hub_db_device_cas_list(PGconn *c, int with_pem, json_t **out)
{
    return hub_db_query_json(c,
                             with_pem ? "SELECT coalesce(json_agg(" DEVICE_CA_JSON DEVICE_CA_PEM
                                        " ORDER BY d.created_at, d.id), '[]') FROM device_cas d"
                                        " JOIN products p ON p.id = d.product_id"
                                      : "SELECT coalesce(json_agg(" DEVICE_CA_JSON
                                        ") ORDER BY d.created_at, d.id), '[]') FROM device_cas d"
                                        " JOIN products p ON p.id = d.product_id",
                             0, NULL, out);
}

int hub_db_device_cas_get(PGconn *c, const char *id, json_t **out)
{
    const char *p[] = {id};
    return hub_db_query_json(c,
                             "SELECT " DEVICE_CA_JSON DEVICE_CA_PEM " FROM device_cas d"
                             " JOIN products p ON p.id = d.product_id WHERE d.id = $1::uuid",
                             1, p, out);
}

int hub_db_device_cas_lock(PGconn *c, const char *id, long long *product_id, char status[16])
{
    const char *p[] = {id};
    PGresult *r;
    int rc = hub_db_exec_row(c, &r,
                             "SELECT product_id, status FROM device_cas WHERE id = $1::uuid"
                             " FOR UPDATE",
                             1, p);
    if (rc != 0)
        return rc;
    *product_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    hub_db_get_text(r, 0, 1, status, 16);
    PQclear(r);
    return 0;
}

int hub_db_device_cas_update(PGconn *c, const char *id, const char *status,
                             const char *registration, json_t **out)
{
    const char *p[] = {id, status, registration};
    return hub_db_query_json(
        c,
        "WITH d AS (UPDATE device_cas SET status = coalesce($2, status),"
        " registration = coalesce($3, registration),"
        " disabled_at = CASE WHEN coalesce($2, status) = 'enabled' THEN NULL"
        " ELSE coalesce(disabled_at, now()) END WHERE id = $1::uuid RETURNING *)"
        " SELECT " DEVICE_CA_JSON ") FROM d JOIN products p ON p.id = d.product_id",
        3, p, out);
}

int hub_db_device_cas_lock_cert(PGconn *c, const char *id, hub_buf_t *der)
{
    const char *p[] = {id};
    PGresult *r;
    int rc = hub_db_exec_row(
        c, &r, "SELECT cert_der FROM device_cas WHERE id = $1::uuid FOR UPDATE", 1, p);
    if (rc != 0)
        return rc;
    rc = hub_db_get_bytea(r, 0, 0, der);
    PQclear(r);
    return rc;
}

int hub_db_device_cas_set_crl(PGconn *c, const char *id, const hub_buf_t *der, const char *number,
                              time_t this_update, time_t next_update)
{
    hub_buf_t hex = HUB_BUF_INIT;
    char tu[24], nu[24];
    snprintf(tu, sizeof tu, "%lld", (long long)this_update);
    snprintf(nu, sizeof nu, "%lld", (long long)next_update);
    int rc = hub_db_bytea_param(der->data, der->len, &hex);
    if (rc == 0) {
        const char *p[] = {id, (char *)hex.data, number, tu, next_update ? nu : NULL};
        rc = hub_db_exec_one(c,
                             "UPDATE device_cas SET crl_der = $2, crl_number = $3::numeric,"
                             " crl_this_update = to_timestamp($4),"
                             " crl_next_update = to_timestamp($5::bigint)"
                             " WHERE id = $1::uuid AND (crl_number IS NULL"
                             " OR crl_number < $3::numeric)",
                             5, p);
    }
    hub_buf_free(&hex);
    return rc == HUB_ENOTFOUND ? HUB_ERANGE : rc;
}

int hub_db_device_cas_crl_due(PGconn *c, int refresh_s, int limit, json_t **out)
{
    char ref[16], lim[16];
    snprintf(ref, sizeof ref, "%d", refresh_s);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {ref, lim};
    return hub_db_query_json(
        c,
        "WITH due AS (SELECT id FROM device_cas WHERE crl_url IS NOT NULL"
        " AND status = 'enabled' AND (crl_checked_at IS NULL"
        " OR crl_checked_at < now() - $1 * interval '1 second'"
        " OR (crl_next_update IS NOT NULL AND crl_next_update < now() + $1 * interval '1 second'"
        " AND crl_checked_at < now() - interval '60 seconds'))"
        " ORDER BY crl_checked_at NULLS FIRST LIMIT $2 FOR UPDATE SKIP LOCKED),"
        " d AS (UPDATE device_cas x SET crl_checked_at = now() FROM due WHERE x.id = due.id"
        " RETURNING x.id, x.crl_url)"
        " SELECT coalesce(json_agg(json_build_object('id', id, 'crl_url', crl_url)), '[]') FROM d",
        2, p, out);
}

int hub_db_device_cas_get_trust(PGconn *c, json_t **out)
{
    return hub_db_query_json(c,
                             "SELECT coalesce(json_agg(json_build_object('id', id, 'product_id',"
                             " product_id, 'registration', registration,"
                             " 'cert_pem', der_pem('CERTIFICATE', cert_der),"
                             " 'crl_pem', der_pem('X509 CRL', crl_der)) ORDER BY id), '[]')"
                             " FROM device_cas WHERE status = 'enabled'",
                             0, NULL, out);
}

int hub_db_device_cas_pending(PGconn *c, const char *after, int limit, json_t **out)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {after, lim};
    return hub_db_query_json(
        c,
        "SELECT coalesce(json_agg(j ORDER BY id), '[]') FROM (SELECT d.id,"
        " json_build_object('device_id', d.id, 'product_key', p.product_key,"
        " 'serial_number', d.serial_number, 'status', d.status, 'connected', false,"
        " 'device_ca_id', d.device_ca_id, 'created_at', rfc3339(d.created_at),"
        " 'activated_at', rfc3339(d.activated_at), 'last_seen', rfc3339(d.last_seen)) AS j"
        " FROM devices d JOIN products p ON p.id = d.product_id WHERE d.status = 'pending'"
        " AND ($1::uuid IS NULL OR d.id > $1::uuid) ORDER BY d.id LIMIT $2) s",
        2, p, out);
}
