/* CSR intake. mbedtls_x509_csr_parse* does not check the CSR's own signature, so proof of
 * possession is verified here by hand. A rejected CSR is the client's fault: the reason
 * goes into err for the HTTP 400 body and is logged at debug level only. */
#include "ca/csr.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>

#include "util/error.h"
#include "util/log.h"

#define CSR_MAX (64 * 1024)
#define PEM_BEGIN "-----BEGIN CERTIFICATE REQUEST-----"
#define PEM_END "-----END CERTIFICATE REQUEST-----"
#define PEM_BEGIN_NEW "-----BEGIN NEW CERTIFICATE REQUEST-----"
#define PEM_END_NEW "-----END NEW CERTIFICATE REQUEST-----"
/* id-dsa 1.2.840.10040.4.1, only used to name the refused algorithm precisely. */
static const uint8_t oid_dsa[] = {0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x38, 0x04, 0x01};

__attribute__((format(printf, 4, 5))) static int refuse(int code, char *err, size_t errlen,
                                                       const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
    hub_debug("CSR refused: %s", msg);
    return code;
}

static int contains(const uint8_t *data, size_t len, const void *needle, size_t nlen)
{
    for (size_t i = 0; nlen <= len && i <= len - nlen; i++) {
        if (memcmp(data + i, needle, nlen) == 0)
            return 1;
    }
    return 0;
}

/* Parses DER, naming the refused key algorithm when mbedTLS cannot load the key. */
static int parse_der(const uint8_t *der, size_t len, mbedtls_x509_csr *csr, char *err,
                     size_t errlen)
{
    char msg[128];
    int ret = mbedtls_x509_csr_parse_der(csr, der, len);
    if (ret == 0)
        return 0;
    if (ret == MBEDTLS_ERR_PK_UNKNOWN_PK_ALG) {
        if (contains(der, len, oid_dsa, sizeof oid_dsa))
            return refuse(HUB_EKEYPOLICY, err, errlen,
                          "DSA keys are not accepted; use EC P-256, P-384 or RSA >= 2048");
        return refuse(HUB_EKEYPOLICY, err, errlen,
                      "key algorithm not accepted; use EC P-256, P-384 or RSA >= 2048");
    }
    if (ret == MBEDTLS_ERR_PK_UNKNOWN_NAMED_CURVE)
        return refuse(HUB_EKEYPOLICY, err, errlen,
                      "EC curve not accepted; use P-256 or P-384");
    mbedtls_strerror(ret, msg, sizeof msg);
    return refuse(HUB_EBADCSR, err, errlen, "malformed certificate request (%s)", msg);
}

static int check_key_policy(mbedtls_pk_context *pk, char *err, size_t errlen)
{
    size_t bits = mbedtls_pk_get_bitlen(pk);
    switch (mbedtls_pk_get_type(pk)) {
    case MBEDTLS_PK_ECKEY: {
        mbedtls_ecp_group_id id = mbedtls_pk_ec(*pk)->grp.id;
        if (id == MBEDTLS_ECP_DP_SECP256R1 || id == MBEDTLS_ECP_DP_SECP384R1)
            return 0;
        const mbedtls_ecp_curve_info *ci = mbedtls_ecp_curve_info_from_grp_id(id);
        return refuse(HUB_EKEYPOLICY, err, errlen,
                      "EC curve %s not accepted; use P-256 or P-384",
                      ci != NULL ? ci->name : "(unknown)");
    }
    case MBEDTLS_PK_RSA:
        if (bits < 2048)
            return refuse(HUB_EKEYPOLICY, err, errlen,
                          "RSA key of %zu bits is too small (minimum 2048)", bits);
        if (bits > 8192)
            return refuse(HUB_EKEYPOLICY, err, errlen,
                          "RSA key of %zu bits is too large (maximum 8192)", bits);
        return 0;
    default:
        return refuse(HUB_EKEYPOLICY, err, errlen,
                      "key algorithm %s not accepted; use EC P-256, P-384 or RSA >= 2048",
                      mbedtls_pk_get_name(pk));
    }
}

static int check_pop(mbedtls_x509_csr *csr, char *err, size_t errlen)
{
    unsigned char hash[MBEDTLS_MD_MAX_SIZE];
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(csr->sig_md);
    if (md == NULL)
        return refuse(HUB_EBADCSR, err, errlen, "CSR signature hash algorithm not supported");
    if (mbedtls_md(md, csr->cri.p, csr->cri.len, hash) != 0)
        return refuse(HUB_EBADCSR, err, errlen, "CSR signature hash algorithm not supported");
    if (mbedtls_pk_verify_ext(csr->sig_pk, csr->sig_opts, &csr->pk, csr->sig_md, hash,
                              mbedtls_md_get_size(md), csr->sig.p, csr->sig.len) != 0)
        return refuse(HUB_EBADCSR, err, errlen,
                      "CSR signature does not verify (proof of possession failed)");
    return 0;
}

int hub_csr_load(const uint8_t *data, size_t len, mbedtls_x509_csr *csr, char *err,
                 size_t errlen)
{
    char *text = NULL;
    mbedtls_pem_context pem;
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = 0;
    if (data == NULL || len == 0)
        return refuse(HUB_EBADCSR, err, errlen, "empty certificate request");
    if (len > CSR_MAX)
        return refuse(HUB_EBADCSR, err, errlen, "certificate request larger than 64 KiB");

    mbedtls_pem_init(&pem);
    if (data[0] == 0x30) {
        rc = parse_der(data, len, csr, err, errlen);
    } else if (contains(data, len, PEM_BEGIN, strlen(PEM_BEGIN)) ||
               contains(data, len, PEM_BEGIN_NEW, strlen(PEM_BEGIN_NEW))) {
        size_t used;
        int new_label = !contains(data, len, PEM_BEGIN, strlen(PEM_BEGIN));
        /* mbedtls_pem_read_buffer needs a NUL-terminated string. */
        if ((text = malloc(len + 1)) == NULL) {
            rc = HUB_ENOMEM;
            goto out;
        }
        memcpy(text, data, len);
        text[len] = 0;
        int ret = mbedtls_pem_read_buffer(&pem, new_label ? PEM_BEGIN_NEW : PEM_BEGIN,
                                          new_label ? PEM_END_NEW : PEM_END,
                                          (const unsigned char *)text, NULL, 0, &used);
        if (ret != 0) {
            char msg[128];
            mbedtls_strerror(ret, msg, sizeof msg);
            rc = refuse(HUB_EBADCSR, err, errlen, "bad PEM certificate request (%s)", msg);
            goto out;
        }
        rc = parse_der(pem.buf, pem.buflen, csr, err, errlen);
    } else {
        rc = refuse(HUB_EBADCSR, err, errlen, "not a PEM or DER certificate request");
    }
    if (rc == 0)
        rc = check_key_policy(&csr->pk, err, errlen);
    if (rc == 0)
        rc = check_pop(csr, err, errlen);
out:
    mbedtls_pem_free(&pem);
    free(text);
    return rc;
}
