/* The agent's encrypted key store: private keys on disk as PKCS#8 EncryptedPrivateKeyInfo
 * (PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC; "ENCRYPTED PRIVATE KEY" PEM, what `openssl pkcs8
 * -topk8 -v2 aes-256-cbc` writes and `openssl pkey -passin` reads), decrypted into memory
 * only. The passphrase comes from key_passphrase_file or key_passphrase_command and lives in
 * this module's memory for the life of the process (wiped by hub_keystore_close). With
 * key_store = enforced, recorded in STATE/key_store so configuration alone cannot turn it
 * off, plaintext keys are neither loaded nor written. Process-wide state: the agent is
 * single-threaded. */
#ifndef HUB_AGENT_KEYSTORE_H
#define HUB_AGENT_KEYSTORE_H

#include <stddef.h>

#include <mbedtls/pk.h>

#include "agent/conf.h"
#include "util/buf.h"

#define HUB_KEYSTORE_ITERATIONS 600000u /* PBKDF2 iterations of the keys written here */

/* Reads the passphrase (if configured) and the enforcement of dir (STATE): records
 * "enforced" in dir/key_store when the configuration asks for it and dir exists. Returns 0,
 * HUB_EBADPASS (no usable passphrase; logged without it) or HUB_EKEYPOLICY (enforced without
 * a passphrase; logged). */
int hub_keystore_open(const struct hub_agent_conf *c, const char *dir);
/* Wipes the passphrase. */
void hub_keystore_close(void);
/* The passphrase for OpenSSL (libcurl's CURLOPT_KEYPASSWD, the MQTT client), or NULL. */
const char *hub_keystore_passphrase(void);
/* 1 when plaintext keys are refused. */
int hub_keystore_enforced(void);

/* The key as PEM for a file: encrypted PKCS#8 when a passphrase is set, else SEC1/PKCS#1
 * (HUB_EKEYPOLICY when enforced). out is wiped and freed by the caller. */
int hub_keystore_write_pem(mbedtls_pk_context *pk, hub_buf_t *out);
/* Loads a key file into pk (initialised by the caller): encrypted PKCS#8 with the
 * passphrase, or plaintext unless enforced. Returns 0, HUB_ENOTFOUND, HUB_EBADPASS (wrong
 * or no passphrase), HUB_EKEYPOLICY (plaintext while enforced) or HUB_EINVAL; logged, naming
 * path. */
int hub_keystore_load(const char *path, mbedtls_pk_context *pk);
/* Loads path as hub_keystore_load does and forgets the key: a check before a TLS client
 * (OpenSSL) reads the file itself. */
int hub_keystore_check(const char *path);
/* 1 when the PEM text is an encrypted key (PKCS#8 or legacy Proc-Type), 0 otherwise. */
int hub_keystore_is_encrypted(const char *pem);

/* PKCS#8 PBES2 of pk with pass (PBKDF2-HMAC-SHA256, iterations, AES-256-CBC), as DER appended
 * to der. Returns 0 or HUB_ECRYPTO/HUB_ENOMEM. */
int hub_pkcs8_encrypt(mbedtls_pk_context *pk, const char *pass, size_t pass_len,
                      unsigned iterations, hub_buf_t *der);
/* Decrypts an EncryptedPrivateKeyInfo (DER) into pk. Returns 0, HUB_EBADPASS (the padding or
 * the key inside is wrong: most likely the passphrase) or HUB_EINVAL (not PBES2 with
 * PBKDF2-HMAC-SHA256/AES-CBC in strict DER). *iterations receives the KDF's count. */
int hub_pkcs8_decrypt(const uint8_t *der, size_t len, const char *pass, size_t pass_len,
                      mbedtls_pk_context *pk, unsigned *iterations);

#endif
