/* Unit tests for ca/: keys, sealing, issuance, CSR intake, CRL and PKCS#7, checked with
 * mbedTLS's parsers and cross-checked with the openssl CLI. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <mbedtls/oid.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>

#include "ca/cert.h"
#include "ca/crl.h"
#include "ca/csr.h"
#include "ca/key.h"
#include "ca/pem.h"
#include "ca/pkcs7.h"
#include "ca/seal.h"
#include "tests/unit/harness.h"
#include "util/error.h"
#include "util/secure.h"

static char tmpdir[64];
static const uint8_t oid_ecdsa256[] = {0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02};
static const uint8_t oid_ecdsa384[] = {0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03};
static const uint8_t oid_rsa256[] = {0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B};

/* A root → issuing CA → {server, client} chain shared by the later tests. */
static struct {
    int ok;
    mbedtls_pk_context root_key, iss_key, srv_key;
    mbedtls_x509_crt root, iss;
    hub_buf_t root_der, iss_der, srv_der, cli_der;
    uint8_t cli_serial[HUB_SERIAL_LEN];
} pki;

static const char *path(const char *name)
{
    static char p[4][128];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", tmpdir, name);
    return p[i];
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static int read_file(const char *name, hub_buf_t *b)
{
    char chunk[4096];
    size_t n;
    FILE *f = fopen(name, "rb");
    if (f == NULL)
        return -1;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        hub_buf_append(b, chunk, n);
    fclose(f);
    return 0;
}

static void write_file(const char *name, const uint8_t *data, size_t len)
{
    FILE *f = fopen(name, "wb");
    if (f != NULL) {
        fwrite(data, 1, len, f);
        fclose(f);
    }
}

static void write_pem(const char *name, const char *label, const hub_buf_t *der)
{
    hub_buf_t pem = HUB_BUF_INIT;
    CHECK_EQ(hub_pem_encode(label, der->data, der->len, &pem), 0);
    write_file(name, pem.data, pem.len);
    hub_buf_free(&pem);
}

/* Counts occurrences of oid in der; *nulls receives how many are followed by 05 00. */
static int count_oid(const hub_buf_t *der, const uint8_t *oid, size_t oid_len, int *nulls)
{
    int n = 0;
    *nulls = 0;
    for (size_t i = 0; i + oid_len + 2 <= der->len; i++) {
        if (memcmp(der->data + i, oid, oid_len) == 0) {
            n++;
            if (der->data[i + oid_len] == 0x05 && der->data[i + oid_len + 1] == 0x00)
                (*nulls)++;
        }
    }
    return n;
}

/* Checks the certificate's own signature algid: ECDSA without NULL, RSA with NULL. */
static void check_algid(const hub_buf_t *der, mbedtls_pk_context *signer)
{
    int nulls;
    if (mbedtls_pk_get_type(signer) == MBEDTLS_PK_RSA) {
        CHECK_EQ(count_oid(der, oid_rsa256, sizeof oid_rsa256, &nulls), 2);
        CHECK_EQ(nulls, 2);
    } else {
        int n256 = count_oid(der, oid_ecdsa256, sizeof oid_ecdsa256, &nulls);
        CHECK_EQ(nulls, 0);
        int n384 = count_oid(der, oid_ecdsa384, sizeof oid_ecdsa384, &nulls);
        CHECK_EQ(nulls, 0);
        CHECK_EQ(n256 + n384, 2);
    }
}

static int issue(enum hub_cert_kind kind, const char *cn, const char *o,
                 mbedtls_pk_context *subject, const mbedtls_x509_crt *issuer,
                 mbedtls_pk_context *issuer_key, const char *const *alt, uint8_t *serial,
                 hub_buf_t *out)
{
    time_t now = time(NULL);
    struct hub_cert_request req = {
        .kind = kind, .cn = cn, .o = o, .subject_key = subject, .issuer = issuer,
        .issuer_key = issuer_key, .not_before = now - 60,
        /* roots run past 2050 so GeneralizedTime is exercised too */
        .not_after = kind == HUB_CERT_ROOT_CA ? (time_t)2682374400 : now + 86400 * 365,
        .alt_names = alt, .crl_url = "https://hub.example:8443/v1/crl",
    };
    uint8_t s[HUB_SERIAL_LEN];
    return hub_cert_issue(&req, serial ? serial : s, out);
}

/* Verifies leaf (+ optional intermediate) against root; returns the mbedTLS flags or -1. */
static int verify(const hub_buf_t *leaf, const hub_buf_t *mid, const hub_buf_t *root,
                  const hub_buf_t *crl, const char *cn)
{
    mbedtls_x509_crt chain, trust;
    mbedtls_x509_crl c;
    uint32_t flags = 0;
    int ret = -1;
    mbedtls_x509_crt_init(&chain);
    mbedtls_x509_crt_init(&trust);
    mbedtls_x509_crl_init(&c);
    if (mbedtls_x509_crt_parse_der(&chain, leaf->data, leaf->len) != 0 ||
        (mid && mbedtls_x509_crt_parse_der(&chain, mid->data, mid->len) != 0) ||
        mbedtls_x509_crt_parse_der(&trust, root->data, root->len) != 0 ||
        (crl && mbedtls_x509_crl_parse_der(&c, crl->data, crl->len) != 0))
        goto out;
    mbedtls_x509_crt_verify(&chain, &trust, crl ? &c : NULL, cn, &flags, NULL, NULL);
    ret = (int)flags;
out:
    mbedtls_x509_crt_free(&chain);
    mbedtls_x509_crt_free(&trust);
    mbedtls_x509_crl_free(&c);
    return ret;
}

static void test_key_type_parse(void)
{
    const char *names[] = {"ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"};
    enum hub_key_type t;
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(hub_key_type_parse(names[i], &t), 0);
        CHECK_EQ(t, i);
        CHECK_STR(hub_key_type_name(t), names[i]);
    }
    CHECK_EQ(hub_key_type_parse("ec-p521", &t), HUB_EINVAL);
    CHECK_EQ(hub_key_type_parse("", &t), HUB_EINVAL);
}

