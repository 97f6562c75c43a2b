/* SipHash-1-3: one compression round per 8-byte word, three finalisation rounds (the
 * variant hash tables use; the reference is https://github.com/veorq/SipHash). */
#include "util/siphash.h"

#include "util/secure.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                                               \
    do {                                                                                       \
        v0 += v1;                                                                              \
        v1 = ROTL(v1, 13);                                                                     \
        v1 ^= v0;                                                                              \
        v0 = ROTL(v0, 32);                                                                     \
        v2 += v3;                                                                              \
        v3 = ROTL(v3, 16);                                                                     \
        v3 ^= v2;                                                                              \
        v0 += v3;                                                                              \
        v3 = ROTL(v3, 21);                                                                     \
        v3 ^= v0;                                                                              \
        v2 += v1;                                                                              \
        v1 = ROTL(v1, 17);                                                                     \
        v1 ^= v2;                                                                              \
        v2 = ROTL(v2, 32);                                                                     \
    } while (0)

void hub_sipkey_init(struct hub_sipkey *k)
{
    if (hub_random(k, sizeof *k) == 0)
        return;
    /* No getrandom: address-space randomisation still keeps it from being known. */
    k->k0 = (uint64_t)(uintptr_t)k * 0x9E3779B97F4A7C15ull;
    k->k1 = (uint64_t)(uintptr_t)&hub_sipkey_init * 0xC2B2AE3D27D4EB4Full;
}

uint64_t hub_siphash(const struct hub_sipkey *k, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t v0 = 0x736f6d6570736575ull ^ k->k0, v1 = 0x646f72616e646f6dull ^ k->k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k->k0, v3 = 0x7465646279746573ull ^ k->k1;
    uint64_t m, b = (uint64_t)len << 56;
    size_t i;
    for (i = 0; i + 8 <= len; i += 8) {
        m = 0;
        for (int j = 7; j >= 0; j--) /* little-endian, whatever the host */
            m = m << 8 | p[i + (size_t)j];
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; i + j < len; j++)
        b |= (uint64_t)p[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}
