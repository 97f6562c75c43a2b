#include "api/firmware_cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/firmware.h"
#include "util/error.h"

struct entry {
    struct hub_fw_chunk chunk; /* first: a chunk pointer is its entry's */
    char id[37];
    int seq;
    int refs;     /* readers holding it (under the lock) */
    int loading;  /* its query runs: others wait on loaded */
    int cached;   /* in the list (else freed by its last release) */
    int failed;   /* the load failed with rc */
    int rc;
    struct entry *prev, *next; /* most recently used first */
    uint8_t *buf;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t loaded = PTHREAD_COND_INITIALIZER;
static struct entry *head, *tail;
static size_t capacity, held; /* held: bytes of cached entries */
static unsigned long long hits, misses;

void hub_fw_cache_init(size_t cap)
{
    pthread_mutex_lock(&lock);
    capacity = cap;
    pthread_mutex_unlock(&lock);
}

static void unlink_entry(struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        tail = e->prev;
    e->prev = e->next = NULL;
    e->cached = 0;
    held -= e->chunk.len;
}

static void push_front(struct entry *e)
{
    e->prev = NULL;
    e->next = head;
    if (head)
        head->prev = e;
    head = e;
    if (tail == NULL)
        tail = e;
    e->cached = 1;
    held += e->chunk.len;
}

static void free_entry(struct entry *e)
{
    free(e->buf);
    free(e);
}

/* Drops unreferenced entries from the tail while the cache holds more than its capacity. */
static void evict(void)
{
    for (struct entry *e = tail; e != NULL && held > capacity;) {
        struct entry *prev = e->prev;
        if (e->refs == 0 && !e->loading) {
            unlink_entry(e);
            free_entry(e);
        }
        e = prev;
    }
}

static int load(hub_db_pool_t *pool, int wait_ms, struct entry *e)
{
    PGconn *c;
    size_t got = 0;
    int rc = hub_db_pool_acquire(pool, wait_ms, &c);
    if (rc != 0)
        return rc;
    e->buf = malloc(HUB_DB_FIRMWARE_CHUNK);
    rc = e->buf == NULL ? HUB_ENOMEM
                        : hub_db_firmware_slice(c, e->id, e->seq, 0, HUB_DB_FIRMWARE_CHUNK,
                                                e->buf, &got);
    hub_db_pool_release(pool, c);
    if (rc == 0 && got == 0)
        rc = HUB_ENOTFOUND;
    e->chunk.data = e->buf;
    e->chunk.len = got;
    return rc;
}

int hub_fw_cache_get(hub_db_pool_t *pool, int wait_ms, const char *id, int seq,
                     const struct hub_fw_chunk **out)
{
    pthread_mutex_lock(&lock);
    struct entry *e = head;
    while (e != NULL && (e->seq != seq || strcmp(e->id, id) != 0))
        e = e->next;
    if (e != NULL) {
        e->refs++;
        while (e->loading)
            pthread_cond_wait(&loaded, &lock);
        int rc = e->failed ? e->rc : 0;
        if (rc == 0) {
            hits++;
            unlink_entry(e);
            push_front(e);
            *out = &e->chunk;
            pthread_mutex_unlock(&lock);
            return 0;
        }
        int last = --e->refs == 0 && !e->cached;
        pthread_mutex_unlock(&lock);
        if (last)
            free_entry(e);
        return rc;
    }
    e = calloc(1, sizeof *e);
    if (e == NULL) {
        pthread_mutex_unlock(&lock);
        return HUB_ENOMEM;
    }
    snprintf(e->id, sizeof e->id, "%s", id);
    e->seq = seq;
    e->refs = 1;
    e->loading = 1;
    misses++;
    push_front(e); /* visible, so concurrent readers of this chunk wait for this load */
    pthread_mutex_unlock(&lock);

    int rc = load(pool, wait_ms, e);

    pthread_mutex_lock(&lock);
    e->loading = 0;
    held += e->chunk.len;
    if (rc != 0) {
        e->failed = 1;
        e->rc = rc;
        unlink_entry(e); /* later readers load again */
    }
    pthread_cond_broadcast(&loaded);
    if (rc != 0) {
        int last = --e->refs == 0;
        pthread_mutex_unlock(&lock);
        if (last)
            free_entry(e);
        return rc;
    }
    evict();
    *out = &e->chunk;
    pthread_mutex_unlock(&lock);
    return 0;
}

void hub_fw_cache_release(const struct hub_fw_chunk *c)
{
    struct entry *e = (struct entry *)c;
    pthread_mutex_lock(&lock);
    int last = --e->refs == 0 && !e->cached;
    if (!last)
        evict();
    pthread_mutex_unlock(&lock);
    if (last)
        free_entry(e);
}

void hub_fw_cache_stats(unsigned long long *h, unsigned long long *m, size_t *bytes)
{
    pthread_mutex_lock(&lock);
    *h = hits;
    *m = misses;
    *bytes = held;
    pthread_mutex_unlock(&lock);
}
