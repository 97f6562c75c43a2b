#include "db/registrations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/audit.h"
#include "db/db.h"
#include "util/error.h"

void hub_db_registrations_free_cas(struct hub_db_device_ca *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        hub_buf_free(&v[i].der);
        hub_buf_free(&v[i].crl);
    }
    free(v);
}

int hub_db_registrations_device_cas(PGconn *c, struct hub_db_device_ca **out, size_t *n)
{
    PGresult *r;
    *out = NULL;
    *n = 0;
    int rc = hub_db_exec(c, &r,
                         "SELECT id, status = 'enabled', cert_der, crl_der FROM device_cas"
                         " ORDER BY created_at, id",
                         0, NULL);
    if (rc != 0)
        return rc;
    size_t rows = (size_t)PQntuples(r);
    struct hub_db_device_ca *v = calloc(rows + 1, sizeof *v);
    if (v == NULL) {
        PQclear(r);
        return HUB_ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < rows; i++) {
        hub_db_get_text(r, (int)i, 0, v[i].id, sizeof v[i].id);
        v[i].enabled = PQgetvalue(r, (int)i, 1)[0] == 't';
        rc = hub_db_get_bytea(r, (int)i, 2, &v[i].der);
        if (rc == 0 && !PQgetisnull(r, (int)i, 3))
            rc = hub_db_get_bytea(r, (int)i, 3, &v[i].crl);
    }
    PQclear(r);
    if (rc != 0) {
        hub_db_registrations_free_cas(v, rows);
        return rc;
    }
    *out = v;
    *n = rows;
    return 0;
}

int hub_db_registrations_listen(PGconn *c)
{
    return hub_db_exec(c, NULL, "LISTEN iothub_device_cas", 0, NULL);
}

int hub_db_registrations_lookup(PGconn *c, const char *serial, const char *device_ca_id,
                                const uint8_t *der, size_t der_len, struct hub_db_registered *out)
{
    hub_buf_t der_hex = HUB_BUF_INIT;
    PGresult *r;
    int rc = hub_db_bytea_param(der, der_len, &der_hex);
    if (rc != 0)
        return rc;
    const char *p[] = {serial, device_ca_id, (const char *)der_hex.data};
    rc = hub_db_exec_row(c, &r,
                         "SELECT d.id, d.status, c.status,"
                         " coalesce(c.device_ca_id = $2::uuid AND c.der = $3::bytea, false)"
                         " FROM certificates c JOIN devices d ON d.id = c.device_id"
                         " WHERE c.serial = $1",
                         3, p);
    hub_buf_free(&der_hex);
    if (rc != 0)
        return rc;
    hub_db_get_text(r, 0, 0, out->device_id, sizeof out->device_id);
    hub_db_get_text(r, 0, 1, out->device_status, sizeof out->device_status);
    hub_db_get_text(r, 0, 2, out->cert_status, sizeof out->cert_status);
    out->same = PQgetvalue(r, 0, 3)[0] == 't';
    PQclear(r);
    return 0;
}

int hub_db_registrations_policy(PGconn *c, const char *device_ca_id,
                                struct hub_db_device_ca_policy *out)
{
    PGresult *r;
    const char *p[] = {device_ca_id};
    int rc = hub_db_exec_row(c, &r,
                             "SELECT product_id, registration, fingerprint, status"
                             " FROM device_cas WHERE id = $1",
                             1, p);
    if (rc != 0)
        return rc;
    hub_db_get_text(r, 0, 0, out->product_id, sizeof out->product_id);
    hub_db_get_text(r, 0, 1, out->registration, sizeof out->registration);
    hub_db_get_text(r, 0, 2, out->fingerprint, sizeof out->fingerprint);
    hub_db_get_text(r, 0, 3, out->status, sizeof out->status);
    PQclear(r);
    return 0;
}

/* The statements of one registration, inside the caller's transaction. */
static int register_rows(PGconn *c, const struct hub_db_registration *g, const char *product_id,
                         const char *status)
{
    hub_buf_t der_hex = HUB_BUF_INIT;
    char nb[24], na[24], details[512];
    PGresult *r;
    int rc = hub_db_bytea_param(g->der, g->der_len, &der_hex);
    if (rc != 0)
        return rc;
    const char *d[] = {g->device_id,   product_id, g->serial_number,
                       g->secret_hash, status,     g->device_ca_id};
    rc = hub_db_exec(c, &r,
                     "INSERT INTO devices (id, product_id, serial_number, secret_hash, status,"
                     " device_ca_id, activated_at) VALUES ($1, $2, $3, $4, $5, $6,"
                     " CASE WHEN $5 = 'active' THEN now() END) ON CONFLICT DO NOTHING RETURNING id",
                     6, d);
    if (rc == 0) {
        rc = PQntuples(r) == 1 ? 0 : HUB_EEXIST;
        PQclear(r);
    }
    snprintf(nb, sizeof nb, "%lld", (long long)g->not_before);
    snprintf(na, sizeof na, "%lld", (long long)g->not_after);
    const char *p[] = {g->cert_serial,
                       g->device_ca_id,
                       g->device_id,
                       g->subject,
                       (const char *)der_hex.data,
                       nb,
                       na};
    if (rc == 0)
        rc = hub_db_exec(c, &r,
                         "INSERT INTO certificates (serial, ca_id, device_ca_id, kind, device_id,"
                         " subject, der, not_before, not_after) VALUES ($1, NULL, $2, 'device', $3,"
                         " $4, $5, to_timestamp($6), to_timestamp($7)) ON CONFLICT DO NOTHING"
                         " RETURNING serial",
                         7, p);
    if (rc == 0) {
        rc = PQntuples(r) == 1 ? 0 : HUB_EEXIST;
        PQclear(r);
    }
    hub_buf_free(&der_hex);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "device_ca_id", g->device_ca_id, "serial_number",
                          g->serial_number, "certificate_serial", g->cert_serial, "status", status);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    snprintf(details, sizeof details, "%s", text ? text : "{}");
    free(text);
    if (rc == 0)
        rc = hub_db_audit_insert(c, "mqtt", NULL, "device.registered_jit", g->device_id, g->peer,
                                 status, details);
    return rc;
}

int hub_db_registrations_register(PGconn *c, const struct hub_db_registration *g,
                                  const char *product_id, const char *status)
{
    int rc = hub_db_begin(c);
    if (rc != 0)
        return rc;
    rc = register_rows(c, g, product_id, status);
    if (rc == 0)
        rc = hub_db_commit(c);
    if (rc != 0)
        hub_db_rollback(c);
    return rc;
}

int hub_db_registrations_audit_refusals(PGconn *c, const char *const *targets,
                                        const char *const *sources, const char *const *details,
                                        size_t n)
{
    int rc = hub_db_begin(c);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = hub_db_audit_insert(c, "mqtt", NULL, "mqtt.handshake_refused",
                                 targets[i][0] ? targets[i] : NULL,
                                 sources[i][0] ? sources[i] : NULL, "refused", details[i]);
    if (rc == 0)
        rc = hub_db_commit(c);
    else
        hub_db_rollback(c);
    return rc;
}
