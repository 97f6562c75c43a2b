/* Cipher suite lists of the TLS listeners: parsing tls_ciphers, the forward-secret-first
 * order handed to mbedTLS, and the check that the server keys can serve a list. */
#include "net/tls_suites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ecp.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>

#include "util/error.h"
#include "util/log.h"

/* The default for the MQTT listeners (SPEC §6): ECDHE with AEAD only. */
static const char DEFAULT_CIPHERS[] =
    "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256,TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384,"
    "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256,TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256,"
    "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384,TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256";

int hub_tls_suites_parse(const char *list, int **out)
{
    if (list == NULL)
        list = DEFAULT_CIPHERS;
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    int *ids = calloc(n + 1, sizeof *ids);
    if (ids == NULL)
        return HUB_ENOMEM;
    size_t k = 0;
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = strcspn(p, ", ");
        if (len == 0)
            break;
        char name[128];
        if (len >= sizeof name) {
            hub_error("tls_ciphers: cipher suite name too long");
            free(ids);
            return HUB_EINVAL;
        }
        for (size_t i = 0; i < len; i++)
            name[i] = p[i] == '_' ? '-' : p[i];
        name[len] = 0;
        int id = mbedtls_ssl_get_ciphersuite_id(name);
        if (id == 0) {
            hub_error("tls_ciphers: unknown TLS cipher suite \"%s\"", name);
            free(ids);
            return HUB_EINVAL;
        }
        ids[k++] = id;
        p += len;
    }
    if (k == 0) {
        hub_error("tls_ciphers: empty list");
        free(ids);
        return HUB_EINVAL;
    }
    *out = ids;
    return 0;
}

/* Forward secrecy of a suite's key exchange: 0 ephemeral ECDH, 1 ephemeral finite-field DH,
 * 2 none (static RSA or ECDH, PSK alone). */
static int fs_rank(int id)
{
    const mbedtls_ssl_ciphersuite_t *cs = mbedtls_ssl_ciphersuite_from_id(id);
    switch (cs ? cs->key_exchange : MBEDTLS_KEY_EXCHANGE_NONE) {
    case MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA:
    case MBEDTLS_KEY_EXCHANGE_ECDHE_RSA:
    case MBEDTLS_KEY_EXCHANGE_ECDHE_PSK: return 0;
    case MBEDTLS_KEY_EXCHANGE_DHE_RSA:
    case MBEDTLS_KEY_EXCHANGE_DHE_PSK: return 1;
    default: return 2;
    }
}

void hub_tls_suites_order(int *ids)
{
    size_t n = 0;
    while (ids[n] != 0)
        n++;
    for (size_t i = 1; i < n; i++) { /* insertion sort: stable, n is small */
        int v = ids[i];
        size_t j = i;
        while (j > 0 && fs_rank(ids[j - 1]) > fs_rank(v)) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = v;
    }
}

/* 1 when a key of kind `have` (MBEDTLS_PK_ECKEY or MBEDTLS_PK_RSA) can authenticate the
 * suite `id`. */
static int servable(int id, mbedtls_pk_type_t have)
{
    const mbedtls_ssl_ciphersuite_t *cs = mbedtls_ssl_ciphersuite_from_id(id);
    switch (cs ? mbedtls_ssl_get_ciphersuite_sig_pk_alg(cs) : MBEDTLS_PK_NONE) {
    case MBEDTLS_PK_RSA: return have == MBEDTLS_PK_RSA;
    case MBEDTLS_PK_ECDSA:
    case MBEDTLS_PK_ECKEY: return have == MBEDTLS_PK_ECKEY;
    default: return 0; /* PSK and anonymous suites: we hold no such credentials */
    }
}

int hub_tls_suites_check(const int *suites, const struct hub_tls_key_kind *keys, size_t nkeys,
                         int user_list)
{
    char names[160] = "", bad[1024] = "";
    size_t ok = 0, klen = 0, blen = 0;
    for (size_t i = 0; i < nkeys; i++)
        klen += (size_t)snprintf(names + klen, klen < sizeof names ? sizeof names - klen : 0,
                                 "%s%s", i ? ", " : "", keys[i].name);
    for (size_t i = 0; suites[i] != 0; i++) {
        int any = 0;
        for (size_t k = 0; k < nkeys; k++)
            any |= servable(suites[i], keys[k].kind);
        if (any) {
            ok++;
            continue;
        }
        blen += (size_t)snprintf(bad + blen, blen < sizeof bad ? sizeof bad - blen : 0, "%s%s",
                                 blen ? ", " : "", mbedtls_ssl_get_ciphersuite_name(suites[i]));
    }
    if (ok == 0) {
        hub_error("tls_ciphers: no listed cipher suite can be served by the server key(s) (%s) "
                  "of server_key_types: %s; list suites for these keys or add a key type that "
                  "serves them (rsa-2048 for *_RSA_* suites, ec-p256 for *_ECDSA_* suites)",
                  names, bad);
        return HUB_ECONFIG;
    }
    if (user_list && blen > 0)
        hub_warn("tls_ciphers: no server key (%s) can serve %s: these suites are never "
                 "negotiated",
                 names, bad);
    return 0;
}

int hub_tls_suites_check_list(const char *ciphers, const struct hub_tls_key_kind *keys,
                              size_t nkeys)
{
    int *ids;
    int rc = hub_tls_suites_parse(ciphers, &ids);
    if (rc != 0)
        return rc;
    rc = hub_tls_suites_check(ids, keys, nkeys, ciphers != NULL);
    free(ids);
    return rc;
}

void hub_tls_suites_key_kind(const mbedtls_pk_context *pk, struct hub_tls_key_kind *k)
{
    if (mbedtls_pk_can_do(pk, MBEDTLS_PK_ECKEY)) {
        k->kind = MBEDTLS_PK_ECKEY;
        snprintf(k->name, sizeof k->name, "EC %s",
                 mbedtls_pk_ec(*pk)->grp.id == MBEDTLS_ECP_DP_SECP384R1 ? "P-384" : "P-256");
    } else {
        k->kind = mbedtls_pk_get_type(pk);
        snprintf(k->name, sizeof k->name, "%s %zu", mbedtls_pk_get_name(pk),
                 mbedtls_pk_get_bitlen(pk));
    }
}
