/* X.509 checks of factory device CAs (issue 15): the CA certificate an admin registers, the
 * verification certificate that proves possession of its key (subject CN = a registration
 * code, signed by the CA's key), and the CRLs the CA publishes. Pure functions of their
 * input and the clock; no I/O. A refusal fills a hub_devca_why with the API error code. */
#ifndef HUB_CA_DEVICE_CA_H
#define HUB_CA_DEVICE_CA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <mbedtls/x509_crt.h>

#include "util/buf.h"

/* Largest certificate accepted, PEM or DER (a CA certificate is ~1-2 KB). */
#define HUB_DEVCA_CERT_MAX (16 * 1024)
/* Largest CRL accepted from the fetcher (the REST body is bounded by api_max_body). */
#define HUB_DEVCA_CRL_MAX (4 * 1024 * 1024)

/* Why an input was refused: code is a static API error code ("ca_not_ca", ...). */
struct hub_devca_why {
    const char *code;
    char message[256];
};

/* Loads exactly one certificate, PEM (one CERTIFICATE block, nothing but white space around
 * it) or DER (nothing after the outer SEQUENCE), into crt (initialised by the caller, who
 * frees it). Returns 0, or HUB_EINVAL with why->code = bad_code. */
int hub_devca_cert_load(const uint8_t *data, size_t len, const char *bad_code,
                        mbedtls_x509_crt *crt, struct hub_devca_why *why);
/* Checks that ca may be registered at time now: basicConstraints cA=TRUE (ca_not_ca),
 * keyUsage present with keyCertSign (ca_no_keycertsign; RFC 5280 §4.2.1.3), within its
 * validity (ca_expired, ca_not_yet_valid), key EC P-256/P-384 or RSA 2048..8192
 * (ca_key_not_allowed). Returns 0 or HUB_EINVAL. */
int hub_devca_check_ca(const mbedtls_x509_crt *ca, time_t now, struct hub_devca_why *why);
/* Checks a verification certificate v against ca: its subject CN (copied into cn, 65 bytes)
 * is 64 lower-case hex digits (verification_code_unknown), its signature verifies with
 * ca's public key (verification_signature_invalid), it is within its validity
 * (verification_expired, verification_not_yet_valid). Returns 0 or HUB_EINVAL. */
int hub_devca_check_verification(const mbedtls_x509_crt *ca, const mbedtls_x509_crt *v, time_t now,
                                 char cn[65], struct hub_devca_why *why);
/* SHA-256 of the certificate's DER as 64 lower-case hex digits + NUL. */
int hub_devca_fingerprint(const mbedtls_x509_crt *crt, char hex[65]);
/* The subject as "CN=..., O=..." (mbedtls_x509_dn_gets), truncated to cap. */
void hub_devca_subject(const mbedtls_x509_crt *crt, char *out, size_t cap);
/* An mbedtls_x509_time as a time_t (UTC). */
time_t hub_devca_time(const mbedtls_x509_time *t);

/* What a verified CRL says about itself. */
struct hub_devca_crl {
    char number[64]; /* cRLNumber in decimal */
    time_t this_update;
    time_t next_update; /* 0 when absent */
    size_t entries;
};
/* Checks a CRL (PEM "X509 CRL" or DER) published by ca: parses as one CRL
 * (crl_malformed), issuer = ca's subject (crl_issuer_mismatch), signature verifies with
 * ca's key (crl_signature_invalid), ca's keyUsage has cRLSign (ca_no_crlsign), carries a
 * cRLNumber (crl_number_missing), nextUpdate not past (crl_expired). Appends the DER to
 * der_out and fills info. Returns 0, HUB_EINVAL (refused) or HUB_ENOMEM. */
int hub_devca_crl_check(const mbedtls_x509_crt *ca, const uint8_t *data, size_t len, time_t now,
                        struct hub_devca_crl *info, hub_buf_t *der_out, struct hub_devca_why *why);

#endif
