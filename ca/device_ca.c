/* X.509 checks of factory device CAs. mbedTLS parses; the policy is ours: one object per
 * input, nothing trailing, signatures verified by hand with the CA's public key (mbedTLS
 * 2.28 checks neither a lone certificate's nor a CRL's signature at parse time), and the
 * cRLNumber read from the raw crlExtensions (2.28 does not parse them). */
#include "ca/device_ca.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crl.h>

#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

/* id-ce-cRLNumber 2.5.29.20 */
static const uint8_t oid_crl_number[] = {0x55, 0x1D, 0x14};

__attribute__((format(printf, 3, 4))) static int refuse(struct hub_devca_why *why, const char *code,
                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    why->code = code;
    vsnprintf(why->message, sizeof why->message, fmt, ap);
    va_end(ap);
    hub_debug("device CA input refused: %s: %s", code, why->message);
    return HUB_EINVAL;
}

static int only_space(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isspace(p[i]) && p[i] != 0)
            return 0;
    return 1;
}

static const uint8_t *find(const uint8_t *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i <= n - k; i++)
        if (memcmp(p + i, needle, k) == 0)
            return p + i;
    return NULL;
}

/* Decodes the single PEM block labelled label of data into *der (owned by pem). Returns 0
 * or HUB_EINVAL (not exactly one block, text around it, bad base64), HUB_ENOMEM. */
static int pem_one(const uint8_t *data, size_t len, const char *label, mbedtls_pem_context *pem,
                   const uint8_t **der, size_t *der_len)
{
    char begin[64], end[64];
    snprintf(begin, sizeof begin, "-----BEGIN %s-----", label);
    snprintf(end, sizeof end, "-----END %s-----", label);
    const uint8_t *b = find(data, len, begin);
    if (b == NULL || !only_space(data, (size_t)(b - data)))
        return HUB_EINVAL;
    char *text = malloc(len + 1);
    if (text == NULL)
        return HUB_ENOMEM;
    memcpy(text, data, len);
    text[len] = 0;
    size_t used = 0;
    int ret = mbedtls_pem_read_buffer(pem, begin, end, (const unsigned char *)text + (b - data),
                                      NULL, 0, &used);
    free(text);
    size_t off = (size_t)(b - data) + used;
    if (ret != 0 || off > len || !only_space(data + off, len - off))
        return HUB_EINVAL;
    *der = pem->buf;
    *der_len = pem->buflen;
    return 0;
}

int hub_devca_cert_load(const uint8_t *data, size_t len, const char *bad_code,
                        mbedtls_x509_crt *crt, struct hub_devca_why *why)
{
    mbedtls_pem_context pem;
    const uint8_t *der = data;
    size_t der_len = len;
    int rc = 0;
    if (len == 0 || len > HUB_DEVCA_CERT_MAX)
        return refuse(why, bad_code, "a certificate of 1 to %d bytes is expected",
                      HUB_DEVCA_CERT_MAX);
    mbedtls_pem_init(&pem);
    if (data[0] != 0x30) {
        rc = pem_one(data, len, "CERTIFICATE", &pem, &der, &der_len);
        if (rc == HUB_EINVAL)
            rc = refuse(why, bad_code,
                        "expected exactly one PEM CERTIFICATE block and nothing else");
    }
    if (rc == 0) {
        int ret = mbedtls_x509_crt_parse_der(crt, der, der_len);
        if (ret != 0) {
            char msg[128];
            mbedtls_strerror(ret, msg, sizeof msg);
            rc = refuse(why, bad_code, "the certificate does not parse (%s)", msg);
        } else if (crt->raw.len != der_len || crt->next != NULL) {
            rc = refuse(why, bad_code, "bytes follow the certificate's DER encoding");
        }
    }
    mbedtls_pem_free(&pem);
    return rc;
}

time_t hub_devca_time(const mbedtls_x509_time *t)
{
    struct tm tm = {0};
    tm.tm_year = t->year - 1900;
    tm.tm_mon = t->mon - 1;
    tm.tm_mday = t->day;
    tm.tm_hour = t->hour;
    tm.tm_min = t->min;
    tm.tm_sec = t->sec;
    return timegm(&tm);
}

static int check_key(const mbedtls_pk_context *pk, struct hub_devca_why *why)
{
    size_t bits = mbedtls_pk_get_bitlen(pk);
    switch (mbedtls_pk_get_type(pk)) {
    case MBEDTLS_PK_ECKEY: {
        mbedtls_ecp_group_id id = mbedtls_pk_ec(*pk)->grp.id;
        if (id == MBEDTLS_ECP_DP_SECP256R1 || id == MBEDTLS_ECP_DP_SECP384R1)
            return 0;
        return refuse(why, "ca_key_not_allowed", "EC curve not accepted; use P-256 or P-384");
    }
    case MBEDTLS_PK_RSA:
        if (bits >= 2048 && bits <= 8192)
            return 0;
        return refuse(why, "ca_key_not_allowed", "RSA key of %zu bits; 2048 to 8192 accepted",
                      bits);
    default:
        return refuse(why, "ca_key_not_allowed", "key algorithm %s not accepted",
                      mbedtls_pk_get_name(pk));
    }
}

