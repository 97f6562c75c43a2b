/* Unit tests for ca/import: what an external root signed, checked against the pending keys
 * (chain, key match, CA bits, serverAuth, names) and the root's CRLs (issuer, signature,
 * cRLNumber). The "maker's" certificates are made with ca/cert like the hub's own. */
#include <string.h>
#include <time.h>

#include <mbedtls/x509_crt.h>

#include "ca/cert.h"
#include "ca/crl.h"
#include "ca/import.h"
#include "ca/key.h"
#include "tests/unit/harness.h"
#include "util/error.h"

struct pki {
    mbedtls_pk_context root_key, iss_key, srv_key, other_key;
    mbedtls_x509_crt root, iss, srv, other_root;
};

static void make(enum hub_cert_kind kind, const char *cn, mbedtls_pk_context *subject,
                 mbedtls_x509_crt *issuer, mbedtls_pk_context *issuer_key, time_t nb, time_t na,
                 const char *const *alt, mbedtls_x509_crt *out)
{
    uint8_t serial[HUB_SERIAL_LEN];
    hub_buf_t der = HUB_BUF_INIT;
    struct hub_cert_request req = {.kind = kind,
                                   .cn = cn,
                                   .o = "Maker",
                                   .subject_key = subject,
                                   .issuer = issuer,
                                   .issuer_key = issuer_key,
                                   .not_before = nb,
                                   .not_after = na,
                                   .alt_names = alt};
    CHECK_EQ(hub_cert_issue(&req, serial, &der), 0);
    CHECK_EQ(mbedtls_x509_crt_parse_der(out, der.data, der.len), 0);
    hub_buf_free(&der);
}

static const char *const names[] = {"localhost", "127.0.0.1", NULL};

static void pki_init(struct pki *p)
{
    time_t now = time(NULL);
    mbedtls_pk_context *keys[] = {&p->root_key, &p->iss_key, &p->srv_key, &p->other_key};
    for (int i = 0; i < 4; i++) {
        mbedtls_pk_init(keys[i]);
        CHECK_EQ(hub_key_generate(HUB_KEY_EC_P256, keys[i]), 0);
    }
    mbedtls_x509_crt_init(&p->root);
    mbedtls_x509_crt_init(&p->iss);
    mbedtls_x509_crt_init(&p->srv);
    mbedtls_x509_crt_init(&p->other_root);
    make(HUB_CERT_ROOT_CA, "Maker Root", &p->root_key, NULL, &p->root_key, now - 60, now + 86400,
         NULL, &p->root);
    make(HUB_CERT_ROOT_CA, "Other Root", &p->other_key, NULL, &p->other_key, now - 60, now + 86400,
         NULL, &p->other_root);
    make(HUB_CERT_ISSUING_CA, "iothub Issuing CA", &p->iss_key, &p->root, &p->root_key, now - 60,
         now + 3600, NULL, &p->iss);
    make(HUB_CERT_SERVER, "localhost", &p->srv_key, &p->root, &p->root_key, now - 60, now + 3600,
         names, &p->srv);
}

static void pki_free(struct pki *p)
{
    mbedtls_pk_free(&p->root_key);
    mbedtls_pk_free(&p->iss_key);
    mbedtls_pk_free(&p->srv_key);
    mbedtls_pk_free(&p->other_key);
    mbedtls_x509_crt_free(&p->root);
    mbedtls_x509_crt_free(&p->iss);
    mbedtls_x509_crt_free(&p->srv);
    mbedtls_x509_crt_free(&p->other_root);
}

static void test_import_good_chain(void)
{
    struct pki p;
    char err[512] = "";
    int by_root = -1;
    pki_init(&p);
    CHECK_EQ(hub_import_check_root(&p.root, err, sizeof err), 0);
    CHECK_EQ(hub_import_check_issuing(&p.iss, &p.root, &p.iss_key, err, sizeof err), 0);
    CHECK_EQ(hub_import_check_server(&p.srv, &p.iss, &p.root, &p.srv_key, names, &by_root, err,
                                     sizeof err),
             0);
    CHECK_EQ(by_root, 1);
    CHECK_STR(err, "");
    pki_free(&p);
}

