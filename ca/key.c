#include "ca/key.h"

#include <string.h>

#include <mbedtls/ecp.h>
#include <mbedtls/rsa.h>

#include "ca/der.h"
#include "util/error.h"
#include "util/secure.h"

#define KEY_DER_MAX 16384 /* an RSA-8192 PKCS#1 key is ~4.7 KB */

static const char *const key_names[] = {
    [HUB_KEY_EC_P256] = "ec-p256",   [HUB_KEY_EC_P384] = "ec-p384",
    [HUB_KEY_RSA_2048] = "rsa-2048", [HUB_KEY_RSA_3072] = "rsa-3072",
    [HUB_KEY_RSA_4096] = "rsa-4096",
};

int hub_key_type_parse(const char *s, enum hub_key_type *out)
{
    for (size_t i = 0; i < sizeof key_names / sizeof key_names[0]; i++) {
        if (s != NULL && strcmp(s, key_names[i]) == 0) {
            *out = (enum hub_key_type)i;
            return 0;
        }
    }
    return HUB_EINVAL;
}

const char *hub_key_type_name(enum hub_key_type t)
{
    if ((unsigned)t >= sizeof key_names / sizeof key_names[0])
        return "unknown";
    return key_names[t];
}

int hub_key_type_of(mbedtls_pk_context *pk, enum hub_key_type *out)
{
    size_t bits = mbedtls_pk_get_bitlen(pk);
    if (mbedtls_pk_get_type(pk) == MBEDTLS_PK_ECKEY && (bits == 256 || bits == 384))
        *out = bits == 256 ? HUB_KEY_EC_P256 : HUB_KEY_EC_P384;
    else if (mbedtls_pk_get_type(pk) == MBEDTLS_PK_RSA && (bits == 2048 || bits == 3072 ||
                                                           bits == 4096))
        *out = bits == 2048 ? HUB_KEY_RSA_2048 : bits == 3072 ? HUB_KEY_RSA_3072
                                                              : HUB_KEY_RSA_4096;
    else
        return HUB_EKEYPOLICY;
    return 0;
}

int hub_key_generate(enum hub_key_type t, mbedtls_pk_context *pk)
{
    int ret;
    const char *call = "mbedtls_pk_setup";
    switch (t) {
    case HUB_KEY_EC_P256:
    case HUB_KEY_EC_P384:
        ret = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
        if (ret == 0) {
            call = "mbedtls_ecp_gen_key";
            ret = mbedtls_ecp_gen_key(t == HUB_KEY_EC_P256 ? MBEDTLS_ECP_DP_SECP256R1
                                                           : MBEDTLS_ECP_DP_SECP384R1,
                                      mbedtls_pk_ec(*pk), hub_rng_cb, NULL);
        }
        break;
    case HUB_KEY_RSA_2048:
    case HUB_KEY_RSA_3072:
    case HUB_KEY_RSA_4096:
        ret = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA));
        if (ret == 0) {
            unsigned bits = t == HUB_KEY_RSA_2048 ? 2048 : t == HUB_KEY_RSA_3072 ? 3072 : 4096;
            call = "mbedtls_rsa_gen_key";
            ret = mbedtls_rsa_gen_key(mbedtls_pk_rsa(*pk), hub_rng_cb, NULL, bits, 65537);
        }
        break;
    default:
        return HUB_EINVAL;
    }
    if (ret != 0) {
        hub_der_log_mbedtls("key generation", call, ret);
        return HUB_ECRYPTO;
    }
    return 0;
}

int hub_key_write_der(mbedtls_pk_context *pk, hub_buf_t *out)
{
    unsigned char buf[KEY_DER_MAX];
    /* mbedtls_pk_write_key_der writes at the END of buf and returns the length. */
    int ret = mbedtls_pk_write_key_der(pk, buf, sizeof buf);
    if (ret < 0) {
        hub_der_log_mbedtls("private key", "mbedtls_pk_write_key_der", ret);
        hub_wipe(buf, sizeof buf);
        return HUB_ECRYPTO;
    }
    int rc = hub_buf_append(out, buf + sizeof buf - ret, (size_t)ret);
    hub_wipe(buf, sizeof buf);
    return rc;
}

int hub_key_parse_der(const uint8_t *der, size_t len, mbedtls_pk_context *pk)
{
    int ret = mbedtls_pk_parse_key(pk, der, len, NULL, 0);
    if (ret != 0) {
        hub_der_log_mbedtls("private key", "mbedtls_pk_parse_key", ret);
        return HUB_EINVAL;
    }
    return 0;
}
