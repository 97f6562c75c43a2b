/* RFC 6960 §4.1.1 / Appendix B.1 (explicit tags):
 *   OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] Signature OPT }
 *   TBSRequest  ::= SEQUENCE { version [0] Version DEFAULT v1, requestorName [1] GeneralName
 *                              OPT, requestList SEQUENCE OF Request, requestExtensions [2]
 *                              Extensions OPT }
 *   Request     ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] Extensions OPT }
 *   CertID      ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET
 *                              STRING, issuerKeyHash OCTET STRING, serialNumber INTEGER }
 * The parser walks the buffer with one TLV reader that refuses non-minimal lengths. A
 * signed request is accepted and its signature ignored (the responder needs none); an
 * explicit version (DEFAULT must be omitted in DER) and an unknown critical extension are
 * refused. */
#include "ca/ocsp_req.h"

#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/oid.h>

#include "util/error.h"

#define SEQ (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)
#define CTX_CONS(n) (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | (n))
#define OID_NONCE MBEDTLS_OID_PKIX "\x30\x01\x02" /* id-pkix-ocsp-nonce */

/* A span of the input: [p, end). */
struct span {
    const uint8_t *p, *end;
};

/* Reads one TLV of tag from s: *v gets its contents. HUB_EINVAL on a different tag, a
 * length that is not minimal DER, longer than 3 bytes, or past the span. */
static int tlv(struct span *s, uint8_t tag, struct span *v)
{
    if (s->end - s->p < 2 || s->p[0] != tag)
        return HUB_EINVAL;
    const uint8_t *p = s->p + 1;
    size_t len = *p++;
    if (len & 0x80) {
        size_t n = len & 0x7f;
        if (n == 0 || n > 3 || (size_t)(s->end - p) < n || p[0] == 0)
            return HUB_EINVAL; /* indefinite, too long, or a leading zero byte */
        len = 0;
        for (size_t i = 0; i < n; i++)
            len = (len << 8) | *p++;
        if (len < 0x80)
            return HUB_EINVAL; /* the short form was required */
    }
    if ((size_t)(s->end - p) < len)
        return HUB_EINVAL;
    v->p = p;
    v->end = p + len;
    s->p = p + len;
    return 0;
}

static int peek(const struct span *s, uint8_t tag)
{
    return s->p < s->end && s->p[0] == tag;
}

/* AlgorithmIdentifier of the CertID hash: SHA-1 or SHA-256 with absent or NULL
 * parameters; another OID parses (md NONE: the responder answers unauthorized). */
static int parse_hash_alg(struct span *s, mbedtls_md_type_t *md)
{
    struct span alg, oid, null;
    if (tlv(s, SEQ, &alg) != 0 || tlv(&alg, MBEDTLS_ASN1_OID, &oid) != 0 || oid.p == oid.end)
        return HUB_EINVAL;
    if (peek(&alg, MBEDTLS_ASN1_NULL) &&
        (tlv(&alg, MBEDTLS_ASN1_NULL, &null) != 0 || null.p != null.end))
        return HUB_EINVAL;
    if (alg.p != alg.end)
        return HUB_EINVAL; /* other parameters: no hash we know takes any */
    size_t n = (size_t)(oid.end - oid.p);
    if (n == MBEDTLS_OID_SIZE(MBEDTLS_OID_DIGEST_ALG_SHA1) &&
        memcmp(oid.p, MBEDTLS_OID_DIGEST_ALG_SHA1, n) == 0)
        *md = MBEDTLS_MD_SHA1;
    else if (n == MBEDTLS_OID_SIZE(MBEDTLS_OID_DIGEST_ALG_SHA256) &&
             memcmp(oid.p, MBEDTLS_OID_DIGEST_ALG_SHA256, n) == 0)
        *md = MBEDTLS_MD_SHA256;
    else
        *md = MBEDTLS_MD_NONE;
    return 0;
}

static int parse_certid(struct span *s, struct hub_ocsp_certid *id)
{
    struct span c, name, key, serial;
    id->raw = s->p;
    if (tlv(s, SEQ, &c) != 0)
        return HUB_EINVAL;
    id->raw_len = (size_t)(s->p - id->raw);
    if (parse_hash_alg(&c, &id->md) != 0 || tlv(&c, MBEDTLS_ASN1_OCTET_STRING, &name) != 0 ||
        tlv(&c, MBEDTLS_ASN1_OCTET_STRING, &key) != 0 ||
        tlv(&c, MBEDTLS_ASN1_INTEGER, &serial) != 0 || c.p != c.end)
        return HUB_EINVAL;
    size_t want = id->md == MBEDTLS_MD_SHA1 ? 20 : id->md == MBEDTLS_MD_SHA256 ? 32 : 0;
    size_t nl = (size_t)(name.end - name.p), kl = (size_t)(key.end - key.p);
    if ((want != 0 && (nl != want || kl != want)) || nl == 0 || kl == 0 || nl > 64 || kl > 64)
        return HUB_EINVAL;
    /* INTEGER: non-empty and minimal (no redundant leading 0x00 or 0xFF). */
    size_t sl = (size_t)(serial.end - serial.p);
    if (sl == 0 || (sl > 1 && ((serial.p[0] == 0 && !(serial.p[1] & 0x80)) ||
                               (serial.p[0] == 0xff && (serial.p[1] & 0x80)))))
        return HUB_EINVAL;
    id->name_hash = name.p;
    id->name_hash_len = nl;
    id->key_hash = key.p;
    id->key_hash_len = kl;
    id->serial_negative = (serial.p[0] & 0x80) != 0;
    if (sl > 1 && serial.p[0] == 0) {
        serial.p++;
        sl--;
    }
    id->serial = serial.p;
    id->serial_len = sl;
    return 0;
}

/* Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension { extnID, critical BOOLEAN DEFAULT
 * FALSE, extnValue OCTET STRING }. With out non-NULL, the nonce is stored there. */
static int parse_extensions(struct span *s, struct hub_ocsp_request *out)
{
    struct span exts, e, oid, crit, val;
    if (tlv(s, SEQ, &exts) != 0 || exts.p == exts.end || s->p != s->end)
        return HUB_EINVAL;
    while (exts.p < exts.end) {
        int critical = 0;
        if (tlv(&exts, SEQ, &e) != 0 || tlv(&e, MBEDTLS_ASN1_OID, &oid) != 0 || oid.p == oid.end)
            return HUB_EINVAL;
        if (peek(&e, MBEDTLS_ASN1_BOOLEAN)) {
            /* DER: TRUE is 0xFF, and FALSE (the DEFAULT) is never written. */
            if (tlv(&e, MBEDTLS_ASN1_BOOLEAN, &crit) != 0 || crit.end - crit.p != 1 ||
                crit.p[0] != 0xff)
                return HUB_EINVAL;
            critical = 1;
        }
        if (tlv(&e, MBEDTLS_ASN1_OCTET_STRING, &val) != 0 || e.p != e.end)
            return HUB_EINVAL;
        size_t n = (size_t)(oid.end - oid.p);
        int is_nonce = n == MBEDTLS_OID_SIZE(OID_NONCE) && memcmp(oid.p, OID_NONCE, n) == 0;
        if (is_nonce && out != NULL) {
            size_t vl = (size_t)(val.end - val.p);
            if (out->nonce != NULL || vl == 0 || vl > HUB_OCSP_NONCE_MAX)
                return HUB_EINVAL; /* twice, empty or oversized */
            out->nonce = val.p;
            out->nonce_len = vl;
        } else if (critical) {
            return HUB_EINVAL; /* a critical extension we do not implement */
        }
    }
    return 0;
}

#define FAIL(reason)                                                                               \
    do {                                                                                           \
        if (why != NULL)                                                                           \
            *why = (reason);                                                                       \
        return HUB_EINVAL;                                                                         \
    } while (0)

int hub_ocsp_request_parse(const uint8_t *der, size_t len, struct hub_ocsp_request *out,
                           const char **why)
{
    memset(out, 0, sizeof *out);
    if (der == NULL || len == 0)
        FAIL("empty request");
    if (len > HUB_OCSP_REQUEST_MAX)
        FAIL("request larger than 8 KiB");
    struct span all = {der, der + len}, req, tbs, list, one, sig, x;
    if (tlv(&all, SEQ, &req) != 0 || all.p != all.end)
        FAIL("not one DER SEQUENCE");
    if (tlv(&req, SEQ, &tbs) != 0)
        FAIL("no tbsRequest");
    if (peek(&req, CTX_CONS(0)) && tlv(&req, CTX_CONS(0), &sig) != 0)
        FAIL("bad optionalSignature");
    if (req.p != req.end)
        FAIL("data after tbsRequest");
    if (peek(&tbs, CTX_CONS(0)))
        FAIL("explicit version (DER omits the DEFAULT v1)");
    if (peek(&tbs, CTX_CONS(1)) && (tlv(&tbs, CTX_CONS(1), &x) != 0 || x.p == x.end))
        FAIL("bad requestorName");
    if (tlv(&tbs, SEQ, &list) != 0 || list.p == list.end)
        FAIL("no requestList or an empty one");
    while (list.p < list.end) {
        if (out->n == HUB_OCSP_MAX_REQUESTS)
            FAIL("more than 8 certificates in one request");
        if (tlv(&list, SEQ, &one) != 0 || parse_certid(&one, &out->ids[out->n]) != 0)
            FAIL("malformed CertID");
        if (peek(&one, CTX_CONS(0))) {
            if (tlv(&one, CTX_CONS(0), &x) != 0 || parse_extensions(&x, NULL) != 0)
                FAIL("malformed singleRequestExtensions");
        }
        if (one.p != one.end)
            FAIL("data after a Request");
        out->n++;
    }
    if (peek(&tbs, CTX_CONS(2))) {
        if (tlv(&tbs, CTX_CONS(2), &x) != 0 || parse_extensions(&x, out) != 0)
            FAIL("malformed requestExtensions");
    }
    if (tbs.p != tbs.end)
        FAIL("data after requestExtensions");
    return 0;
}
