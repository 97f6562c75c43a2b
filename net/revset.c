/* Revoked-serial set. Design:
 *   - a table is a power-of-two array of 21-byte slots (length byte, 0 = empty, then the
 *     serial without leading zero bytes), linear probing, load factor <= 3/4, hashed with a
 *     per-table random seed;
 *   - readers hold the rwlock in read mode for one probe sequence;
 *   - writers are serialised by wmu. Being the only mutator, a writer reads the table
 *     without the rwlock, builds any grown or replacement table with no lock held, and takes
 *     the rwlock in write mode only to store one slot or swap the table pointer. Readers are
 *     therefore never stalled by a rehash, only by a pointer store. */
#include "net/revset.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/secure.h"

struct slot {
    uint8_t len;
    uint8_t key[HUB_REVSET_MAX_SERIAL];
};

struct table {
    size_t cap; /* power of two */
    size_t count;
    uint64_t seed;
    struct slot slots[];
};

struct hub_revset {
    pthread_rwlock_t lock; /* guards t and the slots for readers */
    pthread_mutex_t wmu;   /* serialises writers */
    struct table *t;
};

#define MIN_CAP 64

/* Strips leading zero bytes (keeping one byte for the value 0). HUB_ERANGE if too long. */
static int normalize(const uint8_t **p, size_t *len)
{
    while (*len > 1 && (*p)[0] == 0) {
        (*p)++;
        (*len)--;
    }
    if (*len == 0 || *len > HUB_REVSET_MAX_SERIAL)
        return HUB_ERANGE;
    return 0;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t hash(uint64_t seed, const uint8_t *k, size_t len)
{
    uint64_t h = seed ^ (len * 0x9E3779B97F4A7C15ULL);
    for (size_t i = 0; i < len; i += 8) {
        uint64_t w = 0;
        size_t n = len - i < 8 ? len - i : 8;
        memcpy(&w, k + i, n);
        h = mix(h ^ w);
    }
    return h;
}

static struct table *table_new(size_t cap, uint64_t seed)
{
    struct table *t = calloc(1, sizeof *t + cap * sizeof(struct slot));
    if (t == NULL)
        return NULL;
    t->cap = cap;
    t->seed = seed;
    return t;
}

/* Returns the slot holding the key, or the empty slot where it would go. */
static struct slot *probe(const struct table *t, const uint8_t *k, size_t len)
{
    size_t mask = t->cap - 1, i = (size_t)hash(t->seed, k, len) & mask;
    for (;;) {
        const struct slot *s = &t->slots[i];
        if (s->len == 0 || (s->len == len && memcmp(s->key, k, len) == 0))
            return (struct slot *)s;
        i = (i + 1) & mask;
    }
}

static void slot_set(struct slot *s, const uint8_t *k, size_t len)
{
    memcpy(s->key, k, len);
    s->len = (uint8_t)len;
}

/* A copy of t with twice the capacity (no lock needed: only the writer calls it). */
static struct table *table_grow(const struct table *t)
{
    struct table *n = table_new(t->cap * 2, t->seed);
    if (n == NULL)
        return NULL;
    for (size_t i = 0; i < t->cap; i++) {
        const struct slot *s = &t->slots[i];
        if (s->len != 0)
            *probe(n, s->key, s->len) = *s;
    }
    n->count = t->count;
    return n;
}

hub_revset_t *hub_revset_new(void)
{
    hub_revset_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    uint64_t seed = 0x2545F4914F6CDD1DULL;
    (void)hub_random(&seed, sizeof seed); /* a fixed seed still works if getrandom fails */
    if ((s->t = table_new(MIN_CAP, seed)) == NULL) {
        free(s);
        return NULL;
    }
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    /* glibc: do not let a steady stream of readers starve the (rare) writer. */
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->lock, &a);
    pthread_rwlockattr_destroy(&a);
    pthread_mutex_init(&s->wmu, NULL);
    return s;
}

void hub_revset_free(hub_revset_t *s)
{
    if (s == NULL)
        return;
    pthread_rwlock_destroy(&s->lock);
    pthread_mutex_destroy(&s->wmu);
    free(s->t);
    free(s);
}

int hub_revset_add(hub_revset_t *s, const uint8_t *serial, size_t len)
{
    if (normalize(&serial, &len) != 0)
        return HUB_ERANGE;
    int rc = 0;
    pthread_mutex_lock(&s->wmu);
    struct table *t = s->t;
    struct slot *slot = probe(t, serial, len);
    if (slot->len != 0)
        goto out; /* already present */
    if ((t->count + 1) * 4 > t->cap * 3) {
        struct table *n = table_grow(t);
        if (n == NULL) {
            rc = HUB_ENOMEM;
            goto out;
        }
        slot_set(probe(n, serial, len), serial, len);
        n->count++;
        pthread_rwlock_wrlock(&s->lock);
        s->t = n;
        pthread_rwlock_unlock(&s->lock);
        free(t);
    } else {
        pthread_rwlock_wrlock(&s->lock);
        slot_set(slot, serial, len);
        t->count++;
        pthread_rwlock_unlock(&s->lock);
    }
out:
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

int hub_revset_add_hex(hub_revset_t *s, const char *hex)
{
    uint8_t b[HUB_REVSET_MAX_SERIAL + 8];
    char even[2 * sizeof b + 1];
    size_t n = strlen(hex);
    if (n == 0 || n >= sizeof even)
        return HUB_EINVAL;
    /* An odd number of digits ("ABC") means a leading zero nibble. */
    even[0] = '0';
    memcpy(even + n % 2, hex, n + 1);
    int len = hub_hex_decode(even, b, sizeof b);
    if (len < 0)
        return len;
    return hub_revset_add(s, b, (size_t)len);
}

int hub_revset_contains(hub_revset_t *s, const uint8_t *serial, size_t len)
{
    if (normalize(&serial, &len) != 0)
        return 0;
    pthread_rwlock_rdlock(&s->lock);
    int found = probe(s->t, serial, len)->len != 0;
    pthread_rwlock_unlock(&s->lock);
    return found;
}

void hub_revset_replace_all(hub_revset_t *s, hub_revset_t *fresh)
{
    pthread_mutex_lock(&s->wmu);
    pthread_mutex_lock(&fresh->wmu);
    struct table *old = s->t;
    pthread_rwlock_wrlock(&s->lock);
    s->t = fresh->t;
    pthread_rwlock_unlock(&s->lock);
    fresh->t = old;
    pthread_mutex_unlock(&fresh->wmu);
    pthread_mutex_unlock(&s->wmu);
    hub_revset_free(fresh);
}

size_t hub_revset_count(hub_revset_t *s)
{
    pthread_rwlock_rdlock(&s->lock);
    size_t n = s->t->count;
    pthread_rwlock_unlock(&s->lock);
    return n;
}
