/* Base64 (RFC 4648 §4, the standard alphabet with padding) as EST (RFC 7030) carries it:
 * decoding is strict about the alphabet, padding and unused bits but lets line breaks and
 * spaces through, as `openssl base64` wraps its output; encoding wraps at 64 columns. */
#ifndef HUB_UTIL_BASE64_H
#define HUB_UTIL_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Decodes len bytes of text, appending the bytes to out. Space, tab, CR and LF are skipped
 * anywhere; anything else outside the alphabet, '=' other than one or two at the end, a
 * length (without whitespace) not a multiple of 4, nonzero unused bits or an empty input
 * are refused. Returns 0, HUB_EINVAL (nothing appended) or HUB_ENOMEM. */
int hub_base64_decode(const char *text, size_t len, hub_buf_t *out);
/* Appends the base64 of data to out, a line feed after every 64 characters and at the end
 * (NUL kept past len). Returns 0 or HUB_ENOMEM. */
int hub_base64_encode(const uint8_t *data, size_t len, hub_buf_t *out);

#endif
