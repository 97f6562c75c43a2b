/* ca/device_ca.c: registration checks of factory device CAs and their CRLs, on
 * certificates and CRLs made with the CA's own writers (ca/cert.c, ca/crl.c). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ca/cert.h"
#include "ca/crl.h"
#include "ca/device_ca.h"
#include "ca/key.h"
#include "ca/pem.h"
#include "tests/unit/harness.h"
#include "util/error.h"

#define CODE "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static mbedtls_pk_context ca_key, other_key, leaf_key;
static mbedtls_x509_crt ca, other;
static hub_buf_t ca_der = HUB_BUF_INIT, other_der = HUB_BUF_INIT;

static int issue(enum hub_cert_kind kind, const char *cn, mbedtls_pk_context *subject,
                 const mbedtls_x509_crt *issuer, mbedtls_pk_context *issuer_key, time_t nb,
                 time_t na, hub_buf_t *out)
{
    struct hub_cert_request req = {.kind = kind,
                                   .cn = cn,
                                   .o = "Maker",
                                   .subject_key = subject,
                                   .issuer = issuer,
                                   .issuer_key = issuer_key,
                                   .not_before = nb,
                                   .not_after = na};
    uint8_t s[HUB_SERIAL_LEN];
    return hub_cert_issue(&req, s, out);
}

/* A CA and "other": same subject name, another key. */
static void setup(void)
{
    time_t now = time(NULL);
    mbedtls_pk_init(&ca_key);
    mbedtls_pk_init(&other_key);
    mbedtls_pk_init(&leaf_key);
    mbedtls_x509_crt_init(&ca);
    mbedtls_x509_crt_init(&other);
    CHECK_EQ(hub_key_generate(HUB_KEY_EC_P256, &ca_key), 0);
    CHECK_EQ(hub_key_generate(HUB_KEY_EC_P256, &other_key), 0);
    CHECK_EQ(hub_key_generate(HUB_KEY_EC_P256, &leaf_key), 0);
    CHECK_EQ(issue(HUB_CERT_ROOT_CA, "Factory CA", &ca_key, NULL, &ca_key, now - 60, now + 86400,
                   &ca_der),
             0);
    CHECK_EQ(issue(HUB_CERT_ROOT_CA, "Factory CA", &other_key, NULL, &other_key, now - 60,
                   now + 86400, &other_der),
             0);
    CHECK_EQ(mbedtls_x509_crt_parse_der(&ca, ca_der.data, ca_der.len), 0);
    CHECK_EQ(mbedtls_x509_crt_parse_der(&other, other_der.data, other_der.len), 0);
}

static void test_ca_checks(void)
{
    struct hub_devca_why why;
    time_t now = time(NULL);
    hub_buf_t leaf = HUB_BUF_INIT;
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    CHECK_EQ(hub_devca_check_ca(&ca, now, &why), 0);
    CHECK_EQ(hub_devca_check_ca(&ca, now + 2 * 86400, &why), HUB_EINVAL);
    CHECK_STR(why.code, "ca_expired");
    CHECK_EQ(hub_devca_check_ca(&ca, now - 3600, &why), HUB_EINVAL);
    CHECK_STR(why.code, "ca_not_yet_valid");
    /* a client certificate: basicConstraints absent */
    CHECK_EQ(issue(HUB_CERT_CLIENT, "dev", &leaf_key, &ca, &ca_key, now - 60, now + 3600, &leaf),
             0);
    CHECK_EQ(mbedtls_x509_crt_parse_der(&crt, leaf.data, leaf.len), 0);
    CHECK_EQ(hub_devca_check_ca(&crt, now, &why), HUB_EINVAL);
    CHECK_STR(why.code, "ca_not_ca");
    char fp[65];
    CHECK_EQ(hub_devca_fingerprint(&ca, fp), 0);
    CHECK_EQ(strlen(fp), 64);
    mbedtls_x509_crt_free(&crt);
    hub_buf_free(&leaf);
}

