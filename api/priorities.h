/* The GnuTLS priority string of the HTTPS API from tls_ciphers (the same IANA or mbedTLS
 * names as the MQTT listeners): the API always offers its modern suites (TLS 1.3 and TLS 1.2
 * ECDHE with AEAD); the RSA-authenticated legacy suites listed in tls_ciphers are added.
 * GnuTLS enables key exchanges, ciphers and MACs, not single suites: a listed suite also
 * enables its combinations with the others listed (docs/security.md). */
#ifndef HUB_API_PRIORITIES_H
#define HUB_API_PRIORITIES_H

/* Builds the priority string into a malloc'ed *out (the caller frees it). ciphers NULL: the
 * modern suites only. Names GnuTLS cannot offer (PSK, CCM, ARIA, Camellia...) are skipped
 * with a warning. Returns 0, HUB_EINVAL (a name is not a TLS suite name) or HUB_ENOMEM. */
int hub_api_priorities(const char *ciphers, char **out);

#endif
