#include "util/passhash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/base64.h>
#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>

#include "util/error.h"
#include "util/secure.h"

#define SALT_LEN 16
#define HASH_LEN 32

static int pbkdf2(const char *secret, const uint8_t *salt, size_t salt_len, unsigned iterations,
                  uint8_t out[HASH_LEN])
{
    mbedtls_md_context_t md;
    mbedtls_md_init(&md);
    int ret = mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
    if (ret == 0)
        ret = mbedtls_pkcs5_pbkdf2_hmac(&md, (const unsigned char *)secret, strlen(secret),
                                        salt, salt_len, iterations, HASH_LEN, out);
    mbedtls_md_free(&md);
    return ret == 0 ? 0 : HUB_ECRYPTO;
}

int hub_passhash_make(const char *secret, char out[HUB_PASSHASH_MAX])
{
    uint8_t salt[SALT_LEN], hash[HASH_LEN];
    unsigned char salt64[32], hash64[48];
    size_t n1, n2;
    if (hub_random(salt, sizeof salt) != 0)
        return HUB_EIO;
    int rc = pbkdf2(secret, salt, sizeof salt, HUB_PASSHASH_ITERATIONS, hash);
    if (rc != 0)
        return rc;
    mbedtls_base64_encode(salt64, sizeof salt64, &n1, salt, sizeof salt);
    mbedtls_base64_encode(hash64, sizeof hash64, &n2, hash, sizeof hash);
    snprintf(out, HUB_PASSHASH_MAX, "pbkdf2-sha256$%u$%s$%s", HUB_PASSHASH_ITERATIONS,
             (char *)salt64, (char *)hash64);
    hub_wipe(hash, sizeof hash);
    return 0;
}

int hub_passhash_verify(const char *secret, const char *stored)
{
    char copy[HUB_PASSHASH_MAX];
    if (strlen(stored) >= sizeof copy || strncmp(stored, "pbkdf2-sha256$", 14) != 0)
        return 0;
    strcpy(copy, stored + 14);
    char *iter = copy, *salt64 = strchr(iter, '$');
    if (salt64 == NULL)
        return 0;
    *salt64++ = 0;
    char *hash64 = strchr(salt64, '$');
    if (hash64 == NULL)
        return 0;
    *hash64++ = 0;
    char *end;
    unsigned long iterations = strtoul(iter, &end, 10);
    if (*end != 0 || iterations < 1000 || iterations > 10000000)
        return 0;
    uint8_t salt[64], want[64], got[HASH_LEN];
    size_t salt_len, want_len;
    if (mbedtls_base64_decode(salt, sizeof salt, &salt_len, (unsigned char *)salt64,
                              strlen(salt64)) != 0 ||
        mbedtls_base64_decode(want, sizeof want, &want_len, (unsigned char *)hash64,
                              strlen(hash64)) != 0 ||
        want_len != HASH_LEN)
        return 0;
    if (pbkdf2(secret, salt, salt_len, (unsigned)iterations, got) != 0)
        return 0;
    int ok = hub_ct_equal(got, want, HASH_LEN);
    hub_wipe(got, sizeof got);
    return ok;
}

int hub_secret_generate(char out[25])
{
    uint8_t raw[18];
    unsigned char b64[32];
    size_t n;
    if (hub_random(raw, sizeof raw) != 0)
        return HUB_EIO;
    mbedtls_base64_encode(b64, sizeof b64, &n, raw, sizeof raw);
    for (size_t i = 0; i < 24; i++)
        out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    out[24] = 0;
    hub_wipe(raw, sizeof raw);
    return 0;
}
