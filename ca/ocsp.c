/* OCSPResponse writer. RFC 6960 Appendix B.1 uses explicit tags except CertStatus:
 *   OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT
 *                               SEQUENCE { responseType OID, response OCTET STRING } OPT }
 *   BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm, signature BIT
 *                                    STRING, certs [0] EXPLICIT SEQUENCE OF Certificate }
 *   ResponseData ::= SEQUENCE { version [0] DEFAULT v1 (omitted), responderID byKey [2]
 *                               OCTET STRING, producedAt GeneralizedTime, responses SEQUENCE
 *                               OF SingleResponse, responseExtensions [1] OPT }
 *   SingleResponse ::= SEQUENCE { certID, certStatus good [0] IMPLICIT NULL | revoked [1]
 *                                 IMPLICIT SEQUENCE { GeneralizedTime, [0] CRLReason OPT } |
 *                                 unknown [2] IMPLICIT NULL, thisUpdate, nextUpdate [0] OPT }
 * Written backwards like every DER writer here; times are always GeneralizedTime. */
#include "ca/ocsp.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/oid.h>

#include "ca/der.h"
#include "ca/signer.h"
#include "util/error.h"
#include "util/log.h"

#define SEQ (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)
#define CTX(n) (MBEDTLS_ASN1_CONTEXT_SPECIFIC | (n))
#define CTX_CONS(n) (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | (n))
#define OID_OCSP_BASIC MBEDTLS_OID_PKIX "\x30\x01\x01" /* id-pkix-ocsp-basic */
#define OID_OCSP_NONCE MBEDTLS_OID_PKIX "\x30\x01\x02" /* id-pkix-ocsp-nonce */

const char *hub_ocsp_status_name(enum hub_ocsp_resp_status s)
{
    switch (s) {
    case HUB_OCSP_SUCCESSFUL: return "successful";
    case HUB_OCSP_MALFORMED_REQUEST: return "malformedRequest";
    case HUB_OCSP_INTERNAL_ERROR: return "internalError";
    case HUB_OCSP_TRY_LATER: return "tryLater";
    case HUB_OCSP_SIG_REQUIRED: return "sigRequired";
    case HUB_OCSP_UNAUTHORIZED: return "unauthorized";
    }
    return "unknown";
}

static int write_hdr(unsigned char **p, unsigned char *start, size_t len, unsigned char tag)
{
    size_t n = 0;
    HUB_DER_CHK(n, mbedtls_asn1_write_len(p, start, len));
    HUB_DER_CHK(n, mbedtls_asn1_write_tag(p, start, tag));
    return (int)n;
}

/* GeneralizedTime YYYYMMDDHHMMSSZ (RFC 6960 §4.2.2.1 / RFC 5280 §4.1.2.5.2 rules). */
static int write_gtime(unsigned char **p, unsigned char *start, time_t t)
{
    struct tm tm;
    char s[32];
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 1 || tm.tm_year + 1900 > 9999) {
        hub_der_failed_call = "gmtime_r";
        return MBEDTLS_ERR_ASN1_INVALID_DATA;
    }
    int n = snprintf(s, sizeof s, "%04d%02d%02d%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return mbedtls_asn1_write_tagged_string(p, start, MBEDTLS_ASN1_GENERALIZED_TIME, s, (size_t)n);
}

struct tbs_ctx {
    const struct hub_ocsp_basic *b;
};

static int write_single(unsigned char **p, unsigned char *start, const struct hub_ocsp_basic *b,
                        const struct hub_ocsp_single *s)
{
    size_t len = 0;
    if (b->next_update != 0) {
        size_t nu = 0;
        HUB_DER_CHK(nu, write_gtime(p, start, b->next_update));
        HUB_DER_CHK(nu, write_hdr(p, start, nu, CTX_CONS(0)));
        len += nu;
    }
    HUB_DER_CHK(len, write_gtime(p, start, b->this_update));
    if (s->status == HUB_OCSP_REVOKED) {
        size_t ri = 0;
        if (s->reason != 0) {
            size_t r = 0;
            HUB_DER_CHK(r, mbedtls_asn1_write_enum(p, start, s->reason));
            HUB_DER_CHK(r, write_hdr(p, start, r, CTX_CONS(0)));
            ri += r;
        }
        HUB_DER_CHK(ri, write_gtime(p, start, s->revoked_at));
        HUB_DER_CHK(ri, write_hdr(p, start, ri, CTX_CONS(1)));
        len += ri;
    } else {
        HUB_DER_CHK(len, write_hdr(p, start, 0, CTX(s->status == HUB_OCSP_GOOD ? 0 : 2)));
    }
    HUB_DER_CHK(len, mbedtls_asn1_write_raw_buffer(p, start, s->certid, s->certid_len));
    HUB_DER_CHK(len, write_hdr(p, start, len, SEQ));
    return (int)len;
}

