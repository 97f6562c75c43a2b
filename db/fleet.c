#include "db/fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "util/error.h"
#include "util/log.h"

/* Runs a query whose single cell is JSON text; HUB_ENOTFOUND on no row or NULL. */
static int query_json(PGconn *c, const char *sql, int n, const char *const *p, json_t **out)
{
    PGresult *r;
    *out = NULL;
    int rc = hub_db_exec_row(c, &r, sql, n, p);
    if (rc != 0)
        return rc;
    if (PQgetisnull(r, 0, 0)) {
        PQclear(r);
        return HUB_ENOTFOUND;
    }
    json_error_t e;
    *out = json_loads(PQgetvalue(r, 0, 0), 0, &e);
    PQclear(r);
    if (*out == NULL) {
        hub_error("database returned invalid JSON: %s", e.text);
        return HUB_EDB;
    }
    return 0;
}

/* Runs a query expected to change one row; HUB_ENOTFOUND when none did. */
static int exec_one(PGconn *c, const char *sql, int n, const char *const *p)
{
    PGresult *r;
    int rc = hub_db_exec(c, &r, sql, n, p);
    if (rc != 0)
        return rc;
    rc = atoi(PQcmdTuples(r)) > 0 ? 0 : HUB_ENOTFOUND;
    PQclear(r);
    return rc;
}

