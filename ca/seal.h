/* Sealing of private keys at rest: AES-256-GCM under a key derived from the master
 * passphrase with PBKDF2-HMAC-SHA256 and a per-blob random salt.
 * Blob layout: "HUBS" | version (1) | iterations (4, big endian) | salt (16) | nonce (12) |
 *              ciphertext | tag (16). The header is authenticated together with aad. */
#ifndef HUB_CA_SEAL_H
#define HUB_CA_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define HUB_SEAL_ITERATIONS 600000u

/* Encrypts plain under pass; aad (a label such as "ca:issuing") binds the blob to its use.
 * Appends the blob to out. Returns 0 or a HUB_E* code. */
int hub_seal(const char *pass, uint32_t iterations, const char *aad, const uint8_t *plain,
             size_t len, hub_buf_t *out);
/* Decrypts a blob from hub_seal, appending the plaintext to out. Returns 0, HUB_EBADPASS
 * when the passphrase (or aad) is wrong, HUB_EINVAL when the blob is malformed. */
int hub_unseal(const char *pass, const char *aad, const uint8_t *blob, size_t len,
               hub_buf_t *out);

#endif
