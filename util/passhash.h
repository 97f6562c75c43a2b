/* Salted slow hashes for device, product and service secrets:
 * "pbkdf2-sha256$<iterations>$<salt base64>$<hash base64>". Secrets are 128+ bit random
 * values, so the work factor is defence in depth, kept low enough for provisioning lines. */
#ifndef HUB_UTIL_PASSHASH_H
#define HUB_UTIL_PASSHASH_H

#include <stddef.h>

#define HUB_PASSHASH_ITERATIONS 10000u
#define HUB_PASSHASH_MAX 128 /* size of a stored hash string, NUL included */

/* Hashes secret with a fresh salt into out (HUB_PASSHASH_MAX bytes). Returns 0 or HUB_E*. */
int hub_passhash_make(const char *secret, char out[HUB_PASSHASH_MAX]);
/* Returns 1 if secret matches stored (compared in constant time), 0 otherwise (also for a
 * malformed stored string). */
int hub_passhash_verify(const char *secret, const char *stored);
/* Writes a new random secret of 24 base64url characters (144 bits) and a NUL into out. */
int hub_secret_generate(char out[25]);

#endif
