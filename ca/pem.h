/* PEM armour for DER objects. */
#ifndef HUB_CA_PEM_H
#define HUB_CA_PEM_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Appends "-----BEGIN <label>-----", base64 in 64-column lines and the END line to out. */
int hub_pem_encode(const char *label, const uint8_t *der, size_t len, hub_buf_t *out);

#endif