static void test_key_der_roundtrip(void)
{
    mbedtls_pk_context a, b;
    hub_buf_t der = HUB_BUF_INIT;
    mbedtls_pk_init(&a);
    mbedtls_pk_init(&b);
    CHECK_EQ(hub_key_generate(HUB_KEY_EC_P384, &a), 0);
    CHECK_EQ(hub_key_write_der(&a, &der), 0);
    CHECK(der.len > 100 && der.data[0] == 0x30);
    CHECK_EQ(hub_key_parse_der(der.data, der.len, &b), 0);
    CHECK_EQ(mbedtls_pk_check_pair(&a, &b), 0);
    CHECK_EQ(hub_key_parse_der(der.data, der.len / 2, &b), HUB_EINVAL);
    hub_buf_free(&der);
    mbedtls_pk_free(&a);
    mbedtls_pk_free(&b);
}

static void test_seal_roundtrip(void)
{
    const uint8_t secret[] = "private key bytes";
    hub_buf_t blob = HUB_BUF_INIT, plain = HUB_BUF_INIT;
    CHECK_EQ(hub_seal("pass", 1000, "ca:issuing", secret, sizeof secret, &blob), 0);
    CHECK_EQ(blob.len, 37 + sizeof secret + 16);
    CHECK(memcmp(blob.data, "HUBS\x01", 5) == 0);
    CHECK_EQ(hub_unseal("pass", "ca:issuing", blob.data, blob.len, &plain), 0);
    CHECK_EQ(plain.len, sizeof secret);
    CHECK(plain.data != NULL && memcmp(plain.data, secret, sizeof secret) == 0);
    hub_buf_free(&plain);
    CHECK_EQ(hub_seal("pass", 0, "x", secret, sizeof secret, &plain), HUB_EINVAL);
    hub_buf_free(&blob);
}

static void test_seal_rejects(void)
{
    const uint8_t secret[] = "k";
    hub_buf_t blob = HUB_BUF_INIT, plain = HUB_BUF_INIT;
    CHECK_EQ(hub_seal("pass", 1000, "ca:root", secret, sizeof secret, &blob), 0);
    CHECK_EQ(hub_unseal("wrong", "ca:root", blob.data, blob.len, &plain), HUB_EBADPASS);
    CHECK_EQ(hub_unseal("pass", "ca:issuing", blob.data, blob.len, &plain), HUB_EBADPASS);
    CHECK_EQ(plain.len, 0);
    CHECK_EQ(hub_unseal("pass", "ca:root", blob.data, 30, &plain), HUB_EINVAL);
    CHECK_EQ(hub_unseal("pass", "ca:root", blob.data, 0, &plain), HUB_EINVAL);
    CHECK_EQ(hub_unseal("pass", "ca:root", (const uint8_t *)"garbage garbage garbage "
                        "garbage garbage garbage garbage", 55, &plain), HUB_EINVAL);
    /* A shortened blob still long enough to parse fails authentication. */
    CHECK_EQ(hub_unseal("pass", "ca:root", blob.data, blob.len - 1, &plain), HUB_EBADPASS);
    /* Tampered header: iterations 0 and absurd are malformed, 1001 fails the tag. */
    uint8_t save[4];
    memcpy(save, blob.data + 5, 4);
    memset(blob.data + 5, 0, 4);
    CHECK_EQ(hub_unseal("pass", "ca:root", blob.data, blob.len, &plain), HUB_EINVAL);
    memset(blob.data + 5, 0xff, 4);
    CHECK_EQ(hub_unseal("pass", "ca:root", blob.data, blob.len, &plain), HUB_EINVAL);
    memcpy(blob.data + 5, save, 4);
    blob.data[8] ^= 1;
    CHECK_EQ(hub_unseal("pass", "ca:root", blob.data, blob.len, &plain), HUB_EBADPASS);
    blob.data[8] ^= 1;
    blob.data[4] = 2;
    CHECK_EQ(hub_unseal("pass", "ca:root", blob.data, blob.len, &plain), HUB_EINVAL);
    hub_buf_free(&blob);
    hub_buf_free(&plain);
}

