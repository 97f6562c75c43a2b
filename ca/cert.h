/* Certificate issuance. The TBSCertificate is written with mbedtls_asn1_write_* so that the
 * output is strict DER (ECDSA AlgorithmIdentifiers carry no parameters, RFC 5758), then
 * signed with the issuer key. */
#ifndef HUB_CA_CERT_H
#define HUB_CA_CERT_H

#include <stdint.h>
#include <time.h>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "ca/signer.h"
#include "util/buf.h"

#define HUB_SERIAL_LEN 16

enum hub_cert_kind {
    HUB_CERT_ROOT_CA,    /* self-signed; CA:TRUE; keyCertSign, cRLSign */
    HUB_CERT_ISSUING_CA, /* CA:TRUE pathlen 0; keyCertSign, cRLSign */
    HUB_CERT_SERVER,     /* serverAuth; subjectAltName from dns_names */
    HUB_CERT_CLIENT,     /* device/service: digitalSignature, clientAuth, SAN URI, CRL DP */
    HUB_CERT_OCSP_SIGNER, /* delegated OCSP responder: digitalSignature, OCSPSigning, nocheck */
};

struct hub_cert_request {
    enum hub_cert_kind kind;
    const char *cn;                 /* subject commonName (required) */
    const char *o;                  /* subject organizationName, or NULL */
    mbedtls_pk_context *subject_key; /* public key being certified */
    const mbedtls_x509_crt *issuer; /* NULL for a self-signed root */
    mbedtls_pk_context *issuer_key; /* signing key (the subject key for a root) */
    time_t not_before;
    time_t not_after;
    const char *const *alt_names;   /* NULL-terminated DNS names or IP literals, or NULL */
    const char *crl_url;            /* CRL distribution point URI, or NULL */
    /* Signs instead of issuer_key when set (a token key: issuer_key is then its public key,
     * which picks the signature algorithm). */
    const struct hub_signer *issuer_signer;
    const char *san_uri;            /* clients: subjectAltName URI ("urn:uuid:<id>"), or NULL */
    const char *ocsp_url;           /* clients: AIA id-ad-ocsp URI, or NULL */
};

/* Issues a certificate: draws a random positive 16-byte serial into serial_out, appends the
 * DER certificate to der_out. Returns 0 or a HUB_E* code (the mbedTLS code is logged). */
int hub_cert_issue(const struct hub_cert_request *req, uint8_t serial_out[HUB_SERIAL_LEN],
                   hub_buf_t *der_out);

/* Copies the value of the first attribute oid (e.g. MBEDTLS_OID_AT_CN) of a name into out
 * ("" when absent; truncated to outlen). */
void hub_x509_name_attr(const mbedtls_x509_name *n, const char *oid, size_t oid_len, char *out,
                        size_t outlen);

/* A certificate time (UTC) as time_t. */
time_t hub_x509_time(const mbedtls_x509_time *t);

/* Writes a certificate's serial as stored (upper-case hex, without the DER sign byte) into
 * out. Returns 0, or HUB_ERANGE when it is empty or does not fit in outlen. */
int hub_x509_serial_hex(const mbedtls_x509_buf *serial, char *out, size_t outlen);

#endif
