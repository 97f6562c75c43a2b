/* CRL v2 writer (RFC 5280 §5): AKI, cRLNumber, nextUpdate, reasonCode per entry, strict DER. */
#ifndef HUB_CA_CRL_H
#define HUB_CA_CRL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "ca/signer.h"
#include "util/buf.h"

/* RFC 5280 CRLReason codes. */
enum hub_crl_reason {
    HUB_REASON_UNSPECIFIED = 0,
    HUB_REASON_KEY_COMPROMISE = 1,
    HUB_REASON_CA_COMPROMISE = 2,
    HUB_REASON_AFFILIATION_CHANGED = 3,
    HUB_REASON_SUPERSEDED = 4,
    HUB_REASON_CESSATION_OF_OPERATION = 5,
    HUB_REASON_CERTIFICATE_HOLD = 6,
    HUB_REASON_PRIVILEGE_WITHDRAWN = 9,
    HUB_REASON_AA_COMPROMISE = 10,
};

struct hub_crl_entry {
    uint8_t serial[20];  /* big-endian serial number, as in the certificate */
    size_t serial_len;
    time_t revoked_at;
    int reason;          /* enum hub_crl_reason; UNSPECIFIED omits the extension */
};

/* What a CRL says about itself. A delta CRL (RFC 5280 §5.2.4) has base_number > 0: its
 * critical deltaCRLIndicator names the complete CRL it completes (an older number). A
 * complete CRL may name where its deltas are (freshestCRL, §5.2.6): freshest_url, or NULL. */
struct hub_crl_info {
    uint64_t number;                /* cRLNumber */
    time_t this_update, next_update;
    uint64_t base_number;           /* 0: a complete CRL */
    const char *freshest_url;       /* complete CRLs only; NULL: no freshestCRL */
    pthread_mutex_t *sign_lock;     /* held around the signature only (not the DER), or NULL */
};

/* Parses an RFC 5280 reason name ("keyCompromise", ...). Returns 0 or HUB_EINVAL. */
int hub_crl_reason_parse(const char *name, int *reason);
/* The RFC 5280 name of a reason code, or NULL if unknown. */
const char *hub_crl_reason_name(int reason);
/* Builds and signs a CRL by issuer/issuer_key; appends DER to out. */
int hub_crl_build(const mbedtls_x509_crt *issuer, mbedtls_pk_context *issuer_key,
                  uint64_t crl_number, time_t this_update, time_t next_update,
                  const struct hub_crl_entry *entries, size_t n, hub_buf_t *out);
/* Same, signed by signer (its pk picks the algorithm; a token key signs in the token). */
int hub_crl_build_by(const mbedtls_x509_crt *issuer, const struct hub_signer *signer,
                     uint64_t crl_number, time_t this_update, time_t next_update,
                     const struct hub_crl_entry *entries, size_t n, hub_buf_t *out);
/* Same, complete or delta CRL as info says. */
int hub_crl_build_info(const mbedtls_x509_crt *issuer, const struct hub_signer *signer,
                       const struct hub_crl_info *info, const struct hub_crl_entry *entries,
                       size_t n, hub_buf_t *out);

#endif
