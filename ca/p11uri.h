/* PKCS#11 URIs (RFC 7512) as ca_key_store names a key: "pkcs11:token=hub;object=issuing-ca
 * ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/iothub/pin". */
#ifndef HUB_CA_P11URI_H
#define HUB_CA_P11URI_H

#include <stddef.h>
#include <stdint.h>

#define HUB_P11_URI_MAX 1024

/* The parts of a URI the hub uses. Strings are percent-decoded, "" when absent. */
struct hub_p11_uri {
    char token[33], manufacturer[33], serial[17], model[17]; /* match CK_TOKEN_INFO */
    char object[128];                                        /* CKA_LABEL */
    uint8_t id[64];                                          /* CKA_ID */
    size_t id_len;
    char module_path[512];
    char pin_source[512]; /* "file:PATH" or PATH */
    char pin_value[128];
};

/* Parses a "pkcs11:" URI of at most HUB_P11_URI_MAX bytes. Unknown or unsupported
 * attributes (slot-*, library-*, module-name), a type other than "private", a duplicate, or
 * a URI naming neither object nor id are refused. On error writes the reason into err
 * (never a PIN). Returns 0 or HUB_EINVAL. */
int hub_p11_uri_parse(const char *s, struct hub_p11_uri *out, char *err, size_t errlen);
/* Copies s without its pin-value attribute into out: what may be logged or stored.
 * Returns 0 or HUB_ERANGE. */
int hub_p11_uri_redact(const char *s, char *out, size_t outlen);

#endif
