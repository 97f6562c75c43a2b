/* Randomness, constant-time comparison, wiping and hex for secrets. */
#ifndef HUB_UTIL_SECURE_H
#define HUB_UTIL_SECURE_H

#include <stddef.h>
#include <stdint.h>

/* Fills buf with len bytes from the kernel CSPRNG (getrandom). Returns 0 or HUB_EIO. */
int hub_random(void *buf, size_t len);
/* mbedTLS-style f_rng callback backed by hub_random; ctx is unused. Thread-safe. */
int hub_rng_cb(void *ctx, unsigned char *out, size_t len);
/* Compares n bytes in time independent of their contents. Returns 1 if equal, else 0. */
int hub_ct_equal(const void *a, const void *b, size_t n);
/* Zeroes memory in a way the compiler may not remove. */
void hub_wipe(void *p, size_t n);
/* Writes 2*len upper-case hex digits and a NUL to out (size >= 2*len+1). */
void hub_hex_upper(const uint8_t *in, size_t len, char *out);
/* Writes 2*len lower-case hex digits and a NUL to out (size >= 2*len+1). */
void hub_hex_lower(const uint8_t *in, size_t len, char *out);
/* Decodes hex (either case) into out of size outcap; returns bytes written or HUB_EINVAL. */
int hub_hex_decode(const char *hex, uint8_t *out, size_t outcap);

#endif
