/* The EST CSR attributes (RFC 7030 §4.5): the key types ca/csr.c accepts, as DER. */
#ifndef HUB_CA_CSRATTRS_H
#define HUB_CA_CSRATTRS_H

#include <stddef.h>
#include <stdint.h>

/* CsrAttrs ::= SEQUENCE OF AttrOrOID, constant:
 *   Attribute { id-ecPublicKey, SET { secp384r1, secp256r1 } }  -- EC P-256 or P-384
 *   Attribute { rsaEncryption, SET { INTEGER 2048 } }            -- RSA, at least 2048 bits
 * Returns the static bytes; *len gets their length. */
const uint8_t *hub_csrattrs_der(size_t *len);

#endif
