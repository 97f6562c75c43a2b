/* Activation and renewal of devices and services: a CSR in, a certificate of the issuing CA
 * out. The principal's row is locked for the whole transaction, its valid certificates are
 * revoked as superseded, and the new one is signed, recorded and answered with what
 * hub_authority_issue returns. A renewal is authenticated by a current client certificate;
 * a retried renewal whose answer was lost gets the same certificate again. */
#include "api/activation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/audit.h"
#include "api/certificates.h"
#include "api/metrics.h"
#include "api/params.h"
#include "api/reply.h"
#include "api/transaction.h"
#include "ca/csr.h"
#include "ca/crl.h"
#include "db/certificates.h"
#include "db/db.h"
#include "db/devices.h"
#include "db/services.h"
#include "util/error.h"

#define CSR_MAX_LEN 16384

int hub_api_activation_parse(struct hub_req *r, json_t *body, mbedtls_x509_csr *csr)
{
    char err[256];
    const char *pem = hub_params_string(r, body, "csr", 1, CSR_MAX_LEN);
    if (pem == NULL)
        return HUB_REPLIED;
    int rc = hub_csr_load((const uint8_t *)pem, strlen(pem), csr, err, sizeof err);
    if (rc != 0) {
        hub_reply_error(r, 400, rc == HUB_EKEYPOLICY ? "key_not_accepted" : "invalid_csr", "%s",
                        err);
        return HUB_REPLIED;
    }
    return 0;
}

/* Locks the principal row and returns its status, in a new transaction. */
static int lock_principal(struct hub_req *r, int service, char status[16])
{
    int rc = hub_db_begin(r->db);
    if (rc == 0)
        rc = service ? hub_db_services_lock(r->db, r->params[0], status)
                     : hub_db_devices_lock(r->db, r->params[0], status);
    return rc;
}

/* 1 when pk is the public key of the certificate in pem. */
static int same_public_key(const char *pem, mbedtls_pk_context *pk)
{
    unsigned char a[2048], b[2048]; /* SubjectPublicKeyInfo, RSA-8192 included */
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int same = 0;
    if (pem != NULL &&
        mbedtls_x509_crt_parse(&crt, (const unsigned char *)pem, strlen(pem) + 1) == 0) {
        int la = mbedtls_pk_write_pubkey_der(&crt.pk, a, sizeof a);
        int lb = mbedtls_pk_write_pubkey_der(pk, b, sizeof b);
        same = la > 0 && la == lb && memcmp(a + sizeof a - la, b + sizeof b - lb, (size_t)la) == 0;
    }
    mbedtls_x509_crt_free(&crt);
    return same;
}

/* A renewal's client certificate must be one of the principal's valid certificates (old):
 * returns 0. A retried renewal whose answer was lost presents the certificate it
 * superseded and a CSR for the key of the current one: returns 0 with that certificate in
 * *replay (the caller answers with it again). Otherwise replies 403 naming why and returns
 * HUB_REPLIED. */
static int check_current(struct hub_req *r, char (*old)[HUB_SERIAL_HEX], size_t nold,
                         mbedtls_pk_context *pk, json_t **replay)
{
    const char *serial = r->who.cert_serial;
    for (size_t i = 0; i < nold; i++)
        if (strcmp(old[i], serial) == 0)
            return 0;
    json_t *cert = NULL;
    int rc = hub_db_certificates_get(r->db, serial, &cert);
    const char *reason = json_string_value(json_object_get(cert, "revocation_reason"));
    int superseded = reason != NULL && strcmp(reason, "superseded") == 0;
    if (rc == 0 && superseded && nold == 1 && hub_db_certificates_get(r->db, old[0], replay) == 0) {
        if (same_public_key(json_string_value(json_object_get(*replay, "certificate")), pk)) {
            json_decref(cert);
            return 0;
        }
        json_decref(*replay);
        *replay = NULL;
    }
    if (rc != 0 && rc != HUB_ENOTFOUND)
        hub_reply_internal(r, rc, "certificate lookup");
    else if (superseded)
        hub_reply_error(r, 403, "certificate_superseded",
                        "client certificate %s was superseded by a newer one", serial);
    else if (reason != NULL)
        hub_reply_error(r, 403, "certificate_revoked", "client certificate %s is revoked (%s)",
                        serial, reason);
    else
        hub_reply_error(r, 403, "certificate_not_current",
                        "client certificate %s is not a current certificate of %s", serial,
                        r->params[0]);
    json_decref(cert);
    return HUB_REPLIED;
}

#define RFC3339_LEN 21

