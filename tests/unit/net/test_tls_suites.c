/* Unit tests for net/tls_suites.c: names parsed in both spellings, forward-secret suites
 * moved first with the listed order kept within each group, and the servability check
 * against EC and RSA server keys. */
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ssl.h>

#include "net/tls_suites.h"
#include "util/error.h"
#include "tests/unit/harness.h"

static const struct hub_tls_key_kind EC = {MBEDTLS_PK_ECKEY, "EC P-256"};
static const struct hub_tls_key_kind RSA = {MBEDTLS_PK_RSA, "RSA 2048"};

static const char *name(int id)
{
    return mbedtls_ssl_get_ciphersuite_name(id);
}

static void test_parse(void)
{
    int *ids = NULL;
    CHECK_EQ(hub_tls_suites_parse("TLS_RSA_WITH_AES_128_CBC_SHA, TLS-DHE-RSA-WITH-AES-128-GCM-SHA256",
                                  &ids),
             0);
    if (ids) {
        CHECK_STR(name(ids[0]), "TLS-RSA-WITH-AES-128-CBC-SHA");
        CHECK_STR(name(ids[1]), "TLS-DHE-RSA-WITH-AES-128-GCM-SHA256");
        CHECK_EQ(ids[2], 0);
    }
    free(ids);
    ids = NULL;
    CHECK_EQ(hub_tls_suites_parse(NULL, &ids), 0); /* the default: ECDHE with AEAD */
    for (size_t i = 0; ids && ids[i]; i++)
        CHECK(strncmp(name(ids[i]), "TLS-ECDHE-", 10) == 0);
    free(ids);
    ids = NULL;
    CHECK_EQ(hub_tls_suites_parse("TLS_RSA_WITH_NOTHING", &ids), HUB_EINVAL);
    CHECK_EQ(hub_tls_suites_parse(" , ", &ids), HUB_EINVAL);
}

/* Static RSA, DHE_RSA and ECDHE_RSA listed in that order: ECDHE first, then DHE, then RSA;
 * the two ECDHE suites keep their listed order. */
static void test_order(void)
{
    int *ids = NULL;
    CHECK_EQ(hub_tls_suites_parse("TLS_RSA_WITH_AES_128_CBC_SHA,TLS_DHE_RSA_WITH_AES_128_CBC_SHA,"
                                  "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,TLS_RSA_WITH_AES_128_GCM_SHA256,"
                                  "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                                  &ids),
             0);
    if (ids == NULL)
        return;
    hub_tls_suites_order(ids);
    static const char *const want[] = {
        "TLS-ECDHE-RSA-WITH-AES-128-CBC-SHA", "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256",
        "TLS-DHE-RSA-WITH-AES-128-CBC-SHA", "TLS-RSA-WITH-AES-128-CBC-SHA",
        "TLS-RSA-WITH-AES-128-GCM-SHA256"};
    for (size_t i = 0; i < 5; i++)
        CHECK_STR(name(ids[i]), want[i]);
    CHECK_EQ(ids[5], 0);
    free(ids);
}

static void test_check(void)
{
    const struct hub_tls_key_kind both[] = {EC, RSA};
    const char *rsa_only = "TLS_RSA_WITH_AES_128_CBC_SHA,TLS_DHE_RSA_WITH_AES_128_GCM_SHA256";
    const char *ecdsa_only = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256";
    CHECK_EQ(hub_tls_suites_check_list(rsa_only, &EC, 1), HUB_ECONFIG);
    CHECK_EQ(hub_tls_suites_check_list(rsa_only, &RSA, 1), 0);
    CHECK_EQ(hub_tls_suites_check_list(rsa_only, both, 2), 0);
    CHECK_EQ(hub_tls_suites_check_list(ecdsa_only, &RSA, 1), HUB_ECONFIG);
    CHECK_EQ(hub_tls_suites_check_list(ecdsa_only, &EC, 1), 0);
    /* Partly servable: accepted (the rest is warned about). */
    CHECK_EQ(hub_tls_suites_check_list("TLS_RSA_WITH_AES_128_CBC_SHA,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                                       &EC, 1),
             0);
    /* The default list serves either key type. */
    CHECK_EQ(hub_tls_suites_check_list(NULL, &EC, 1), 0);
    CHECK_EQ(hub_tls_suites_check_list(NULL, &RSA, 1), 0);
    /* PSK suites: no key serves them. */
    CHECK_EQ(hub_tls_suites_check_list("TLS_PSK_WITH_AES_128_GCM_SHA256", both, 2), HUB_ECONFIG);
}

int main(void)
{
    RUN(test_parse);
    RUN(test_order);
    RUN(test_check);
    HARNESS_EXIT();
}
