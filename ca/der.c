/* DER building blocks. mbedtls_asn1_write_* writes backwards, so every structure is
 * written last field first, then its length and tag. hub_der_build owns the scratch buffer
 * and retries with a doubled one on MBEDTLS_ERR_ASN1_BUF_TOO_SMALL. */
#include "ca/der.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>

#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

#define DER_MAX (256u * 1024 * 1024) /* no structure we write comes near this */

_Thread_local const char *hub_der_failed_call;

void hub_der_log_mbedtls(const char *what, const char *call, int ret)
{
    char msg[160];
    mbedtls_strerror(ret, msg, sizeof msg);
    hub_error("%s: %s failed: -0x%04X %s", what, call ? call : "mbedtls", (unsigned)-ret,
              msg);
}

int hub_der_sigalg(mbedtls_pk_context *key, struct hub_der_sigalg *out)
{
    switch (mbedtls_pk_get_type(key)) {
    case MBEDTLS_PK_ECKEY:
    case MBEDTLS_PK_ECDSA:
        if (mbedtls_pk_ec(*key)->grp.id == MBEDTLS_ECP_DP_SECP256R1) {
            *out = (struct hub_der_sigalg){MBEDTLS_MD_SHA256, MBEDTLS_OID_ECDSA_SHA256,
                                           MBEDTLS_OID_SIZE(MBEDTLS_OID_ECDSA_SHA256), 0};
            return 0;
        }
        if (mbedtls_pk_ec(*key)->grp.id == MBEDTLS_ECP_DP_SECP384R1) {
            *out = (struct hub_der_sigalg){MBEDTLS_MD_SHA384, MBEDTLS_OID_ECDSA_SHA384,
                                           MBEDTLS_OID_SIZE(MBEDTLS_OID_ECDSA_SHA384), 0};
            return 0;
        }
        break;
    case MBEDTLS_PK_RSA:
        *out = (struct hub_der_sigalg){MBEDTLS_MD_SHA256, MBEDTLS_OID_PKCS1_SHA256,
                                       MBEDTLS_OID_SIZE(MBEDTLS_OID_PKCS1_SHA256), 1};
        return 0;
    default:
        break;
    }
    hub_error("signing key: only EC P-256, EC P-384 and RSA keys can sign");
    return HUB_EKEYPOLICY;
}