static void test_seal_default_iterations(void)
{
    const uint8_t secret[] = "0123456789abcdef0123456789abcdef";
    hub_buf_t blob = HUB_BUF_INIT, plain = HUB_BUF_INIT;
    CHECK_EQ(hub_seal("master", HUB_SEAL_ITERATIONS, "ca:root", secret, 32, &blob), 0);
    CHECK_EQ(hub_unseal("master", "ca:root", blob.data, blob.len, &plain), 0);
    CHECK(plain.len == 32 && memcmp(plain.data, secret, 32) == 0);
    hub_buf_free(&blob);
    hub_buf_free(&plain);
}

/* For each key type t: root(t) → issuing(P-256) and root(P-256) → issuing(t), both
 * verified; one key generation per type. */
static void test_key_types_sign(void)
{
    mbedtls_pk_context p256, k, leafk;
    mbedtls_pk_init(&p256);
    mbedtls_pk_init(&leafk);
    CHECK_EQ(hub_key_generate(HUB_KEY_EC_P256, &p256), 0);
    CHECK_EQ(hub_key_generate(HUB_KEY_EC_P256, &leafk), 0);
    for (int t = HUB_KEY_EC_P256; t <= HUB_KEY_RSA_4096; t++) {
        int before = harness_failed_checks;
        hub_buf_t r1 = HUB_BUF_INIT, i1 = HUB_BUF_INIT, r2 = HUB_BUF_INIT, i2 = HUB_BUF_INIT;
        hub_buf_t leaf = HUB_BUF_INIT;
        mbedtls_x509_crt rc1, rc2, ic2;
        mbedtls_x509_crt_init(&rc1);
        mbedtls_x509_crt_init(&rc2);
        mbedtls_x509_crt_init(&ic2);
        mbedtls_pk_init(&k);
        CHECK_EQ(hub_key_generate((enum hub_key_type)t, &k), 0);
        CHECK_EQ(issue(HUB_CERT_ROOT_CA, "Root", "Test", &k, NULL, &k, NULL, NULL, &r1), 0);
        CHECK_EQ(mbedtls_x509_crt_parse_der(&rc1, r1.data, r1.len), 0);
        CHECK_EQ(issue(HUB_CERT_ISSUING_CA, "Issuing", "Test", &p256, &rc1, &k, NULL, NULL,
                       &i1), 0);
        check_algid(&r1, &k);
        check_algid(&i1, &k);
        CHECK_EQ(verify(&i1, NULL, &r1, NULL, NULL), 0);

        CHECK_EQ(issue(HUB_CERT_ROOT_CA, "Root2", NULL, &p256, NULL, &p256, NULL, NULL, &r2),
                 0);
        CHECK_EQ(mbedtls_x509_crt_parse_der(&rc2, r2.data, r2.len), 0);
        CHECK_EQ(issue(HUB_CERT_ISSUING_CA, "Issuing2", NULL, &k, &rc2, &p256, NULL, NULL,
                       &i2), 0);
        CHECK_EQ(mbedtls_x509_crt_parse_der(&ic2, i2.data, i2.len), 0);
        CHECK_EQ(issue(HUB_CERT_CLIENT, "dev", "prod", &leafk, &ic2, &k, NULL, NULL, &leaf),
                 0);
        check_algid(&leaf, &k);
        CHECK_EQ(verify(&leaf, &i2, &r2, NULL, "dev"), 0);
        if (harness_failed_checks != before)
            fprintf(stderr, "  (key type %s)\n", hub_key_type_name((enum hub_key_type)t));
        mbedtls_pk_free(&k);
        mbedtls_x509_crt_free(&rc1);
        mbedtls_x509_crt_free(&rc2);
        mbedtls_x509_crt_free(&ic2);
        hub_buf_free(&r1);
        hub_buf_free(&i1);
        hub_buf_free(&r2);
        hub_buf_free(&i2);
        hub_buf_free(&leaf);
    }
    mbedtls_pk_free(&p256);
    mbedtls_pk_free(&leafk);
}

