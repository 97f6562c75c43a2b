/* ca/ocsp_req.c and ca/ocsp.c: the strict request parser on requests made by OpenSSL 3.0
 * (`openssl ocsp -issuer ca.pem -cert d.pem -reqout ...`) and on broken variants of them,
 * and the response writer read back with mbedTLS's ASN.1 reader, its signature verified
 * with the responder's key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/asn1.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>

#include "ca/cert.h"
#include "ca/der.h"
#include "ca/key.h"
#include "ca/ocsp.h"
#include "ca/ocsp_req.h"
#include "tests/unit/harness.h"
#include "util/error.h"
#include "util/secure.h"

/* SHA-1 CertID, no nonce. */
static const char *REQ_SHA1 =
    "3051304f304d304b3049300906052b0e03021a050004145212402e6d5c95e8b3964bdd313cd1719dcacf530414"
    "7c7982656d0eb11e0a5c5cd76e5cb425a195910202104abcdef0123456789abcdef012345678";
/* SHA-256 CertID with a 16-byte nonce. */
static const char *REQ_SHA256_NONCE =
    "308193308190306930673065300d060960864801650304020105000420f10098fc1daab33db9deea9c60aa22a9"
    "6fe4081d89399e14f2f804af6a56e16c04202eedcbfe0baccc3d4f3544e03bb15c4ee6295aac78fc8301fe33f6"
    "d5c5cf8c5c02104abcdef0123456789abcdef012345678a2233021301f06092b0601050507300102041204105641"
    "770c70057414dec934434c1b4978";
/* SHA-384 CertID (a hash the responder does not serve). */
static const char *REQ_SHA384 =
    "30819130818e30818b308188308185300d06096086480165030402020500043075164f32ca14b44f874c37a69a"
    "ac89abfe210588faa23ec56b7d32ee787f1459e801332cae53de530910720b4f5d0e320430e88536dfcb937e93"
    "9ee94bee5f087f528370b468c6a04ada84054d4bd605089d5f8ff7cfabae2b38a93e38551ba0b13d02104abcde"
    "f0123456789abcdef012345678";

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    int n = hub_hex_decode(hex, out, cap);
    return n < 0 ? 0 : (size_t)n;
}

static void test_parse_openssl(void)
{
    uint8_t der[512];
    struct hub_ocsp_request q;
    size_t n = unhex(REQ_SHA1, der, sizeof der);
    CHECK_EQ(hub_ocsp_request_parse(der, n, &q, NULL), 0);
    CHECK_EQ(q.n, 1);
    CHECK_EQ(q.ids[0].md, MBEDTLS_MD_SHA1);
    CHECK_EQ(q.ids[0].name_hash_len, 20);
    CHECK_EQ(q.ids[0].key_hash_len, 20);
    CHECK_EQ(q.ids[0].serial_len, 16);
    CHECK_EQ(q.ids[0].serial[0], 0x4a);
    CHECK_EQ(q.ids[0].serial_negative, 0);
    CHECK_EQ(q.ids[0].raw_len, 0x49 + 2);
    CHECK(q.nonce == NULL);

    n = unhex(REQ_SHA256_NONCE, der, sizeof der);
    CHECK_EQ(hub_ocsp_request_parse(der, n, &q, NULL), 0);
    CHECK_EQ(q.ids[0].md, MBEDTLS_MD_SHA256);
    CHECK_EQ(q.ids[0].name_hash_len, 32);
    CHECK_EQ(q.nonce_len, 18); /* OCTET STRING { 16 bytes } */
    CHECK(q.nonce != NULL && q.nonce[0] == 0x04 && q.nonce[1] == 0x10);

    n = unhex(REQ_SHA384, der, sizeof der);
    CHECK_EQ(hub_ocsp_request_parse(der, n, &q, NULL), 0);
    CHECK_EQ(q.ids[0].md, MBEDTLS_MD_NONE);
}

static int parses(const uint8_t *der, size_t n)
{
    struct hub_ocsp_request q;
    return hub_ocsp_request_parse(der, n, &q, NULL) == 0;
}

