/* Signer certificates are checked by ca/fwsig.c (strict PEM/DER, keyUsage digitalSignature,
 * EC P-256/P-384 or RSA >= 2048, within validity); only the certificate is stored. */
#include "api/firmware_signers.h"

#include <string.h>

#include "api/audit.h"
#include "api/params.h"
#include "api/reply.h"
#include "api/transaction.h"
#include "ca/fwsig.h"
#include "ca/pem.h"
#include "db/db.h"
#include "db/firmware_signers.h"
#include "util/error.h"
#include "util/secure.h"

#define NAME_MAX_LEN 200
#define CERT_MAX_LEN 65536

void hub_api_firmware_signers_create(struct hub_req *r)
{
    struct hub_fwsig_signer s;
    char why[256];
    json_t *out = NULL;
    memset(&s, 0, sizeof s);
    json_t *body = hub_params_json(r);
    if (body == NULL)
        return;
    const char *name = hub_params_string(r, body, "name", 1, NAME_MAX_LEN);
    const char *pem = name ? hub_params_string(r, body, "certificate", 1, CERT_MAX_LEN) : NULL;
    if (pem == NULL)
        goto out;
    int rc = hub_fwsig_signer_parse(pem, strlen(pem), &s, why, sizeof why);
    if (rc == HUB_EINVAL) {
        hub_reply_error(r, 400, "invalid_certificate", "%s", why);
        goto out;
    }
    if (rc == HUB_EKEYPOLICY) {
        hub_reply_error(r, 422, "signer_refused", "%s", why);
        goto out;
    }
    PGconn *c = rc == 0 ? hub_transaction_db(r) : NULL;
    if (rc != 0) {
        hub_reply_internal(r, rc, "signer certificate parsing");
        goto out;
    }
    if (c == NULL)
        goto out;
    struct hub_db_signer_row row = {.name = name,
                                    .subject = s.subject,
                                    .key_type = s.key_type,
                                    .fingerprint = s.fingerprint,
                                    .created_by = r->who.name,
                                    .der = s.der.data,
                                    .der_len = s.der.len,
                                    .not_before = (long long)s.not_before,
                                    .not_after = (long long)s.not_after};
    rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_firmware_signers_insert(c, &row, &out);
    if (rc == HUB_EEXIST) {
        hub_reply_error(r, 409, "conflict",
                        "a signer with this name or this certificate (SHA-256 %s) exists already",
                        s.fingerprint);
        goto out;
    }
    if (rc == 0)
        rc = hub_api_audit_write(r, json_string_value(json_object_get(out, "id")), NULL);
    if (rc != 0) {
        hub_reply_internal(r, rc, "signer registration");
        goto out;
    }
    if (hub_transaction_commit(r) != 0)
        goto out;
    hub_reply_json(r, 201, out);
    out = NULL;
out:
    json_decref(out);
    json_decref(body);
    hub_fwsig_signer_free(&s);
}

void hub_api_firmware_signers_list(struct hub_req *r)
{
    json_t *list;
    PGconn *c = hub_transaction_db(r);
    if (c == NULL)
        return;
    int rc = hub_db_firmware_signers_list(c, &list);
    if (rc != 0) {
        hub_reply_internal(r, rc, "signer listing");
        return;
    }
    hub_reply_json(r, 200, json_pack("{s:o}", "signers", list));
}

/* The signer id of the path, or a 404 reply. */
static int signer_id(struct hub_req *r)
{
    if (hub_params_uuid_valid(r->params[0]))
        return 0;
    hub_reply_error(r, 404, "not_found", "no firmware signer %s", r->params[0]);
    return HUB_REPLIED;
}

void hub_api_firmware_signers_show(struct hub_req *r)
{
    json_t *s;
    PGconn *c = signer_id(r) == 0 ? hub_transaction_db(r) : NULL;
    if (c == NULL)
        return;
    int rc = hub_db_firmware_signers_get(c, r->params[0], &s);
    if (rc == HUB_ENOTFOUND)
        hub_reply_error(r, 404, "not_found", "no firmware signer %s", r->params[0]);
    else if (rc != 0)
        hub_reply_internal(r, rc, "signer lookup");
    else
        hub_reply_json(r, 200, s);
}

void hub_api_firmware_signers_update(struct hub_req *r)
{
    json_t *out = NULL;
    if (signer_id(r) != 0)
        return;
    json_t *body = hub_params_json(r);
    if (body == NULL)
        return;
    const char *status = hub_params_string(r, body, "status", 1, 16);
    if (status != NULL && strcmp(status, "active") != 0 && strcmp(status, "disabled") != 0) {
        hub_reply_error(r, 400, "invalid_parameter", "status must be active or disabled");
        goto out;
    }
    PGconn *c = status ? hub_transaction_db(r) : NULL;
    if (c == NULL)
        goto out;
    int rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_firmware_signers_set_status(c, r->params[0], status, &out);
    if (rc == HUB_ENOTFOUND) {
        hub_reply_error(r, 404, "not_found", "no firmware signer %s", r->params[0]);
        goto out;
    }
    char details[64];
    snprintf(details, sizeof details, "{\"status\": \"%s\"}", status);
    if (rc == 0)
        rc = hub_api_audit_write(r, r->params[0], details);
    if (rc != 0) {
        hub_reply_internal(r, rc, "signer update");
        goto out;
    }
    if (hub_transaction_commit(r) != 0)
        goto out;
    hub_reply_json(r, 200, out);
    out = NULL;
out:
    json_decref(out);
    json_decref(body);
}

void hub_api_firmware_signers_bundle(struct hub_req *r)
{
    json_t *list;
    hub_buf_t pem = HUB_BUF_INIT, der = HUB_BUF_INIT;
    PGconn *c = hub_transaction_db(r);
    if (c == NULL)
        return;
    int rc = hub_db_firmware_signers_active(c, &list);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *hex = json_string_value(v);
        size_t n = hex != NULL ? strlen(hex) / 2 : 0;
        der.len = 0;
        if (rc == 0)
            rc = hub_buf_reserve(&der, n);
        if (rc == 0 && hub_hex_decode(hex, der.data, n) != (int)n)
            rc = HUB_EDB;
        if (rc == 0)
            rc = hub_pem_encode("CERTIFICATE", der.data, n, &pem);
    }
    json_decref(list);
    if (rc != 0)
        hub_reply_internal(r, rc, "signer bundle");
    else
        hub_reply_raw(r, 200, "application/x-pem-file", pem.len ? (const char *)pem.data : "",
                      pem.len);
    hub_buf_free(&pem);
    hub_buf_free(&der);
}
