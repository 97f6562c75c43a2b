#include "db/firmware.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "db/db.h"
#include "util/error.h"
#include "util/log.h"

/* A manifest of firmware f joined to its product p and signer s. */
#define MANIFEST_JSON                                                                              \
    "json_build_object('id', f.id, 'product_key', p.product_key, 'version', f.version,"          \
    " 'size', f.size, 'sha256', encode(f.sha256, 'hex'),"                                          \
    " 'signature', translate(encode(f.signature, 'base64'), chr(10), ''),"                         \
    " 'signer', s.fingerprint, 'signer_id', s.id, 'signer_name', s.name,"                          \
    " 'hardware', to_json(f.hardware), 'min_version', f.min_version,"                              \
    " 'release_notes', f.release_notes, 'status', f.status, 'created_by', f.created_by,"          \
    " 'created_at', rfc3339(f.created_at))"
#define MANIFEST_FROM                                                                              \
    " FROM firmware f JOIN products p ON p.id = f.product_id"                                      \
    " JOIN firmware_signers s ON s.id = f.signer_id"

int hub_db_firmware_product(PGconn *c, const char *product_key, long long *id)
{
    char text[24];
    const char *p[] = {product_key};
    int rc = hub_db_query_text(c, "SELECT id FROM products WHERE product_key = $1", 1, p, text,
                               sizeof text);
    if (rc == 0)
        sscanf(text, "%lld", id);
    return rc;
}

int hub_db_firmware_newest(PGconn *c, long long product_id, const char *exclude_id, char *newest,
                           size_t cap)
{
    char pid[24];
    snprintf(pid, sizeof pid, "%lld", product_id);
    const char *p[] = {pid, exclude_id};
    int lock = exclude_id != NULL;
    char one[4];
    int rc = 0;
    if (lock)
        rc = hub_db_query_text(c, "SELECT 1 FROM products WHERE id = $1 FOR NO KEY UPDATE", 1, p,
                               one, sizeof one);
    newest[0] = 0;
    if (rc == 0)
        rc = hub_db_query_text(c,
                               "SELECT coalesce((SELECT version FROM firmware WHERE product_id = $1"
                               " AND ($2::uuid IS NULL OR id <> $2::uuid)"
                               " ORDER BY version_key DESC LIMIT 1), '')",
                               2, p, newest, cap);
    return rc;
}

int hub_db_firmware_insert(PGconn *c, const struct hub_db_firmware_row *row, char *id_out)
{
    char pid[24];
    hub_buf_t sig = HUB_BUF_INIT;
    snprintf(pid, sizeof pid, "%lld", row->product_id);
    int rc = hub_db_bytea_param(row->signature, row->signature_len, &sig);
    if (rc != 0)
        return rc;
    const char *p[] = {pid,
                       row->version,
                       row->version_key,
                       (char *)sig.data,
                       row->signer_id,
                       row->hardware,
                       row->min_version,
                       row->release_notes,
                       row->created_by};
    rc = hub_db_query_text(
        c,
        "INSERT INTO firmware (product_id, version, version_key, size, sha256, signature,"
        " signer_id, hardware, min_version, release_notes, created_by)"
        " VALUES ($1, $2, $3::integer[], 1, '\\x" /* placeholders until the upload ends */
        "0000000000000000000000000000000000000000000000000000000000000000', $4::bytea, $5::uuid,"
        " $6::text[], $7, $8, $9) RETURNING id",
        9, p, id_out, 37);
    hub_buf_free(&sig);
    return rc;
}

int hub_db_firmware_chunk(PGconn *c, const char *id, int seq, const uint8_t *data, size_t len)
{
    char s[16];
    snprintf(s, sizeof s, "%d", seq);
    const char *p[] = {id, s, (const char *)data};
    const int lengths[] = {0, 0, (int)len};
    const int formats[] = {0, 0, 1};
    return hub_db_exec_bin(c, NULL,
                           "INSERT INTO firmware_chunks (firmware_id, seq, data)"
                           " VALUES ($1::uuid, $2::integer, $3::bytea)",
                           3, p, lengths, formats, 0);
}