static void test_import_refusals(void)
{
    struct pki p;
    char err[512] = "";
    int by_root;
    pki_init(&p);
    /* another key than the pending one */
    CHECK_EQ(hub_import_check_issuing(&p.iss, &p.root, &p.srv_key, err, sizeof err), HUB_EINVAL);
    CHECK(strstr(err, "does not certify the key of issuing-ca.csr") != NULL);
    /* an end-entity certificate as the issuing CA */
    CHECK_EQ(hub_import_check_issuing(&p.srv, &p.root, &p.srv_key, err, sizeof err), HUB_EINVAL);
    CHECK(strstr(err, "is not a CA certificate") != NULL);
    /* a chain to another root */
    CHECK_EQ(hub_import_check_issuing(&p.iss, &p.other_root, &p.iss_key, err, sizeof err),
             HUB_EINVAL);
    CHECK(strstr(err, "is not signed by the root") != NULL);
    /* a name the server certificate lacks */
    const char *const more[] = {"localhost", "hub.example.com", NULL};
    CHECK_EQ(hub_import_check_server(&p.srv, &p.iss, &p.root, &p.srv_key, more, &by_root, err,
                                     sizeof err),
             HUB_EINVAL);
    CHECK(strstr(err, "does not name \"hub.example.com\"") != NULL);
    /* a CA as the server certificate */
    CHECK_EQ(hub_import_check_server(&p.iss, &p.iss, &p.root, &p.iss_key, names, &by_root, err,
                                     sizeof err),
             HUB_EINVAL);
    CHECK(strstr(err, "is a CA") != NULL);
    /* a root that is not self-signed */
    CHECK_EQ(hub_import_check_root(&p.iss, err, sizeof err), HUB_EINVAL);
    CHECK(strstr(err, "not self-signed") != NULL);
    /* an expired CA */
    mbedtls_x509_crt old;
    mbedtls_x509_crt_init(&old);
    time_t now = time(NULL);
    make(HUB_CERT_ISSUING_CA, "old", &p.iss_key, &p.root, &p.root_key, now - 7200, now - 3600, NULL,
         &old);
    CHECK_EQ(hub_import_check_issuing(&old, &p.root, &p.iss_key, err, sizeof err), HUB_EINVAL);
    CHECK(strstr(err, "has expired (notAfter") != NULL);
    mbedtls_x509_crt_free(&old);
    pki_free(&p);
}

static void test_import_crl(void)
{
    struct pki p;
    char err[512] = "";
    hub_buf_t crl = HUB_BUF_INIT, der = HUB_BUF_INIT;
    struct hub_import_crl info;
    int listed = -1;
    time_t now = time(NULL);
    pki_init(&p);
    struct hub_crl_entry e = {.serial_len = p.iss.serial.len, .revoked_at = now - 10, .reason = 2};
    CHECK(p.iss.serial.len <= sizeof e.serial);
    memcpy(e.serial, p.iss.serial.p, p.iss.serial.len);
    CHECK_EQ(hub_crl_build(&p.root, &p.root_key, 300, now, now + 3600, &e, 1, &crl), 0);
    CHECK_EQ(hub_import_check_crl(crl.data, crl.len, "root.crl", &p.root, &p.iss, &info, &listed,
                                  &der, err, sizeof err),
             0);
    CHECK_EQ(info.number, 300);
    CHECK_EQ(info.entries, 1);
    CHECK_EQ(listed, 1);
    CHECK_EQ(der.len, crl.len);
    CHECK_EQ(hub_import_check_crl(crl.data, crl.len, "root.crl", &p.other_root, NULL, &info,
                                  &listed, &der, err, sizeof err),
             HUB_EINVAL);
    CHECK(strstr(err, "was not issued by the root") != NULL);
    CHECK_EQ(hub_import_check_crl((const uint8_t *)"garbage", 7, "root.crl", &p.root, NULL, &info,
                                  &listed, &der, err, sizeof err),
             HUB_EINVAL);
    CHECK(strstr(err, "not a CRL") != NULL);
    hub_buf_free(&crl);
    hub_buf_free(&der);
    pki_free(&p);
}

int main(void)
{
    RUN(test_import_good_chain);
    RUN(test_import_refusals);
    RUN(test_import_crl);
    HARNESS_EXIT();
}