static void test_load_strict(void)
{
    struct hub_devca_why why;
    hub_buf_t pem = HUB_BUF_INIT, der = HUB_BUF_INIT;
    mbedtls_x509_crt crt;
    CHECK_EQ(hub_pem_encode("CERTIFICATE", ca_der.data, ca_der.len, &pem), 0);
    mbedtls_x509_crt_init(&crt);
    CHECK_EQ(hub_devca_cert_load(pem.data, pem.len, "bad", &crt, &why), 0);
    mbedtls_x509_crt_free(&crt);
    mbedtls_x509_crt_init(&crt);
    CHECK_EQ(hub_devca_cert_load(ca_der.data, ca_der.len, "bad", &crt, &why), 0);
    mbedtls_x509_crt_free(&crt);
    /* DER with a trailing byte, PEM with trailing text, two PEM blocks, truncated DER */
    hub_buf_append(&der, ca_der.data, ca_der.len);
    hub_buf_append(&der, "\0", 1);
    mbedtls_x509_crt_init(&crt);
    CHECK_EQ(hub_devca_cert_load(der.data, der.len, "bad", &crt, &why), HUB_EINVAL);
    CHECK_STR(why.code, "bad");
    mbedtls_x509_crt_free(&crt);
    mbedtls_x509_crt_init(&crt);
    CHECK_EQ(hub_devca_cert_load(ca_der.data, ca_der.len - 1, "bad", &crt, &why), HUB_EINVAL);
    mbedtls_x509_crt_free(&crt);
    size_t one = pem.len;
    der.len = 0; /* two PEM blocks: a copy of the first appended (not pem to itself) */
    hub_buf_append(&der, pem.data, one);
    hub_buf_append(&pem, der.data, one);
    mbedtls_x509_crt_init(&crt);
    CHECK_EQ(hub_devca_cert_load(pem.data, pem.len, "bad", &crt, &why), HUB_EINVAL);
    mbedtls_x509_crt_free(&crt);
    pem.len = one;
    hub_buf_puts(&pem, "x");
    mbedtls_x509_crt_init(&crt);
    CHECK_EQ(hub_devca_cert_load(pem.data, pem.len, "bad", &crt, &why), HUB_EINVAL);
    mbedtls_x509_crt_free(&crt);
    hub_buf_free(&pem);
    hub_buf_free(&der);
}

static void test_verification(void)
{
    struct hub_devca_why why;
    char cn[65];
    time_t now = time(NULL);
    hub_buf_t v = HUB_BUF_INIT, w = HUB_BUF_INIT, x = HUB_BUF_INIT;
    mbedtls_x509_crt good, wrong, nocode;
    mbedtls_x509_crt_init(&good);
    mbedtls_x509_crt_init(&wrong);
    mbedtls_x509_crt_init(&nocode);
    CHECK_EQ(issue(HUB_CERT_CLIENT, CODE, &leaf_key, &ca, &ca_key, now - 60, now + 3600, &v), 0);
    /* issued under the same name by another key: only the signature tells */
    CHECK_EQ(issue(HUB_CERT_CLIENT, CODE, &leaf_key, &other, &other_key, now - 60, now + 3600, &w),
             0);
    CHECK_EQ(issue(HUB_CERT_CLIENT, "SN-1", &leaf_key, &ca, &ca_key, now - 60, now + 3600, &x), 0);
    CHECK_EQ(mbedtls_x509_crt_parse_der(&good, v.data, v.len), 0);
    CHECK_EQ(mbedtls_x509_crt_parse_der(&wrong, w.data, w.len), 0);
    CHECK_EQ(mbedtls_x509_crt_parse_der(&nocode, x.data, x.len), 0);
    CHECK_EQ(hub_devca_check_verification(&ca, &good, now, cn, &why), 0);
    CHECK_STR(cn, CODE);
    CHECK_EQ(hub_devca_check_verification(&ca, &wrong, now, cn, &why), HUB_EINVAL);
    CHECK_STR(why.code, "verification_signature_invalid");
    CHECK_EQ(hub_devca_check_verification(&ca, &nocode, now, cn, &why), HUB_EINVAL);
    CHECK_STR(why.code, "verification_code_unknown");
    CHECK_EQ(hub_devca_check_verification(&ca, &good, now + 7200, cn, &why), HUB_EINVAL);
    CHECK_STR(why.code, "verification_expired");
    mbedtls_x509_crt_free(&good);
    mbedtls_x509_crt_free(&wrong);
    mbedtls_x509_crt_free(&nocode);
    hub_buf_free(&v);
    hub_buf_free(&w);
    hub_buf_free(&x);
}

