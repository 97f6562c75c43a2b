/* Unit tests for net/revset.c: membership, normalisation, 100k entries, replace_all, and a
 * concurrent smoke test (readers never miss a serial that was present before they started). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "net/revset.h"
#include "tests/unit/harness.h"
#include "util/error.h"

/* A deterministic 16-byte serial for index i (first byte 0x40..0x7f like the CA's). */
static void serial_of(uint32_t i, uint32_t salt, uint8_t out[16])
{
    uint64_t x = ((uint64_t)salt << 32 | i) * 0x9E3779B97F4A7C15ULL;
    for (int k = 0; k < 16; k++) {
        x ^= x >> 29;
        x *= 0xBF58476D1CE4E5B9ULL;
        out[k] = (uint8_t)(x >> 56);
    }
    out[0] = (uint8_t)((out[0] & 0x7f) | 0x40);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_basic(void)
{
    hub_revset_t *s = hub_revset_new();
    CHECK(s != NULL);
    uint8_t a[] = {0x41, 0x02, 0x03}, b[] = {0x00, 0x00, 0x41, 0x02, 0x03}, c[] = {0x41, 0x02};
    CHECK_EQ(hub_revset_contains(s, a, sizeof a), 0);
    CHECK_EQ(hub_revset_add(s, a, sizeof a), 0);
    CHECK_EQ(hub_revset_add(s, a, sizeof a), 0); /* idempotent */
    CHECK_EQ(hub_revset_count(s), 1);
    CHECK_EQ(hub_revset_contains(s, a, sizeof a), 1);
    CHECK_EQ(hub_revset_contains(s, b, sizeof b), 1); /* leading zeros do not matter */
    CHECK_EQ(hub_revset_contains(s, c, sizeof c), 0);
    CHECK_EQ(hub_revset_contains(s, a, 0), 0);

    CHECK_EQ(hub_revset_add_hex(s, "7f00aa"), 0);
    uint8_t d[] = {0x7f, 0x00, 0xaa};
    CHECK_EQ(hub_revset_contains(s, d, sizeof d), 1);
    CHECK_EQ(hub_revset_add_hex(s, "ABC"), 0); /* odd: 0x0A 0xBC */
    uint8_t e[] = {0x0a, 0xbc};
    CHECK_EQ(hub_revset_contains(s, e, sizeof e), 1);
    CHECK_EQ(hub_revset_add_hex(s, "zz"), HUB_EINVAL);
    CHECK_EQ(hub_revset_add_hex(s, ""), HUB_EINVAL);

    uint8_t max[20], big[21];
    memset(max, 0x55, sizeof max);
    memset(big, 0x55, sizeof big);
    CHECK_EQ(hub_revset_add(s, max, sizeof max), 0);
    CHECK_EQ(hub_revset_contains(s, max, sizeof max), 1);
    CHECK_EQ(hub_revset_add(s, big, sizeof big), HUB_ERANGE);
    CHECK_EQ(hub_revset_contains(s, big, sizeof big), 0);
    big[0] = 0; /* 21 bytes with a leading zero is a 20-byte serial */
    CHECK_EQ(hub_revset_contains(s, big, sizeof big), 1);
    CHECK_EQ(hub_revset_count(s), 4);
    hub_revset_free(s);
}

static void test_100k(void)
{
    enum { N = 100000 };
    hub_revset_t *s = hub_revset_new();
    uint8_t k[16];
    double t0 = now_s();
    for (uint32_t i = 0; i < N; i++) {
        serial_of(i, 1, k);
        CHECK_EQ(hub_revset_add(s, k, sizeof k), 0);
    }
    double t1 = now_s();
    CHECK_EQ(hub_revset_count(s), N);
    static uint8_t keys[2 * N][16]; /* precomputed: time the lookups only */
    for (uint32_t i = 0; i < N; i++) {
        serial_of(i, 1, keys[2 * i]);
        serial_of(i, 2, keys[2 * i + 1]);
    }
    int hits = 0, misses = 0;
    t1 = now_s();
    for (uint32_t i = 0; i < N; i++) {
        hits += hub_revset_contains(s, keys[2 * i], 16);
        misses += !hub_revset_contains(s, keys[2 * i + 1], 16);
    }
    double t2 = now_s();
    CHECK_EQ(hits, N);
    CHECK_EQ(misses, N);
    double ns = (t2 - t1) / (2.0 * N) * 1e9;
    fprintf(stderr, "  100k: add %.0f ns/op, contains %.0f ns/op\n", (t1 - t0) / N * 1e9, ns);
    CHECK(ns < 2000); /* tens of ns expected; generous for sanitizers and busy CI */
    hub_revset_free(s);
}

static void test_replace_all(void)
{
    hub_revset_t *s = hub_revset_new(), *fresh = hub_revset_new();
    uint8_t k[16];
    for (uint32_t i = 0; i < 1000; i++) {
        serial_of(i, 3, k);
        hub_revset_add(s, k, sizeof k);
    }
    for (uint32_t i = 0; i < 10; i++) {
        serial_of(i, 4, k);
        hub_revset_add(fresh, k, sizeof k);
    }
    hub_revset_replace_all(s, fresh); /* frees fresh */
    CHECK_EQ(hub_revset_count(s), 10);
    serial_of(5, 4, k);
    CHECK_EQ(hub_revset_contains(s, k, sizeof k), 1);
    serial_of(5, 3, k);
    CHECK_EQ(hub_revset_contains(s, k, sizeof k), 0);
    hub_revset_free(s);
}

/* Concurrency smoke test: the base serials are present throughout (every replacement set
 * contains them), absent ones never appear; a writer adds and replaces meanwhile. */
enum { BASE = 2000, READERS = 4 };
static hub_revset_t *shared;
static atomic_int stop;
static atomic_long reader_errors, reader_ops;

static void *reader(void *arg)
{
    uint8_t k[16];
    long ops = 0, errors = 0;
    uint32_t i = (uint32_t)(uintptr_t)arg;
    while (!atomic_load(&stop)) {
        i = (i + 7) % BASE;
        serial_of(i, 5, k);
        errors += !hub_revset_contains(shared, k, sizeof k);
        serial_of(i, 6, k);
        errors += hub_revset_contains(shared, k, sizeof k);
        ops += 2;
    }
    atomic_fetch_add(&reader_errors, errors);
    atomic_fetch_add(&reader_ops, ops);
    return NULL;
}

static void test_concurrent(void)
{
    uint8_t k[16];
    shared = hub_revset_new();
    for (uint32_t i = 0; i < BASE; i++) {
        serial_of(i, 5, k);
        hub_revset_add(shared, k, sizeof k);
    }
    pthread_t th[READERS];
    for (uintptr_t r = 0; r < READERS; r++)
        pthread_create(&th[r], NULL, reader, (void *)r);
    uint32_t extra = 0;
    for (int round = 0; round < 20; round++) {
        for (int j = 0; j < 5000; j++, extra++) { /* forces several grows */
            serial_of(extra, 7, k);
            CHECK_EQ(hub_revset_add(shared, k, sizeof k), 0);
        }
        hub_revset_t *fresh = hub_revset_new();
        for (uint32_t i = 0; i < BASE; i++) {
            serial_of(i, 5, k);
            hub_revset_add(fresh, k, sizeof k);
        }
        hub_revset_replace_all(shared, fresh);
        CHECK_EQ(hub_revset_count(shared), BASE);
    }
    atomic_store(&stop, 1);
    for (int r = 0; r < READERS; r++)
        pthread_join(th[r], NULL);
    CHECK_EQ(atomic_load(&reader_errors), 0);
    CHECK(atomic_load(&reader_ops) > 0);
    hub_revset_free(shared);
}

int main(void)
{
    RUN(test_basic);
    RUN(test_100k);
    RUN(test_replace_all);
    RUN(test_concurrent);
    HARNESS_EXIT();
}
