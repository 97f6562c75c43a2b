/* Sealed blob: "HUBS" | 0x01 | iterations (BE32) | salt[16] | nonce[12] | ct | tag[16].
 * GCM additional data = the 37 header bytes followed by the aad string, so neither the
 * parameters nor the intended use can be swapped without failing the tag. */
#include "ca/seal.h"

#include <string.h>

#include <mbedtls/gcm.h>
#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>

#include "ca/der.h"
#include "util/error.h"
#include "util/secure.h"

#define SEAL_VERSION 1
#define SALT_LEN 16
#define NONCE_LEN 12
#define TAG_LEN 16
#define HDR_LEN (4 + 1 + 4 + SALT_LEN + NONCE_LEN)
#define KEY_LEN 32
#define MAX_ITERATIONS 10000000u

static int derive_key(const char *pass, const uint8_t *salt, uint32_t iterations,
                      uint8_t key[KEY_LEN])
{
    mbedtls_md_context_t md;
    mbedtls_md_init(&md);
    const char *call = "mbedtls_md_setup";
    int ret = mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
    if (ret == 0) {
        call = "mbedtls_pkcs5_pbkdf2_hmac";
        ret = mbedtls_pkcs5_pbkdf2_hmac(&md, (const unsigned char *)pass, strlen(pass), salt,
                                        SALT_LEN, iterations, KEY_LEN, key);
    }
    mbedtls_md_free(&md);
    if (ret != 0) {
        hub_der_log_mbedtls("seal key derivation", call, ret);
        return HUB_ECRYPTO;
    }
    return 0;
}

/* The key setup shared by seal and unseal: derives the AES-256 key from pass and the salt of
 * hdr, loads it into gcm, builds hdr || aad into ad (owned by the caller) and reserves room
 * for room bytes in out. The derived key is wiped before returning. Returns 0 or HUB_E*. */
static int setup(const char *what, const char *pass, const uint8_t *hdr, uint32_t iterations,
                 const char *aad, size_t room, mbedtls_gcm_context *gcm, hub_buf_t *ad,
                 hub_buf_t *out)
{
    uint8_t key[KEY_LEN];
    int rc = derive_key(pass, hdr + 9, iterations, key);
    if (rc == 0)
        rc = hub_buf_append(ad, hdr, HDR_LEN);
    if (rc == 0 && aad != NULL)
        rc = hub_buf_puts(ad, aad);
    if (rc == 0)
        rc = hub_buf_reserve(out, room);
    if (rc == 0) {
        int ret = mbedtls_gcm_setkey(gcm, MBEDTLS_CIPHER_ID_AES, key, KEY_LEN * 8);
        if (ret != 0) {
            hub_der_log_mbedtls(what, "mbedtls_gcm_setkey", ret);
            rc = HUB_ECRYPTO;
        }
    }
    hub_wipe(key, sizeof key);
    return rc;
}

int hub_seal(const char *pass, uint32_t iterations, const char *aad, const uint8_t *plain,
             size_t len, hub_buf_t *out)
{
    uint8_t hdr[HDR_LEN];
    hub_buf_t ad = HUB_BUF_INIT;
    mbedtls_gcm_context gcm;
    int rc;

    if (pass == NULL || iterations < 1 || iterations > MAX_ITERATIONS)
        return HUB_EINVAL;
    mbedtls_gcm_init(&gcm);
    memcpy(hdr, "HUBS", 4);
    hdr[4] = SEAL_VERSION;
    hdr[5] = (uint8_t)(iterations >> 24);
    hdr[6] = (uint8_t)(iterations >> 16);
    hdr[7] = (uint8_t)(iterations >> 8);
    hdr[8] = (uint8_t)iterations;
    if ((rc = hub_random(hdr + 9, SALT_LEN + NONCE_LEN)) != 0)
        goto out;
    rc = setup("seal", pass, hdr, iterations, aad, HDR_LEN + len + TAG_LEN, &gcm, &ad, out);
    if (rc != 0)
        goto out;
    uint8_t *dst = out->data + out->len;
    memcpy(dst, hdr, HDR_LEN);
    int ret = mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, len, hdr + 9 + SALT_LEN,
                                        NONCE_LEN, ad.data, ad.len, plain, dst + HDR_LEN, TAG_LEN,
                                        dst + HDR_LEN + len);
    if (ret != 0) {
        hub_der_log_mbedtls("seal", "mbedtls_gcm_crypt_and_tag", ret);
        rc = HUB_ECRYPTO;
        goto out;
    }
    out->len += HDR_LEN + len + TAG_LEN;
    out->data[out->len] = 0;
out:
    hub_buf_free(&ad);
    mbedtls_gcm_free(&gcm);
    return rc;
}

int hub_unseal(const char *pass, const char *aad, const uint8_t *blob, size_t len, hub_buf_t *out)
{
    hub_buf_t ad = HUB_BUF_INIT;
    mbedtls_gcm_context gcm;
    int rc;

    if (pass == NULL || blob == NULL || len < HDR_LEN + TAG_LEN || memcmp(blob, "HUBS", 4) != 0 ||
        blob[4] != SEAL_VERSION)
        return HUB_EINVAL;
    uint32_t iterations =
        (uint32_t)blob[5] << 24 | (uint32_t)blob[6] << 16 | (uint32_t)blob[7] << 8 | blob[8];
    if (iterations < 1 || iterations > MAX_ITERATIONS)
        return HUB_EINVAL;
    size_t ct_len = len - HDR_LEN - TAG_LEN;

    mbedtls_gcm_init(&gcm);
    if ((rc = setup("unseal", pass, blob, iterations, aad, ct_len, &gcm, &ad, out)) != 0)
        goto out;
    uint8_t *dst = out->data + out->len;
    int ret = mbedtls_gcm_auth_decrypt(&gcm, ct_len, blob + 9 + SALT_LEN, NONCE_LEN, ad.data,
                                       ad.len, blob + len - TAG_LEN, TAG_LEN, blob + HDR_LEN, dst);
    if (ret == MBEDTLS_ERR_GCM_AUTH_FAILED) {
        rc = HUB_EBADPASS; /* wrong passphrase or aad: not an error worth logging here */
        goto out;
    }
    if (ret != 0) {
        hub_der_log_mbedtls("unseal", "mbedtls_gcm_auth_decrypt", ret);
        rc = HUB_ECRYPTO;
        goto out;
    }
    out->len += ct_len;
    out->data[out->len] = 0;
out:
    hub_buf_free(&ad);
    mbedtls_gcm_free(&gcm);
    return rc;
}
