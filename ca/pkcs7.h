/* PKCS#7 / CMS "certs-only" SignedData bundle (the .p7b format, RFC 5652 / RFC 7030 §4.1.3). */
#ifndef HUB_CA_PKCS7_H
#define HUB_CA_PKCS7_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Appends a degenerate SignedData holding the n DER certificates to out. The SET OF is
 * sorted by encoding (DER), so the bundle order may differ from the input order. */
int hub_pkcs7_certs_only(const uint8_t *const *ders, const size_t *lens, size_t n,
                         hub_buf_t *out);

#endif