int hub_der_write_sigalg(unsigned char **p, unsigned char *start,
                         const struct hub_der_sigalg *alg)
{
    size_t len = 0;
    if (alg->null_params)
        HUB_DER_CHK(len, mbedtls_asn1_write_null(p, start));
    HUB_DER_CHK(len, mbedtls_asn1_write_oid(p, start, alg->oid, alg->oid_len));
    HUB_DER_CHK(len, mbedtls_asn1_write_len(p, start, len));
    HUB_DER_CHK(len, mbedtls_asn1_write_tag(p, start,
                                            MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return (int)len;
}

static int write_rdn(unsigned char **p, unsigned char *start, const char *oid,
                     size_t oid_len, const char *value)
{
    size_t len = 0;
    HUB_DER_CHK(len, mbedtls_asn1_write_utf8_string(p, start, value, strlen(value)));
    HUB_DER_CHK(len, mbedtls_asn1_write_oid(p, start, oid, oid_len));
    HUB_DER_CHK(len, mbedtls_asn1_write_len(p, start, len));
    HUB_DER_CHK(len, mbedtls_asn1_write_tag(p, start,
                                            MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    HUB_DER_CHK(len, mbedtls_asn1_write_len(p, start, len));
    HUB_DER_CHK(len, mbedtls_asn1_write_tag(p, start,
                                            MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SET));
    return (int)len;
}

int hub_der_write_name(unsigned char **p, unsigned char *start, const char *cn,
                       const char *o)
{
    size_t len = 0;
    HUB_DER_CHK(len, write_rdn(p, start, MBEDTLS_OID_AT_CN,
                               MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN), cn));
    if (o != NULL)
        HUB_DER_CHK(len, write_rdn(p, start, MBEDTLS_OID_AT_ORGANIZATION,
                                   MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_ORGANIZATION), o));
    HUB_DER_CHK(len, mbedtls_asn1_write_len(p, start, len));
    HUB_DER_CHK(len, mbedtls_asn1_write_tag(p, start,
                                            MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return (int)len;
}

int hub_der_write_time(unsigned char **p, unsigned char *start, time_t t)
{
    struct tm tm;
    char s[32];
    int n;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
        hub_der_failed_call = "gmtime_r";
        return MBEDTLS_ERR_ASN1_INVALID_DATA;
    }
    int year = tm.tm_year + 1900;
    if (year >= 1950 && year < 2050) {
        n = snprintf(s, sizeof s, "%02d%02d%02d%02d%02d%02dZ", year % 100, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        return mbedtls_asn1_write_tagged_string(p, start, MBEDTLS_ASN1_UTC_TIME, s,
                                                (size_t)n);
    }
    n = snprintf(s, sizeof s, "%04d%02d%02d%02d%02d%02dZ", year, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
    return mbedtls_asn1_write_tagged_string(p, start, MBEDTLS_ASN1_GENERALIZED_TIME, s,
                                            (size_t)n);
}

int hub_der_write_uint(unsigned char **p, unsigned char *start, const uint8_t *be,
                       size_t len_in)
{
    size_t len = 0;
    while (len_in > 1 && be[0] == 0) {
        be++;
        len_in--;
    }
    if (len_in == 0) {
        static const uint8_t zero = 0;
        be = &zero;
        len_in = 1;
    }
    HUB_DER_CHK(len, mbedtls_asn1_write_raw_buffer(p, start, be, len_in));
    if (be[0] & 0x80) {
        if (*p - start < 1)
            return MBEDTLS_ERR_ASN1_BUF_TOO_SMALL;
        *--(*p) = 0;
        len++;
    }
    HUB_DER_CHK(len, mbedtls_asn1_write_len(p, start, len));
    HUB_DER_CHK(len, mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_INTEGER));
    return (int)len;
}

int hub_der_write_ext(unsigned char **p, unsigned char *start, const char *oid,
                      size_t oid_len, int critical, size_t vlen)
{
    size_t len = vlen;
    HUB_DER_CHK(len, mbedtls_asn1_write_len(p, start, vlen));
    HUB_DER_CHK(len, mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_OCTET_STRING));
    if (critical)
        HUB_DER_CHK(len, mbedtls_asn1_write_bool(p, start, 1));
    HUB_DER_CHK(len, mbedtls_asn1_write_oid(p, start, oid, oid_len));
    HUB_DER_CHK(len, mbedtls_asn1_write_len(p, start, len));
    HUB_DER_CHK(len, mbedtls_asn1_write_tag(p, start,
                                            MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return (int)len;
}

int hub_der_write_aki(unsigned char **p, unsigned char *start, const uint8_t *id,
                      size_t id_len)
{
    size_t len = 0;
    HUB_DER_CHK(len, mbedtls_asn1_write_raw_buffer(p, start, id, id_len));
    HUB_DER_CHK(len, mbedtls_asn1_write_len(p, start, len));
    HUB_DER_CHK(len, mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 0));
    HUB_DER_CHK(len, mbedtls_asn1_write_len(p, start, len));
    HUB_DER_CHK(len, mbedtls_asn1_write_tag(p, start,
                                            MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return hub_der_write_ext(p, start, MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER,
                             MBEDTLS_OID_SIZE(MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER), 0, len);
}

int hub_der_write_spki(unsigned char **p, unsigned char *start, mbedtls_pk_context *key)
{
    /* mbedtls_pk_write_pubkey_der writes at the end of [start, *p), i.e. right below *p. */
    int ret = mbedtls_pk_write_pubkey_der(key, start, (size_t)(*p - start));
    if (ret < 0) {
        hub_der_failed_call = "mbedtls_pk_write_pubkey_der";
        return ret;
    }
    *p -= ret;
    return ret;
}

int hub_der_key_id(mbedtls_pk_context *key, uint8_t out[20])
{
    unsigned char buf[4096];
    unsigned char *p = buf + sizeof buf;
    /* mbedtls_pk_write_pubkey writes exactly the subjectPublicKey BIT STRING contents. */
    int ret = mbedtls_pk_write_pubkey(&p, buf, key);
    if (ret < 0) {
        hub_der_log_mbedtls("key identifier", "mbedtls_pk_write_pubkey", ret);
        return HUB_ECRYPTO;
    }
    ret = mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA1), p, (size_t)ret, out);
    if (ret != 0) {
        hub_der_log_mbedtls("key identifier", "mbedtls_md(SHA-1)", ret);
        return HUB_ECRYPTO;
    }
    return 0;
}

/* Finds the subjectKeyIdentifier in crt->v3_ext (the SEQUENCE OF Extension). */
static int find_ski(const mbedtls_x509_crt *crt, uint8_t *out, size_t *out_len)
{
    unsigned char *p = crt->v3_ext.p, *end, *ext_end;
    size_t len;
    if (p == NULL || crt->v3_ext.len == 0)
        return -1;
    end = p + crt->v3_ext.len;
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
        return -1;
    end = p + len;
    while (p < end) {
        if (mbedtls_asn1_get_tag(&p, end, &len,
                                 MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
            return -1;
        ext_end = p + len;
        if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OID))
            return -1;
        int is_ski = len == MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_KEY_IDENTIFIER) &&
                     memcmp(p, MBEDTLS_OID_SUBJECT_KEY_IDENTIFIER, len) == 0;
        p += len;
        if (is_ski) {
            int critical;
            if (p < ext_end && *p == MBEDTLS_ASN1_BOOLEAN &&
                mbedtls_asn1_get_bool(&p, ext_end, &critical))
                return -1;
            if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) ||
                mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) ||
                len == 0 || len > HUB_KEY_ID_MAX)
                return -1;
            memcpy(out, p, len);
            *out_len = len;
            return 0;
        }
        p = ext_end;
    }
    return -1;
}