static void test_parse_malformed(void)
{
    uint8_t der[512], bad[600];
    size_t n = unhex(REQ_SHA1, der, sizeof der);
    CHECK(!parses(NULL, 0));
    for (size_t i = 0; i < n; i++)
        CHECK(!parses(der, i)); /* every truncation */
    memcpy(bad, der, n);
    bad[n] = 0;
    CHECK(!parses(bad, n + 1)); /* a trailing byte */
    /* the outer length in the long form (0x81 0x51): not minimal */
    bad[0] = 0x30;
    bad[1] = 0x81;
    memcpy(bad + 2, der + 1, n - 1);
    CHECK(!parses(bad, n + 1));
    /* an explicit version v1 [0] { INTEGER 0 } inside tbsRequest */
    static const uint8_t v[] = {0xa0, 0x03, 0x02, 0x01, 0x00};
    bad[0] = 0x30;
    bad[1] = (uint8_t)(der[1] + 5);
    bad[2] = 0x30;
    bad[3] = (uint8_t)(der[3] + 5);
    memcpy(bad + 4, v, sizeof v);
    memcpy(bad + 4 + sizeof v, der + 4, n - 4);
    CHECK(!parses(bad, n + 5));
    /* the serial INTEGER's length 16 -> 17 runs past its CertID */
    memcpy(bad, der, n);
    CHECK(parses(bad, n));
    bad[n - 17] = 0x11;
    CHECK(!parses(bad, n));
    /* nine CertIDs in one request */
    size_t one = der[7] + 2; /* the Request SEQUENCE at offset 6 */
    size_t body = 9 * one;
    uint8_t *list = malloc(body + 4);
    list[0] = 0x30, list[1] = 0x82, list[2] = (uint8_t)(body >> 8), list[3] = (uint8_t)body;
    for (int i = 0; i < 9; i++)
        memcpy(list + 4 + i * one, der + 6, one);
    uint8_t *req = malloc(body + 16);
    size_t tl = body + 4, rl = tl + 4;
    req[0] = 0x30, req[1] = 0x82, req[2] = (uint8_t)(rl >> 8), req[3] = (uint8_t)rl;
    req[4] = 0x30, req[5] = 0x82, req[6] = (uint8_t)(tl >> 8), req[7] = (uint8_t)tl;
    memcpy(req + 8, list, body + 4);
    CHECK(!parses(req, rl + 4));
    /* eight are fine */
    size_t body8 = 8 * one, tl8 = body8 + 4, rl8 = tl8 + 4;
    req[2] = (uint8_t)(rl8 >> 8), req[3] = (uint8_t)rl8, req[6] = (uint8_t)(tl8 >> 8);
    req[7] = (uint8_t)tl8, req[10] = (uint8_t)(body8 >> 8), req[11] = (uint8_t)body8;
    CHECK(parses(req, rl8 + 4));
    free(list);
    free(req);
    /* every single-byte change either parses or is refused: never a crash (ASan run) */
    for (size_t i = 0; i < n; i++) {
        for (int b = 0; b < 256; b += 7) {
            memcpy(bad, der, n);
            bad[i] = (uint8_t)b;
            (void)parses(bad, n);
        }
    }
}

/* Reads the next TLV of tag: *v / *vl get its contents. */
static int get(unsigned char **p, const unsigned char *end, int tag, unsigned char **v, size_t *vl)
{
    if (mbedtls_asn1_get_tag(p, end, vl, tag) != 0)
        return -1;
    *v = *p;
    *p += *vl;
    return 0;
}

