/* Unit tests for ca/csrgen: CSRs for each key type load through ca/csr (proof of
 * possession), have strict AlgorithmIdentifiers, and `openssl req -verify` accepts them. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/x509_csr.h>

#include "ca/csr.h"
#include "ca/csrgen.h"
#include "ca/key.h"
#include "tests/unit/harness.h"
#include "util/error.h"

static char tmpdir[64];
static const uint8_t oid_ecdsa256[] = {0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02};
static const uint8_t oid_ecdsa384[] = {0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03};
static const uint8_t oid_rsa256[] = {0x06, 0x09, 0x2A, 0x86, 0x48, 0x86,
                                     0xF7, 0x0D, 0x01, 0x01, 0x0B};

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

/* Returns the byte after the signature AlgorithmIdentifier's OID (the last occurrence). */
static int after_sigalg_oid(const hub_buf_t *der, const uint8_t *oid, size_t oid_len)
{
    int at = -1;
    for (size_t i = 0; i + oid_len < der->len; i++) {
        if (memcmp(der->data + i, oid, oid_len) == 0)
            at = (int)der->data[i + oid_len];
    }
    return at;
}

static void check_type(enum hub_key_type t, const uint8_t *oid, size_t oid_len, int want_null)
{
    mbedtls_pk_context key;
    mbedtls_x509_csr csr;
    hub_buf_t der = HUB_BUF_INIT, pem = HUB_BUF_INIT;
    char err[256] = "", dn[256], file[128];
    const char *cn = "6f1c2a9e-0d5b-4c53-9a43-1f0f2e3d4c5b";

    mbedtls_pk_init(&key);
    mbedtls_x509_csr_init(&csr);
    CHECK_EQ(hub_key_generate(t, &key), 0);
    CHECK_EQ(hub_csrgen_write_der(&key, cn, &der), 0);
    CHECK_EQ(hub_csr_load(der.data, der.len, &csr, err, sizeof err), 0);
    CHECK_STR(err, "");
    CHECK(mbedtls_x509_dn_gets(dn, sizeof dn, &csr.subject) > 0);
    CHECK_STR(dn, "CN=6f1c2a9e-0d5b-4c53-9a43-1f0f2e3d4c5b");
    CHECK_EQ(csr.version, 1);
    /* ECDSA: the OID is the last element of its SEQUENCE, so a BIT STRING follows;
     * RSA: a NULL follows. */
    CHECK_EQ(after_sigalg_oid(&der, oid, oid_len), want_null ? 0x05 : 0x03);
    mbedtls_x509_csr_free(&csr);

    mbedtls_x509_csr_init(&csr);
    CHECK_EQ(hub_csrgen_write_pem(&key, cn, &pem), 0);
    CHECK(pem.len > 0 &&
          strncmp((char *)pem.data, "-----BEGIN CERTIFICATE REQUEST-----\n", 36) == 0);
    CHECK_EQ(hub_csr_load(pem.data, pem.len, &csr, err, sizeof err), 0);
    snprintf(file, sizeof file, "%s/%s.csr", tmpdir, hub_key_type_name(t));
    FILE *f = fopen(file, "wb");
    CHECK(f != NULL);
    if (f != NULL) {
        fwrite(pem.data, 1, pem.len, f);
        fclose(f);
    }
    CHECK_EQ(run("openssl req -in %s -noout -verify 2>&1 | grep -q 'verify OK'", file), 0);
    CHECK_EQ(run("openssl req -in %s -noout -subject | grep -q 'subject=CN = %s'", file, cn), 0);

    /* Tampering with the subject breaks proof of possession. */
    der.data[40] ^= 0x01;
    mbedtls_x509_csr_free(&csr);
    mbedtls_x509_csr_init(&csr);
    CHECK(hub_csr_load(der.data, der.len, &csr, err, sizeof err) != 0);

    mbedtls_x509_csr_free(&csr);
    mbedtls_pk_free(&key);
    hub_buf_free(&der);
    hub_buf_free(&pem);
}

static void test_csrgen_ec_p256(void)
{
    check_type(HUB_KEY_EC_P256, oid_ecdsa256, sizeof oid_ecdsa256, 0);
}

static void test_csrgen_ec_p384(void)
{
    check_type(HUB_KEY_EC_P384, oid_ecdsa384, sizeof oid_ecdsa384, 0);
}

static void test_csrgen_rsa_2048(void)
{
    check_type(HUB_KEY_RSA_2048, oid_rsa256, sizeof oid_rsa256, 1);
}

static void test_csrgen_bad_cn(void)
{
    mbedtls_pk_context key;
    hub_buf_t out = HUB_BUF_INIT;
    char cn[80];
    memset(cn, 'a', sizeof cn - 1);
    cn[sizeof cn - 1] = 0;
    mbedtls_pk_init(&key);
    CHECK_EQ(hub_key_generate(HUB_KEY_EC_P256, &key), 0);
    CHECK_EQ(hub_csrgen_write_pem(&key, "", &out), HUB_EINVAL);
    CHECK_EQ(hub_csrgen_write_pem(&key, cn, &out), HUB_EINVAL);
    CHECK_EQ(out.len, 0);
    mbedtls_pk_free(&key);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_csrgen.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_csrgen_ec_p256);
    RUN(test_csrgen_ec_p384);
    RUN(test_csrgen_rsa_2048);
    RUN(test_csrgen_bad_cn);
    run("rm -rf %s", tmpdir);
    HARNESS_EXIT();
}