static void test_pki_build(void)
{
    static const char *const alt[] = {"localhost", "127.0.0.1", "::1", NULL};
    mbedtls_x509_crt srv;
    mbedtls_x509_crt_init(&srv);
    CHECK_EQ(hub_key_generate(HUB_KEY_EC_P384, &pki.root_key), 0);
    CHECK_EQ(hub_key_generate(HUB_KEY_EC_P256, &pki.iss_key), 0);
    CHECK_EQ(hub_key_generate(HUB_KEY_EC_P256, &pki.srv_key), 0);
    CHECK_EQ(issue(HUB_CERT_ROOT_CA, "iothub Root CA", "iothub", &pki.root_key, NULL,
                   &pki.root_key, NULL, NULL, &pki.root_der), 0);
    CHECK_EQ(mbedtls_x509_crt_parse_der(&pki.root, pki.root_der.data, pki.root_der.len), 0);
    CHECK_EQ(issue(HUB_CERT_ISSUING_CA, "iothub Issuing CA", "iothub", &pki.iss_key, &pki.root,
                   &pki.root_key, NULL, NULL, &pki.iss_der), 0);
    CHECK_EQ(mbedtls_x509_crt_parse_der(&pki.iss, pki.iss_der.data, pki.iss_der.len), 0);
    CHECK_EQ(issue(HUB_CERT_SERVER, "localhost", NULL, &pki.srv_key, &pki.iss, &pki.iss_key,
                   alt, NULL, &pki.srv_der), 0);
    CHECK_EQ(verify(&pki.iss_der, NULL, &pki.root_der, NULL, NULL), 0);
    CHECK_EQ(verify(&pki.srv_der, &pki.iss_der, &pki.root_der, NULL, "localhost"), 0);
    CHECK(pki.root.ca_istrue && pki.root.max_pathlen == 0);
    CHECK(pki.iss.ca_istrue && pki.iss.max_pathlen == 1); /* mbedTLS stores pathLen + 1 */
    CHECK_EQ(mbedtls_x509_crt_check_key_usage(&pki.iss, MBEDTLS_X509_KU_CRL_SIGN), 0);

    CHECK_EQ(mbedtls_x509_crt_parse_der(&srv, pki.srv_der.data, pki.srv_der.len), 0);
    CHECK(!srv.ca_istrue);
    CHECK_EQ(mbedtls_x509_crt_check_extended_key_usage(&srv, MBEDTLS_OID_SERVER_AUTH,
                                                       MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
             0);
    CHECK_EQ(mbedtls_x509_crt_check_key_usage(&srv, MBEDTLS_X509_KU_DIGITAL_SIGNATURE), 0);
    const mbedtls_x509_sequence *san = &srv.subject_alt_names;
    CHECK(san->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2) && san->buf.len == 9 &&
          memcmp(san->buf.p, "localhost", 9) == 0);
    san = san->next;
    CHECK(san != NULL && san->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) &&
          san->buf.len == 4 && memcmp(san->buf.p, "\x7f\0\0\x01", 4) == 0);
    san = san ? san->next : NULL;
    CHECK(san != NULL && san->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) &&
          san->buf.len == 16 && san->buf.p[15] == 1);
    mbedtls_x509_crt_free(&srv);
    pki.ok = harness_failed_checks == 0;
}

static void test_client_from_csr(void)
{
    mbedtls_x509_csr csr;
    mbedtls_x509_crt cli;
    hub_buf_t req = HUB_BUF_INIT;
    char err[256], dn[256];
    mbedtls_x509_csr_init(&csr);
    mbedtls_x509_crt_init(&cli);
    CHECK(pki.ok);
    CHECK_EQ(run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                 "-subj /CN=ignored -keyout %s -out %s 2>/dev/null",
                 path("client.key"), path("client.csr")), 0);
    CHECK_EQ(read_file(path("client.csr"), &req), 0);
    CHECK_EQ(hub_csr_load(req.data, req.len, &csr, err, sizeof err), 0);
    CHECK_EQ(issue(HUB_CERT_CLIENT, "device-1", "product-9", &csr.pk, &pki.iss, &pki.iss_key,
                   NULL, pki.cli_serial, &pki.cli_der), 0);
    CHECK_EQ(mbedtls_x509_crt_parse_der(&cli, pki.cli_der.data, pki.cli_der.len), 0);
    CHECK_EQ(cli.serial.len, HUB_SERIAL_LEN);
    CHECK((cli.serial.p[0] & 0x80) == 0 && cli.serial.p[0] != 0);
    CHECK(memcmp(cli.serial.p, pki.cli_serial, HUB_SERIAL_LEN) == 0);
    CHECK(mbedtls_x509_dn_gets(dn, sizeof dn, &cli.subject) > 0);
    CHECK_STR(dn, "O=product-9, CN=device-1");
    CHECK_EQ(mbedtls_x509_crt_check_extended_key_usage(&cli, MBEDTLS_OID_CLIENT_AUTH,
                                                       MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)),
             0);
    CHECK_EQ(verify(&pki.cli_der, &pki.iss_der, &pki.root_der, NULL, NULL), 0);
    check_algid(&pki.cli_der, &pki.iss_key);
    write_file(path("client.der"), pki.cli_der.data, pki.cli_der.len);
    write_pem(path("client.pem"), "CERTIFICATE", &pki.cli_der);
    write_pem(path("root.pem"), "CERTIFICATE", &pki.root_der);
    write_pem(path("issuing.pem"), "CERTIFICATE", &pki.iss_der);
    write_pem(path("server.pem"), "CERTIFICATE", &pki.srv_der);
    /* openssl's view: no NULL right after ecdsa-with-SHA256; CRL DP present; 2055 date. */
    CHECK_EQ(run("openssl asn1parse -inform DER -in %s > %s", path("client.der"),
                 path("client.asn1")), 0);
    CHECK_EQ(run("grep -A1 ecdsa-with-SHA256 %s | grep -q NULL", path("client.asn1")), 256);
    CHECK_EQ(run("openssl x509 -in %s -noout -text | grep -q 'URI:https://hub.example:8443/v1/crl'",
                 path("client.pem")), 0);
    CHECK_EQ(run("openssl x509 -in %s -noout -text | grep -q 'IP Address:0:0:0:0:0:0:0:1'",
                 path("server.pem")), 0);
    CHECK_EQ(run("openssl asn1parse -in %s | grep -q 'GENERALIZEDTIME *:20550101000000Z'",
                 path("root.pem")), 0);
    CHECK_EQ(run("openssl verify -x509_strict -CAfile %s -untrusted %s -purpose sslclient %s "
                 ">/dev/null", path("root.pem"), path("issuing.pem"), path("client.pem")), 0);
    CHECK_EQ(run("openssl verify -x509_strict -CAfile %s -untrusted %s -purpose sslserver %s "
                 ">/dev/null", path("root.pem"), path("issuing.pem"), path("server.pem")), 0);
    hub_buf_free(&req);
    mbedtls_x509_csr_free(&csr);
    mbedtls_x509_crt_free(&cli);
}