int hub_der_issuer_key_id(const mbedtls_x509_crt *issuer, uint8_t *out, size_t *len)
{
    if (find_ski(issuer, out, len) == 0)
        return 0;
    *len = 20;
    return hub_der_key_id((mbedtls_pk_context *)&issuer->pk, out);
}

int hub_der_build(hub_der_write_fn fn, void *ctx, size_t hint, const char *what,
                  hub_buf_t *out)
{
    size_t cap = hint < 1024 ? 1024 : hint;
    for (;;) {
        unsigned char *buf = malloc(cap);
        if (buf == NULL)
            return HUB_ENOMEM;
        unsigned char *p = buf + cap;
        hub_der_failed_call = NULL;
        int ret = fn(&p, buf, ctx);
        if (ret >= 0) {
            int rc = hub_buf_append(out, p, (size_t)ret);
            free(buf);
            return rc;
        }
        free(buf);
        if (ret == MBEDTLS_ERR_ASN1_BUF_TOO_SMALL && cap <= DER_MAX / 2) {
            cap *= 2;
            continue;
        }
        hub_der_log_mbedtls(what, hub_der_failed_call, ret);
        return ret == MBEDTLS_ERR_ASN1_BUF_TOO_SMALL ? HUB_ERANGE : HUB_ECRYPTO;
    }
}

struct wrap_ctx {
    const struct hub_der_sigalg *alg;
    const uint8_t *tbs;
    size_t tbs_len;
    const unsigned char *sig;
    size_t sig_len;
};

static int write_signed(unsigned char **p, unsigned char *start, void *arg)
{
    struct wrap_ctx *w = arg;
    size_t len = 0;
    HUB_DER_CHK(len, mbedtls_asn1_write_bitstring(p, start, w->sig, w->sig_len * 8));
    HUB_DER_CHK(len, hub_der_write_sigalg(p, start, w->alg));
    HUB_DER_CHK(len, mbedtls_asn1_write_raw_buffer(p, start, w->tbs, w->tbs_len));
    HUB_DER_CHK(len, mbedtls_asn1_write_len(p, start, len));
    HUB_DER_CHK(len, mbedtls_asn1_write_tag(p, start,
                                            MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return (int)len;
}

int hub_der_sign_wrap(mbedtls_pk_context *key, const struct hub_der_sigalg *alg,
                      const uint8_t *tbs, size_t tbs_len, const char *what, hub_buf_t *out)
{
    unsigned char hash[MBEDTLS_MD_MAX_SIZE];
    unsigned char sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    size_t sig_len = 0;
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(alg->md);

    int ret = mbedtls_md(md, tbs, tbs_len, hash);
    if (ret != 0) {
        hub_der_log_mbedtls(what, "mbedtls_md", ret);
        return HUB_ECRYPTO;
    }
    ret = mbedtls_pk_sign(key, alg->md, hash, mbedtls_md_get_size(md), sig, &sig_len,
                          hub_rng_cb, NULL);
    if (ret != 0) {
        hub_der_log_mbedtls(what, "mbedtls_pk_sign", ret);
        return HUB_ECRYPTO;
    }
    return hub_der_wrap_signed(alg, tbs, tbs_len, sig, sig_len, what, out);
}

int hub_der_wrap_signed(const struct hub_der_sigalg *alg, const uint8_t *tbs, size_t tbs_len,
                        const uint8_t *sig, size_t sig_len, const char *what, hub_buf_t *out)
{
    struct wrap_ctx w = {alg, tbs, tbs_len, sig, sig_len};
    return hub_der_build(write_signed, &w, tbs_len + sig_len + 64, what, out);
}