int hub_db_firmware_ready(PGconn *c, const char *id, long long size, const uint8_t sha256[32])
{
    char sz[24];
    hub_buf_t digest = HUB_BUF_INIT;
    snprintf(sz, sizeof sz, "%lld", size);
    int rc = hub_db_bytea_param(sha256, 32, &digest);
    if (rc != 0)
        return rc;
    const char *p[] = {id, sz, (char *)digest.data};
    rc = hub_db_exec_one(c,
                         "UPDATE firmware SET size = $2::bigint, sha256 = $3::bytea,"
                         " status = 'ready' WHERE id = $1::uuid",
                         3, p);
    hub_buf_free(&digest);
    return rc;
}

int hub_db_firmware_list(PGconn *c, const char *product_key, json_t **out)
{
    const char *p[] = {product_key};
    return hub_db_query_json(c,
                             "SELECT coalesce(json_agg(" MANIFEST_JSON
                             " ORDER BY p.product_key, f.version_key DESC), '[]')" MANIFEST_FROM
                             " WHERE f.status = 'ready' AND ($1::text IS NULL OR p.product_key = $1)",
                             1, p, out);
}

int hub_db_firmware_get(PGconn *c, const char *id, json_t **out)
{
    const char *p[] = {id};
    return hub_db_query_json(c, "SELECT " MANIFEST_JSON MANIFEST_FROM " WHERE f.id = $1::uuid", 1,
                             p, out);
}

int hub_db_firmware_delete(PGconn *c, const char *id)
{
    const char *p[] = {id};
    /* Not hub_db_exec: a foreign-key violation (a rollout uses the image) is an answer, not
     * a failure to log. */
    PGresult *r = PQexecParams(c, "DELETE FROM firmware WHERE id = $1::uuid", 1, NULL, p, NULL,
                               NULL, 0);
    int rc;
    if (r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK) {
        rc = strcmp(PQcmdTuples(r), "1") == 0 ? 0 : HUB_ENOTFOUND;
    } else {
        const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        if (state != NULL && strcmp(state, "23503") == 0) {
            rc = HUB_EEXIST;
        } else {
            hub_error("firmware deletion: %s", PQerrorMessage(c));
            rc = PQstatus(c) == CONNECTION_OK ? HUB_EDB : HUB_EDBDOWN;
        }
    }
    PQclear(r);
    return rc;
}

int hub_db_firmware_for_device(PGconn *c, const char *firmware_id, const char *device_id,
                               const char *cert_serial, struct hub_db_firmware_dl *out)
{
    const char *p[] = {firmware_id, device_id, cert_serial};
    PGresult *r;
    memset(out, 0, sizeof *out);
    int rc = hub_db_exec_row(
        c, &r,
        "SELECT f.size, encode(f.sha256, 'hex'), f.product_id = d.product_id,"
        " coalesce(d.status <> 'revoked', false),"
        " $3 = '' OR EXISTS (SELECT 1 FROM certificates c WHERE c.serial = $3"
        " AND c.device_id = d.id AND c.status = 'valid')"
        " FROM firmware f LEFT JOIN devices d ON d.id = $2::uuid"
        " WHERE f.id = $1::uuid AND f.status = 'ready'",
        3, p);
    if (rc != 0)
        return rc;
    sscanf(PQgetvalue(r, 0, 0), "%lld", &out->size);
    hub_db_get_text(r, 0, 1, out->sha256, sizeof out->sha256);
    out->same_product = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
    out->device_ok = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
    out->cert_ok = strcmp(PQgetvalue(r, 0, 4), "t") == 0;
    PQclear(r);
    return 0;
}

int hub_db_firmware_slice(PGconn *c, const char *id, int seq, size_t off, size_t len,
                          uint8_t *buf, size_t *got)
{
    char s[16], o[24], l[24];
    snprintf(s, sizeof s, "%d", seq);
    snprintf(o, sizeof o, "%zu", off + 1);
    snprintf(l, sizeof l, "%zu", len);
    const char *p[] = {id, s, o, l};
    PGresult *r;
    *got = 0;
    int rc = hub_db_exec_bin(c, &r,
                             "SELECT substring(data FROM $3::integer FOR $4::integer)"
                             " FROM firmware_chunks WHERE firmware_id = $1::uuid AND seq = $2::integer",
                             4, p, NULL, NULL, 1);
    if (rc != 0)
        return rc;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return HUB_ENOTFOUND;
    }
    size_t n = (size_t)PQgetlength(r, 0, 0);
    if (n > len)
        n = len;
    memcpy(buf, PQgetvalue(r, 0, 0), n);
    *got = n;
    PQclear(r);
    return 0;
}
