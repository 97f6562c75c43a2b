/* CSR intake: parse PKCS#10 (PEM or DER), verify proof of possession (mbedTLS 2.28 does
 * not), and enforce the key policy: EC P-256, EC P-384, RSA 2048..8192 bits. */
#ifndef HUB_CA_CSR_H
#define HUB_CA_CSR_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/x509_csr.h>

/* Loads and checks a CSR into csr (mbedtls_x509_csr_init'ed by the caller, who frees it).
 * data need not be NUL-terminated. Returns 0; HUB_EBADCSR (garbage, bad signature) or
 * HUB_EKEYPOLICY (key type/size refused) with a one-line reason written into err. */
int hub_csr_load(const uint8_t *data, size_t len, mbedtls_x509_csr *csr, char *err,
                 size_t errlen);

#endif
