/* Verification of a firmware image before it is installed (firmware-contract.md): its size,
 * its SHA-256, and the signature over that SHA-256 by a trusted signer certificate (ECDSA DER
 * or RSA PKCS#1 v1.5), the signer named by the SHA-256 of its certificate. */
#ifndef HUB_AGENT_FWVERIFY_H
#define HUB_AGENT_FWVERIFY_H

#include <stddef.h>
#include <stdint.h>

/* 1 when the PEM bundle at signers_path holds a certificate whose SHA-256 is fp_hex (64
 * lower-case hex digits), else 0 (also when the bundle is missing). */
int hub_fw_signer_trusted(const char *signers_path, const char *fp_hex);

/* Checks the image file against the notice. Returns 0, or HUB_EINVAL with why (the reason
 * reported to the hub: "size …", "sha256 mismatch …", "signature …"), or HUB_EIO. */
int hub_fw_verify(const char *image_path, long long size, const char *sha256_hex,
                  const uint8_t *sig, size_t sig_len, const char *signers_path, const char *fp_hex,
                  char *why, size_t why_len);

#endif
