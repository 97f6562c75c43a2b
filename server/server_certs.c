#include "server/server_certs.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/ecp.h>

#include "ca/pem.h"
#include "ca/seal.h"
#include "db/server_certs.h"
#include "net/tls_suites.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

#define KEY_PEM_MAX 16384

int hub_server_certs_key_type(const mbedtls_pk_context *pk, enum hub_key_type *t)
{
    switch (mbedtls_pk_get_type(pk)) {
    case MBEDTLS_PK_ECKEY:
    case MBEDTLS_PK_ECDSA:
        switch (mbedtls_pk_ec(*pk)->grp.id) {
        case MBEDTLS_ECP_DP_SECP256R1: *t = HUB_KEY_EC_P256; return 0;
        case MBEDTLS_ECP_DP_SECP384R1: *t = HUB_KEY_EC_P384; return 0;
        default: return HUB_EKEYPOLICY;
        }
    case MBEDTLS_PK_RSA:
        switch (mbedtls_pk_get_bitlen(pk)) {
        case 2048: *t = HUB_KEY_RSA_2048; return 0;
        case 3072: *t = HUB_KEY_RSA_3072; return 0;
        case 4096: *t = HUB_KEY_RSA_4096; return 0;
        default: return HUB_EKEYPOLICY;
        }
    default: return HUB_EKEYPOLICY;
    }
}

/* Index of the newest row of key type t, or -1. Rows come newest first. */
static int find_type(const struct hub_db_server_cert *rows, size_t n, enum hub_key_type t)
{
    for (size_t i = 0; i < n; i++) {
        mbedtls_x509_crt crt;
        enum hub_key_type rt;
        mbedtls_x509_crt_init(&crt);
        int ok = mbedtls_x509_crt_parse_der(&crt, rows[i].der.data, rows[i].der.len) == 0 &&
                 hub_server_certs_key_type(&crt.pk, &rt) == 0 && rt == t;
        mbedtls_x509_crt_free(&crt);
        if (ok)
            return (int)i;
    }
    return -1;
}

int hub_server_certs_have(PGconn *c, enum hub_key_type t, time_t min_not_after)
{
    struct hub_db_server_cert *rows;
    size_t n;
    int rc = hub_db_server_certs_list(c, min_not_after, &rows, &n);
    if (rc != 0)
        return rc;
    int found = find_type(rows, n, t) >= 0;
    hub_db_server_certs_free(rows, n);
    return found;
}

static void log_missing(enum hub_key_type t)
{
    hub_error("no valid %s server certificate in the database (server_key_types): run "
              "`iothubd init` to add it",
              hub_key_type_name(t));
}

int hub_server_certs_check_present(PGconn *c, const enum hub_key_type *types, int n)
{
    struct hub_db_server_cert *rows;
    size_t nrows;
    int rc = hub_db_server_certs_list(c, time(NULL), &rows, &nrows);
    for (int i = 0; rc == 0 && i < n; i++) {
        if (find_type(rows, nrows, types[i]) < 0) {
            log_missing(types[i]);
            rc = HUB_ENOTFOUND;
        }
    }
    hub_db_server_certs_free(rows, nrows);
    return rc;
}

/* Fills one identity from a row: the certificate and the issuing CA, the unsealed key. */
static int open_identity(struct hub_authority *a, const char *pass,
                         const struct hub_db_server_cert *row, struct hub_server_identity *id)
{
    hub_buf_t plain = HUB_BUF_INIT;
    mbedtls_pk_context key;
    mbedtls_pk_init(&key);
    memcpy(id->serial, row->serial, sizeof id->serial);
    int rc = hub_unseal(pass, HUB_SEAL_LABEL_SERVER, row->key_sealed.data, row->key_sealed.len,
                        &plain);
    if (rc == 0)
        rc = hub_key_parse_der(plain.data, plain.len, &key);
    if (rc == 0)
        rc = hub_pem_encode("CERTIFICATE", row->der.data, row->der.len, &id->cert_pem);
    if (rc == 0)
        rc = hub_pem_encode("CERTIFICATE", a->der[HUB_CA_ISSUING].data,
                            a->der[HUB_CA_ISSUING].len, &id->cert_pem);
    if (rc == 0)
        rc = hub_buf_append(&id->cert_pem, "", 1); /* NUL-terminated, not counted */
    if (rc == 0) {
        id->cert_pem.len--;
        /* mbedtls_pk_write_key_pem needs the whole output buffer up front. */
        rc = hub_buf_reserve(&id->key_pem, KEY_PEM_MAX);
        if (rc == 0 && mbedtls_pk_write_key_pem(&key, id->key_pem.data, KEY_PEM_MAX) != 0) {
            hub_error("server key %s: mbedtls_pk_write_key_pem failed", row->serial);
            rc = HUB_ECRYPTO;
        }
        if (rc == 0)
            id->key_pem.len = strlen((char *)id->key_pem.data);
    }
    mbedtls_pk_free(&key);
    hub_buf_free(&plain);
    return rc;
}

int hub_server_certs_load(struct hub_authority *a, PGconn *c, const char *pass,
                          const enum hub_key_type *types, int n, struct hub_server_identity *ids)
{
    struct hub_db_server_cert *rows;
    size_t nrows;
    for (int i = 0; i < n; i++) {
        ids[i].type = types[i];
        ids[i].serial[0] = 0;
        ids[i].cert_pem = (hub_buf_t)HUB_BUF_INIT;
        ids[i].key_pem = (hub_buf_t)HUB_BUF_INIT;
    }
    int rc = hub_db_server_certs_list(c, time(NULL), &rows, &nrows);
    for (int i = 0; rc == 0 && i < n; i++) {
        int k = find_type(rows, nrows, types[i]);
        if (k < 0) {
            log_missing(types[i]);
            rc = HUB_ENOTFOUND;
            break;
        }
        rc = open_identity(a, pass, &rows[k], &ids[i]);
    }
    hub_db_server_certs_free(rows, nrows); /* NULL, 0 when the list failed */
    return rc;
}

void hub_server_certs_free(struct hub_server_identity *ids, int n)
{
    for (int i = 0; i < n; i++) {
        hub_buf_free(&ids[i].cert_pem);
        hub_buf_free(&ids[i].key_pem); /* hub_buf_free wipes */
    }
}

int hub_server_certs_check_ciphers(const struct hub_config *cfg)
{
    static const char *const names[] = {
        [HUB_KEY_EC_P256] = "EC P-256",   [HUB_KEY_EC_P384] = "EC P-384",
        [HUB_KEY_RSA_2048] = "RSA 2048", [HUB_KEY_RSA_3072] = "RSA 3072",
        [HUB_KEY_RSA_4096] = "RSA 4096",
    };
    enum hub_key_type types[HUB_SERVER_KEY_TYPES_MAX];
    struct hub_tls_key_kind kinds[HUB_SERVER_KEY_TYPES_MAX];
    int n = hub_config_server_key_types(cfg, types);
    for (int i = 0; i < n; i++) {
        kinds[i].kind = types[i] <= HUB_KEY_EC_P384 ? MBEDTLS_PK_ECKEY : MBEDTLS_PK_RSA;
        snprintf(kinds[i].name, sizeof kinds[i].name, "%s", names[types[i]]);
    }
    return hub_tls_suites_check_list(cfg->tls_ciphers, kinds, (size_t)n);
}