static void test_crl(void)
{
    struct hub_devca_why why;
    struct hub_devca_crl info;
    time_t now = time(NULL);
    hub_buf_t crl = HUB_BUF_INIT, bad = HUB_BUF_INIT, out = HUB_BUF_INIT, pem = HUB_BUF_INIT;
    struct hub_crl_entry e = {{0x01, 0x02}, 2, now - 10, HUB_REASON_KEY_COMPROMISE};
    CHECK_EQ(hub_crl_build(&ca, &ca_key, 1234567890123ULL, now, now + 3600, &e, 1, &crl), 0);
    CHECK_EQ(hub_crl_build(&other, &other_key, 9, now, now + 3600, NULL, 0, &bad), 0);
    CHECK_EQ(hub_devca_crl_check(&ca, crl.data, crl.len, now, &info, &out, &why), 0);
    CHECK_STR(info.number, "1234567890123");
    CHECK_EQ(info.entries, 1);
    CHECK_EQ(info.next_update, now + 3600);
    CHECK_EQ(out.len, crl.len);
    CHECK_EQ(hub_pem_encode("X509 CRL", crl.data, crl.len, &pem), 0);
    out.len = 0;
    CHECK_EQ(hub_devca_crl_check(&ca, pem.data, pem.len, now, &info, &out, &why), 0);
    CHECK_EQ(out.len, crl.len);
    CHECK_EQ(hub_devca_crl_check(&ca, bad.data, bad.len, now, &info, &out, &why), HUB_EINVAL);
    CHECK_STR(why.code, "crl_signature_invalid");
    CHECK_EQ(hub_devca_crl_check(&ca, crl.data, crl.len, now + 7200, &info, &out, &why),
             HUB_EINVAL);
    CHECK_STR(why.code, "crl_expired");
    CHECK_EQ(hub_devca_crl_check(&ca, crl.data, crl.len - 1, now, &info, &out, &why), HUB_EINVAL);
    CHECK_STR(why.code, "crl_malformed");
    hub_buf_append(&crl, "\0", 1);
    CHECK_EQ(hub_devca_crl_check(&ca, crl.data, crl.len, now, &info, &out, &why), HUB_EINVAL);
    CHECK_STR(why.code, "crl_malformed");
    hub_buf_free(&crl);
    hub_buf_free(&bad);
    hub_buf_free(&out);
    hub_buf_free(&pem);
}

/* The CRL of another CA (another subject) is refused on its issuer before its signature. */
static void test_crl_issuer(void)
{
    struct hub_devca_why why;
    struct hub_devca_crl info;
    time_t now = time(NULL);
    hub_buf_t der = HUB_BUF_INIT, crl = HUB_BUF_INIT, out = HUB_BUF_INIT;
    mbedtls_x509_crt third;
    mbedtls_x509_crt_init(&third);
    CHECK_EQ(
        issue(HUB_CERT_ROOT_CA, "Another CA", &ca_key, NULL, &ca_key, now - 60, now + 86400, &der),
        0);
    CHECK_EQ(mbedtls_x509_crt_parse_der(&third, der.data, der.len), 0);
    CHECK_EQ(hub_crl_build(&third, &ca_key, 2, now, now + 3600, NULL, 0, &crl), 0);
    CHECK_EQ(hub_devca_crl_check(&ca, crl.data, crl.len, now, &info, &out, &why), HUB_EINVAL);
    CHECK_STR(why.code, "crl_issuer_mismatch");
    mbedtls_x509_crt_free(&third);
    hub_buf_free(&der);
    hub_buf_free(&crl);
    hub_buf_free(&out);
}

int main(void)
{
    setup();
    RUN(test_ca_checks);
    RUN(test_load_strict);
    RUN(test_verification);
    RUN(test_crl);
    RUN(test_crl_issuer);
    mbedtls_x509_crt_free(&ca);
    mbedtls_x509_crt_free(&other);
    mbedtls_pk_free(&ca_key);
    mbedtls_pk_free(&other_key);
    mbedtls_pk_free(&leaf_key);
    hub_buf_free(&ca_der);
    hub_buf_free(&other_der);
    HARNESS_EXIT();
}
