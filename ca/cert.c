/* X.509 v3 issuance. The TBSCertificate is written by hand (backwards, as mbedTLS's ASN.1
 * writer works), extensions last-to-first so they appear in the order: basicConstraints,
 * keyUsage, extKeyUsage, subjectAltName, SKI, AKI, cRLDistributionPoints,
 * authorityInfoAccess (clients), id-pkix-ocsp-nocheck (OCSP signers). */
#include "ca/cert.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/oid.h>

#include "ca/der.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

#define SEQ (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)
#define CTX(n) (MBEDTLS_ASN1_CONTEXT_SPECIFIC | (n))
#define CTX_CONS(n) (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | (n))
#define OID_AIA MBEDTLS_OID_PKIX "\x01\x01"              /* id-pe-authorityInfoAccess */
#define OID_AD_OCSP MBEDTLS_OID_PKIX "\x30\x01"          /* id-ad-ocsp */
#define OID_OCSP_NOCHECK MBEDTLS_OID_PKIX "\x30\x01\x05" /* id-pkix-ocsp-nocheck */

struct tbs_ctx {
    const struct hub_cert_request *req;
    const struct hub_der_sigalg *alg;
    const uint8_t *serial;
    uint8_t ski[20];
    uint8_t aki[HUB_KEY_ID_MAX];
    size_t aki_len; /* 0: no AKI (self-signed root) */
};

static int write_header(unsigned char **p, unsigned char *start, size_t len, int tag)
{
    size_t n = 0;
    HUB_DER_CHK(n, mbedtls_asn1_write_len(p, start, len));
    HUB_DER_CHK(n, mbedtls_asn1_write_tag(p, start, (unsigned char)tag));
    return (int)n;
}

static int ext_basic_constraints(unsigned char **p, unsigned char *start,
                                 enum hub_cert_kind kind)
{
    size_t len = 0;
    if (kind == HUB_CERT_ISSUING_CA)
        HUB_DER_CHK(len, mbedtls_asn1_write_int(p, start, 0));
    if (kind == HUB_CERT_ROOT_CA || kind == HUB_CERT_ISSUING_CA)
        HUB_DER_CHK(len, mbedtls_asn1_write_bool(p, start, 1));
    HUB_DER_CHK(len, write_header(p, start, len, SEQ));
    return hub_der_write_ext(p, start, MBEDTLS_OID_BASIC_CONSTRAINTS,
                             MBEDTLS_OID_SIZE(MBEDTLS_OID_BASIC_CONSTRAINTS), 1, len);
}

static int ext_key_usage(unsigned char **p, unsigned char *start, const struct tbs_ctx *c)
{
    size_t len = 0;
    unsigned char ku;
    if (c->req->kind == HUB_CERT_ROOT_CA || c->req->kind == HUB_CERT_ISSUING_CA)
        ku = MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN;
    else
        ku = MBEDTLS_X509_KU_DIGITAL_SIGNATURE;
    if (c->req->kind == HUB_CERT_SERVER &&
        mbedtls_pk_get_type(c->req->subject_key) == MBEDTLS_PK_RSA)
        ku |= MBEDTLS_X509_KU_KEY_ENCIPHERMENT;
    HUB_DER_CHK(len, mbedtls_asn1_write_named_bitstring(p, start, &ku, 8));
    return hub_der_write_ext(p, start, MBEDTLS_OID_KEY_USAGE,
                             MBEDTLS_OID_SIZE(MBEDTLS_OID_KEY_USAGE), 1, len);
}

static int ext_eku(unsigned char **p, unsigned char *start, enum hub_cert_kind kind)
{
    size_t len = 0;
    if (kind == HUB_CERT_SERVER)
        HUB_DER_CHK(len, mbedtls_asn1_write_oid(p, start, MBEDTLS_OID_SERVER_AUTH,
                                                MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)));
    else if (kind == HUB_CERT_OCSP_SIGNER)
        HUB_DER_CHK(len, mbedtls_asn1_write_oid(p, start, MBEDTLS_OID_OCSP_SIGNING,
                                                MBEDTLS_OID_SIZE(MBEDTLS_OID_OCSP_SIGNING)));
    else
        HUB_DER_CHK(len, mbedtls_asn1_write_oid(p, start, MBEDTLS_OID_CLIENT_AUTH,
                                                MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)));
    HUB_DER_CHK(len, write_header(p, start, len, SEQ));
    return hub_der_write_ext(p, start, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                             MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0, len);
}

