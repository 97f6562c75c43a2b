/* Who signs for a CA: a private key in memory (mbedtls_pk) or a key in a PKCS#11 token.
 * Certificates, CRLs and CSRs are signed through this, so every signing place works with
 * both. A signer is a view: it owns neither the key nor the token handle. */
#ifndef HUB_CA_SIGNER_H
#define HUB_CA_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/md.h>
#include <mbedtls/pk.h>

#include "ca/der.h"
#include "ca/pkcs11.h"
#include "util/buf.h"

struct hub_signer {
    mbedtls_pk_context *pk;    /* the private key; with token, only its public key */
    struct hub_p11_key *token; /* NULL: pk signs in memory */
};

/* A signer for a key in memory. */
#define HUB_SIGNER_MEM(key) ((struct hub_signer){(key), NULL})

/* Signs hash (of md): sig (sig_size bytes, MBEDTLS_PK_SIGNATURE_MAX_SIZE is enough)
 * receives an ECDSA-Sig-Value in DER or a PKCS#1 v1.5 signature, *sig_len its length.
 * Returns 0 or a HUB_E* code (logged, what naming the signed structure). */
int hub_signer_sign(const struct hub_signer *s, mbedtls_md_type_t md, const uint8_t *hash,
                    size_t hash_len, uint8_t *sig, size_t sig_size, size_t *sig_len,
                    const char *what);

/* Hashes tbs (per alg), signs it with s and appends SEQUENCE { tbs, alg, BIT STRING sig }
 * to out: a certificate, CRL or CSR. Returns 0 or a HUB_E* code. */
int hub_signer_sign_wrap(const struct hub_signer *s, const struct hub_der_sigalg *alg,
                         const uint8_t *tbs, size_t tbs_len, const char *what, hub_buf_t *out);

/* Makes a new CA key of type t for key_store: NULL or "sealed" generates it in memory into
 * pk; a "pkcs11:" URI opens the token key it names, generating the pair in the token when
 * the object is absent, and puts the public key into pk and the token handle into *token
 * (free with hub_p11_key_free). pk is initialised by the caller, who frees it. *created is
 * set when a key was generated. Returns 0 or a HUB_E* code (logged, naming the key). */
int hub_signer_create_key(const char *key_store, enum hub_key_type t, mbedtls_pk_context *pk,
                          struct hub_p11_key **token, int *created);
/* Whether key_store names a token ("pkcs11:...") rather than a key sealed in PostgreSQL. */
int hub_signer_store_is_token(const char *key_store);

#endif
