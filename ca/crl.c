/* CRL v2 writer. mbedTLS 2.28 has a CRL parser but no writer: TBSCertList is written with
 * mbedtls_asn1_write_* (backwards, so entries are walked last to first to keep order). */
#include "ca/crl.h"

#include <string.h>

#include <mbedtls/oid.h>

#include "ca/der.h"
#include "util/error.h"
#include "util/log.h"

#define SEQ (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)
#define OID_REASON_CODE MBEDTLS_OID_ID_CE "\x15" /* id-ce-cRLReasons { id-ce 21 } */
#define OID_DELTA_CRL MBEDTLS_OID_ID_CE "\x1B"   /* id-ce-deltaCRLIndicator { id-ce 27 } */
#define OID_FRESHEST_CRL MBEDTLS_OID_ID_CE "\x2E" /* id-ce-freshestCRL { id-ce 46 } */
#define CTX_CONS(n) (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | (n))

static const char *const reason_names[] = {
    [HUB_REASON_UNSPECIFIED] = "unspecified",
    [HUB_REASON_KEY_COMPROMISE] = "keyCompromise",
    [HUB_REASON_CA_COMPROMISE] = "cACompromise",
    [HUB_REASON_AFFILIATION_CHANGED] = "affiliationChanged",
    [HUB_REASON_SUPERSEDED] = "superseded",
    [HUB_REASON_CESSATION_OF_OPERATION] = "cessationOfOperation",
    [HUB_REASON_CERTIFICATE_HOLD] = "certificateHold",
    /* 7 is unused; 8 (removeFromCRL) only appears in delta CRLs, and ours never need it:
     * a revocation is final (no certificateHold is ever released). */
    [HUB_REASON_PRIVILEGE_WITHDRAWN] = "privilegeWithdrawn",
    [HUB_REASON_AA_COMPROMISE] = "aACompromise",
};
#define N_REASONS (sizeof reason_names / sizeof reason_names[0])

int hub_crl_reason_parse(const char *name, int *reason)
{
    for (size_t i = 0; name != NULL && i < N_REASONS; i++) {
        if (reason_names[i] != NULL && strcmp(name, reason_names[i]) == 0) {
            *reason = (int)i;
            return 0;
        }
    }
    return HUB_EINVAL;
}

const char *hub_crl_reason_name(int reason)
{
    if (reason < 0 || (size_t)reason >= N_REASONS)
        return NULL;
    return reason_names[reason];
}

struct crl_ctx {
    const mbedtls_x509_crt *issuer;
    const struct hub_der_sigalg *alg;
    const struct hub_crl_info *info;
    const struct hub_crl_entry *entries;
    size_t n;
    uint8_t aki[HUB_KEY_ID_MAX];
    size_t aki_len;
};

static int write_hdr(unsigned char **p, unsigned char *start, size_t len, unsigned char tag)
{
    size_t n = 0;
    HUB_DER_CHK(n, mbedtls_asn1_write_len(p, start, len));
    HUB_DER_CHK(n, mbedtls_asn1_write_tag(p, start, tag));
    return (int)n;
}

static int write_entry(unsigned char **p, unsigned char *start, const struct hub_crl_entry *e)
{
    size_t len = 0;
    if (e->reason != HUB_REASON_UNSPECIFIED) {
        size_t v = 0, ext = 0;
        HUB_DER_CHK(v, mbedtls_asn1_write_enum(p, start, e->reason));
        HUB_DER_CHK(ext, hub_der_write_ext(p, start, OID_REASON_CODE,
                                           MBEDTLS_OID_SIZE(OID_REASON_CODE), 0, v));
        HUB_DER_CHK(ext, write_hdr(p, start, ext, SEQ));
        len += ext;
    }
    HUB_DER_CHK(len, hub_der_write_time(p, start, e->revoked_at));
    HUB_DER_CHK(len, hub_der_write_uint(p, start, e->serial, e->serial_len));
    HUB_DER_CHK(len, write_hdr(p, start, len, SEQ));
    return (int)len;
}

/* Writes a CRL number (cRLNumber or BaseCRLNumber) as a minimal INTEGER. */
static int write_number(unsigned char **p, unsigned char *start, uint64_t number)
{
    uint8_t num[8];
    for (int i = 0; i < 8; i++)
        num[i] = (uint8_t)(number >> (56 - 8 * i));
    return hub_der_write_uint(p, start, num, sizeof num);
}

/* freshestCRL (RFC 5280 §5.2.6), non-critical, CRLDistributionPoints syntax:
 * SEQUENCE { DistributionPoint SEQUENCE { [0] { fullName [0] { [6] URI } } } }. */
static int write_freshest(unsigned char **p, unsigned char *start, const char *url)
{
    size_t len = 0;
    HUB_DER_CHK(len, mbedtls_asn1_write_tagged_string(p, start, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 6,
                                                      url, strlen(url)));
    HUB_DER_CHK(len, write_hdr(p, start, len, CTX_CONS(0)));
    HUB_DER_CHK(len, write_hdr(p, start, len, CTX_CONS(0)));
    HUB_DER_CHK(len, write_hdr(p, start, len, SEQ));
    HUB_DER_CHK(len, write_hdr(p, start, len, SEQ));
    return hub_der_write_ext(p, start, OID_FRESHEST_CRL, MBEDTLS_OID_SIZE(OID_FRESHEST_CRL), 0,
                             len);
}