static int crl_build(const struct hub_crl_entry *e, size_t n, uint64_t number, hub_buf_t *out)
{
    time_t now = time(NULL);
    return hub_crl_build(&pki.iss, &pki.iss_key, number, now - 10, now + 3600, e, n, out);
}

static void test_crl(void)
{
    struct hub_crl_entry e[2] = {0};
    hub_buf_t empty = HUB_BUF_INIT, full = HUB_BUF_INIT;
    mbedtls_x509_crl crl;
    int reason;
    mbedtls_x509_crl_init(&crl);
    CHECK(pki.ok && pki.cli_der.len > 0);
    CHECK_EQ(hub_crl_reason_parse("keyCompromise", &reason), 0);
    CHECK_EQ(reason, HUB_REASON_KEY_COMPROMISE);
    CHECK_EQ(hub_crl_reason_parse("aACompromise", &reason), 0);
    CHECK_EQ(reason, 10);
    CHECK_EQ(hub_crl_reason_parse("removeFromCRL", &reason), HUB_EINVAL);
    CHECK_STR(hub_crl_reason_name(HUB_REASON_CESSATION_OF_OPERATION), "cessationOfOperation");
    CHECK(hub_crl_reason_name(7) == NULL && hub_crl_reason_name(8) == NULL);

    CHECK_EQ(crl_build(NULL, 0, 1, &empty), 0);
    CHECK_EQ(mbedtls_x509_crl_parse_der(&crl, empty.data, empty.len), 0);
    CHECK_EQ(crl.version, 2);
    CHECK(crl.entry.serial.len == 0 && crl.entry.next == NULL);
    mbedtls_x509_crl_free(&crl);
    CHECK_EQ(verify(&pki.cli_der, &pki.iss_der, &pki.root_der, &empty, NULL), 0);

    memcpy(e[0].serial, pki.cli_serial, HUB_SERIAL_LEN);
    e[0].serial_len = HUB_SERIAL_LEN;
    e[0].revoked_at = time(NULL) - 5;
    e[0].reason = HUB_REASON_KEY_COMPROMISE;
    memcpy(e[1].serial, "\x00\x00\xff\x01", 4); /* needs leading zeros stripped + 00 added */
    e[1].serial_len = 4;
    e[1].revoked_at = time(NULL) - 5;
    e[1].reason = HUB_REASON_UNSPECIFIED;
    CHECK_EQ(crl_build(e, 2, 2, &full), 0);
    mbedtls_x509_crl_init(&crl);
    CHECK_EQ(mbedtls_x509_crl_parse_der(&crl, full.data, full.len), 0);
    CHECK(crl.entry.serial.len == HUB_SERIAL_LEN &&
          memcmp(crl.entry.serial.p, pki.cli_serial, HUB_SERIAL_LEN) == 0);
    CHECK(crl.entry.next != NULL && crl.entry.next->serial.len == 3 &&
          memcmp(crl.entry.next->serial.p, "\x00\xff\x01", 3) == 0 &&
          crl.entry.next->entry_ext.len == 0);
    mbedtls_x509_crl_free(&crl);
    int flags = verify(&pki.cli_der, &pki.iss_der, &pki.root_der, &full, NULL);
    CHECK(flags > 0 && (flags & MBEDTLS_X509_BADCERT_REVOKED));
    CHECK_EQ(flags & MBEDTLS_X509_BADCRL_NOT_TRUSTED, 0);

    /* openssl: verify passes with the empty CRL and fails after revocation. */
    write_pem(path("crl.pem"), "X509 CRL", &empty);
    CHECK_EQ(run("openssl verify -crl_check -CAfile %s -untrusted %s -CRLfile %s %s >/dev/null",
                 path("root.pem"), path("issuing.pem"), path("crl.pem"), path("client.pem")), 0);
    write_pem(path("crl.pem"), "X509 CRL", &full);
    CHECK(run("openssl verify -crl_check -CAfile %s -untrusted %s -CRLfile %s %s "
              ">/dev/null 2>&1", path("root.pem"), path("issuing.pem"), path("crl.pem"),
              path("client.pem")) != 0);
    CHECK_EQ(run("openssl crl -in %s -noout -text | grep -q 'Key Compromise'",
                 path("crl.pem")), 0);
    CHECK_EQ(run("openssl crl -in %s -noout -text | grep -q 'X509v3 CRL Number: *$'",
                 path("crl.pem")), 0);
    CHECK_EQ(hub_crl_build(&pki.iss, &pki.iss_key, 3, 100, 50, NULL, 0, &full), HUB_EINVAL);
    e[1].reason = 8;
    CHECK_EQ(crl_build(e, 2, 3, &full), HUB_EINVAL);
    hub_buf_free(&empty);
    hub_buf_free(&full);
}

