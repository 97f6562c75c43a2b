/* libFuzzer target for CSR intake (ca/csr.c hub_csr_load, PEM or DER) and what activation
 * does with an accepted CSR: issue a client certificate for its key (ca/cert.c) and parse
 * the result back. Checks: a refusal is HUB_EBADCSR or HUB_EKEYPOLICY with a reason; an
 * accepted key is EC P-256/P-384 or RSA 2048..8192, and the issued certificate carries
 * exactly that public key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ecp.h>
#include <mbedtls/x509_csr.h>

#include "ca/csr.h"
#include "tests/fuzz/fuzz_ca.h"
#include "util/error.h"
#include "util/log.h"

static struct fuzz_ca ca;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hub_log_setup(HUB_LOG_DEBUG, HUB_LOG_TEXT);
    fuzz_ca_make(&ca, HUB_KEY_EC_P256, "fuzz issuing CA");
    return 0;
}

static void check_accepted(mbedtls_x509_csr *csr)
{
    static unsigned char a[16384], b[16384];
    mbedtls_pk_context *pk = &csr->pk;
    size_t bits = mbedtls_pk_get_bitlen(pk);
    if (mbedtls_pk_get_type(pk) == MBEDTLS_PK_ECKEY) {
        mbedtls_ecp_group_id id = mbedtls_pk_ec(*pk)->grp.id;
        if (id != MBEDTLS_ECP_DP_SECP256R1 && id != MBEDTLS_ECP_DP_SECP384R1)
            abort();
    } else if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_RSA || bits < 2048 || bits > 8192) {
        abort();
    }

    uint8_t serial[HUB_SERIAL_LEN];
    hub_buf_t der = HUB_BUF_INIT;
    mbedtls_x509_crt crt;
    struct hub_cert_request req = {
        .kind = HUB_CERT_CLIENT,
        .cn = "0b8e3b8a-1111-4c1e-8a6e-00000000000a",
        .o = "0123456789abcdef",
        .subject_key = pk,
        .issuer = &ca.crt,
        .issuer_key = &ca.key,
        .not_before = 1750000000,
        .not_after = 1750000000 + 365 * 86400L,
        .crl_url = "https://localhost:8443/v1/crl",
        .san_uri = "urn:uuid:0b8e3b8a-1111-4c1e-8a6e-00000000000a",
    };
    if (hub_cert_issue(&req, serial, &der) != 0)
        abort();
    mbedtls_x509_crt_init(&crt);
    if (mbedtls_x509_crt_parse_der(&crt, der.data, der.len) != 0)
        abort();
    int la = mbedtls_pk_write_pubkey_der(pk, a, sizeof a);
    int lb = mbedtls_pk_write_pubkey_der(&crt.pk, b, sizeof b);
    if (la <= 0 || la != lb || memcmp(a + sizeof a - la, b + sizeof b - lb, (size_t)la) != 0)
        abort();
    mbedtls_x509_crt_free(&crt);
    hub_buf_free(&der);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mbedtls_x509_csr csr;
    char err[256];
    mbedtls_x509_csr_init(&csr);
    memset(err, 'x', sizeof err);
    int rc = hub_csr_load(data, size, &csr, err, sizeof err);
    if (rc == 0) {
        if (err[0] != 0)
            abort();
        check_accepted(&csr);
    } else if ((rc != HUB_EBADCSR && rc != HUB_EKEYPOLICY) || err[0] == 0 ||
               memchr(err, 0, sizeof err) == NULL) {
        abort();
    }
    mbedtls_x509_csr_free(&csr);
    return 0;
}