int hub_devca_check_ca(const mbedtls_x509_crt *ca, time_t now, struct hub_devca_why *why)
{
    if (!(ca->ext_types & MBEDTLS_X509_EXT_BASIC_CONSTRAINTS) || !ca->ca_istrue)
        return refuse(why, "ca_not_ca",
                      "the certificate is not a CA: basicConstraints cA=TRUE is required");
    /* RFC 5280 §4.2.1.3 and §4.2.1.9: a conforming CA certificate whose key verifies
     * certificate signatures MUST carry keyUsage with keyCertSign. Path validation
     * (§6.1.4 (n)) only checks the bit when the extension is present; registration is
     * stricter and requires the extension. */
    if (!(ca->ext_types & MBEDTLS_X509_EXT_KEY_USAGE))
        return refuse(why, "ca_no_keycertsign",
                      "the CA certificate has no keyUsage extension (keyCertSign required)");
    if (!(ca->key_usage & MBEDTLS_X509_KU_KEY_CERT_SIGN))
        return refuse(why, "ca_no_keycertsign", "the CA certificate's keyUsage lacks keyCertSign");
    if (now < hub_devca_time(&ca->valid_from))
        return refuse(why, "ca_not_yet_valid", "the CA certificate is not valid yet");
    if (now > hub_devca_time(&ca->valid_to))
        return refuse(why, "ca_expired", "the CA certificate has expired");
    return check_key(&ca->pk, why);
}

/* Verifies the signature over tbs (hash md, algorithm pk_type/opts) with key. */
static int verify_sig(const mbedtls_pk_context *key, mbedtls_md_type_t md_type,
                      mbedtls_pk_type_t pk_type, const void *opts, const mbedtls_x509_buf *tbs,
                      const mbedtls_x509_buf *sig)
{
    unsigned char hash[MBEDTLS_MD_MAX_SIZE];
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(md_type);
    if (md == NULL || mbedtls_md(md, tbs->p, tbs->len, hash) != 0)
        return -1;
    return mbedtls_pk_verify_ext(pk_type, opts, (mbedtls_pk_context *)key, md_type, hash,
                                 mbedtls_md_get_size(md), sig->p, sig->len);
}

int hub_devca_check_verification(const mbedtls_x509_crt *ca, const mbedtls_x509_crt *v, time_t now,
                                 char cn[65], struct hub_devca_why *why)
{
    char name[256] = "";
    const mbedtls_x509_name *n;
    for (n = &v->subject; n != NULL; n = n->next) {
        if (n->oid.p != NULL && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) {
            size_t len = n->val.len < sizeof name - 1 ? n->val.len : sizeof name - 1;
            memcpy(name, n->val.p, len);
            name[len] = 0;
            break;
        }
    }
    cn[0] = 0;
    size_t len = strlen(name);
    int hex = len == 64;
    for (size_t i = 0; hex && i < len; i++)
        hex = (name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f');
    if (!hex)
        return refuse(why, "verification_code_unknown",
                      "the verification certificate's CN is not a registration code");
    memcpy(cn, name, 65);
    if (verify_sig(&ca->pk, v->sig_md, v->sig_pk, v->sig_opts, &v->tbs, &v->sig) != 0)
        return refuse(why, "verification_signature_invalid",
                      "the verification certificate is not signed by the CA certificate's key");
    if (now > hub_devca_time(&v->valid_to))
        return refuse(why, "verification_expired", "the verification certificate has expired");
    if (now < hub_devca_time(&v->valid_from))
        return refuse(why, "verification_not_yet_valid",
                      "the verification certificate is not valid yet");
    return 0;
}

int hub_devca_fingerprint(const mbedtls_x509_crt *crt, char hex[65])
{
    uint8_t sum[32];
    if (mbedtls_sha256_ret(crt->raw.p, crt->raw.len, sum, 0) != 0)
        return HUB_ECRYPTO;
    hub_hex_lower(sum, sizeof sum, hex);
    return 0;
}

void hub_devca_subject(const mbedtls_x509_crt *crt, char *out, size_t cap)
{
    if (mbedtls_x509_dn_gets(out, cap, &crt->subject) < 0 && cap > 0)
        out[0] = 0;
}

/* Finds cRLNumber in the raw crlExtensions and writes it in decimal. Returns 0 or -1. */
static int crl_number(const mbedtls_x509_buf *ext, char *out, size_t cap)
{
    unsigned char *p = ext->p, *end;
    size_t len;
    if (p == NULL || ext->len == 0)
        return -1;
    end = p + ext->len;
    if (*p == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED) &&
        mbedtls_asn1_get_tag(&p, end, &len,
                             MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED) != 0)
        return -1;
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
        return -1;
    end = p + len;
    while (p < end) {
        unsigned char *next;
        size_t olen, vlen;
        int critical = 0;
        if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
            return -1;
        next = p + len;
        if (mbedtls_asn1_get_tag(&p, next, &olen, MBEDTLS_ASN1_OID) != 0)
            return -1;
        unsigned char *oid = p;
        p += olen;
        if (mbedtls_asn1_get_bool(&p, next, &critical) != 0 && p < next &&
            *p == MBEDTLS_ASN1_BOOLEAN)
            return -1;
        if (mbedtls_asn1_get_tag(&p, next, &vlen, MBEDTLS_ASN1_OCTET_STRING) != 0)
            return -1;
        if (olen == sizeof oid_crl_number && memcmp(oid, oid_crl_number, olen) == 0) {
            mbedtls_mpi n;
            size_t written;
            mbedtls_mpi_init(&n);
            int ret = vlen > 23 ? -1 : mbedtls_asn1_get_mpi(&p, p + vlen, &n);
            if (ret == 0 && mbedtls_mpi_cmp_int(&n, 0) < 0)
                ret = -1;
            if (ret == 0)
                ret = mbedtls_mpi_write_string(&n, 10, out, cap, &written);
            mbedtls_mpi_free(&n);
            return ret == 0 ? 0 : -1;
        }
        p = next;
    }
    return -1;
}

