/* SipHash-1-3 (Aumasson and Bernstein), a keyed hash for the tables whose keys a client
 * chooses (a session's filters, retained topics): without the key, which is random per
 * table, colliding keys cannot be computed in advance. */
#ifndef HUB_UTIL_SIPHASH_H
#define HUB_UTIL_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

struct hub_sipkey {
    uint64_t k0, k1;
};

/* A random key (the kernel CSPRNG; an address-derived one if that fails). */
void hub_sipkey_init(struct hub_sipkey *k);
uint64_t hub_siphash(const struct hub_sipkey *k, const void *data, size_t len);

#endif
