/* Key types the CA signs with, key generation, and private key (de)serialisation. */
#ifndef HUB_CA_KEY_H
#define HUB_CA_KEY_H

#include <mbedtls/pk.h>

#include "util/buf.h"

enum hub_key_type {
    HUB_KEY_EC_P256,
    HUB_KEY_EC_P384,
    HUB_KEY_RSA_2048,
    HUB_KEY_RSA_3072,
    HUB_KEY_RSA_4096,
};

/* Parses "ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096". Returns 0 or HUB_EINVAL. */
int hub_key_type_parse(const char *s, enum hub_key_type *out);
/* The configuration name of a key type. */
const char *hub_key_type_name(enum hub_key_type t);
/* The type of an existing key (say, one made in a token). Returns 0 or HUB_EKEYPOLICY. */
int hub_key_type_of(mbedtls_pk_context *pk, enum hub_key_type *out);
/* Generates a key of type t into pk (mbedtls_pk_init'ed by the caller, who frees it). */
int hub_key_generate(enum hub_key_type t, mbedtls_pk_context *pk);
/* Appends the private key as DER (SEC1 or PKCS#1) to out. */
int hub_key_write_der(mbedtls_pk_context *pk, hub_buf_t *out);
/* Parses a private key written by hub_key_write_der into pk (initialised by the caller). */
int hub_key_parse_der(const uint8_t *der, size_t len, mbedtls_pk_context *pk);

#endif
