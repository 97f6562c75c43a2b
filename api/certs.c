/* Certificates: activation (CSR → certificate) for devices and services, revocation by
 * serial, listing, and the public CRL and CA endpoints. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "api/metrics.h"
#include "api/routes.h"
#include "ca/crl.h"
#include "ca/csr.h"
#include "ca/pem.h"
#include "db/certificates.h"
#include "db/crls.h"
#include "db/db.h"
#include "db/devices.h"
#include "db/services.h"
#include "util/error.h"

#define CSR_MAX_LEN 16384

int hub_req_reason(struct hub_req *r, int def)
{
    if (r->body.len == 0)
        return def;
    json_t *body = hub_req_json(r);
    if (body == NULL)
        return -1;
    int reason = hub_api_reason_parse(r, body, def);
    json_decref(body);
    return reason;
}

int hub_api_reason_parse(struct hub_req *r, json_t *body, int def)
{
    int reason = def;
    const char *name = hub_json_string(r, body, "reason", 0, 64);
    if (r->status != 0)
        return -1;
    if (name != NULL && (hub_crl_reason_parse(name, &reason) != 0 ||
                         reason == HUB_REASON_CERTIFICATE_HOLD)) {
        hub_reply_error(r, 400, "invalid_reason",
                        "reason must be an RFC 5280 reason name: unspecified, keyCompromise, "
                        "cACompromise, affiliationChanged, superseded, cessationOfOperation, "
                        "privilegeWithdrawn or aACompromise");
        return -1;
    }
    return reason;
}

int hub_api_activate_parse(struct hub_req *r, json_t *body, mbedtls_x509_csr *csr)
{
    char err[256];
    const char *pem = hub_json_string(r, body, "csr", 1, CSR_MAX_LEN);
    if (pem == NULL)
        return -1;
    int rc = hub_csr_load((const uint8_t *)pem, strlen(pem), csr, err, sizeof err);
    if (rc != 0) {
        hub_reply_error(r, 400, rc == HUB_EKEYPOLICY ? "key_not_accepted" : "invalid_csr", "%s",
                        err);
        return -1;
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
 * superseded and a CSR for the key of the current one: returns 1 with that certificate in
 * *replay (the caller answers with it again). Otherwise replies 403 naming why and returns
 * -1. */
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
            return 1;
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
        hub_reply_error(r, 403, "certificate_revoked",
                        "client certificate %s is revoked (%s)", serial, reason);
    else
        hub_reply_error(r, 403, "certificate_not_current",
                        "client certificate %s is not a current certificate of %s", serial,
                        r->params[0]);
    json_decref(cert);
    return -1;
}

void hub_api_activate(struct hub_req *r, int service)
{
    const char *id = r->params[0];
    mbedtls_x509_csr csr;
    char status[16], serial[HUB_SERIAL_HEX];
    char(*old)[HUB_SERIAL_HEX] = NULL;
    size_t nold = 0;
    hub_buf_t der = HUB_BUF_INIT, chain = HUB_BUF_INIT;
    json_t *cert = NULL, *superseded = json_array();
    mbedtls_x509_csr_init(&csr);

    json_t *body = hub_req_json(r);
    if (body == NULL || hub_api_activate_parse(r, body, &csr) != 0)
        goto out;
    if (hub_req_db(r) == NULL)
        goto out;
    int rc = lock_principal(r, service, status);
    if (rc == 0 && strcmp(status, "revoked") == 0) {
        hub_reply_error(r, 403, service ? "service_revoked" : "device_revoked",
                        "%s %s is revoked; an operator must reset it first",
                        service ? "service" : "device", id);
        goto out;
    }
    if (rc == 0)
        rc = hub_db_certificates_valid_serials(r->db, service ? "service_id" : "device_id", id, &old, &nold);
    if (rc != 0) {
        hub_reply_internal(r, rc, "activation");
        goto out;
    }
    int replay = r->who.cert_serial[0] != 0 ? check_current(r, old, nold, &csr.pk, &cert) : 0;
    if (replay < 0)
        goto out;
    if (replay > 0) {
        /* Nothing changes: the same certificate again, 200 rather than 201. */
        if (hub_authority_chain_pem(r->api->authority, &chain) != 0) {
            hub_reply_internal(r, HUB_ENOMEM, "renewal");
            goto out;
        }
        if (hub_req_commit(r) == 0)
            hub_reply_json(r, 200,
                           json_pack("{s:O,s:s,s:O,s:O,s:O,s:O}", "certificate",
                                     json_object_get(cert, "certificate"), "ca_chain",
                                     (char *)chain.data, "serial", json_object_get(cert, "serial"),
                                     "not_before", json_object_get(cert, "not_before"),
                                     "not_after", json_object_get(cert, "not_after"),
                                     "superseded", superseded));
        goto out;
    }
    if (nold > 0 && hub_api_revoke_serials(r, old, nold, HUB_REASON_SUPERSEDED) != 0)
        goto out;
    for (size_t i = 0; i < nold; i++)
        json_array_append_new(superseded, json_string(old[i]));

    struct hub_issue req = {
        .kind = HUB_CERT_CLIENT,
        .cn = id,
        .o = service ? "services" : r->who.product_key,
        .key = &csr.pk,
        .days = r->api->device_cert_days,
        .device_id = service ? NULL : id,
        .service_id = service ? id : NULL,
    };
    rc = hub_authority_issue(r->api->authority, r->db, &req, serial, &der);
    if (rc == 0)
        rc = service ? hub_db_services_set_status(r->db, id, "active")
                     : hub_db_devices_set_status(r->db, id, "active");
    if (rc == 0) {
        json_t *d = json_pack("{s:s,s:O}", "serial", serial, "superseded", superseded);
        char *text = json_dumps(d, JSON_COMPACT);
        json_decref(d);
        rc = hub_req_audit(r, id, text);
        free(text);
    }
    if (rc == 0)
        rc = hub_db_certificates_get(r->db, serial, &cert);
    if (rc == 0)
        rc = hub_authority_chain_pem(r->api->authority, &chain);
    if (rc != 0) {
        hub_reply_internal(r, rc, "certificate issuance");
        goto out;
    }
    if (hub_req_commit(r) != 0)
        goto out;
    hub_metrics_inc(HUB_M_ACTIVATIONS);
    hub_reply_json(r, 201,
                   json_pack("{s:O,s:s,s:s,s:O,s:O,s:O}", "certificate",
                             json_object_get(cert, "certificate"), "ca_chain",
                             (char *)chain.data, "serial", serial, "not_before",
                             json_object_get(cert, "not_before"), "not_after",
                             json_object_get(cert, "not_after"), "superseded", superseded));
out:
    mbedtls_x509_csr_free(&csr);
    free(old);
    hub_buf_free(&der);
    hub_buf_free(&chain);
    json_decref(cert);
    json_decref(superseded);
    json_decref(body);
}