static int ext_san(unsigned char **p, unsigned char *start, const char *const *names)
{
    size_t len = 0, n = 0;
    while (names[n] != NULL)
        n++;
    while (n-- > 0) {
        unsigned char ip[16];
        size_t iplen = 0;
        if (inet_pton(AF_INET, names[n], ip) == 1)
            iplen = 4;
        else if (inet_pton(AF_INET6, names[n], ip) == 1)
            iplen = 16;
        if (iplen > 0) {
            HUB_DER_CHK(len, mbedtls_asn1_write_raw_buffer(p, start, ip, iplen));
            HUB_DER_CHK(len, write_header(p, start, iplen, CTX(7))); /* iPAddress */
        } else {
            HUB_DER_CHK(len, mbedtls_asn1_write_tagged_string(p, start, CTX(2), names[n],
                                                              strlen(names[n]))); /* dNSName */
        }
    }
    HUB_DER_CHK(len, write_header(p, start, len, SEQ));
    return hub_der_write_ext(p, start, MBEDTLS_OID_SUBJECT_ALT_NAME,
                             MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, len);
}

/* subjectAltName of a client: one uniformResourceIdentifier [6] IA5String (SPEC §5). */
static int ext_san_uri(unsigned char **p, unsigned char *start, const char *uri)
{
    size_t len = 0;
    HUB_DER_CHK(len, mbedtls_asn1_write_tagged_string(p, start, CTX(6), uri, strlen(uri)));
    HUB_DER_CHK(len, write_header(p, start, len, SEQ));
    return hub_der_write_ext(p, start, MBEDTLS_OID_SUBJECT_ALT_NAME,
                             MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, len);
}

static int ext_ski(unsigned char **p, unsigned char *start, const uint8_t ski[20])
{
    size_t len = 0;
    HUB_DER_CHK(len, mbedtls_asn1_write_octet_string(p, start, ski, 20));
    return hub_der_write_ext(p, start, MBEDTLS_OID_SUBJECT_KEY_IDENTIFIER,
                             MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_KEY_IDENTIFIER), 0, len);
}

static int ext_crl_dp(unsigned char **p, unsigned char *start, const char *url)
{
    size_t len = 0;
    /* SEQUENCE { DistributionPoint SEQUENCE { [0] { fullName [0] { [6] URI } } } } */
    HUB_DER_CHK(len, mbedtls_asn1_write_tagged_string(p, start, CTX(6), url, strlen(url)));
    HUB_DER_CHK(len, write_header(p, start, len, CTX_CONS(0)));
    HUB_DER_CHK(len, write_header(p, start, len, CTX_CONS(0)));
    HUB_DER_CHK(len, write_header(p, start, len, SEQ));
    HUB_DER_CHK(len, write_header(p, start, len, SEQ));
    return hub_der_write_ext(p, start, MBEDTLS_OID_CRL_DISTRIBUTION_POINTS,
                             MBEDTLS_OID_SIZE(MBEDTLS_OID_CRL_DISTRIBUTION_POINTS), 0, len);
}

/* authorityInfoAccess: SEQUENCE { AccessDescription { id-ad-ocsp, [6] URI } } (RFC 5280
 * §4.2.2.1), where an OCSP client asks about this certificate. */
static int ext_aia_ocsp(unsigned char **p, unsigned char *start, const char *url)
{
    size_t len = 0;
    HUB_DER_CHK(len, mbedtls_asn1_write_tagged_string(p, start, CTX(6), url, strlen(url)));
    HUB_DER_CHK(len, mbedtls_asn1_write_oid(p, start, OID_AD_OCSP, MBEDTLS_OID_SIZE(OID_AD_OCSP)));
    HUB_DER_CHK(len, write_header(p, start, len, SEQ));
    HUB_DER_CHK(len, write_header(p, start, len, SEQ));
    return hub_der_write_ext(p, start, OID_AIA, MBEDTLS_OID_SIZE(OID_AIA), 0, len);
}

