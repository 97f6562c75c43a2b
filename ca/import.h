/* Checks of what an external root signed for the hub (issue 15): the root certificate, the
 * issuing CA and server certificates made from the hub's CSRs, and the root's CRLs. Pure
 * X.509: the caller (server/extroot.c) reads the files and records the result. Each check
 * writes one precise sentence into err (what is wrong with which file) and returns
 * HUB_EINVAL when it refuses. */
#ifndef HUB_CA_IMPORT_H
#define HUB_CA_IMPORT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "util/buf.h"

/* Parses exactly one certificate (PEM or DER) of data into crt (initialised by the caller,
 * who frees it). name is the file name used in err. */
int hub_import_parse_cert(const uint8_t *data, size_t len, const char *name, mbedtls_x509_crt *crt,
                          char *err, size_t errlen);
/* 1 when a and b hold the same public key. */
int hub_import_same_key(mbedtls_pk_context *a, mbedtls_pk_context *b);
/* The root: self-signed, CA:TRUE, keyCertSign, valid now. */
int hub_import_check_root(const mbedtls_x509_crt *root, char *err, size_t errlen);
/* The issuing CA: certifies pending_key, CA:TRUE, keyCertSign, valid now, signed by root
 * (chain verified, pathLen included). */
int hub_import_check_issuing(mbedtls_x509_crt *issuing, mbedtls_x509_crt *root,
                             mbedtls_pk_context *pending_key, char *err, size_t errlen);
/* The server certificate: certifies pending_key, not a CA, serverAuth, names every one of
 * hostnames (NULL-terminated) in its subjectAltName, valid now, signed by the issuing CA
 * or by the root. *by_root is set when the root signed it. */
int hub_import_check_server(mbedtls_x509_crt *server, mbedtls_x509_crt *issuing,
                            mbedtls_x509_crt *root, mbedtls_pk_context *pending_key,
                            const char *const *hostnames, int *by_root, char *err, size_t errlen);

/* What a root CRL says. */
struct hub_import_crl {
    uint64_t number;
    time_t this_update, next_update;
    size_t entries;
};
/* A CRL (PEM or DER) of the root: one CRL, issued and signed by root, a cRLNumber, a
 * nextUpdate still ahead. der gets its DER (appended). *listed is set when the CRL revokes
 * the certificate watched (the issuing CA; NULL: none). */
int hub_import_check_crl(const uint8_t *data, size_t len, const char *name, mbedtls_x509_crt *root,
                         const mbedtls_x509_crt *watched, struct hub_import_crl *out, int *listed,
                         hub_buf_t *der, char *err, size_t errlen);

#endif
