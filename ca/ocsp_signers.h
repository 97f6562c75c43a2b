/* The OCSP responder's signing side: for every CA whose key the hub holds (the root unless
 * it is external, the active issuing CA, retired issuing CAs still loaded), the CertID
 * hashes that name it and a delegated OCSP signing certificate (RFC 6960 §4.2.2.2:
 * id-kp-OCSPSigning, id-pkix-ocsp-nocheck, 48 h) issued by that CA to an EC P-256 key that
 * exists only in this process's memory. `serve` makes the set after loading the authority
 * and refreshes it every minute (a signer is replaced when less than half its validity is
 * left); API threads look CAs up and sign responses concurrently. */
#ifndef HUB_CA_OCSP_SIGNERS_H
#define HUB_CA_OCSP_SIGNERS_H

#include <stddef.h>

#include <stdint.h>
#include <time.h>

#include "ca/authority.h"
#include "ca/ocsp.h"
#include "ca/ocsp_req.h"
#include "util/buf.h"

/* Validity of a delegated signer certificate (capped at its CA's notAfter). */
#define HUB_OCSP_SIGNER_HOURS 48

struct hub_ocsp_signers;

/* The CAs of a (borrowed: it must outlive the set) with their CertID hashes; no signer is
 * made yet (hub_ocsp_signers_refresh does). Returns 0 or HUB_ENOMEM / HUB_ECRYPTO. */
int hub_ocsp_signers_new(struct hub_authority *a, struct hub_ocsp_signers **out);
/* Frees the set and wipes the signer keys. NULL is ignored. */
void hub_ocsp_signers_free(struct hub_ocsp_signers *s);
/* Records a new signer certificate (server/ stores it in ocsp_signers). Returns 0 or a
 * HUB_E* code (logged by the caller of the callback, the signer is used anyway). */
typedef int (*hub_ocsp_record_cb)(void *ctx, const char *serial, int ca_id, const uint8_t *der,
                                  size_t der_len, time_t not_before, time_t not_after);
/* Issues a signer for every CA that has none or whose signer is past half its validity,
 * and hands each to record (may be NULL) with ctx. *made counts them. Returns 0 or the
 * first HUB_E* code (the other CAs still get theirs). */
int hub_ocsp_signers_refresh(struct hub_ocsp_signers *s, hub_ocsp_record_cb record, void *ctx,
                             int *made);
/* The CA a CertID names (hash algorithm, issuerNameHash, issuerKeyHash), compared in
 * constant time: its cas.id in *ca_id and whether it is the root. Returns an index >= 0, or
 * -1 when no CA of the set has these hashes (or the hash algorithm is not SHA-1/SHA-256). */
int hub_ocsp_signers_find(const struct hub_ocsp_signers *s, const struct hub_ocsp_certid *id,
                          int *ca_id, int *is_root);
/* Fills b's key, key hash and certificate with the current signer of CA index ca and signs
 * the response into out. HUB_ENOTFOUND when that CA has no unexpired signer (the answer is
 * then tryLater); else 0 or a HUB_E* code. */
int hub_ocsp_signers_sign(struct hub_ocsp_signers *s, int ca, struct hub_ocsp_basic *b,
                          hub_buf_t *out);
/* The upper-case hex serial and notAfter of CA index ca's current signer ("" when none). */
void hub_ocsp_signers_current(struct hub_ocsp_signers *s, int ca, char *serial, size_t cap,
                              time_t *not_after);

#endif