int hub_devca_crl_check(const mbedtls_x509_crt *ca, const uint8_t *data, size_t len, time_t now,
                        struct hub_devca_crl *info, hub_buf_t *der_out, struct hub_devca_why *why)
{
    mbedtls_pem_context pem;
    mbedtls_x509_crl crl;
    const uint8_t *der = data;
    size_t der_len = len;
    int rc = 0;
    memset(info, 0, sizeof *info);
    if (len == 0 || len > HUB_DEVCA_CRL_MAX)
        return refuse(why, "crl_malformed", "a CRL of 1 to %d bytes is expected",
                      HUB_DEVCA_CRL_MAX);
    mbedtls_pem_init(&pem);
    mbedtls_x509_crl_init(&crl);
    if (data[0] != 0x30) {
        rc = pem_one(data, len, "X509 CRL", &pem, &der, &der_len);
        if (rc == HUB_EINVAL)
            rc = refuse(why, "crl_malformed", "expected DER or exactly one PEM X509 CRL block");
    }
    if (rc == 0) {
        int ret = mbedtls_x509_crl_parse_der(&crl, der, der_len);
        if (ret != 0) {
            char msg[128];
            mbedtls_strerror(ret, msg, sizeof msg);
            rc = refuse(why, "crl_malformed", "the CRL does not parse (%s)", msg);
        } else if (crl.raw.len != der_len || crl.next != NULL) {
            rc = refuse(why, "crl_malformed", "bytes follow the CRL's DER encoding");
        }
    }
    if (rc != 0)
        goto out;
    if (crl.issuer_raw.len != ca->subject_raw.len ||
        memcmp(crl.issuer_raw.p, ca->subject_raw.p, crl.issuer_raw.len) != 0) {
        rc = refuse(why, "crl_issuer_mismatch", "the CRL's issuer is not the CA's subject");
        goto out;
    }
    if (verify_sig(&ca->pk, crl.sig_md, crl.sig_pk, crl.sig_opts, &crl.tbs, &crl.sig) != 0) {
        rc = refuse(why, "crl_signature_invalid", "the CRL is not signed by the CA's key");
        goto out;
    }
    if ((ca->ext_types & MBEDTLS_X509_EXT_KEY_USAGE) &&
        !(ca->key_usage & MBEDTLS_X509_KU_CRL_SIGN)) {
        rc = refuse(why, "ca_no_crlsign", "the CA certificate's keyUsage lacks cRLSign");
        goto out;
    }
    if (crl.version != 2 || crl_number(&crl.crl_ext, info->number, sizeof info->number) != 0) {
        rc = refuse(why, "crl_number_missing", "the CRL carries no cRLNumber extension (v2)");
        goto out;
    }
    info->this_update = hub_devca_time(&crl.this_update);
    info->next_update = crl.next_update.year != 0 ? hub_devca_time(&crl.next_update) : 0;
    if (info->next_update != 0 && info->next_update < now) {
        rc = refuse(why, "crl_expired", "the CRL's nextUpdate has passed");
        goto out;
    }
    for (const mbedtls_x509_crl_entry *e = &crl.entry; e != NULL && e->raw.len > 0; e = e->next)
        info->entries++;
    rc = hub_buf_append(der_out, der, der_len);
out:
    mbedtls_x509_crl_free(&crl);
    mbedtls_pem_free(&pem);
    return rc;
}
