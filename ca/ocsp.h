/* RFC 6960 OCSPResponse writer (§4.2.1): a bare error status, or a BasicOCSPResponse with
 * one SingleResponse per requested certificate, signed by a delegated responder key, in
 * strict DER written with mbedtls_asn1_write_* (as ca/crl.c). */
#ifndef HUB_CA_OCSP_H
#define HUB_CA_OCSP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <mbedtls/pk.h>

#include "util/buf.h"

/* OCSPResponseStatus (§4.2.1). */
enum hub_ocsp_resp_status {
    HUB_OCSP_SUCCESSFUL = 0,
    HUB_OCSP_MALFORMED_REQUEST = 1,
    HUB_OCSP_INTERNAL_ERROR = 2,
    HUB_OCSP_TRY_LATER = 3,
    HUB_OCSP_SIG_REQUIRED = 5,
    HUB_OCSP_UNAUTHORIZED = 6,
};

/* CertStatus (§4.2.1). */
enum hub_ocsp_cert_status { HUB_OCSP_GOOD, HUB_OCSP_REVOKED, HUB_OCSP_UNKNOWN };

/* One SingleResponse. */
struct hub_ocsp_single {
    const uint8_t *certid; /* the request's CertID DER, echoed as is */
    size_t certid_len;
    enum hub_ocsp_cert_status status;
    time_t revoked_at; /* REVOKED only */
    int reason;        /* REVOKED: RFC 5280 CRLReason; 0 (unspecified) is omitted */
};

/* Everything a BasicOCSPResponse says. */
struct hub_ocsp_basic {
    mbedtls_pk_context *key; /* the responder's private key (signs in memory) */
    const uint8_t *key_hash; /* ResponderID byKey: SHA-1 of its public key bits */
    const uint8_t *cert;     /* its certificate, put in certs (or NULL) */
    size_t cert_len;
    time_t produced_at, this_update, next_update; /* next_update 0: omitted */
    const struct hub_ocsp_single *single;
    size_t n;
    const uint8_t *nonce; /* nonce extnValue contents to echo, or NULL */
    size_t nonce_len;
};

/* The name of a response status ("malformedRequest", ...) for logs and metrics. */
const char *hub_ocsp_status_name(enum hub_ocsp_resp_status s);
/* Appends an OCSPResponse without responseBytes (any status but successful). */
int hub_ocsp_response_error(enum hub_ocsp_resp_status s, hub_buf_t *out);
/* Builds, signs and appends a successful OCSPResponse. Returns 0 or a HUB_E* code. */
int hub_ocsp_response_build(const struct hub_ocsp_basic *b, hub_buf_t *out);

#endif
