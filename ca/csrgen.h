/* CSR generation: a PKCS#10 certification request written as strict DER (ECDSA
 * AlgorithmIdentifiers without parameters, RFC 5758), used by the device agent and the CLI. */
#ifndef HUB_CA_CSRGEN_H
#define HUB_CA_CSRGEN_H

#include <mbedtls/pk.h>

#include "ca/signer.h"
#include "util/buf.h"

/* Writes a CSR with subject CN=cn and no attributes, signed with key (EC P-256, P-384 or
 * RSA), and appends it to out as DER. Returns 0 or a HUB_E* code. */
int hub_csrgen_write_der(mbedtls_pk_context *key, const char *cn, hub_buf_t *out);
/* Same, signed by signer (a CA key in a PKCS#11 token: its pk is the public key). */
int hub_csrgen_write_der_by(const struct hub_signer *signer, const char *cn, hub_buf_t *out);
/* Same, appended to out as PEM "CERTIFICATE REQUEST" (NUL kept past len). */
int hub_csrgen_write_pem(mbedtls_pk_context *key, const char *cn, hub_buf_t *out);

#endif
