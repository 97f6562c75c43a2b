/* The device CAs of makers (factory CAs) that client certificates may chain to besides our
 * own issuing CA(s): each with its status, its id and its own CRL (a set of serials). The set
 * is replaced as a whole when PostgreSQL says a device CA changed (server/trustfeed); worker
 * loops read it during handshakes under a read lock held for one verification. Also a small
 * ring of the handshake refusals the daemon audits (rate-limited) from its loop. */
#ifndef HUB_NET_TRUST_H
#define HUB_NET_TRUST_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/x509_crt.h>

#define HUB_TRUST_ID_LEN 36 /* a device CA id: a UUID in canonical lower case */

typedef struct hub_trust hub_trust_t;

/* One device CA as stored (borrowed by hub_trust_replace, which copies what it keeps). */
struct hub_trust_ca {
    const char *id;     /* UUID */
    int enabled;        /* 0: its devices are refused at the handshake */
    const uint8_t *der; /* the CA certificate */
    size_t der_len;
    const uint8_t *crl_der; /* the CA's own CRL, or NULL */
    size_t crl_len;
};

/* Creates an empty set (NULL when out of memory); hub_trust_free frees it (NULL accepted; no
 * thread may still use it). */
hub_trust_t *hub_trust_new(void);
void hub_trust_free(hub_trust_t *t);
/* Replaces the device CAs by cas[0..n): certificates that do not parse or are not CAs
 * (basicConstraints cA, keyCertSign when keyUsage is present) are skipped, a CRL that does
 * not parse, is not the CA's or whose signature does not verify is ignored (both logged).
 * Built outside the lock, swapped under it. Returns the number of enabled CAs kept, or
 * HUB_ENOMEM (the set is unchanged). */
int hub_trust_replace(hub_trust_t *t, const struct hub_trust_ca *cas, size_t n);
/* Enabled device CAs now / device CAs known (both statuses). */
size_t hub_trust_enabled(hub_trust_t *t);
size_t hub_trust_known(hub_trust_t *t);

/* For the TLS verify callback, at depth 0 when our own CAs did not verify crt (flags has
 * MBEDTLS_X509_BADCERT_NOT_TRUSTED): verifies crt (and the chain the client sent after it)
 * against each enabled device CA whose subject is crt's issuer. On success returns 1, sets
 * *flags to that verification's result (validity, key usage of the CA) plus
 * MBEDTLS_X509_BADCERT_REVOKED when the CA's CRL lists crt, and copies the CA's id into id.
 * Returns 0 (flags and id untouched) when no enabled device CA verifies it. */
int hub_trust_verify(hub_trust_t *t, mbedtls_x509_crt *crt, uint32_t *flags,
                     char id[HUB_TRUST_ID_LEN + 1]);

/* What a completed handshake's certificate was issued by (full or resumed: a resumed
 * session never ran the verify callback). ours are our client CAs (to tell a device CA with
 * the same subject from ours, by signature). */
enum hub_trust_class {
    HUB_TRUST_OURS,     /* not a device CA's: our CAs verified it */
    HUB_TRUST_DEVICE,   /* an enabled device CA's (id filled), not in its CRL */
    HUB_TRUST_DISABLED, /* a disabled device CA's */
    HUB_TRUST_UNKNOWN,  /* the device CA that verified it is gone */
    HUB_TRUST_REVOKED,  /* in its device CA's CRL */
};
enum hub_trust_class hub_trust_classify(hub_trust_t *t, const mbedtls_x509_crt *crt,
                                        const mbedtls_x509_crt *ours,
                                        char id[HUB_TRUST_ID_LEN + 1]);
/* For a live connection of device CA id with serial (bytes, as mbedTLS holds them): 1 when
 * the CA is still enabled and its CRL does not list serial, else 0. */
int hub_trust_still_trusted(hub_trust_t *t, const char *id, const uint8_t *serial, size_t len);

/* A handshake refusal, noted by the worker loops, drained by the daemon to audit them. */
struct hub_trust_refusal {
    char reason[24];  /* "unknown_ca", "device_ca_disabled", "expired", "revoked", ... */
    char peer[64];    /* "ip:port" */
    char subject[96]; /* the certificate's subject CN (or "") */
    char issuer[160]; /* its issuer DN (or "") */
    char serial[41];  /* upper-case hex (or "") */
    char device_ca[HUB_TRUST_ID_LEN + 1]; /* the device CA concerned, or "" */
};
#define HUB_TRUST_REFUSALS 64 /* noted and not yet drained; more are counted as dropped */

/* Keeps what the verify callback saw of a certificate it refuses (this thread only): mbedTLS
 * frees a refused chain before the handshake returns, so the refusal is noted from this. */
void hub_trust_capture(hub_trust_t *t, const mbedtls_x509_crt *crt);
/* Notes a refusal of crt (NULL: the one this thread captured last, if any) for reason; any
 * thread. */
void hub_trust_note_refusal(hub_trust_t *t, const char *reason, const char *peer,
                            const mbedtls_x509_crt *crt);
/* Moves up to max noted refusals to out (oldest first) and returns how many; *dropped gets
 * the refusals lost to a full ring since the last call. */
size_t hub_trust_take_refusals(hub_trust_t *t, struct hub_trust_refusal *out, size_t max,
                               unsigned long long *dropped);

#endif