/* t as the API shows times: "2026-12-07T04:12:22Z" (UTC). */
static void rfc3339(time_t t, char out[RFC3339_LEN])
{
    struct tm tm;
    strftime(out, RFC3339_LEN, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
}

int hub_api_activation_issue(struct hub_req *r, int service, mbedtls_x509_csr *csr,
                             const char *protocol, json_t **answer, unsigned *status)
{
    const char *id = r->params[0];
    char principal_status[16];
    char(*old)[HUB_SERIAL_HEX] = NULL;
    size_t nold = 0;
    hub_buf_t chain = HUB_BUF_INIT;
    struct hub_issued issued = HUB_ISSUED_INIT;
    json_t *cert = NULL, *superseded = json_array();
    int result = HUB_REPLIED;
    *answer = NULL;

    if (hub_transaction_db(r) == NULL)
        goto out;
    int rc = lock_principal(r, service, principal_status);
    if (rc == 0 && strcmp(principal_status, "revoked") == 0) {
        hub_reply_error(r, 403, service ? "service_revoked" : "device_revoked",
                        "%s %s is revoked; an operator must reset it first",
                        service ? "service" : "device", id);
        goto out;
    }
    if (rc == 0)
        rc = hub_db_certificates_valid_serials(r->db, service ? "service_id" : "device_id", id,
                                               &old, &nold);
    if (rc != 0) {
        hub_reply_internal(r, rc, "activation");
        goto out;
    }
    if (r->who.cert_serial[0] != 0 && check_current(r, old, nold, &csr->pk, &cert) != 0)
        goto out;
    if (cert != NULL) {
        /* Nothing changes: the same certificate again, 200 rather than 201. */
        if (hub_authority_chain_pem(r->api->authority, &chain) != 0) {
            hub_reply_internal(r, HUB_ENOMEM, "renewal");
            goto out;
        }
        if (hub_transaction_commit(r) != 0)
            goto out;
        *status = 200;
        *answer = json_pack("{s:O,s:s,s:O,s:O,s:O,s:O}", "certificate",
                            json_object_get(cert, "certificate"), "ca_chain", (char *)chain.data,
                            "serial", json_object_get(cert, "serial"), "not_before",
                            json_object_get(cert, "not_before"), "not_after",
                            json_object_get(cert, "not_after"), "superseded", superseded);
        result = 0;
        goto out;
    }
    if (nold > 0 && hub_api_certificates_revoke_serials(r, old, nold, HUB_REASON_SUPERSEDED) != 0)
        goto out;
    for (size_t i = 0; i < nold; i++)
        json_array_append_new(superseded, json_string(old[i]));

    struct hub_issue req = {
        .kind = HUB_CERT_CLIENT,
        .cn = id,
        .o = service ? "services" : r->who.product_key,
        .key = &csr->pk,
        .days = r->api->device_cert_days,
        .device_id = service ? NULL : id,
        .service_id = service ? id : NULL,
    };
    rc = hub_authority_issue(r->api->authority, r->db, &req, &issued);
    if (rc == 0)
        rc = service ? hub_db_services_set_status(r->db, id, "active")
                     : hub_db_devices_set_status(r->db, id, "active");
    if (rc == 0) {
        json_t *d = json_pack("{s:s,s:O}", "serial", issued.serial, "superseded", superseded);
        if (protocol != NULL)
            json_object_set_new(d, "protocol", json_string(protocol));
        char *text = json_dumps(d, JSON_COMPACT);
        json_decref(d);
        rc = hub_api_audit_write(r, id, text);
        free(text);
    }
    if (rc == 0)
        rc = hub_authority_chain_pem(r->api->authority, &chain);
    if (rc != 0) {
        hub_reply_internal(r, rc, "certificate issuance");
        goto out;
    }
    if (hub_transaction_commit(r) != 0)
        goto out;
    hub_metrics_inc(HUB_M_ACTIVATIONS);
    char not_before[RFC3339_LEN], not_after[RFC3339_LEN];
    rfc3339(issued.not_before, not_before);
    rfc3339(issued.not_after, not_after);
    *status = 201;
    *answer = json_pack("{s:s%,s:s,s:s,s:s,s:s,s:O}", "certificate",
                        (const char *)issued.pem.data, issued.pem.len, "ca_chain",
                        (char *)chain.data, "serial", issued.serial, "not_before", not_before,
                        "not_after", not_after, "superseded", superseded);
    result = 0;
out:
    if (result == 0 && *answer == NULL) {
        hub_reply_internal(r, HUB_ENOMEM, "activation answer");
        result = HUB_REPLIED;
    }
    free(old);
    hub_authority_issued_free(&issued);
    hub_buf_free(&chain);
    json_decref(cert);
    json_decref(superseded);
    return result;
}

/* Activates (or renews) the device or service (service = 1) of the path: {"csr": PEM} in,
 * JSON out. */
static void activate(struct hub_req *r, int service)
{
    mbedtls_x509_csr csr;
    json_t *answer = NULL;
    unsigned status = 0;
    mbedtls_x509_csr_init(&csr);
    json_t *body = hub_params_json(r);
    if (body != NULL && hub_api_activation_parse(r, body, &csr) == 0 &&
        hub_api_activation_issue(r, service, &csr, NULL, &answer, &status) == 0)
        hub_reply_json(r, status, answer);
    mbedtls_x509_csr_free(&csr);
    json_decref(body);
}

void hub_api_activation_device(struct hub_req *r)
{
    activate(r, 0);
}

void hub_api_activation_service(struct hub_req *r)
{
    activate(r, 1);
}
