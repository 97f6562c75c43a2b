#include "ca/signer.h"

#include <string.h>

#include <mbedtls/error.h>

#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

int hub_signer_sign(const struct hub_signer *s, mbedtls_md_type_t md, const uint8_t *hash,
                    size_t hash_len, uint8_t *sig, size_t sig_size, size_t *sig_len,
                    const char *what)
{
    if (s->token != NULL) {
        int rc = hub_p11_sign(s->token, md, hash, hash_len, sig, sig_size, sig_len);
        if (rc != 0)
            hub_error("%s: signing with the CA key %s failed", what, hub_p11_key_uri(s->token));
        return rc;
    }
    if (sig_size < MBEDTLS_PK_SIGNATURE_MAX_SIZE)
        return HUB_ERANGE;
    int ret = mbedtls_pk_sign(s->pk, md, hash, hash_len, sig, sig_len, hub_rng_cb, NULL);
    if (ret != 0) {
        char msg[128];
        mbedtls_strerror(ret, msg, sizeof msg);
        hub_error("%s: mbedtls_pk_sign failed: -0x%04x %s", what, (unsigned)-ret, msg);
        return HUB_ECRYPTO;
    }
    return 0;
}

int hub_signer_sign_wrap(const struct hub_signer *s, const struct hub_der_sigalg *alg,
                         const uint8_t *tbs, size_t tbs_len, const char *what, hub_buf_t *out)
{
    unsigned char hash[MBEDTLS_MD_MAX_SIZE];
    unsigned char sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    size_t sig_len = 0;
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(alg->md);

    int ret = mbedtls_md(md, tbs, tbs_len, hash);
    if (ret != 0) {
        hub_der_log_mbedtls(what, "mbedtls_md", ret);
        return HUB_ECRYPTO;
    }
    int rc =
        hub_signer_sign(s, alg->md, hash, mbedtls_md_get_size(md), sig, sizeof sig, &sig_len, what);
    hub_wipe(hash, sizeof hash);
    if (rc != 0)
        return rc;
    return hub_der_wrap_signed(alg, tbs, tbs_len, sig, sig_len, what, out);
}

int hub_signer_store_is_token(const char *key_store)
{
    return key_store != NULL && strncmp(key_store, "pkcs11:", 7) == 0;
}

int hub_signer_create_key(const char *key_store, enum hub_key_type t, mbedtls_pk_context *pk,
                          struct hub_p11_key **token, int *created)
{
    *token = NULL;
    *created = 0;
    if (!hub_signer_store_is_token(key_store)) {
        int rc = hub_key_generate(t, pk);
        *created = rc == 0;
        return rc;
    }
    int rc = hub_p11_key_open(key_store, pk, token);
    if (rc == HUB_ENOTFOUND) {
        mbedtls_pk_free(pk);
        mbedtls_pk_init(pk);
        rc = hub_p11_key_generate(key_store, t, pk, token);
        *created = rc == 0;
    }
    return rc;
}
