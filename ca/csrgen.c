/* PKCS#10 writer. CertificationRequestInfo ::= SEQUENCE { version 0, subject Name,
 * subjectPKInfo, attributes [0] IMPLICIT SET OF Attribute (empty) } is written backwards
 * with the ca/der helpers, then wrapped and signed by hub_der_sign_wrap. */
#include "ca/csrgen.h"

#include <string.h>

#include "ca/der.h"
#include "ca/pem.h"
#include "util/error.h"
#include "util/log.h"

#define SEQ (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)
#define CTX_CONS(n) (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | (n))

struct cri_ctx {
    mbedtls_pk_context *key;
    const char *cn;
};

static int write_cri(unsigned char **p, unsigned char *start, void *arg)
{
    struct cri_ctx *c = arg;
    size_t len = 0;
    /* attributes: [0] with no content */
    HUB_DER_CHK(len, mbedtls_asn1_write_len(p, start, 0));
    HUB_DER_CHK(len, mbedtls_asn1_write_tag(p, start, CTX_CONS(0)));
    HUB_DER_CHK(len, hub_der_write_spki(p, start, c->key));
    HUB_DER_CHK(len, hub_der_write_name(p, start, c->cn, NULL));
    HUB_DER_CHK(len, mbedtls_asn1_write_int(p, start, 0));
    HUB_DER_CHK(len, mbedtls_asn1_write_len(p, start, len));
    HUB_DER_CHK(len, mbedtls_asn1_write_tag(p, start, SEQ));
    return (int)len;
}

int hub_csrgen_write_der(mbedtls_pk_context *key, const char *cn, hub_buf_t *out)
{
    struct hub_signer s = HUB_SIGNER_MEM(key);
    return hub_csrgen_write_der_by(&s, cn, out);
}

int hub_csrgen_write_der_by(const struct hub_signer *signer, const char *cn, hub_buf_t *out)
{
    mbedtls_pk_context *key = signer->pk;
    struct hub_der_sigalg alg;
    struct cri_ctx c = {key, cn};
    hub_buf_t cri = HUB_BUF_INIT;
    int rc;

    if (cn == NULL || cn[0] == 0 || strlen(cn) > 64) {
        hub_error("certificate request: the common name must have 1 to 64 characters");
        return HUB_EINVAL;
    }
    if ((rc = hub_der_sigalg(key, &alg)) != 0)
        return rc;
    rc = hub_der_build(write_cri, &c, 2048, "CertificationRequestInfo", &cri);
    if (rc == 0)
        rc = hub_signer_sign_wrap(signer, &alg, cri.data, cri.len, "certificate request",
                                  out);
    hub_buf_free(&cri);
    return rc;
}

int hub_csrgen_write_pem(mbedtls_pk_context *key, const char *cn, hub_buf_t *out)
{
    hub_buf_t der = HUB_BUF_INIT;
    int rc = hub_csrgen_write_der(key, cn, &der);
    if (rc == 0)
        rc = hub_pem_encode("CERTIFICATE REQUEST", der.data, der.len, out);
    hub_buf_free(&der);
    return rc;
}