/* A base CRL naming its deltas (freshestCRL) and a delta CRL (critical deltaCRLIndicator):
 * the bytes RFC 5280 asks for, and `openssl verify -use_deltas` takes the pair. */
static void test_crl_delta(void)
{
    struct hub_crl_entry e = {0};
    hub_buf_t base = HUB_BUF_INIT, delta = HUB_BUF_INIT, bad = HUB_BUF_INIT;
    struct hub_signer s = HUB_SIGNER_MEM(&pki.iss_key);
    time_t now = time(NULL);
    const char *url = "https://hub.example:8443/v1/crl?delta=1";
    CHECK(pki.ok);
    struct hub_crl_info bi = {7, now - 10, now + 3600, 0, url, NULL};
    CHECK_EQ(hub_crl_build_info(&pki.iss, &s, &bi, NULL, 0, &base), 0);
    memcpy(e.serial, pki.cli_serial, HUB_SERIAL_LEN);
    e.serial_len = HUB_SERIAL_LEN;
    e.revoked_at = now - 5;
    e.reason = HUB_REASON_KEY_COMPROMISE;
    struct hub_crl_info di = {8, now - 5, now + 3600, 7, url, NULL}; /* a delta ignores the URL */
    CHECK_EQ(hub_crl_build_info(&pki.iss, &s, &di, &e, 1, &delta), 0);
    /* freshestCRL: 06 03 55 1D 2E, OCTET STRING { SEQ { SEQ { [0] { [0] { [6] url } } } } } */
    static const uint8_t fresh[] = {0x06, 0x03, 0x55, 0x1D, 0x2E, 0x04};
    CHECK(memmem(base.data, base.len, fresh, sizeof fresh) != NULL);
    CHECK(memmem(base.data, base.len, url, strlen(url)) != NULL);
    CHECK(memmem(delta.data, delta.len, fresh, sizeof fresh) == NULL);
    /* deltaCRLIndicator: 06 03 55 1D 1B, BOOLEAN TRUE, OCTET STRING { INTEGER 7 } */
    static const uint8_t ind[] = {0x06, 0x03, 0x55, 0x1D, 0x1B, 0x01, 0x01, 0xFF,
                                  0x04, 0x03, 0x02, 0x01, 0x07};
    CHECK(memmem(delta.data, delta.len, ind, sizeof ind) != NULL);
    CHECK(memmem(base.data, base.len, ind, 5) == NULL);
    /* mbedTLS 2.28 refuses a CRL with a critical extension it does not know: a delta. */
    mbedtls_x509_crl crl;
    mbedtls_x509_crl_init(&crl);
    CHECK_EQ(mbedtls_x509_crl_parse_der(&crl, base.data, base.len), 0);
    mbedtls_x509_crl_free(&crl);
    write_pem(path("base.pem"), "X509 CRL", &base);
    write_pem(path("delta.pem"), "X509 CRL", &delta);
    CHECK_EQ(run("openssl crl -in %s -noout -text | grep -q 'Delta CRL Indicator: critical'",
                 path("delta.pem")), 0);
    CHECK_EQ(run("openssl crl -in %s -noout -text | grep -A3 'Freshest CRL' | grep -q 'URI:%s'",
                 path("base.pem"), url), 0);
    CHECK_EQ(run("openssl verify -crl_check -CAfile %s -untrusted %s -CRLfile %s %s >/dev/null",
                 path("root.pem"), path("issuing.pem"), path("base.pem"), path("client.pem")), 0);
    char base_pem[128], delta_pem[128]; /* path() has four buffers */
    snprintf(base_pem, sizeof base_pem, "%s", path("base.pem"));
    snprintf(delta_pem, sizeof delta_pem, "%s", path("delta.pem"));
    CHECK(run("openssl verify -crl_check -use_deltas -CAfile %s -untrusted %s -CRLfile %s "
              "-CRLfile %s %s 2>&1 | grep -q 'certificate revoked'", path("root.pem"),
              path("issuing.pem"), base_pem, delta_pem, path("client.pem")) == 0);
    /* A delta must come after its base. */
    struct hub_crl_info wrong = {7, now, now + 60, 7, NULL, NULL};
    CHECK_EQ(hub_crl_build_info(&pki.iss, &s, &wrong, NULL, 0, &bad), HUB_EINVAL);
    hub_buf_free(&base);
    hub_buf_free(&delta);
    hub_buf_free(&bad);
}

