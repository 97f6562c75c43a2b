/* Strict DER parser of an RFC 6960 OCSPRequest (§4.1.1). Every length is checked against
 * its container, lengths must be minimal (no indefinite or padded lengths), DEFAULT
 * fields must be absent, and nothing may follow the request. Fuzzed by
 * tests/fuzz/fuzz_ocsp_req.c. */
#ifndef HUB_CA_OCSP_REQ_H
#define HUB_CA_OCSP_REQ_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/md.h>

/* Requests (certificates) answered in one OCSPRequest; more is malformedRequest. */
#define HUB_OCSP_MAX_REQUESTS 8
/* Largest OCSPRequest accepted (bytes). */
#define HUB_OCSP_REQUEST_MAX 8192
/* Largest nonce extnValue echoed (RFC 8954 asks for 1..32 octets: 34 with its header). */
#define HUB_OCSP_NONCE_MAX 128

/* One CertID (§4.1.1). Pointers point into the parsed buffer. */
struct hub_ocsp_certid {
    mbedtls_md_type_t md;     /* MBEDTLS_MD_SHA1 or _SHA256; MBEDTLS_MD_NONE: another hash */
    const uint8_t *name_hash; /* issuerNameHash contents */
    size_t name_hash_len;
    const uint8_t *key_hash; /* issuerKeyHash contents */
    size_t key_hash_len;
    const uint8_t *serial; /* serialNumber contents without a leading 0x00 sign byte */
    size_t serial_len;
    int serial_negative; /* a negative INTEGER: no certificate of ours has it */
    const uint8_t *raw;  /* the whole CertID, echoed in the SingleResponse */
    size_t raw_len;
};

struct hub_ocsp_request {
    size_t n; /* 1..HUB_OCSP_MAX_REQUESTS */
    struct hub_ocsp_certid ids[HUB_OCSP_MAX_REQUESTS];
    const uint8_t *nonce; /* the id-pkix-ocsp-nonce extnValue contents, or NULL */
    size_t nonce_len;
};

/* Parses der (len bytes, kept by the caller while *out is used). Returns 0, or HUB_EINVAL
 * for anything that is not a well-formed DER OCSPRequest within the limits above (the
 * answer is then malformedRequest); *why (may be NULL) gets a static reason for the log. */
int hub_ocsp_request_parse(const uint8_t *der, size_t len, struct hub_ocsp_request *out,
                           const char **why);

#endif