static void test_response(void)
{
    mbedtls_pk_context key;
    mbedtls_pk_init(&key);
    CHECK_EQ(hub_key_generate(HUB_KEY_EC_P256, &key), 0);
    uint8_t kh[20], der[512];
    CHECK_EQ(hub_der_key_id(&key, kh), 0);
    size_t n = unhex(REQ_SHA256_NONCE, der, sizeof der);
    struct hub_ocsp_request q;
    CHECK_EQ(hub_ocsp_request_parse(der, n, &q, NULL), 0);
    time_t now = time(NULL);
    struct hub_ocsp_single s[2] = {
        {q.ids[0].raw, q.ids[0].raw_len, HUB_OCSP_REVOKED, now - 60, 1},
        {q.ids[0].raw, q.ids[0].raw_len, HUB_OCSP_GOOD, 0, 0},
    };
    struct hub_ocsp_basic b = {.key = &key,
                               .key_hash = kh,
                               .produced_at = now,
                               .this_update = now,
                               .next_update = now + 3600,
                               .single = s,
                               .n = 2,
                               .nonce = q.nonce,
                               .nonce_len = q.nonce_len};
    hub_buf_t out = HUB_BUF_INIT;
    CHECK_EQ(hub_ocsp_response_build(&b, &out), 0);
    unsigned char *p = out.data, *end = out.data + out.len, *v, *tbs, *sig;
    size_t vl, tbs_len, sig_len;
    const int SEQ = MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE;
    CHECK_EQ(get(&p, end, SEQ, &v, &vl), 0);
    CHECK(p == end);
    p = v, end = v + vl;
    int st = -1;
    CHECK_EQ(mbedtls_asn1_get_enum(&p, end, &st), 0);
    CHECK_EQ(st, 0);
    CHECK_EQ(get(&p, end, MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED, &v, &vl), 0);
    p = v, end = v + vl;
    CHECK_EQ(get(&p, end, SEQ, &v, &vl), 0);
    p = v, end = v + vl;
    CHECK_EQ(get(&p, end, MBEDTLS_ASN1_OID, &v, &vl), 0);
    CHECK_EQ(vl, 9);
    CHECK_EQ(get(&p, end, MBEDTLS_ASN1_OCTET_STRING, &v, &vl), 0);
    p = v, end = v + vl;
    CHECK_EQ(get(&p, end, SEQ, &v, &vl), 0); /* BasicOCSPResponse */
    p = v, end = v + vl;
    tbs = p;
    CHECK_EQ(get(&p, end, SEQ, &v, &vl), 0);
    tbs_len = (size_t)(p - tbs);
    /* responderID byKey [2] { OCTET STRING kh } */
    unsigned char *t = v, *tend = v + vl;
    CHECK_EQ(get(&t, tend, MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 2, &v, &vl),
             0);
    CHECK(vl == 22 && memcmp(v + 2, kh, 20) == 0);
    CHECK_EQ(get(&t, tend, MBEDTLS_ASN1_GENERALIZED_TIME, &v, &vl), 0);
    CHECK_EQ(vl, 15);
    CHECK_EQ(get(&t, tend, SEQ, &v, &vl), 0); /* responses */
    CHECK(memmem(v, vl, q.ids[0].raw, q.ids[0].raw_len) != NULL);
    CHECK(memmem(v, vl, "\x80\x00", 2) != NULL);             /* good */
    CHECK(memmem(v, vl, "\xa0\x03\x0a\x01\x01", 5) != NULL); /* reason keyCompromise */
    CHECK_EQ(get(&t, tend, MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 1, &v, &vl),
             0); /* the nonce, echoed */
    CHECK(memmem(v, vl, q.nonce, q.nonce_len) != NULL);
    CHECK(t == tend);
    mbedtls_asn1_buf alg, params;
    CHECK_EQ(mbedtls_asn1_get_alg(&p, end, &alg, &params), 0);
    CHECK_EQ(params.tag, 0); /* ecdsa-with-SHA256: no parameters at all */
    CHECK_EQ(mbedtls_asn1_get_bitstring_null(&p, end, &sig_len), 0);
    sig = p;
    p += sig_len;
    CHECK(p == end); /* no certs: none given */
    uint8_t hash[32];
    CHECK_EQ(mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), tbs, tbs_len, hash), 0);
    CHECK_EQ(mbedtls_pk_verify(&key, MBEDTLS_MD_SHA256, hash, 32, sig, sig_len), 0);
    hub_buf_free(&out);

    CHECK_EQ(hub_ocsp_response_error(HUB_OCSP_MALFORMED_REQUEST, &out), 0);
    CHECK(out.len == 5 && memcmp(out.data, "\x30\x03\x0a\x01\x01", 5) == 0);
    CHECK_EQ(hub_ocsp_response_error(HUB_OCSP_SUCCESSFUL, &out), HUB_EINVAL);
    CHECK_STR(hub_ocsp_status_name(HUB_OCSP_UNAUTHORIZED), "unauthorized");
    hub_buf_free(&out);
    mbedtls_pk_free(&key);
}