void hub_api_devices_activate(struct hub_req *r)
{
    hub_api_activate(r, 0);
}

void hub_api_services_activate(struct hub_req *r)
{
    hub_api_activate(r, 1);
}

void hub_api_devices_renew(struct hub_req *r)
{
    hub_api_activate(r, 0);
}

void hub_api_services_renew(struct hub_req *r)
{
    hub_api_activate(r, 1);
}

/* Upper-cases a serial from the path; returns 0 if it is 1..40 hex digits. */
static int normalise_serial(const char *in, char out[HUB_SERIAL_HEX])
{
    size_t n = strlen(in);
    if (n == 0 || n >= HUB_SERIAL_HEX)
        return -1;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && !isxdigit((unsigned char)in[i]))
            return -1;
        out[i] = (char)toupper((unsigned char)in[i]);
    }
    return 0;
}

void hub_api_certs_revoke(struct hub_req *r)
{
    char serial[1][HUB_SERIAL_HEX];
    if (normalise_serial(r->params[0], serial[0]) != 0) {
        hub_reply_error(r, 404, "not_found", "no certificate %s", r->params[0]);
        return;
    }
    int reason = hub_req_reason(r, HUB_REASON_UNSPECIFIED);
    if (reason < 0 || hub_req_db(r) == NULL)
        return;
    json_t *cert;
    int rc = hub_db_certificates_get(r->db, serial[0], &cert);
    if (rc == 0) {
        const char *kind = json_string_value(json_object_get(cert, "kind"));
        int server = kind != NULL && strcmp(kind, "server") == 0;
        json_decref(cert);
        if (server) {
            hub_reply_error(r, 409, "server_certificate",
                            "certificate %s is the gateway's own TLS certificate; it is "
                            "replaced by `iothubd init`, not revoked through the API",
                            serial[0]);
            return;
        }
    }
    rc = hub_db_begin(r->db);
    if (rc != 0) {
        hub_reply_internal(r, rc, "revocation");
        return;
    }
    if (hub_api_revoke_serials(r, serial, 1, reason) != 0)
        return;
    json_t *d = json_pack("{s:s}", "reason", hub_crl_reason_name(reason));
    char *text = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    rc = hub_req_audit(r, serial[0], text);
    free(text);
    if (rc != 0) {
        hub_reply_internal(r, rc, "revocation");
        return;
    }
    if (hub_req_commit(r) != 0)
        return;
    hub_reply_json(r, 200, json_pack("{s:s,s:s,s:s}", "serial", serial[0], "status", "revoked",
                                     "reason", hub_crl_reason_name(reason)));
}