/* id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): extnValue is a NULL. */
static int ext_ocsp_nocheck(unsigned char **p, unsigned char *start)
{
    size_t len = 0;
    HUB_DER_CHK(len, mbedtls_asn1_write_null(p, start));
    return hub_der_write_ext(p, start, OID_OCSP_NOCHECK, MBEDTLS_OID_SIZE(OID_OCSP_NOCHECK), 0,
                             len);
}

static int write_extensions(unsigned char **p, unsigned char *start, const struct tbs_ctx *c)
{
    const struct hub_cert_request *req = c->req;
    size_t len = 0;
    if (req->kind == HUB_CERT_OCSP_SIGNER)
        HUB_DER_CHK(len, ext_ocsp_nocheck(p, start));
    if (req->kind == HUB_CERT_CLIENT && req->ocsp_url != NULL)
        HUB_DER_CHK(len, ext_aia_ocsp(p, start, req->ocsp_url));
    if (req->kind == HUB_CERT_CLIENT && req->crl_url != NULL)
        HUB_DER_CHK(len, ext_crl_dp(p, start, req->crl_url));
    if (c->aki_len > 0)
        HUB_DER_CHK(len, hub_der_write_aki(p, start, c->aki, c->aki_len));
    HUB_DER_CHK(len, ext_ski(p, start, c->ski));
    if (req->kind == HUB_CERT_SERVER && req->alt_names != NULL && req->alt_names[0] != NULL)
        HUB_DER_CHK(len, ext_san(p, start, req->alt_names));
    if (req->kind == HUB_CERT_CLIENT && req->san_uri != NULL)
        HUB_DER_CHK(len, ext_san_uri(p, start, req->san_uri));
    if (req->kind == HUB_CERT_SERVER || req->kind == HUB_CERT_CLIENT ||
        req->kind == HUB_CERT_OCSP_SIGNER)
        HUB_DER_CHK(len, ext_eku(p, start, req->kind));
    HUB_DER_CHK(len, ext_key_usage(p, start, c));
    HUB_DER_CHK(len, ext_basic_constraints(p, start, req->kind));
    HUB_DER_CHK(len, write_header(p, start, len, SEQ));
    HUB_DER_CHK(len, write_header(p, start, len, CTX_CONS(3)));
    return (int)len;
}

static int write_tbs(unsigned char **p, unsigned char *start, void *arg)
{
    const struct tbs_ctx *c = arg;
    const struct hub_cert_request *req = c->req;
    size_t len = 0, vlen = 0;

    HUB_DER_CHK(len, write_extensions(p, start, c));
    HUB_DER_CHK(len, hub_der_write_spki(p, start, req->subject_key));
    HUB_DER_CHK(len, hub_der_write_name(p, start, req->cn, req->o));
    HUB_DER_CHK(vlen, hub_der_write_time(p, start, req->not_after));
    HUB_DER_CHK(vlen, hub_der_write_time(p, start, req->not_before));
    HUB_DER_CHK(vlen, write_header(p, start, vlen, SEQ));
    len += vlen;
    if (req->issuer != NULL)
        HUB_DER_CHK(len, mbedtls_asn1_write_raw_buffer(p, start, req->issuer->subject_raw.p,
                                                       req->issuer->subject_raw.len));
    else
        HUB_DER_CHK(len, hub_der_write_name(p, start, req->cn, req->o));
    HUB_DER_CHK(len, hub_der_write_sigalg(p, start, c->alg));
    HUB_DER_CHK(len, hub_der_write_uint(p, start, c->serial, HUB_SERIAL_LEN));
    /* version [0] EXPLICIT INTEGER v3(2) */
    size_t ver = 0;
    HUB_DER_CHK(ver, mbedtls_asn1_write_int(p, start, 2));
    HUB_DER_CHK(ver, write_header(p, start, ver, CTX_CONS(0)));
    len += ver;
    HUB_DER_CHK(len, write_header(p, start, len, SEQ));
    return (int)len;
}