/* The delegated responder profile and the AIA of a client certificate, parsed back. */
static void test_profiles(void)
{
    mbedtls_pk_context ca_key, key;
    mbedtls_x509_crt ca, crt;
    hub_buf_t ca_der = HUB_BUF_INIT, der = HUB_BUF_INIT;
    uint8_t serial[HUB_SERIAL_LEN];
    time_t now = time(NULL);
    mbedtls_pk_init(&ca_key);
    mbedtls_pk_init(&key);
    mbedtls_x509_crt_init(&ca);
    mbedtls_x509_crt_init(&crt);
    CHECK_EQ(hub_key_generate(HUB_KEY_EC_P256, &ca_key), 0);
    CHECK_EQ(hub_key_generate(HUB_KEY_EC_P256, &key), 0);
    struct hub_cert_request r = {.kind = HUB_CERT_ROOT_CA,
                                 .cn = "CA",
                                 .o = "iothub",
                                 .subject_key = &ca_key,
                                 .issuer_key = &ca_key,
                                 .not_before = now - 60,
                                 .not_after = now + 86400};
    CHECK_EQ(hub_cert_issue(&r, serial, &ca_der), 0);
    CHECK_EQ(mbedtls_x509_crt_parse_der(&ca, ca_der.data, ca_der.len), 0);
    r = (struct hub_cert_request){.kind = HUB_CERT_OCSP_SIGNER,
                                  .cn = "CA OCSP Responder",
                                  .o = "iothub",
                                  .subject_key = &key,
                                  .issuer = &ca,
                                  .issuer_key = &ca_key,
                                  .not_before = now - 60,
                                  .not_after = now + 48 * 3600};
    CHECK_EQ(hub_cert_issue(&r, serial, &der), 0);
    CHECK_EQ(mbedtls_x509_crt_parse_der(&crt, der.data, der.len), 0);
    CHECK_EQ(mbedtls_x509_crt_check_extended_key_usage(&crt, MBEDTLS_OID_OCSP_SIGNING,
                                                       MBEDTLS_OID_SIZE(MBEDTLS_OID_OCSP_SIGNING)),
             0);
    CHECK_EQ(mbedtls_x509_crt_check_extended_key_usage(&crt, MBEDTLS_OID_CLIENT_AUTH,
                                                       MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)),
             MBEDTLS_ERR_X509_BAD_INPUT_DATA);
    CHECK_EQ(mbedtls_x509_crt_check_key_usage(&crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE), 0);
    CHECK(!crt.ca_istrue);
    /* id-pkix-ocsp-nocheck, extnValue NULL */
    CHECK(memmem(der.data, der.len, "\x06\x09\x2b\x06\x01\x05\x05\x07\x30\x01\x05\x04\x02\x05\x00",
                 15) != NULL);
    uint32_t flags = 0;
    CHECK_EQ(mbedtls_x509_crt_verify(&crt, &ca, NULL, NULL, &flags, NULL, NULL), 0);
    mbedtls_x509_crt_free(&crt);
    mbedtls_x509_crt_init(&crt);
    der.len = 0;
    r = (struct hub_cert_request){.kind = HUB_CERT_CLIENT,
                                  .cn = "dev",
                                  .o = "PK",
                                  .subject_key = &key,
                                  .issuer = &ca,
                                  .issuer_key = &ca_key,
                                  .not_before = now - 60,
                                  .not_after = now + 3600,
                                  .crl_url = "https://h:1/v1/crl",
                                  .ocsp_url = "https://h:1/ocsp"};
    CHECK_EQ(hub_cert_issue(&r, serial, &der), 0);
    CHECK_EQ(mbedtls_x509_crt_parse_der(&crt, der.data, der.len), 0);
    /* AIA { AccessDescription { id-ad-ocsp, [6] "https://h:1/ocsp" } } after the CRL DP */
    const char aia[] = "\x06\x08\x2b\x06\x01\x05\x05\x07\x01\x01\x04\x20\x30\x1e\x30\x1c"
                       "\x06\x08\x2b\x06\x01\x05\x05\x07\x30\x01\x86\x10https://h:1/ocsp";
    uint8_t *at = memmem(der.data, der.len, aia, sizeof aia - 1);
    CHECK(at != NULL);
    CHECK(at > (uint8_t *)memmem(der.data, der.len, "https://h:1/v1/crl", 18));
    r.ocsp_url = "https://h:1/\x01";
    CHECK_EQ(hub_cert_issue(&r, serial, &der), HUB_EINVAL); /* not ASCII: refused */
    mbedtls_x509_crt_free(&crt);
    mbedtls_x509_crt_free(&ca);
    mbedtls_pk_free(&key);
    mbedtls_pk_free(&ca_key);
    hub_buf_free(&der);
    hub_buf_free(&ca_der);
}

int main(void)
{
    RUN(test_parse_openssl);
    RUN(test_parse_malformed);
    RUN(test_response);
    RUN(test_profiles);
    HARNESS_EXIT();
}
