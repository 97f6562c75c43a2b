/* Degenerate "certs-only" SignedData (RFC 5652 §5, RFC 7030 §4.1.3). The certificates
 * SET OF is sorted by encoding as DER requires (X.690 §11.6), so the order in the bundle
 * need not be the caller's order. */
#include "ca/pkcs7.h"

#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1write.h>

#include "ca/der.h"
#include "util/error.h"

#define SEQ (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)
#define SET (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SET)
#define CTX0 (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 0)
#define OID_PKCS7_DATA "\x2A\x86\x48\x86\xF7\x0D\x01\x07\x01"        /* 1.2.840.113549.1.7.1 */
#define OID_PKCS7_SIGNED_DATA "\x2A\x86\x48\x86\xF7\x0D\x01\x07\x02" /* 1.2.840.113549.1.7.2 */

struct item {
    const uint8_t *der;
    size_t len;
};

struct p7_ctx {
    struct item *items;
    size_t n;
};

static int cmp_item(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->der, y->der, m);
    if (c != 0)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

static int write_hdr(unsigned char **p, unsigned char *start, size_t len, unsigned char tag)
{
    size_t n = 0;
    HUB_DER_CHK(n, mbedtls_asn1_write_len(p, start, len));
    HUB_DER_CHK(n, mbedtls_asn1_write_tag(p, start, tag));
    return (int)n;
}

static int write_p7(unsigned char **p, unsigned char *start, void *arg)
{
    const struct p7_ctx *c = arg;
    size_t len = 0, certs = 0, eci = 0;

    HUB_DER_CHK(len, write_hdr(p, start, 0, SET)); /* signerInfos: none */
    if (c->n > 0) {
        for (size_t i = c->n; i-- > 0;)
            HUB_DER_CHK(certs, mbedtls_asn1_write_raw_buffer(p, start, c->items[i].der,
                                                             c->items[i].len));
        HUB_DER_CHK(certs, write_hdr(p, start, certs, CTX0)); /* [0] IMPLICIT SET OF */
        len += certs;
    }
    HUB_DER_CHK(eci, mbedtls_asn1_write_oid(p, start, OID_PKCS7_DATA,
                                            MBEDTLS_OID_SIZE(OID_PKCS7_DATA)));
    HUB_DER_CHK(eci, write_hdr(p, start, eci, SEQ)); /* encapContentInfo, no content */
    len += eci;
    HUB_DER_CHK(len, write_hdr(p, start, 0, SET));    /* digestAlgorithms: none */
    HUB_DER_CHK(len, mbedtls_asn1_write_int(p, start, 1));
    HUB_DER_CHK(len, write_hdr(p, start, len, SEQ));  /* SignedData */
    HUB_DER_CHK(len, write_hdr(p, start, len, CTX0)); /* content [0] EXPLICIT */
    HUB_DER_CHK(len, mbedtls_asn1_write_oid(p, start, OID_PKCS7_SIGNED_DATA,
                                            MBEDTLS_OID_SIZE(OID_PKCS7_SIGNED_DATA)));
    HUB_DER_CHK(len, write_hdr(p, start, len, SEQ)); /* ContentInfo */
    return (int)len;
}

int hub_pkcs7_certs_only(const uint8_t *const *ders, const size_t *lens, size_t n,
                         hub_buf_t *out)
{
    struct p7_ctx c = {NULL, n};
    size_t total = 256;

    if (n > 0 && (ders == NULL || lens == NULL))
        return HUB_EINVAL;
    if (n > 0 && (c.items = calloc(n, sizeof *c.items)) == NULL)
        return HUB_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        c.items[i] = (struct item){ders[i], lens[i]};
        total += lens[i];
    }
    if (n > 1)
        qsort(c.items, n, sizeof *c.items, cmp_item);
    int rc = hub_der_build(write_p7, &c, total, "PKCS#7 bundle", out);
    free(c.items);
    return rc;
}