static void test_crl_large(void)
{
    const size_t n = 100000;
    struct hub_crl_entry *e = calloc(n, sizeof *e);
    hub_buf_t der = HUB_BUF_INIT;
    mbedtls_x509_crl crl;
    mbedtls_x509_crl_init(&crl);
    CHECK(pki.ok && e != NULL);
    for (size_t i = 0; e != NULL && i < n; i++) {
        hub_random(e[i].serial, HUB_SERIAL_LEN);
        e[i].serial[0] = (uint8_t)((e[i].serial[0] & 0x7f) | 0x40);
        e[i].serial_len = HUB_SERIAL_LEN;
        e[i].revoked_at = 1700000000 + (time_t)i;
        e[i].reason = (int)(i % 7);
    }
    CHECK_EQ(crl_build(e, n, 4, &der), 0);
    CHECK(der.len > 4000000);
    CHECK_EQ(mbedtls_x509_crl_parse_der(&crl, der.data, der.len), 0);
    size_t count = 0;
    for (const mbedtls_x509_crl_entry *p = &crl.entry; p != NULL && p->serial.len; p = p->next)
        count++;
    CHECK_EQ(count, n);
    mbedtls_x509_crl_free(&crl);
    hub_buf_free(&der);
    free(e);
}

static void test_pkcs7(void)
{
    const uint8_t *ders[2] = {pki.iss_der.data, pki.root_der.data};
    size_t lens[2] = {pki.iss_der.len, pki.root_der.len};
    hub_buf_t p7 = HUB_BUF_INIT;
    CHECK(pki.ok);
    CHECK_EQ(hub_pkcs7_certs_only(ders, lens, 2, &p7), 0);
    write_file(path("ca.p7b"), p7.data, p7.len);
    CHECK_EQ(run("openssl pkcs7 -inform DER -in %s -print_certs > %s", path("ca.p7b"),
                 path("p7.txt")), 0);
    CHECK_EQ(run("test $(grep -c 'BEGIN CERTIFICATE' %s) = 2", path("p7.txt")), 0);
    CHECK_EQ(run("grep -q 'subject=O = iothub, CN = iothub Issuing CA' %s", path("p7.txt")), 0);
    CHECK_EQ(run("openssl verify -CAfile %s %s >/dev/null", path("root.pem"),
                 path("p7.txt")), 0);
    hub_buf_free(&p7);
}

/* Makes a CSR with openssl: keyspec is "-newkey …" or "-key file"; der selects -outform. */
static int make_csr(const char *keyspec, int der, hub_buf_t *out)
{
    int rc = run("openssl req -new %s -nodes -subj /CN=tamperme -keyout %s -out %s %s "
                 "2>/dev/null", keyspec, path("k.pem"), path("r.csr"),
                 der ? "-outform DER" : "");
    if (rc == 0)
        rc = read_file(path("r.csr"), out);
    return rc;
}

static int load(const hub_buf_t *b, char *err, size_t errlen)
{
    mbedtls_x509_csr csr;
    mbedtls_x509_csr_init(&csr);
    int rc = hub_csr_load(b->data, b->len, &csr, err, errlen);
    mbedtls_x509_csr_free(&csr);
    return rc;
}