/* Runs an INSERT ... RETURNING id and copies the new UUID into id. */
static int insert_returning_id(PGconn *c, const char *sql, int n, const char *const *p,
                               char id[37])
{
    PGresult *r;
    int rc = hub_db_exec_row(c, &r, sql, n, p);
    if (rc != 0)
        return rc;
    snprintf(id, 37, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int hub_db_token_lookup(PGconn *c, const char *token_id, char role[16], char name[128],
                        uint8_t hash[32])
{
    const char *p[] = {token_id};
    PGresult *r;
    int rc = hub_db_exec_row(c, &r,
                             "UPDATE api_tokens SET last_used_at = now() WHERE token_id = $1"
                             " AND revoked_at IS NULL RETURNING role, name, secret_hash",
                             1, p);
    if (rc != 0)
        return rc;
    snprintf(role, 16, "%s", PQgetvalue(r, 0, 0));
    snprintf(name, 128, "%s", PQgetvalue(r, 0, 1));
    hub_buf_t h = HUB_BUF_INIT;
    rc = hub_db_get_bytea(r, 0, 2, &h);
    if (rc == 0 && h.len == 32)
        memcpy(hash, h.data, 32);
    else if (rc == 0)
        rc = HUB_EINVAL;
    hub_buf_free(&h);
    PQclear(r);
    return rc;
}

/* Fills a secret from a row of (id, hash, status, extra) text columns. */
static int secret_query(PGconn *c, const char *sql, const char *key, struct hub_db_secret *out)
{
    const char *p[] = {key};
    PGresult *r;
    memset(out, 0, sizeof *out);
    int rc = hub_db_exec_row(c, &r, sql, 1, p);
    if (rc != 0)
        return rc;
    out->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    snprintf(out->hash, sizeof out->hash, "%s", PQgetvalue(r, 0, 1));
    snprintf(out->status, sizeof out->status, "%s", PQgetvalue(r, 0, 2));
    snprintf(out->extra, sizeof out->extra, "%s", PQgetvalue(r, 0, 3));
    PQclear(r);
    return 0;
}

int hub_db_product_secret(PGconn *c, const char *product_key, struct hub_db_secret *out)
{
    return secret_query(c, "SELECT id, secret_hash, '', '' FROM products WHERE product_key = $1",
                        product_key, out);
}

int hub_db_device_secret(PGconn *c, const char *device_id, struct hub_db_secret *out)
{
    return secret_query(c,
                        "SELECT 0, d.secret_hash, d.status, p.product_key FROM devices d"
                        " JOIN products p ON p.id = d.product_id WHERE d.id = $1::uuid",
                        device_id, out);
}

int hub_db_service_secret(PGconn *c, const char *service_id, struct hub_db_secret *out)
{
    return secret_query(c, "SELECT 0, secret_hash, status, name FROM services WHERE id = $1::uuid",
                        service_id, out);
}

int hub_db_product_insert(PGconn *c, const char *product_key, const char *name,
                          const char *secret_hash)
{
    const char *p[] = {product_key, name, secret_hash};
    return hub_db_exec(
        c, NULL, "INSERT INTO products (product_key, name, secret_hash) VALUES ($1, $2, $3)", 3, p);
}

int hub_db_product_list(PGconn *c, json_t **out)
{
    return query_json(c,
                      "SELECT coalesce(json_agg(json_build_object('product_key', product_key,"
                      " 'name', name, 'created_at', rfc3339(created_at),"
                      " 'devices', (SELECT count(*) FROM devices d WHERE d.product_id = p.id))"
                      " ORDER BY id), '[]') FROM products p",
                      0, NULL, out);
}

int hub_db_device_insert(PGconn *c, long long product_id, const char *serial,
                         const char *secret_hash, char device_id[37])
{
    char pid[24];
    snprintf(pid, sizeof pid, "%lld", product_id);
    const char *p[] = {pid, serial, secret_hash};
    return insert_returning_id(c,
                               "INSERT INTO devices (product_id, serial_number, secret_hash)"
                               " VALUES ($1, $2, $3) RETURNING id",
                               3, p, device_id);
}

#define DEVICE_JSON                                                                                \
    "json_build_object('device_id', d.id, 'product_key', p.product_key,"                           \
    " 'serial_number', d.serial_number, 'status', d.status, 'connected', false,"                   \
    " 'created_at', rfc3339(d.created_at), 'activated_at', rfc3339(d.activated_at),"               \
    " 'last_seen', rfc3339(d.last_seen)"

int hub_db_device_get(PGconn *c, const char *device_id, json_t **out)
{
    const char *p[] = {device_id};
    return query_json(c,
                      "SELECT " DEVICE_JSON ", 'certificates', (SELECT coalesce(json_agg("
                      "certificate_json(x, false) ORDER BY x.created_at DESC), '[]')"
                      " FROM certificates x WHERE x.device_id = d.id))"
                      " FROM devices d JOIN products p ON p.id = d.product_id"
                      " WHERE d.id = $1::uuid",
                      1, p, out);
}

int hub_db_device_list(PGconn *c, const char *after, int limit, json_t **out)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {after, lim};
    return query_json(
        c,
        "SELECT coalesce(json_agg(j ORDER BY id), '[]') FROM (SELECT d.id, " DEVICE_JSON
        ") AS j FROM devices d JOIN products p ON p.id = d.product_id"
        " WHERE $1::uuid IS NULL OR d.id > $1::uuid ORDER BY d.id LIMIT $2) s",
        2, p, out);
}

int hub_db_device_set_status(PGconn *c, const char *device_id, const char *status)
{
    const char *p[] = {device_id, status};
    return exec_one(c,
                    "UPDATE devices SET status = $2, activated_at = CASE WHEN $2 = 'active'"
                    " THEN now() ELSE activated_at END WHERE id = $1::uuid",
                    2, p);
}

int hub_db_device_set_secret(PGconn *c, const char *device_id, const char *secret_hash)
{
    const char *p[] = {device_id, secret_hash};
    return exec_one(c,
                    "UPDATE devices SET secret_hash = $2, status = 'provisioned',"
                    " activated_at = NULL WHERE id = $1::uuid",
                    2, p);
}

/* Runs a row-locking "SELECT status ... WHERE id = $1" and copies the status. */
static int lock_status(PGconn *c, const char *sql, const char *id, char status[16])
{
    const char *p[] = {id};
    PGresult *r;
    int rc = hub_db_exec_row(c, &r, sql, 1, p);
    if (rc != 0)
        return rc;
    snprintf(status, 16, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int hub_db_device_lock(PGconn *c, const char *device_id, char status[16])
{
    return lock_status(c, "SELECT status FROM devices WHERE id = $1::uuid FOR UPDATE", device_id,
                       status);
}

int hub_db_service_lock(PGconn *c, const char *service_id, char status[16])
{
    return lock_status(c, "SELECT status FROM services WHERE id = $1::uuid FOR UPDATE",
                       service_id, status);
}

int hub_db_service_insert(PGconn *c, const char *name, const char *publish_json,
                          const char *subscribe_json, const char *secret_hash, char service_id[37])
{
    const char *p[] = {name, publish_json, subscribe_json, secret_hash};
    return insert_returning_id(c,
                               "INSERT INTO services (name, publish, subscribe, secret_hash)"
                               " VALUES ($1, ARRAY(SELECT jsonb_array_elements_text($2::jsonb)),"
                               " ARRAY(SELECT jsonb_array_elements_text($3::jsonb)), $4)"
                               " RETURNING id",
                               4, p, service_id);
}

int hub_db_service_set_status(PGconn *c, const char *service_id, const char *status)
{
    const char *p[] = {service_id, status};
    return exec_one(c, "UPDATE services SET status = $2 WHERE id = $1::uuid", 2, p);
}

int hub_db_cert_get(PGconn *c, const char *serial, json_t **out)
{
    const char *p[] = {serial};
    return query_json(c, "SELECT certificate_json(x, true) FROM certificates x WHERE serial = $1",
                      1, p, out);
}

int hub_db_cert_list(PGconn *c, const char *device_id, int limit, json_t **out)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {device_id, lim};
    return query_json(c,
                      "SELECT coalesce(json_agg(certificate_json(x, true) ORDER BY"
                      " x.created_at DESC), '[]') FROM (SELECT * FROM certificates"
                      " WHERE $1::uuid IS NULL OR device_id = $1::uuid"
                      " ORDER BY created_at DESC LIMIT $2) x",
                      2, p, out);
}

int hub_db_token_list(PGconn *c, json_t **out)
{
    return query_json(
        c,
        "SELECT coalesce(json_agg(json_build_object('token_id', token_id, 'name', name,"
        " 'role', role, 'created_at', rfc3339(created_at), 'last_used_at',"
        " rfc3339(last_used_at), 'revoked_at', rfc3339(revoked_at)) ORDER BY id), '[]')"
        " FROM api_tokens",
        0, NULL, out);
}

int hub_db_audit_list(PGconn *c, long long before, int limit, json_t **out)
{
    char b[24], lim[16];
    snprintf(b, sizeof b, "%lld", before);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {b, lim};
    return query_json(c,
                      "SELECT coalesce(json_agg(json_build_object('id', id, 'at', rfc3339(at),"
                      " 'actor', actor, 'role', role, 'action', action, 'target', target,"
                      " 'source', source, 'result', result, 'details', details) ORDER BY id DESC),"
                      " '[]') FROM (SELECT * FROM audit_log WHERE $1::bigint = 0 OR id < $1::bigint"
                      " ORDER BY id DESC LIMIT $2) a",
                      2, p, out);
}

int hub_db_notify(PGconn *c, const char *channel, const char *payload)
{
    const char *p[] = {channel, payload};
    return hub_db_exec(c, NULL, "SELECT pg_notify($1, $2)", 2, p);
}

int hub_db_devices_seen(PGconn *c, const char *ids_json)
{
    const char *p[] = {ids_json};
    return hub_db_exec(c, NULL,
                       "UPDATE devices SET last_seen = now() WHERE id = ANY"
                       " (ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::uuid))",
                       1, p);
}

int hub_db_service_acl(PGconn *c, const char *service_id, json_t **out)
{
    const char *p[] = {service_id};
    return query_json(c,
                      "SELECT json_build_object('status', status, 'publish', publish,"
                      " 'subscribe', subscribe) FROM services WHERE id = $1::uuid",
                      1, p, out);
}