static int write_tbs(unsigned char **p, unsigned char *start, void *arg)
{
    const struct crl_ctx *c = arg;
    const struct hub_crl_info *in = c->info;
    size_t len = 0, ext = 0;

    /* crlExtensions [0] EXPLICIT SEQUENCE { AKI, cRLNumber, deltaCRLIndicator (a delta) or
     * freshestCRL (a base that names its deltas) } */
    if (in->base_number > 0) { /* critical, as RFC 5280 §5.2.4 requires */
        size_t v = 0;
        HUB_DER_CHK(v, write_number(p, start, in->base_number));
        HUB_DER_CHK(ext, hub_der_write_ext(p, start, OID_DELTA_CRL,
                                           MBEDTLS_OID_SIZE(OID_DELTA_CRL), 1, v));
    } else if (in->freshest_url != NULL) {
        HUB_DER_CHK(ext, write_freshest(p, start, in->freshest_url));
    }
    size_t v = 0;
    HUB_DER_CHK(v, write_number(p, start, in->number));
    HUB_DER_CHK(ext, hub_der_write_ext(p, start, MBEDTLS_OID_CRL_NUMBER,
                                       MBEDTLS_OID_SIZE(MBEDTLS_OID_CRL_NUMBER), 0, v));
    HUB_DER_CHK(ext, hub_der_write_aki(p, start, c->aki, c->aki_len));
    HUB_DER_CHK(ext, write_hdr(p, start, ext, SEQ));
    HUB_DER_CHK(ext, write_hdr(p, start, ext, CTX_CONS(0)));
    len += ext;
    if (c->n > 0) { /* an empty revokedCertificates must be absent (RFC 5280 §5.1.2.6) */
        size_t rl = 0;
        for (size_t i = c->n; i-- > 0;)
            HUB_DER_CHK(rl, write_entry(p, start, &c->entries[i]));
        HUB_DER_CHK(rl, write_hdr(p, start, rl, SEQ));
        len += rl;
    }
    HUB_DER_CHK(len, hub_der_write_time(p, start, in->next_update));
    HUB_DER_CHK(len, hub_der_write_time(p, start, in->this_update));
    HUB_DER_CHK(len, mbedtls_asn1_write_raw_buffer(p, start, c->issuer->subject_raw.p,
                                                   c->issuer->subject_raw.len));
    HUB_DER_CHK(len, hub_der_write_sigalg(p, start, c->alg));
    HUB_DER_CHK(len, mbedtls_asn1_write_int(p, start, 1)); /* v2 */
    HUB_DER_CHK(len, write_hdr(p, start, len, SEQ));
    return (int)len;
}

int hub_crl_build(const mbedtls_x509_crt *issuer, mbedtls_pk_context *issuer_key,
                  uint64_t crl_number, time_t this_update, time_t next_update,
                  const struct hub_crl_entry *entries, size_t n, hub_buf_t *out)
{
    struct hub_signer s = HUB_SIGNER_MEM(issuer_key);
    return hub_crl_build_by(issuer, &s, crl_number, this_update, next_update, entries, n, out);
}

int hub_crl_build_by(const mbedtls_x509_crt *issuer, const struct hub_signer *signer,
                     uint64_t crl_number, time_t this_update, time_t next_update,
                     const struct hub_crl_entry *entries, size_t n, hub_buf_t *out)
{
    struct hub_crl_info info = {crl_number, this_update, next_update, 0, NULL, NULL};
    return hub_crl_build_info(issuer, signer, &info, entries, n, out);
}

int hub_crl_build_info(const mbedtls_x509_crt *issuer, const struct hub_signer *signer,
                       const struct hub_crl_info *info, const struct hub_crl_entry *entries,
                       size_t n, hub_buf_t *out)
{
    mbedtls_pk_context *issuer_key = signer->pk;
    struct hub_der_sigalg alg;
    struct crl_ctx c = {issuer, &alg, info, entries, n, {0}, 0};
    hub_buf_t tbs = HUB_BUF_INIT;
    int rc;

    if (issuer == NULL || issuer_key == NULL || info->next_update <= info->this_update ||
        (n > 0 && entries == NULL) ||
        (info->base_number > 0 && info->base_number >= info->number)) {
        hub_error("CRL: missing issuer or key, nextUpdate not after thisUpdate, or a delta "
                  "whose base is not older than itself");
        return HUB_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        int r = entries[i].reason;
        if (entries[i].serial_len == 0 || entries[i].serial_len > sizeof entries[i].serial ||
            hub_crl_reason_name(r) == NULL) {
            hub_error("CRL: entry %zu has an empty serial or an unknown reason %d", i, r);
            return HUB_EINVAL;
        }
    }
    if ((rc = hub_der_sigalg(issuer_key, &alg)) != 0)
        return rc;
    if ((rc = hub_der_issuer_key_id(issuer, c.aki, &c.aki_len)) != 0)
        return rc;
    /* ~45 bytes per entry; generous so that 100,000 entries need no retry. */
    rc = hub_der_build(write_tbs, &c, 4096 + n * 64, "TBSCertList", &tbs);
    if (rc == 0) { /* the DER above needs no lock; the signature may */
        if (info->sign_lock != NULL)
            pthread_mutex_lock(info->sign_lock);
        rc = hub_signer_sign_wrap(signer, &alg, tbs.data, tbs.len, "CRL", out);
        if (info->sign_lock != NULL)
            pthread_mutex_unlock(info->sign_lock);
    }
    hub_buf_free(&tbs);
    return rc;
}