static void test_csr_policy(void)
{
    char err[256];
    hub_buf_t b = HUB_BUF_INIT;
    struct { const char *spec; int der; int want; const char *msg; } cases[] = {
        {"-newkey ec -pkeyopt ec_paramgen_curve:P-256", 0, 0, ""},
        {"-newkey ec -pkeyopt ec_paramgen_curve:P-384", 1, 0, ""},
        {"-newkey rsa:2048", 0, 0, ""},
        {"-newkey rsa:1024", 0, HUB_EKEYPOLICY, "RSA key of 1024 bits is too small (minimum 2048)"},
        {"-newkey ec -pkeyopt ec_paramgen_curve:secp256k1", 0, HUB_EKEYPOLICY,
         "EC curve secp256k1 not accepted; use P-256 or P-384"},
        {"-newkey ed25519", 0, HUB_EKEYPOLICY,
         "key algorithm not accepted; use EC P-256, P-384 or RSA >= 2048"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        b.len = 0;
        CHECK_EQ(make_csr(cases[i].spec, cases[i].der, &b), 0);
        CHECK_EQ(load(&b, err, sizeof err), cases[i].want);
        CHECK_STR(err, cases[i].msg);
    }

    /* DSA */
    CHECK_EQ(run("openssl dsaparam -genkey -out %s 2048 2>/dev/null", path("dsa.pem")), 0);
    char spec[160];
    snprintf(spec, sizeof spec, "-key %s", path("dsa.pem"));
    b.len = 0;
    CHECK_EQ(make_csr(spec, 0, &b), 0);
    CHECK_EQ(load(&b, err, sizeof err), HUB_EKEYPOLICY);
    CHECK_STR(err, "DSA keys are not accepted; use EC P-256, P-384 or RSA >= 2048");

    /* Tampering: a byte of the signature, then a byte of the subject. */
    b.len = 0;
    CHECK_EQ(make_csr("-newkey ec -pkeyopt ec_paramgen_curve:P-256", 1, &b), 0);
    CHECK_EQ(load(&b, err, sizeof err), 0);
    b.data[b.len - 3] ^= 0x01;
    CHECK_EQ(load(&b, err, sizeof err), HUB_EBADCSR);
    CHECK_STR(err, "CSR signature does not verify (proof of possession failed)");
    b.data[b.len - 3] ^= 0x01;
    uint8_t *cn = memmem(b.data, b.len, "tamperme", 8);
    CHECK(cn != NULL);
    if (cn != NULL)
        cn[0] = 'T';
    CHECK_EQ(load(&b, err, sizeof err), HUB_EBADCSR);
    CHECK_STR(err, "CSR signature does not verify (proof of possession failed)");

    /* Garbage, empty, truncated, oversized, and the "NEW CERTIFICATE REQUEST" label. */
    hub_buf_t g = HUB_BUF_INIT;
    hub_buf_puts(&g, "hello, I am not a CSR\n");
    CHECK_EQ(load(&g, err, sizeof err), HUB_EBADCSR);
    CHECK_STR(err, "not a PEM or DER certificate request");
    g.len = 0;
    CHECK_EQ(load(&g, err, sizeof err), HUB_EBADCSR);
    CHECK_STR(err, "empty certificate request");
    b.len /= 2;
    CHECK_EQ(load(&b, err, sizeof err), HUB_EBADCSR);
    CHECK(strncmp(err, "malformed certificate request (", 31) == 0);
    hub_buf_reserve(&g, 70000);
    memset(g.data, 'A', 70000);
    g.len = 70000;
    CHECK_EQ(load(&g, err, sizeof err), HUB_EBADCSR);
    CHECK_STR(err, "certificate request larger than 64 KiB");
    g.len = 0;
    hub_buf_puts(&g, "-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n");
    CHECK_EQ(load(&g, err, sizeof err), HUB_EBADCSR);
    b.len = 0;
    CHECK_EQ(make_csr("-newkey ec -pkeyopt ec_paramgen_curve:P-256", 0, &b), 0);
    g.len = 0;
    hub_buf_puts(&g, "-----BEGIN NEW CERTIFICATE REQUEST-----");
    hub_buf_append(&g, b.data + 35, b.len - 35 - 34);
    hub_buf_puts(&g, "-----END NEW CERTIFICATE REQUEST-----\n");
    CHECK_EQ(load(&g, err, sizeof err), 0);
    hub_buf_free(&g);
    hub_buf_free(&b);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_ca.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    mbedtls_pk_init(&pki.root_key);
    mbedtls_pk_init(&pki.iss_key);
    mbedtls_pk_init(&pki.srv_key);
    mbedtls_x509_crt_init(&pki.root);
    mbedtls_x509_crt_init(&pki.iss);

    RUN(test_key_type_parse);
    RUN(test_key_der_roundtrip);
    RUN(test_seal_roundtrip);
    RUN(test_seal_rejects);
    RUN(test_seal_default_iterations);
    RUN(test_key_types_sign);
    RUN(test_pki_build);
    RUN(test_client_from_csr);
    RUN(test_crl);
    RUN(test_crl_large);
    RUN(test_crl_delta);
    RUN(test_pkcs7);
    RUN(test_csr_policy);

    mbedtls_pk_free(&pki.root_key);
    mbedtls_pk_free(&pki.iss_key);
    mbedtls_pk_free(&pki.srv_key);
    mbedtls_x509_crt_free(&pki.root);
    mbedtls_x509_crt_free(&pki.iss);
    hub_buf_free(&pki.root_der);
    hub_buf_free(&pki.iss_der);
    hub_buf_free(&pki.srv_der);
    hub_buf_free(&pki.cli_der);
    if (getenv("TEST_CA_KEEP") == NULL) /* keep the files for inspection */
        run("rm -rf %s", tmpdir);
    else
        fprintf(stderr, "files kept in %s\n", tmpdir);
    HARNESS_EXIT();
}
