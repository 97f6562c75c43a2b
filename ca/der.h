/* Internal DER helpers shared by cert.c, crl.c and pkcs7.c. Writers follow the
 * mbedtls_asn1_write_* convention: they write backwards from *p down to start and return
 * the number of bytes written or a negative mbedTLS error code. */
#ifndef HUB_CA_DER_H
#define HUB_CA_DER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "util/buf.h"

#define HUB_KEY_ID_MAX 64

/* Name of the mbedTLS call that last failed inside a writer (for the log line). */
extern _Thread_local const char *hub_der_failed_call;

/* Runs an mbedTLS writer call, adds its length to len, returns its error on failure. */
#define HUB_DER_CHK(len, call)                                                           \
    do {                                                                                 \
        int chk_ret_ = (call);                                                           \
        if (chk_ret_ < 0) {                                                              \
            hub_der_failed_call = #call;                                                 \
            return chk_ret_;                                                             \
        }                                                                                \
        (len) += (size_t)chk_ret_;                                                       \
    } while (0)

/* Signature algorithm chosen from the signing key. */
struct hub_der_sigalg {
    mbedtls_md_type_t md;
    const char *oid;
    size_t oid_len;
    int null_params; /* RSA: NULL parameters (RFC 4055); ECDSA: absent (RFC 5758) */
};

/* Picks the signature algorithm for key: P-256 → ecdsa-with-SHA256, P-384 →
 * ecdsa-with-SHA384, RSA → sha256WithRSAEncryption. Returns 0 or HUB_EKEYPOLICY. */
int hub_der_sigalg(mbedtls_pk_context *key, struct hub_der_sigalg *out);
/* Writes the AlgorithmIdentifier of alg (never a NULL for ECDSA, unlike mbedTLS 2.28's
 * mbedtls_asn1_write_algorithm_identifier). */
int hub_der_write_sigalg(unsigned char **p, unsigned char *start,
                         const struct hub_der_sigalg *alg);
/* Writes Name ::= SEQUENCE { RDN{O}, RDN{CN} } as UTF8Strings (O omitted when NULL): the
 * conventional most-general-first DER order, printed "O = …, CN = …" by OpenSSL. */
int hub_der_write_name(unsigned char **p, unsigned char *start, const char *cn,
                       const char *o);
/* Writes Time: UTCTime for years 1950..2049, GeneralizedTime otherwise (RFC 5280). */
int hub_der_write_time(unsigned char **p, unsigned char *start, time_t t);
/* Writes an INTEGER from big-endian unsigned bytes, minimal and positive. */
int hub_der_write_uint(unsigned char **p, unsigned char *start, const uint8_t *be,
                       size_t len);
/* Writes an Extension around the vlen bytes of extnValue content already written; returns
 * the whole Extension's length (vlen included). */
int hub_der_write_ext(unsigned char **p, unsigned char *start, const char *oid,
                      size_t oid_len, int critical, size_t vlen);
/* Writes a non-critical authorityKeyIdentifier extension: SEQUENCE { [0] id }. */
int hub_der_write_aki(unsigned char **p, unsigned char *start, const uint8_t *id,
                      size_t id_len);
/* Writes SubjectPublicKeyInfo of key. */
int hub_der_write_spki(unsigned char **p, unsigned char *start, mbedtls_pk_context *key);

/* Key identifier: SHA-1 of the subjectPublicKey BIT STRING contents (RFC 5280 §4.2.1.2
 * method 1). out holds 20 bytes. Returns 0 or HUB_ECRYPTO. */
int hub_der_key_id(mbedtls_pk_context *key, uint8_t out[20]);
/* The issuer's own subjectKeyIdentifier if its certificate has one, else computed from its
 * key. out holds HUB_KEY_ID_MAX bytes; *len receives the length. */
int hub_der_issuer_key_id(const mbedtls_x509_crt *issuer, uint8_t *out, size_t *len);

/* A writer called by hub_der_build: writes one structure backwards into [start, *p). */
typedef int (*hub_der_write_fn)(unsigned char **p, unsigned char *start, void *ctx);
/* Runs fn into a heap buffer of hint bytes, doubling it while it is too small, and appends
 * the result to out. what names the structure in the log. Returns 0 or a HUB_E* code. */
int hub_der_build(hub_der_write_fn fn, void *ctx, size_t hint, const char *what,
                  hub_buf_t *out);
/* Signs tbs with key (hash per alg) and appends SEQUENCE { tbs, alg, BIT STRING sig } to
 * out. Returns 0 or a HUB_E* code. */
int hub_der_sign_wrap(mbedtls_pk_context *key, const struct hub_der_sigalg *alg,
                      const uint8_t *tbs, size_t tbs_len, const char *what, hub_buf_t *out);
/* Appends SEQUENCE { tbs, alg, BIT STRING sig } to out, sig made elsewhere (a token).
 * Returns 0 or a HUB_E* code. */
int hub_der_wrap_signed(const struct hub_der_sigalg *alg, const uint8_t *tbs, size_t tbs_len,
                        const uint8_t *sig, size_t sig_len, const char *what, hub_buf_t *out);
/* Logs "<what>: <call> failed: -0xNNNN <mbedTLS text>" at error level. */
void hub_der_log_mbedtls(const char *what, const char *call, int ret);

#endif
