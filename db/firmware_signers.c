#include "db/firmware_signers.h"

#include <stdio.h>
#include <string.h>

#include "db/db.h"
#include "util/error.h"

/* The JSON of a signer row s (without its certificate). */
#define SIGNER_JSON                                                                                \
    "json_build_object('id', s.id, 'name', s.name, 'subject', s.subject, 'key_type', s.key_type," \
    " 'fingerprint', s.fingerprint, 'not_before', rfc3339(s.not_before),"                        \
    " 'not_after', rfc3339(s.not_after), 'status', s.status, 'created_by', s.created_by,"        \
    " 'created_at', rfc3339(s.created_at))"

int hub_db_firmware_signers_insert(PGconn *c, const struct hub_db_signer_row *row, json_t **out)
{
    hub_buf_t der = HUB_BUF_INIT;
    char nb[24], na[24];
    snprintf(nb, sizeof nb, "%lld", row->not_before);
    snprintf(na, sizeof na, "%lld", row->not_after);
    int rc = hub_db_bytea_param(row->der, row->der_len, &der);
    if (rc != 0)
        return rc;
    const char *p[] = {row->name,        row->subject, row->key_type, row->fingerprint,
                       (char *)der.data, nb,           na,            row->created_by};
    rc = hub_db_query_json(
        c,
        "WITH s AS (INSERT INTO firmware_signers (name, subject, key_type, fingerprint, cert_der,"
        " not_before, not_after, created_by) VALUES ($1, $2, $3, $4, $5::bytea,"
        " to_timestamp($6::bigint), to_timestamp($7::bigint), $8) RETURNING *)"
        " SELECT " SIGNER_JSON " FROM s",
        8, p, out);
    hub_buf_free(&der);
    return rc;
}

int hub_db_firmware_signers_list(PGconn *c, json_t **out)
{
    return hub_db_query_json(c,
                             "SELECT coalesce(json_agg(" SIGNER_JSON " ORDER BY s.created_at, s.id),"
                             " '[]') FROM firmware_signers s",
                             0, NULL, out);
}

int hub_db_firmware_signers_get(PGconn *c, const char *id, json_t **out)
{
    const char *p[] = {id};
    return hub_db_query_json(c,
                             "SELECT (" SIGNER_JSON ")::jsonb || jsonb_build_object('certificate',"
                             " '-----BEGIN CERTIFICATE-----' || chr(10) ||"
                             " encode(s.cert_der, 'base64') || chr(10) ||"
                             " '-----END CERTIFICATE-----' || chr(10))"
                             " FROM firmware_signers s WHERE s.id = $1::uuid",
                             1, p, out);
}

int hub_db_firmware_signers_set_status(PGconn *c, const char *id, const char *status,
                                       json_t **out)
{
    const char *p[] = {id, status};
    return hub_db_query_json(c,
                             "WITH s AS (UPDATE firmware_signers SET status = $2"
                             " WHERE id = $1::uuid RETURNING *) SELECT " SIGNER_JSON " FROM s",
                             2, p, out);
}

int hub_db_firmware_signers_active(PGconn *c, json_t **out)
{
    return hub_db_query_json(c,
                             "SELECT coalesce(json_agg(encode(cert_der, 'hex') ORDER BY created_at,"
                             " id), '[]') FROM firmware_signers WHERE status = 'active'",
                             0, NULL, out);
}

int hub_db_firmware_signers_lookup(PGconn *c, const char *ref, char *id_out, hub_buf_t *der)
{
    const char *p[] = {ref};
    PGresult *r;
    int byid = strlen(ref) == 36;
    int rc = hub_db_exec_row(c, &r,
                             byid ? "SELECT id, cert_der FROM firmware_signers"
                                    " WHERE id = $1::uuid AND status = 'active'"
                                    " AND now() BETWEEN not_before AND not_after"
                                  : "SELECT id, cert_der FROM firmware_signers"
                                    " WHERE fingerprint = lower($1) AND status = 'active'"
                                    " AND now() BETWEEN not_before AND not_after",
                             1, p);
    if (rc != 0)
        return rc;
    hub_db_get_text(r, 0, 0, id_out, 37);
    rc = hub_db_get_bytea(r, 0, 1, der);
    PQclear(r);
    return rc;
}