static int check_request(const struct hub_cert_request *req)
{
    if (req->cn == NULL || req->cn[0] == 0 || req->subject_key == NULL ||
        req->issuer_key == NULL || req->not_after <= req->not_before) {
        hub_error("certificate request: missing CN or key, or empty validity");
        return HUB_EINVAL;
    }
    if ((req->kind == HUB_CERT_ROOT_CA) != (req->issuer == NULL)) {
        hub_error("certificate request: a root has no issuer, other kinds need one");
        return HUB_EINVAL;
    }
    for (const char *s = req->ocsp_url; s != NULL && *s; s++) {
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) {
            hub_error("certificate request: OCSP URL \"%s\" is not ASCII", req->ocsp_url);
            return HUB_EINVAL;
        }
    }
    for (const char *s = req->san_uri; s != NULL && *s; s++) {
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) {
            hub_error("certificate request: SAN URI \"%s\" is not ASCII", req->san_uri);
            return HUB_EINVAL;
        }
    }
    for (size_t i = 0; req->alt_names != NULL && req->alt_names[i] != NULL; i++) {
        const char *s = req->alt_names[i];
        if (s[0] == 0)
            return HUB_EINVAL;
        for (; *s; s++) {
            if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) {
                hub_error("certificate request: alt name \"%s\" is not ASCII",
                          req->alt_names[i]);
                return HUB_EINVAL;
            }
        }
    }
    return 0;
}

int hub_cert_issue(const struct hub_cert_request *req, uint8_t serial_out[HUB_SERIAL_LEN],
                   hub_buf_t *der_out)
{
    struct hub_der_sigalg alg;
    struct tbs_ctx c = {.req = req, .alg = &alg, .serial = serial_out};
    hub_buf_t tbs = HUB_BUF_INIT;
    int rc;

    if ((rc = check_request(req)) != 0)
        return rc;
    if ((rc = hub_der_sigalg(req->issuer_key, &alg)) != 0)
        return rc;
    if ((rc = hub_random(serial_out, HUB_SERIAL_LEN)) != 0) {
        hub_error("certificate serial: getrandom failed");
        return rc;
    }
    /* Positive with a non-zero first byte: the INTEGER is always exactly 16 bytes. */
    serial_out[0] = (uint8_t)((serial_out[0] & 0x7f) | 0x40);
    if ((rc = hub_der_key_id(req->subject_key, c.ski)) != 0)
        return rc;
    if (req->issuer != NULL && (rc = hub_der_issuer_key_id(req->issuer, c.aki, &c.aki_len)))
        return rc;

    struct hub_signer mem = HUB_SIGNER_MEM(req->issuer_key);
    rc = hub_der_build(write_tbs, &c, 4096, "TBSCertificate", &tbs);
    if (rc == 0)
        rc = hub_signer_sign_wrap(req->issuer_signer ? req->issuer_signer : &mem, &alg,
                                  tbs.data, tbs.len, "certificate", der_out);
    hub_buf_free(&tbs);
    return rc;
}

void hub_x509_name_attr(const mbedtls_x509_name *n, const char *oid, size_t oid_len, char *out,
                        size_t outlen)
{
    out[0] = 0;
    for (; n != NULL; n = n->next) {
        if (n->oid.p != NULL && n->oid.len == oid_len && memcmp(n->oid.p, oid, oid_len) == 0) {
            snprintf(out, outlen, "%.*s", (int)n->val.len, (const char *)n->val.p);
            return;
        }
    }
}

int hub_x509_serial_hex(const mbedtls_x509_buf *serial, char *out, size_t outlen)
{
    const unsigned char *p = serial->p;
    size_t n = serial->len;
    while (n > 1 && p[0] == 0) { /* a DER sign byte is not part of the serial */
        p++;
        n--;
    }
    if (n == 0 || n * 2 + 1 > outlen)
        return HUB_ERANGE;
    hub_hex_upper(p, n, out);
    return 0;
}

time_t hub_x509_time(const mbedtls_x509_time *t)
{
    struct tm tm = {.tm_year = t->year - 1900,
                    .tm_mon = t->mon - 1,
                    .tm_mday = t->day,
                    .tm_hour = t->hour,
                    .tm_min = t->min,
                    .tm_sec = t->sec};
    return timegm(&tm);
}
