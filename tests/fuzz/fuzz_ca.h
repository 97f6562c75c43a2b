/* Shared by the CA fuzzers: a signing key and its self-signed root certificate, made once
 * per process with the daemon's own ca/key and ca/cert code. */
#ifndef HUB_FUZZ_CA_H
#define HUB_FUZZ_CA_H

#include <stdlib.h>
#include <time.h>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "ca/cert.h"
#include "ca/key.h"
#include "util/buf.h"

struct fuzz_ca {
    mbedtls_pk_context key;
    mbedtls_x509_crt crt;
    hub_buf_t der;
};

/* Generates a key of type t and a root CA certificate "CN=<cn>, O=fuzz"; aborts on error. */
static inline void fuzz_ca_make(struct fuzz_ca *ca, enum hub_key_type t, const char *cn)
{
    uint8_t serial[HUB_SERIAL_LEN];
    hub_buf_t der = HUB_BUF_INIT;
    mbedtls_pk_init(&ca->key);
    mbedtls_x509_crt_init(&ca->crt);
    if (hub_key_generate(t, &ca->key) != 0)
        abort();
    struct hub_cert_request req = {
        .kind = HUB_CERT_ROOT_CA,
        .cn = cn,
        .o = "fuzz",
        .subject_key = &ca->key,
        .issuer_key = &ca->key,
        .not_before = 1700000000,
        .not_after = 1700000000 + 20 * 365 * 86400L,
    };
    if (hub_cert_issue(&req, serial, &der) != 0 ||
        mbedtls_x509_crt_parse_der(&ca->crt, der.data, der.len) != 0)
        abort();
    ca->der = der;
}

#endif
