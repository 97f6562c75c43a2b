/* Unit tests of the agent's firmware version order and PKCS#8 PBES2 key encryption. */
#include <stdlib.h>
#include <string.h>

#include <mbedtls/pk.h>

#include "agent/keystore.h"
#include "agent/version.h"
#include "ca/key.h"
#include "tests/unit/harness.h"
#include "util/error.h"

static void version_compare(void)
{
    CHECK(hub_version_cmp("1.2.0", "1.10.0") < 0);
    CHECK(hub_version_cmp("1.10.0", "1.9.9") > 0);
    CHECK_EQ(hub_version_cmp("1.2", "1.2.0.0"), 0);
    CHECK(hub_version_cmp("2", "1.99.99.99") > 0);
    CHECK(hub_version_cmp("0.0.1", "0") > 0);
    CHECK_EQ(hub_version_cmp("2147483647", "2147483647.0"), 0);
}

static void version_parse(void)
{
    CHECK_EQ(hub_version_parse("1.2.3", NULL), 0);
    CHECK_EQ(hub_version_parse("1.2.3.4", NULL), 0);
    CHECK_EQ(hub_version_parse("2147483647", NULL), 0);
    CHECK_EQ(hub_version_parse("2147483648", NULL), HUB_EINVAL);
    CHECK_EQ(hub_version_parse("1.2.3.4.5", NULL), HUB_EINVAL);
    CHECK_EQ(hub_version_parse("", NULL), HUB_EINVAL);
    CHECK_EQ(hub_version_parse("1..2", NULL), HUB_EINVAL);
    CHECK_EQ(hub_version_parse("1.2.", NULL), HUB_EINVAL);
    CHECK_EQ(hub_version_parse("v1.2", NULL), HUB_EINVAL);
    CHECK_EQ(hub_version_parse("1.2-rc1", NULL), HUB_EINVAL);
    CHECK_EQ(hub_version_parse("-1", NULL), HUB_EINVAL);
    CHECK_EQ(hub_version_parse("00000000001", NULL), HUB_EINVAL);
}

static void round_trip(enum hub_key_type t)
{
    mbedtls_pk_context pk, back;
    hub_buf_t der = HUB_BUF_INIT;
    unsigned iter = 0;
    mbedtls_pk_init(&pk);
    mbedtls_pk_init(&back);
    CHECK_EQ(hub_key_generate(t, &pk), 0);
    CHECK_EQ(hub_pkcs8_encrypt(&pk, "correct horse", 13, 1000, &der), 0);
    CHECK(der.len > 100);
    CHECK_EQ(der.data[0], 0x30);
    CHECK_EQ(hub_pkcs8_decrypt(der.data, der.len, "correct horse", 13, &back, &iter), 0);
    CHECK_EQ(iter, 1000);
    CHECK_EQ(mbedtls_pk_check_pair(&pk, &back), 0);
    mbedtls_pk_free(&back);
    mbedtls_pk_init(&back);
    CHECK_EQ(hub_pkcs8_decrypt(der.data, der.len, "wrong horse", 11, &back, &iter), HUB_EBADPASS);
    /* Truncated or trailing bytes: strict DER. */
    mbedtls_pk_free(&back);
    mbedtls_pk_init(&back);
    CHECK_EQ(hub_pkcs8_decrypt(der.data, der.len - 1, "correct horse", 13, &back, &iter),
             HUB_EINVAL);
    uint8_t *longer = malloc(der.len + 1);
    memcpy(longer, der.data, der.len);
    longer[der.len] = 0;
    CHECK_EQ(hub_pkcs8_decrypt(longer, der.len + 1, "correct horse", 13, &back, &iter), HUB_EINVAL);
    free(longer);
    mbedtls_pk_free(&pk);
    mbedtls_pk_free(&back);
    hub_buf_free(&der);
}

static void pkcs8_round_trip_ec(void)
{
    round_trip(HUB_KEY_EC_P256);
    round_trip(HUB_KEY_EC_P384);
}

static void pkcs8_round_trip_rsa(void)
{
    round_trip(HUB_KEY_RSA_2048);
}

/* Every truncation is refused. PBES2 has no MAC: a changed ciphertext bit can decrypt to
 * another valid key (the agent's certificate check then refuses it), but never to a key
 * whose halves disagree, and most changes are refused. */
static void pkcs8_hostile(void)
{
    mbedtls_pk_context pk, back;
    hub_buf_t der = HUB_BUF_INIT;
    unsigned iter;
    mbedtls_pk_init(&pk);
    CHECK_EQ(hub_key_generate(HUB_KEY_EC_P256, &pk), 0);
    CHECK_EQ(hub_pkcs8_encrypt(&pk, "pw", 2, 1000, &der), 0);
    for (size_t n = 0; n < der.len; n++) {
        mbedtls_pk_init(&back);
        CHECK(hub_pkcs8_decrypt(der.data, n, "pw", 2, &back, &iter) != 0);
        mbedtls_pk_free(&back);
    }
    int accepted = 0;
    for (size_t i = 0; i < der.len; i++) {
        der.data[i] ^= 0x01;
        mbedtls_pk_init(&back);
        if (hub_pkcs8_decrypt(der.data, der.len, "pw", 2, &back, &iter) == 0) {
            accepted++;
            CHECK_EQ(mbedtls_pk_check_pair(&back, &back), 0);
        }
        mbedtls_pk_free(&back);
        der.data[i] ^= 0x01;
    }
    CHECK(accepted < (int)der.len / 4);
    mbedtls_pk_free(&pk);
    hub_buf_free(&der);
}

int main(void)
{
    RUN(version_compare);
    RUN(version_parse);
    RUN(pkcs8_round_trip_ec);
    RUN(pkcs8_round_trip_rsa);
    RUN(pkcs8_hostile);
    HARNESS_EXIT();
}
