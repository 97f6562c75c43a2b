/* EST (RFC 7030) on top of activation: the transport differs (base64 DER bodies, PKCS#7
 * answers, media types), the decisions do not. simpleenroll is an activation by the device's
 * Basic credentials, simplereenroll a renewal by its current client certificate; both run
 * hub_api_activation_issue, so supersession, audit (details "protocol": "est"), the CRL and
 * the NOTIFY are activation's.
 *
 * Every input is hostile: the Content-Type must be application/pkcs10 (415), the body strict
 * base64 (400 invalid_base64) of one DER CertificationRequest (400 invalid_csr /
 * key_not_accepted, as activation). The certificate's subject comes from iothub, so the
 * CSR's subject is ignored, except that a CN naming anything but the authenticated device is
 * refused (403 csr_subject_mismatch): a device asking for another's identity is a sign of a
 * confused or hostile client, and RFC 7030 §4.2.2 wants the subject of a re-enrollment to be
 * the current certificate's. Nothing is ever deferred, so no 202 (see docs/ca.md). */
#include "api/est.h"

#include <string.h>
#include <strings.h>

#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>
#include <microhttpd.h>

#include "api/activation.h"
#include "api/reply.h"
#include "ca/csr.h"
#include "ca/csrattrs.h"
#include "ca/pkcs7.h"
#include "util/base64.h"
#include "util/error.h"

#define P7_CERTS_ONLY "application/pkcs7-mime; smime-type=certs-only"

/* Replies 200 with the base64 of der as content_type (Content-Transfer-Encoding: base64, which
 * RFC 7030 §4.1.3 names and RFC 8951 lets clients ignore). */
static void reply_base64(struct hub_req *r, const char *content_type, const uint8_t *der,
                         size_t len)
{
    hub_buf_t text = HUB_BUF_INIT;
    int rc = hub_base64_encode(der, len, &text);
    if (rc != 0) {
        hub_reply_internal(r, rc, "EST answer");
    } else {
        hub_reply_raw(r, 200, content_type, text.data, text.len);
        hub_reply_header(r, "Content-Transfer-Encoding", "base64");
    }
    hub_buf_free(&text);
}

void hub_api_est_cacerts(struct hub_req *r)
{
    hub_buf_t p7 = HUB_BUF_INIT;
    int rc = hub_authority_chain_p7b(r->api->authority, &p7);
    if (rc != 0)
        hub_reply_internal(r, rc, "EST cacerts");
    else
        reply_base64(r, "application/pkcs7-mime", p7.data, p7.len);
    hub_buf_free(&p7);
}

void hub_api_est_csrattrs(struct hub_req *r)
{
    size_t len;
    const uint8_t *der = hub_csrattrs_der(&len);
    reply_base64(r, "application/csrattrs", der, len);
}

/* 1 when the Content-Type header is type, with or without parameters. */
static int media_type_is(struct hub_req *r, const char *type)
{
    const char *ct = hub_request_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    size_t n = strlen(type);
    return ct != NULL && strncasecmp(ct, type, n) == 0 &&
           (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

/* Refuses a CSR whose subject holds a CN other than the device's id (r->params[0]); a
 * subject without CN is fine. Returns 0 or HUB_REPLIED (403). */
static int check_subject(struct hub_req *r, const mbedtls_x509_csr *csr)
{
    for (const mbedtls_x509_name *n = &csr->subject; n != NULL; n = n->next) {
        if (n->oid.p == NULL || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) != 0)
            continue;
        const char *id = r->params[0];
        size_t len = strlen(id);
        if (n->val.len != len || strncasecmp((const char *)n->val.p, id, len) != 0) {
            hub_reply_error(r, 403, "csr_subject_mismatch",
                            "the CSR's subject names another CN than device %s; use CN=%s or "
                            "no CN (iothub writes the subject)",
                            id, id);
            return HUB_REPLIED;
        }
    }
    return 0;
}

/* Decodes the request: application/pkcs10, base64 of one DER CSR that passes ca/csr.c.
 * Returns 0 with csr loaded, or HUB_REPLIED (415, 400, 403). */
static int read_csr(struct hub_req *r, mbedtls_x509_csr *csr)
{
    char err[256];
    hub_buf_t der = HUB_BUF_INIT;
    int result = HUB_REPLIED;
    if (!media_type_is(r, "application/pkcs10")) {
        hub_reply_error(r, 415, "unsupported_media_type",
                        "the request body must be application/pkcs10: a base64 DER PKCS#10 "
                        "certificate request");
        return HUB_REPLIED;
    }
    int rc = hub_base64_decode((const char *)r->body.data, r->body.len, &der);
    if (rc == HUB_ENOMEM) {
        hub_reply_internal(r, rc, "EST request");
        goto out;
    }
    if (rc != 0) {
        hub_reply_error(r, 400, "invalid_base64",
                        r->body.len == 0 ? "the request body is empty; a base64 DER PKCS#10 "
                                           "certificate request is expected"
                                         : "the request body is not valid base64");
        goto out;
    }
    if (der.data[0] != 0x30) { /* hub_csr_load would also take PEM */
        hub_reply_error(r, 400, "invalid_csr", "the decoded body is not a DER PKCS#10 request");
        goto out;
    }
    rc = hub_csr_load(der.data, der.len, csr, err, sizeof err);
    if (rc != 0) {
        hub_reply_error(r, 400, rc == HUB_EKEYPOLICY ? "key_not_accepted" : "invalid_csr", "%s",
                        err);
        goto out;
    }
    result = check_subject(r, csr);
out:
    hub_buf_free(&der);
    return result;
}

/* Enrollment and re-enrollment: the CSR in, the certificate out as base64 PKCS#7. */
static void enroll(struct hub_req *r)
{
    mbedtls_x509_csr csr;
    mbedtls_x509_crt crt;
    json_t *answer = NULL;
    unsigned status = 0;
    hub_buf_t p7 = HUB_BUF_INIT;
    mbedtls_x509_csr_init(&csr);
    mbedtls_x509_crt_init(&crt);
    if (read_csr(r, &csr) != 0 ||
        hub_api_activation_issue(r, 0, &csr, "est", &answer, &status) != 0)
        goto out;
    /* The certificate is committed: from here on only a memory failure can stop the answer
     * (and the device can re-enroll with the certificate it was not told of). */
    const char *pem = json_string_value(json_object_get(answer, "certificate"));
    int rc = pem == NULL ? HUB_EINVAL
                         : mbedtls_x509_crt_parse(&crt, (const unsigned char *)pem, strlen(pem) + 1);
    if (rc == 0) {
        const uint8_t *der = crt.raw.p;
        size_t len = crt.raw.len;
        rc = hub_pkcs7_certs_only(&der, &len, 1, &p7);
    }
    if (rc != 0)
        hub_reply_internal(r, HUB_ECRYPTO, "EST answer");
    else
        reply_base64(r, P7_CERTS_ONLY, p7.data, p7.len);
out:
    mbedtls_x509_csr_free(&csr);
    mbedtls_x509_crt_free(&crt);
    hub_buf_free(&p7);
    json_decref(answer);
}

void hub_api_est_simpleenroll(struct hub_req *r)
{
    enroll(r);
}

void hub_api_est_simplereenroll(struct hub_req *r)
{
    enroll(r);
}