void hub_api_certs_list(struct hub_req *r)
{
    int limit = hub_req_limit(r, 100, 1000);
    if (limit < 0)
        return;
    const char *device = hub_req_query(r, "device_id");
    if (device != NULL && !hub_uuid_valid(device)) {
        hub_reply_error(r, 400, "invalid_parameter", "device_id must be a device id");
        return;
    }
    json_t *list;
    if (hub_req_db(r) == NULL)
        return;
    int rc = hub_db_certificates_list(r->db, device, limit, &list);
    if (rc != 0)
        hub_reply_internal(r, rc, "certificate listing");
    else
        hub_reply_json(r, 200, json_pack("{s:o}", "certificates", list));
}

void hub_api_certs_show(struct hub_req *r)
{
    char serial[HUB_SERIAL_HEX];
    json_t *cert;
    if (normalise_serial(r->params[0], serial) != 0) {
        hub_reply_error(r, 404, "not_found", "no certificate %s", r->params[0]);
        return;
    }
    if (hub_req_db(r) == NULL)
        return;
    int rc = hub_db_certificates_get(r->db, serial, &cert);
    if (rc == HUB_ENOTFOUND)
        hub_reply_error(r, 404, "not_found", "no certificate %s", serial);
    else if (rc != 0)
        hub_reply_internal(r, rc, "certificate lookup");
    else
        hub_reply_json(r, 200, cert);
}

/* Validates ?format= against two names; returns 1 for the second. Replies 400 on others. */
static int format_param(struct hub_req *r, const char *first, const char *second)
{
    const char *f = hub_req_query(r, "format");
    if (f == NULL || strcmp(f, first) == 0)
        return 0;
    if (strcmp(f, second) == 0)
        return 1;
    hub_reply_error(r, 400, "invalid_parameter", "format must be %s or %s", first, second);
    return -1;
}

void hub_api_crl(struct hub_req *r)
{
    int pem = format_param(r, "der", "pem");
    if (pem < 0)
        return;
    /* ?ca=SERIAL: the CRL of another of our CAs (a retired issuing CA, or the root). */
    const char *ca = hub_req_query(r, "ca");
    int ca_id = ca ? hub_authority_ca_by_serial(r->api->authority, ca)
                   : r->api->authority->id[HUB_CA_ISSUING];
    if (ca_id == 0) {
        hub_reply_error(r, 404, "not_found", "no CA with serial %.64s", ca);
        return;
    }
    if (hub_req_db(r) == NULL)
        return;
    hub_buf_t der = HUB_BUF_INIT, out = HUB_BUF_INIT;
    uint64_t number;
    time_t this_update, next_update;
    int rc = hub_db_crls_latest(r->db, ca_id, &der, &number, &this_update, &next_update);
    if (rc != 0) {
        hub_reply_internal(r, rc, "CRL lookup");
        goto out;
    }
    char etag[64], modified[64], expires[64];
    snprintf(etag, sizeof etag, "\"crl-%llu%s\"", (unsigned long long)number, pem ? "-pem" : "");
    struct tm tm;
    strftime(modified, sizeof modified, "%a, %d %b %Y %H:%M:%S GMT",
             gmtime_r(&this_update, &tm));
    strftime(expires, sizeof expires, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&next_update, &tm));
    const char *inm = hub_req_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm != NULL && strstr(inm, etag) != NULL) {
        hub_reply_raw(r, 304, "application/pkix-crl", "", 0);
    } else if (pem) {
        rc = hub_pem_encode("X509 CRL", der.data, der.len, &out);
        if (rc != 0) {
            hub_reply_internal(r, rc, "PEM encoding");
            goto out;
        }
        hub_reply_raw(r, 200, "application/x-pem-file", out.data, out.len);
    } else {
        hub_reply_raw(r, 200, "application/pkix-crl", der.data, der.len);
    }
    hub_reply_header(r, MHD_HTTP_HEADER_ETAG, etag);
    hub_reply_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, modified);
    hub_reply_header(r, MHD_HTTP_HEADER_EXPIRES, expires);
    hub_reply_header(r, "Cache-Control", "no-cache");
out:
    hub_buf_free(&der);
    hub_buf_free(&out);
}

void hub_api_ca(struct hub_req *r)
{
    int p7b = format_param(r, "pem", "p7b");
    if (p7b < 0)
        return;
    hub_buf_t out = HUB_BUF_INIT;
    int rc = p7b ? hub_authority_chain_p7b(r->api->authority, &out)
                 : hub_authority_chain_pem(r->api->authority, &out);
    if (rc != 0)
        hub_reply_internal(r, rc, "CA chain");
    else
        hub_reply_raw(r, 200, p7b ? "application/pkcs7-mime; smime-type=certs-only"
                                  : "application/pem-certificate-chain",
                      out.data, out.len);
    hub_reply_header(r, "Cache-Control", "public, max-age=3600");
    hub_buf_free(&out);
}