static int write_tbs(unsigned char **p, unsigned char *start, void *arg)
{
    const struct hub_ocsp_basic *b = ((const struct tbs_ctx *)arg)->b;
    size_t len = 0;
    if (b->nonce != NULL) { /* responseExtensions [1] { Extension { nonce, value } } */
        size_t ext = 0, v = 0;
        HUB_DER_CHK(v, mbedtls_asn1_write_raw_buffer(p, start, b->nonce, b->nonce_len));
        HUB_DER_CHK(ext, hub_der_write_ext(p, start, OID_OCSP_NONCE,
                                           MBEDTLS_OID_SIZE(OID_OCSP_NONCE), 0, v));
        HUB_DER_CHK(ext, write_hdr(p, start, ext, SEQ));
        HUB_DER_CHK(ext, write_hdr(p, start, ext, CTX_CONS(1)));
        len += ext;
    }
    size_t rl = 0;
    for (size_t i = b->n; i-- > 0;)
        HUB_DER_CHK(rl, write_single(p, start, b, &b->single[i]));
    HUB_DER_CHK(rl, write_hdr(p, start, rl, SEQ));
    len += rl;
    HUB_DER_CHK(len, write_gtime(p, start, b->produced_at));
    size_t rid = 0; /* responderID byKey [2] EXPLICIT KeyHash (OCTET STRING) */
    HUB_DER_CHK(rid, mbedtls_asn1_write_octet_string(p, start, b->key_hash, 20));
    HUB_DER_CHK(rid, write_hdr(p, start, rid, CTX_CONS(2)));
    len += rid;
    HUB_DER_CHK(len, write_hdr(p, start, len, SEQ));
    return (int)len;
}

struct outer_ctx {
    const struct hub_ocsp_basic *b;
    const struct hub_der_sigalg *alg;
    const hub_buf_t *tbs;
    const uint8_t *sig;
    size_t sig_len;
};

static int write_outer(unsigned char **p, unsigned char *start, void *arg)
{
    const struct outer_ctx *o = arg;
    size_t basic = 0, len = 0;
    if (o->b->cert != NULL) { /* certs [0] EXPLICIT SEQUENCE OF Certificate */
        size_t c = 0;
        HUB_DER_CHK(c, mbedtls_asn1_write_raw_buffer(p, start, o->b->cert, o->b->cert_len));
        HUB_DER_CHK(c, write_hdr(p, start, c, SEQ));
        HUB_DER_CHK(c, write_hdr(p, start, c, CTX_CONS(0)));
        basic += c;
    }
    HUB_DER_CHK(basic, mbedtls_asn1_write_bitstring(p, start, o->sig, o->sig_len * 8));
    HUB_DER_CHK(basic, hub_der_write_sigalg(p, start, o->alg));
    HUB_DER_CHK(basic, mbedtls_asn1_write_raw_buffer(p, start, o->tbs->data, o->tbs->len));
    HUB_DER_CHK(basic, write_hdr(p, start, basic, SEQ));
    /* responseBytes [0] EXPLICIT SEQUENCE { id-pkix-ocsp-basic, OCTET STRING { basic } } */
    len = basic;
    HUB_DER_CHK(len, write_hdr(p, start, basic, MBEDTLS_ASN1_OCTET_STRING));
    HUB_DER_CHK(len,
                mbedtls_asn1_write_oid(p, start, OID_OCSP_BASIC, MBEDTLS_OID_SIZE(OID_OCSP_BASIC)));
    HUB_DER_CHK(len, write_hdr(p, start, len, SEQ));
    HUB_DER_CHK(len, write_hdr(p, start, len, CTX_CONS(0)));
    HUB_DER_CHK(len, mbedtls_asn1_write_enum(p, start, HUB_OCSP_SUCCESSFUL));
    HUB_DER_CHK(len, write_hdr(p, start, len, SEQ));
    return (int)len;
}

int hub_ocsp_response_error(enum hub_ocsp_resp_status s, hub_buf_t *out)
{
    const uint8_t der[] = {0x30, 0x03, 0x0a, 0x01, (uint8_t)s};
    if (s == HUB_OCSP_SUCCESSFUL)
        return HUB_EINVAL;
    return hub_buf_append(out, der, sizeof der);
}

int hub_ocsp_response_build(const struct hub_ocsp_basic *b, hub_buf_t *out)
{
    struct hub_der_sigalg alg;
    struct tbs_ctx t = {b};
    hub_buf_t tbs = HUB_BUF_INIT;
    uint8_t hash[MBEDTLS_MD_MAX_SIZE], sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    size_t sig_len = 0;
    if (b->key == NULL || b->key_hash == NULL || b->n == 0 || b->single == NULL) {
        hub_error("OCSP response: missing key, key hash or responses");
        return HUB_EINVAL;
    }
    int rc = hub_der_sigalg(b->key, &alg);
    if (rc == 0)
        rc = hub_der_build(write_tbs, &t, 512 + b->n * 256 + b->nonce_len, "ResponseData", &tbs);
    if (rc == 0) {
        const mbedtls_md_info_t *md = mbedtls_md_info_from_type(alg.md);
        int ret = mbedtls_md(md, tbs.data, tbs.len, hash);
        struct hub_signer s = HUB_SIGNER_MEM(b->key);
        if (ret != 0) {
            hub_der_log_mbedtls("OCSP response", "mbedtls_md", ret);
            rc = HUB_ECRYPTO;
        } else {
            rc = hub_signer_sign(&s, alg.md, hash, mbedtls_md_get_size(md), sig, sizeof sig,
                                 &sig_len, "OCSP response");
        }
    }
    if (rc == 0) {
        struct outer_ctx o = {b, &alg, &tbs, sig, sig_len};
        rc = hub_der_build(write_outer, &o, tbs.len + sig_len + b->cert_len + 128, "OCSPResponse",
                           out);
    }
    hub_buf_free(&tbs);
    return rc;
}
