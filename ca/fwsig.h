/* Firmware signing (issue 16, docs/firmware.md): the checks a signer certificate must pass
 * to be registered, and the verification of an image's detached signature over its SHA-256
 * (what `openssl dgst -sha256 -sign key.pem` writes: ECDSA DER or RSA PKCS#1 v1.5). */
#ifndef HUB_CA_FWSIG_H
#define HUB_CA_FWSIG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/buf.h"

/* A signer certificate that passed hub_fwsig_signer_parse. */
struct hub_fwsig_signer {
    hub_buf_t der;          /* owned: the certificate DER (hub_fwsig_signer_free) */
    char fingerprint[65];   /* SHA-256 of der, lower-case hex */
    char subject[256];      /* the subject as mbedTLS prints it */
    char key_type[16];      /* "ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096", ... */
    time_t not_before, not_after;
};

/* Parses pem (len bytes, exactly one PEM CERTIFICATE block, nothing else but whitespace)
 * and checks it as a signer: strict DER, within its validity now, a keyUsage extension with
 * digitalSignature, no extendedKeyUsage or one that allows codeSigning, not a CA, key EC
 * P-256/P-384 or RSA >= 2048. Returns 0 with out filled, HUB_EINVAL (malformed) or
 * HUB_EKEYPOLICY (refused by policy) with the reason in why, or HUB_ENOMEM. */
int hub_fwsig_signer_parse(const char *pem, size_t len, struct hub_fwsig_signer *out, char *why,
                           size_t whylen);
void hub_fwsig_signer_free(struct hub_fwsig_signer *s);
/* Verifies sig (len bytes) over the image digest sha256 with the public key of the
 * certificate cert_der. Returns 0 when it verifies, HUB_ECRYPTO when it
 * does not, HUB_EINVAL when cert_der does not parse. */
int hub_fwsig_verify(const uint8_t *cert_der, size_t cert_len, const uint8_t sha256[32],
                     const uint8_t *sig, size_t len);

#endif
