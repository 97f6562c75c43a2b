#include "ca/fwsig.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>

#include "util/error.h"
#include "util/secure.h"

#define PEM_BEGIN "-----BEGIN CERTIFICATE-----"
#define PEM_END "-----END CERTIFICATE-----"
#define SIGNER_PEM_MAX (64 * 1024)

static int refuse(int rc, char *why, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(int rc, char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return rc;
}

static int only_space(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return 0;
    return 1;
}

static time_t x509_time(const mbedtls_x509_time *t)
{
    struct tm tm = {.tm_year = t->year - 1900,
                    .tm_mon = t->mon - 1,
                    .tm_mday = t->day,
                    .tm_hour = t->hour,
                    .tm_min = t->min,
                    .tm_sec = t->sec};
    return timegm(&tm);
}

/* The signer policy on a parsed certificate. */
static int check_policy(mbedtls_x509_crt *crt, struct hub_fwsig_signer *out, char *why, size_t n)
{
    if (mbedtls_x509_time_is_future(&crt->valid_from))
        return refuse(HUB_EKEYPOLICY, why, n, "the certificate is not valid yet");
    if (mbedtls_x509_time_is_past(&crt->valid_to))
        return refuse(HUB_EKEYPOLICY, why, n, "the certificate has expired");
    if (!(crt->ext_types & MBEDTLS_X509_EXT_KEY_USAGE))
        return refuse(HUB_EKEYPOLICY, why, n,
                      "the certificate has no keyUsage extension (digitalSignature is required)");
    if (!(crt->key_usage & MBEDTLS_X509_KU_DIGITAL_SIGNATURE))
        return refuse(HUB_EKEYPOLICY, why, n, "the certificate's keyUsage lacks digitalSignature");
    if ((crt->ext_types & MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE) &&
        mbedtls_x509_crt_check_extended_key_usage(
            crt, MBEDTLS_OID_CODE_SIGNING, MBEDTLS_OID_SIZE(MBEDTLS_OID_CODE_SIGNING)) != 0)
        return refuse(HUB_EKEYPOLICY, why, n,
                      "the certificate's extendedKeyUsage does not allow codeSigning");
    if (crt->ca_istrue)
        return refuse(HUB_EKEYPOLICY, why, n,
                      "the certificate is a CA certificate (basicConstraints cA); a signer "
                      "certificate is an end-entity certificate");
    mbedtls_pk_type_t type = mbedtls_pk_get_type(&crt->pk);
    if (type == MBEDTLS_PK_ECKEY) {
        mbedtls_ecp_group_id g = mbedtls_pk_ec(crt->pk)->grp.id;
        if (g == MBEDTLS_ECP_DP_SECP256R1)
            snprintf(out->key_type, sizeof out->key_type, "ec-p256");
        else if (g == MBEDTLS_ECP_DP_SECP384R1)
            snprintf(out->key_type, sizeof out->key_type, "ec-p384");
        else
            return refuse(HUB_EKEYPOLICY, why, n,
                          "EC keys must be on P-256 or P-384 (secp256r1, secp384r1)");
    } else if (type == MBEDTLS_PK_RSA) {
        size_t bits = mbedtls_pk_get_bitlen(&crt->pk);
        if (bits < 2048)
            return refuse(HUB_EKEYPOLICY, why, n, "RSA keys must have 2048 bits or more (got %zu)",
                          bits);
        if (bits > 8192)
            return refuse(HUB_EKEYPOLICY, why, n, "RSA keys of more than 8192 bits are refused");
        snprintf(out->key_type, sizeof out->key_type, "rsa-%zu", bits);
    } else {
        return refuse(HUB_EKEYPOLICY, why, n, "the key must be EC (P-256, P-384) or RSA");
    }
    return 0;
}

int hub_fwsig_signer_parse(const char *pem, size_t len, struct hub_fwsig_signer *out, char *why,
                           size_t whylen)
{
    mbedtls_pem_context ctx;
    mbedtls_x509_crt crt;
    char *text = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    why[0] = 0;
    mbedtls_pem_init(&ctx);
    mbedtls_x509_crt_init(&crt);
    if (len == 0 || len > SIGNER_PEM_MAX) {
        rc = refuse(HUB_EINVAL, why, whylen, "the certificate must be 1 to %d bytes of PEM",
                    SIGNER_PEM_MAX);
        goto out;
    }
    if ((text = malloc(len + 1)) == NULL) {
        rc = HUB_ENOMEM;
        goto out;
    }
    memcpy(text, pem, len);
    text[len] = 0;
    const char *begin = strstr(text, PEM_BEGIN);
    size_t used = 0;
    if (strlen(text) != len || begin == NULL || !only_space(text, (size_t)(begin - text))) {
        rc = refuse(HUB_EINVAL, why, whylen,
                    "expected one PEM certificate (-----BEGIN CERTIFICATE-----) and nothing else");
        goto out;
    }
    int ret = mbedtls_pem_read_buffer(&ctx, PEM_BEGIN, PEM_END, (const unsigned char *)begin,
                                      NULL, 0, &used);
    if (ret != 0 || !only_space(begin + used, len - (size_t)(begin - text) - used)) {
        rc = refuse(HUB_EINVAL, why, whylen,
                    ret != 0 ? "bad PEM armour or base64"
                             : "expected exactly one PEM certificate (found more after it)");
        goto out;
    }
    ret = mbedtls_x509_crt_parse_der(&crt, ctx.buf, ctx.buflen);
    if (ret != 0 || crt.raw.len != ctx.buflen) {
        char msg[128] = "trailing bytes after the certificate";
        if (ret != 0)
            mbedtls_strerror(ret, msg, sizeof msg);
        rc = refuse(HUB_EINVAL, why, whylen, "the certificate does not parse as DER X.509 (%s)",
                    msg);
        goto out;
    }
    if ((rc = check_policy(&crt, out, why, whylen)) != 0)
        goto out;
    uint8_t fp[32];
    if (mbedtls_sha256_ret(ctx.buf, ctx.buflen, fp, 0) != 0 ||
        mbedtls_x509_dn_gets(out->subject, sizeof out->subject, &crt.subject) < 0) {
        rc = refuse(HUB_EINVAL, why, whylen, "the certificate's subject cannot be printed");
        goto out;
    }
    hub_hex_lower(fp, sizeof fp, out->fingerprint);
    out->not_before = x509_time(&crt.valid_from);
    out->not_after = x509_time(&crt.valid_to);
    rc = hub_buf_append(&out->der, ctx.buf, ctx.buflen);
out:
    if (rc != 0)
        hub_fwsig_signer_free(out);
    mbedtls_x509_crt_free(&crt);
    mbedtls_pem_free(&ctx);
    free(text);
    return rc;
}

void hub_fwsig_signer_free(struct hub_fwsig_signer *s)
{
    hub_buf_free(&s->der);
}

int hub_fwsig_verify(const uint8_t *cert_der, size_t cert_len, const uint8_t sha256[32],
                     const uint8_t *sig, size_t len)
{
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int rc = HUB_EINVAL;
    if (mbedtls_x509_crt_parse_der(&crt, cert_der, cert_len) == 0) {
        /* PKCS#1 v1.5 for RSA (mbedtls_pk_verify's default), DER ECDSA-Sig-Value for EC. */
        rc = len > 0 && mbedtls_pk_verify(&crt.pk, MBEDTLS_MD_SHA256, sha256, 32, sig, len) == 0
                 ? 0
                 : HUB_ECRYPTO;
    }
    mbedtls_x509_crt_free(&crt);
    return rc;
}
