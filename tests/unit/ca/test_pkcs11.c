/* Unit tests for ca/pkcs11 against SoftHSM2 (skipped when it is not installed): key
 * generation in a private token, ECDSA signatures converted from r||s to DER that mbedTLS
 * verifies (hundreds, so that r or s with a high bit or a leading zero byte occur), RSA
 * PKCS#1 v1.5 signatures over a DigestInfo (SHA-256, SHA-384), the
 * refusals of a wrong PIN and a missing object, and the new session after the token closed
 * ours (C_CloseAllSessions through the same module). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#include "ca/pkcs11.h"
#include "tests/unit/harness.h"
#include "util/error.h"
#include "util/secure.h"

#define MODULE "/usr/lib/softhsm/libsofthsm2.so"

static char dir[64];

static int setup_token(void)
{
    char cmd[512], conf[128];
    snprintf(dir, sizeof dir, "/tmp/test_pkcs11.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(conf, sizeof conf, "%s/softhsm2.conf", dir);
    FILE *f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "directories.tokendir = %s\n", dir);
    fclose(f);
    setenv("SOFTHSM2_CONF", conf, 1);
    snprintf(cmd, sizeof cmd,
             "softhsm2-util --init-token --free --label unit --pin 1111 --so-pin 2222 "
             ">/dev/null 2>&1");
    return system(cmd) == 0 ? 0 : -1;
}

static void verify_many(struct hub_p11_key *k, mbedtls_pk_context *pub, int n)
{
    uint8_t hash[32], sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    size_t len;
    for (int i = 0; i < n; i++) {
        CHECK_EQ(hub_random(hash, sizeof hash), 0);
        CHECK_EQ(hub_p11_sign(k, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, sizeof sig, &len), 0);
        /* strict DER: SEQUENCE, two INTEGERs without a superfluous leading zero */
        CHECK(sig[0] == 0x30 && sig[1] == len - 2 && sig[2] == 0x02);
        CHECK(!(sig[4] == 0 && !(sig[5] & 0x80)));
        CHECK_EQ(mbedtls_pk_verify(pub, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, len), 0);
    }
}

static void test_generate_sign_reopen(void)
{
    mbedtls_pk_context pub, pub2;
    struct hub_p11_key *k = NULL, *k2 = NULL;
    mbedtls_pk_init(&pub);
    mbedtls_pk_init(&pub2);
    const char *uri = "pkcs11:token=unit;object=ca;id=%07?pin-value=1111";
    CHECK_EQ(hub_p11_key_open(uri, &pub, &k), HUB_ENOTFOUND);
    CHECK_EQ(hub_p11_key_generate(uri, HUB_KEY_EC_P256, &pub, &k), 0);
    CHECK_EQ(hub_p11_key_generate(uri, HUB_KEY_EC_P256, &pub2, &k2), HUB_EEXIST);
    CHECK_STR(hub_p11_key_uri(k), "pkcs11:token=unit;object=ca;id=%07");
    verify_many(k, &pub, 300);

    /* The token forgets our session: the next signature opens a new one. */
    struct hub_p11_stats before, after;
    hub_p11_stats(&before);
    void *h = dlopen(MODULE, RTLD_NOW | RTLD_NOLOAD);
    CK_C_GetFunctionList get = h ? (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList") : NULL;
    CK_FUNCTION_LIST *fl = NULL;
    CHECK(get != NULL && get(&fl) == CKR_OK);
    CK_SLOT_ID slots[8];
    CK_ULONG n = 8;
    CHECK(fl != NULL && fl->C_GetSlotList(CK_TRUE, slots, &n) == CKR_OK && n >= 1);
    for (CK_ULONG i = 0; fl != NULL && i < n; i++) /* SoftHSM adds a free slot */
        CHECK(fl->C_CloseAllSessions(slots[i]) == CKR_OK);
    verify_many(k, &pub, 2);
    hub_p11_stats(&after);
    CHECK_EQ(after.reopened, before.reopened + 1);
    CHECK_EQ(after.failed, before.failed);

    /* Opened again with the public key given: checked by a test signature. */
    hub_p11_key_free(k);
    k = NULL;
    mbedtls_pk_free(&pub2);
    mbedtls_pk_init(&pub2);
    CHECK_EQ(hub_p11_key_open("pkcs11:token=unit;id=%07?pin-value=1111", &pub2, &k), 0);
    verify_many(k, &pub, 1);
    hub_p11_key_free(k);
    if (h != NULL)
        dlclose(h);
    mbedtls_pk_free(&pub);
    mbedtls_pk_free(&pub2);
}

static void test_rsa(void)
{
    mbedtls_pk_context pub;
    struct hub_p11_key *k = NULL;
    uint8_t hash[48], sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    size_t len = 0;
    mbedtls_pk_init(&pub);
    CHECK_EQ(hub_p11_key_generate("pkcs11:token=unit;object=rsa?pin-value=1111", HUB_KEY_RSA_2048,
                                  &pub, &k),
             0);
    CHECK_EQ(mbedtls_pk_get_type(&pub), MBEDTLS_PK_RSA);
    CHECK_EQ(mbedtls_pk_get_bitlen(&pub), 2048);
    CHECK_EQ(hub_random(hash, sizeof hash), 0);
    CHECK_EQ(hub_p11_sign(k, MBEDTLS_MD_SHA256, hash, 32, sig, sizeof sig, &len), 0);
    CHECK_EQ(len, 256);
    CHECK_EQ(mbedtls_pk_verify(&pub, MBEDTLS_MD_SHA256, hash, 32, sig, len), 0);
    CHECK_EQ(hub_p11_sign(k, MBEDTLS_MD_SHA384, hash, 48, sig, sizeof sig, &len), 0);
    CHECK_EQ(mbedtls_pk_verify(&pub, MBEDTLS_MD_SHA384, hash, 48, sig, len), 0);
    CHECK_EQ(hub_p11_sign(k, MBEDTLS_MD_SHA256, hash, 48, sig, sizeof sig, &len), HUB_EINVAL);
    hub_p11_key_free(k);
    mbedtls_pk_free(&pub);
}

static void test_refusals(void)
{
    mbedtls_pk_context pub;
    struct hub_p11_key *k = NULL;
    mbedtls_pk_init(&pub);
    CHECK_EQ(hub_p11_key_open("pkcs11:token=unit;object=ca?pin-value=0000", &pub, &k), HUB_ECONFIG);
    CHECK_EQ(hub_p11_key_open("pkcs11:token=nope;object=ca?pin-value=1111", &pub, &k), HUB_ECONFIG);
    CHECK_EQ(hub_p11_key_open("pkcs11:token=unit;object=other?pin-value=1111", &pub, &k),
             HUB_ENOTFOUND);
    CHECK(k == NULL);
    mbedtls_pk_free(&pub);
}

int main(void)
{
    if (access(MODULE, R_OK) != 0) {
        printf("ok - # SKIP SoftHSM2 is not installed (%s)\n", MODULE);
        return 0;
    }
    if (setup_token() != 0) {
        printf("not ok - softhsm2-util --init-token\n");
        return 1;
    }
    CHECK_EQ(hub_p11_configure(NULL, MODULE, NULL), 0);
    RUN(test_generate_sign_reopen);
    RUN(test_rsa);
    RUN(test_refusals);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    HARNESS_EXIT();
}
