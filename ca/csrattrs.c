/* The CSR attributes EST clients fetch before making a key (RFC 7030 §4.5.2). They mirror
 * the key policy of ca/csr.c; the SET OF curves is in DER order (shorter encoding first). */
#include "ca/csrattrs.h"

static const uint8_t CSRATTRS[] = {
    0x30, 0x31,                                                 /* CsrAttrs */
    0x30, 0x1C,                                                 /* Attribute */
    0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01,       /* id-ecPublicKey */
    0x31, 0x11,                                                 /* SET */
    0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22,                   /* secp384r1 */
    0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, /* prime256v1 */
    0x30, 0x11,                                                 /* Attribute */
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01, /* rsaEncryption */
    0x31, 0x04, 0x02, 0x02, 0x08, 0x00,                               /* SET { 2048 } */
};

const uint8_t *hub_csrattrs_der(size_t *len)
{
    *len = sizeof CSRATTRS;
    return CSRATTRS;
}
