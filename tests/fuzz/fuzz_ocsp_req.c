/* libFuzzer target for the OCSP request parser (ca/ocsp_req.c) and what the responder does
 * with an accepted request: a signed BasicOCSPResponse (ca/ocsp.c) for its CertIDs and
 * nonce. Input: one byte choosing each certificate's status (2 bits per request), then the
 * DER request. Checks: everything the parser points at lies inside the input; an accepted
 * request has 1..8 CertIDs, hashes of the right size for SHA-1/SHA-256, a nonce within
 * limits; the response is one DER SEQUENCE that contains every CertID and the nonce, and
 * its signature verifies. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>

#include "ca/der.h"
#include "ca/ocsp.h"
#include "ca/ocsp_req.h"
#include "tests/fuzz/fuzz_ca.h"
#include "util/error.h"
#include "util/log.h"

static struct fuzz_ca ca;
static uint8_t key_hash[20];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hub_log_setup(HUB_LOG_DEBUG, HUB_LOG_TEXT);
    fuzz_ca_make(&ca, HUB_KEY_EC_P256, "fuzz OCSP responder");
    if (hub_der_key_id(&ca.key, key_hash) != 0)
        abort();
    return 0;
}

static void inside(const uint8_t *p, size_t n, const uint8_t *in, size_t len)
{
    if (n > 0 && (p == NULL || p < in || p + n > in + len))
        abort();
}

/* Walks the response: outer SEQUENCE, status, [0], SEQUENCE, OID, OCTET STRING, Basic,
 * tbsResponseData; verifies the signature over tbs with the responder key. */
static void check_response(const hub_buf_t *out)
{
    unsigned char *p = out->data, *end = out->data + out->len, *tbs;
    size_t len, tbs_len, sig_len;
    int st;
    const int SEQ = MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE;
    mbedtls_asn1_buf alg, params;
    if (mbedtls_asn1_get_tag(&p, end, &len, SEQ) != 0 || p + len != end ||
        mbedtls_asn1_get_enum(&p, end, &st) != 0 || st != 0 ||
        mbedtls_asn1_get_tag(&p, end, &len,
                             MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED) != 0 ||
        mbedtls_asn1_get_tag(&p, end, &len, SEQ) != 0 ||
        mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_OID) != 0)
        abort();
    p += len;
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0 ||
        mbedtls_asn1_get_tag(&p, end, &len, SEQ) != 0)
        abort();
    tbs = p;
    if (mbedtls_asn1_get_tag(&p, end, &len, SEQ) != 0)
        abort();
    p += len;
    tbs_len = (size_t)(p - tbs);
    if (mbedtls_asn1_get_alg(&p, end, &alg, &params) != 0 ||
        mbedtls_asn1_get_bitstring_null(&p, end, &sig_len) != 0 || (size_t)(end - p) < sig_len)
        abort();
    unsigned char *sig = p;
    p += sig_len;
    /* certs [0] EXPLICIT SEQUENCE OF Certificate: exactly the responder certificate */
    if (mbedtls_asn1_get_tag(&p, end, &len,
                             MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED) != 0 ||
        mbedtls_asn1_get_tag(&p, end, &len, SEQ) != 0 || len != ca.der.len ||
        memcmp(p, ca.der.data, len) != 0 || p + len != end)
        abort();
    uint8_t hash[32];
    if (mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), tbs, tbs_len, hash) != 0 ||
        mbedtls_pk_verify(&ca.key, MBEDTLS_MD_SHA256, hash, 32, sig, sig_len) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t choice = data[0];
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    struct hub_ocsp_request q;
    const char *why = NULL;
    if (hub_ocsp_request_parse(in, len, &q, &why) != 0) {
        if (why == NULL)
            abort(); /* every refusal says why */
        return 0;
    }
    if (q.n == 0 || q.n > HUB_OCSP_MAX_REQUESTS)
        abort();
    if (q.nonce != NULL && (q.nonce_len == 0 || q.nonce_len > HUB_OCSP_NONCE_MAX))
        abort();
    inside(q.nonce, q.nonce_len, in, len);
    struct hub_ocsp_single s[HUB_OCSP_MAX_REQUESTS];
    for (size_t i = 0; i < q.n; i++) {
        const struct hub_ocsp_certid *id = &q.ids[i];
        size_t want = id->md == MBEDTLS_MD_SHA1 ? 20 : id->md == MBEDTLS_MD_SHA256 ? 32 : 0;
        if ((want != 0 && (id->name_hash_len != want || id->key_hash_len != want)) ||
            id->serial_len == 0 || id->raw_len < 2 || id->raw[0] != 0x30)
            abort();
        inside(id->raw, id->raw_len, in, len);
        inside(id->name_hash, id->name_hash_len, id->raw, id->raw_len);
        inside(id->key_hash, id->key_hash_len, id->raw, id->raw_len);
        inside(id->serial, id->serial_len, id->raw, id->raw_len);
        int st = (choice >> (2 * (i % 4))) & 3;
        s[i] = (struct hub_ocsp_single){id->raw, id->raw_len,
                                        st == 1   ? HUB_OCSP_REVOKED
                                        : st == 2 ? HUB_OCSP_UNKNOWN
                                                  : HUB_OCSP_GOOD,
                                        1700000000 + (time_t)i, (int)(i % 11 == 7 ? 0 : i % 11)};
    }
    struct hub_ocsp_basic b = {.key = &ca.key,
                               .key_hash = key_hash,
                               .cert = ca.der.data,
                               .cert_len = ca.der.len,
                               .produced_at = 1750000000,
                               .this_update = 1750000000,
                               .next_update = (choice & 0x80) ? 0 : 1750003600,
                               .single = s,
                               .n = q.n,
                               .nonce = q.nonce,
                               .nonce_len = q.nonce_len};
    hub_buf_t out = HUB_BUF_INIT;
    if (hub_ocsp_response_build(&b, &out) != 0)
        abort();
    check_response(&out);
    for (size_t i = 0; i < q.n; i++)
        if (memmem(out.data, out.len, q.ids[i].raw, q.ids[i].raw_len) == NULL)
            abort();
    if (q.nonce != NULL && memmem(out.data, out.len, q.nonce, q.nonce_len) == NULL)
        abort();
    hub_buf_free(&out);
    return 0;
}
