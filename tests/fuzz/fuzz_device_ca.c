/* libFuzzer target for ca/device_ca.c, the checks of what a device maker submits: a CA
 * certificate, a verification certificate and CRLs, PEM or DER, from the network. Input:
 * one selector byte, a 2-byte big-endian length n, n bytes of a CA certificate, then the
 * rest as a verification certificate (selector even) or a CRL (odd). A CA that does not load
 * is replaced by a fixed one, so the second object is always checked against some CA. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca/device_ca.h"
#include "tests/fuzz/fuzz_ca.h"
#include "util/error.h"
#include "util/log.h"

static struct fuzz_ca fixed;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hub_log_setup(HUB_LOG_ERROR, HUB_LOG_TEXT);
    fuzz_ca_make(&fixed, HUB_KEY_EC_P256, "fuzz device CA");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hub_devca_why why;
    mbedtls_x509_crt ca, v;
    if (size < 3)
        return 0;
    uint8_t sel = data[0];
    size_t n = (size_t)data[1] << 8 | data[2];
    data += 3;
    size -= 3;
    if (n > size)
        n = size;
    time_t now = 1700000000 + (time_t)(sel >> 1) * 86400 * 30;
    mbedtls_x509_crt_init(&ca);
    mbedtls_x509_crt_init(&v);
    const mbedtls_x509_crt *use = &fixed.crt;
    if (hub_devca_cert_load(data, n, "bad", &ca, &why) == 0) {
        char subject[256], fp[65];
        hub_devca_check_ca(&ca, now, &why);
        hub_devca_subject(&ca, subject, sizeof subject);
        if (hub_devca_fingerprint(&ca, fp) != 0 || strlen(fp) != 64)
            abort();
        use = &ca;
    } else if (why.code == NULL || strcmp(why.code, "bad") != 0) {
        abort();
    }
    if ((sel & 1) == 0) {
        char cn[65];
        if (hub_devca_cert_load(data + n, size - n, "bad", &v, &why) == 0 &&
            hub_devca_check_verification(use, &v, now, cn, &why) == 0 && strlen(cn) != 64)
            abort();
    } else {
        struct hub_devca_crl info;
        hub_buf_t der = HUB_BUF_INIT;
        int rc = hub_devca_crl_check(use, data + n, size - n, now, &info, &der, &why);
        if (rc == 0 && (der.len == 0 || info.number[0] == 0))
            abort();
        if (rc == HUB_EINVAL && (why.code == NULL || why.message[0] == 0))
            abort();
        hub_buf_free(&der);
    }
    mbedtls_x509_crt_free(&v);
    mbedtls_x509_crt_free(&ca);
    return 0;
}
