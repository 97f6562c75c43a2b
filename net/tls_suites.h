/* Cipher suite lists of the TLS listeners (tls_ciphers): parsing, the order handed to
 * mbedTLS (forward secrecy first) and the check that the server keys of server_key_types can
 * serve a list. Pure functions of their arguments; any thread. */
#ifndef HUB_NET_TLS_SUITES_H
#define HUB_NET_TLS_SUITES_H

#include <stddef.h>

#include <mbedtls/pk.h>

/* A server key as the suite check sees it: MBEDTLS_PK_ECKEY or MBEDTLS_PK_RSA, and a name
 * for messages ("EC P-256", "RSA 2048"). */
struct hub_tls_key_kind {
    mbedtls_pk_type_t kind;
    char name[24];
};

/* Parses a comma- and/or space-separated list of IANA (TLS_A_B) or mbedTLS (TLS-A-B) names
 * into a malloc'ed 0-terminated id array (the caller frees it); NULL: the default (ECDHE
 * with AEAD). Returns 0 or HUB_EINVAL (logged: unknown name, empty list) / HUB_ENOMEM. */
int hub_tls_suites_parse(const char *list, int **out);
/* Reorders a 0-terminated id list in place: ECDHE suites, then DHE, then the others (static
 * RSA), keeping the listed order within each group. */
void hub_tls_suites_order(int *ids);
/* HUB_ECONFIG (logged with the keys and the suites) when no suite of ids can be served by
 * one of the nkeys keys; otherwise 0, with a warning (when user_list) naming the suites no
 * key serves. */
int hub_tls_suites_check(const int *ids, const struct hub_tls_key_kind *keys, size_t nkeys,
                         int user_list);
/* hub_tls_suites_parse then hub_tls_suites_check on a tls_ciphers value (NULL: default):
 * `serve` runs it on server_key_types before it unseals anything. */
int hub_tls_suites_check_list(const char *ciphers, const struct hub_tls_key_kind *keys,
                              size_t nkeys);
/* Fills k from a loaded server key. */
void hub_tls_suites_key_kind(const mbedtls_pk_context *pk, struct hub_tls_key_kind *k);

#endif
