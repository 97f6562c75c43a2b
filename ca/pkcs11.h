/* CA keys held in a PKCS#11 token (an HSM, SoftHSM2 in tests), named by an RFC 7512 URI
 * ("pkcs11:token=hub;object=issuing-ca?module-path=/usr/lib/softhsm/libsofthsm2.so").
 * The module is dlopen'ed once per process (no link-time dependency); each opened key owns
 * one logged-in session, serialised by a mutex, reopened and logged in again when the token
 * forgets it. The private key never leaves the token: signing is C_Sign on a hash.
 * Every call blocks (a token may take milliseconds): call from a command or a worker
 * thread, never from an event loop. */
#ifndef HUB_CA_PKCS11_H
#define HUB_CA_PKCS11_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/md.h>
#include <mbedtls/pk.h>

#include "ca/key.h"
#include "ca/p11uri.h"
#include "util/histogram.h"

/* Process-wide defaults for URIs that name no module or PIN: the configured ca_key_store URI
 * (its module-path/pin-source/pin-value win), else module and pin_file (each may be NULL).
 * Call before opening keys. Returns 0 or HUB_EINVAL (store_uri does not parse). */
int hub_p11_configure(const char *store_uri, const char *module, const char *pin_file);

/* A private key object in a token with its session (opaque). */
struct hub_p11_key;

/* Opens the private key the URI names. pub (initialised by the caller, owned by it)
 * receives the public key read from the token's public key object, or, when pub already
 * holds a key (say, from the CA certificate), the token key is checked against it by a test
 * signature. Errors name the URI (without its PIN) and the cause: module, token absent,
 * wrong PIN. Returns 0, HUB_ENOTFOUND (no such object: not logged, the caller names it),
 * HUB_ECONFIG (module, token, PIN refused) or HUB_ECRYPTO. Free *out with hub_p11_key_free. */
int hub_p11_key_open(const char *uri, mbedtls_pk_context *pub, struct hub_p11_key **out);
/* Generates a key pair of type t in the token under the URI's label and id (CKA_TOKEN,
 * CKA_PRIVATE, CKA_SENSITIVE, not CKA_EXTRACTABLE) and opens it as hub_p11_key_open does.
 * HUB_EEXIST when the object already exists. */
int hub_p11_key_generate(const char *uri, enum hub_key_type t, mbedtls_pk_context *pub,
                         struct hub_p11_key **out);
/* Signs hash (of md) with the token key: sig receives what mbedtls_pk_sign would write
 * (an ECDSA-Sig-Value in DER with minimal integers, or a PKCS#1 v1.5 signature). Thread
 * safe. Returns 0, HUB_ERANGE (sig too small) or HUB_ECRYPTO (logged). */
int hub_p11_sign(struct hub_p11_key *k, mbedtls_md_type_t md, const uint8_t *hash, size_t hash_len,
                 uint8_t *sig, size_t sig_size, size_t *sig_len);
/* The URI the key was opened with, without its PIN. */
const char *hub_p11_key_uri(const struct hub_p11_key *k);
/* Closes the key's session and wipes its PIN; NULL is a no-op. */
void hub_p11_key_free(struct hub_p11_key *k);

/* Counters of signatures made through tokens, for /metrics (any thread). */
struct hub_p11_stats {
    uint64_t signed_ok, failed, reopened;
    struct hub_histogram latency;
};
extern const struct hub_histogram_bounds hub_p11_latency_bounds;
void hub_p11_stats(struct hub_p11_stats *out);

#endif
