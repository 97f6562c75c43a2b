/* The set of revoked certificate serials checked on every TLS handshake: an open-addressing
 * hash set of serials (1..20 bytes, leading zero bytes ignored) read by several event-loop
 * threads while one thread updates it. Readers take a read lock for ~tens of ns; a writer
 * builds grown or replacement tables outside the lock and only swaps a pointer under it. */
#ifndef HUB_NET_REVSET_H
#define HUB_NET_REVSET_H

#include <stddef.h>
#include <stdint.h>

#define HUB_REVSET_MAX_SERIAL 20 /* RFC 5280 §4.1.2.2 */

typedef struct hub_revset hub_revset_t;

/* Creates an empty set, owned by the caller (hub_revset_free). NULL when out of memory. */
hub_revset_t *hub_revset_new(void);
/* Frees the set; no thread may still be using it. NULL is accepted. */
void hub_revset_free(hub_revset_t *s);
/* Adds a serial (DER INTEGER content bytes, as mbedtls_x509_crt.serial holds them). Returns
 * 0 (also when already present), HUB_ERANGE (longer than 20 bytes) or HUB_ENOMEM. */
int hub_revset_add(hub_revset_t *s, const uint8_t *serial, size_t len);
/* Adds a serial given as hex (either case, as the database stores it). 0 or a HUB_E* code. */
int hub_revset_add_hex(hub_revset_t *s, const char *hex);
/* Returns 1 if the serial is in the set, else 0. Safe from any thread, never blocks long. */
int hub_revset_contains(hub_revset_t *s, const uint8_t *serial, size_t len);
/* Replaces the whole contents of s by those of fresh (loaded privately, e.g. after a
 * database reconnect) in one atomic swap, and frees fresh. */
void hub_revset_replace_all(hub_revset_t *s, hub_revset_t *fresh);
/* Returns the number of serials in the set. */
size_t hub_revset_count(hub_revset_t *s);

#endif
