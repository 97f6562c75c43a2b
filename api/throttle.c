/* Per-source failure counts (api/throttle.h). One fixed array of entries allocated at
 * configure time (calloc: pages untouched until sources arrive), a hash of 32-bit indices with
 * a random seed (sources are chosen by the attacker), and an LRU list: when the table is full
 * the least recently seen source is reused, so a flood of distinct addresses costs no memory,
 * only the forgetting of the oldest ones (counted). Entries with audit counts not yet written
 * are on a dirty list that api/audit_aggregate.c takes every few seconds; counts of a minute
 * that ended, or of an evicted source, wait in a small ring (dropped and counted when full). */
#include "api/throttle.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "util/error.h"
#include "util/log.h"

#define NIL UINT32_MAX
#define RING 1024 /* audit aggregates waiting that no longer belong to an entry */

struct entry {
    uint8_t key[16];
    uint32_t hnext, prev, next, dnext; /* hash chain, LRU list, dirty list */
    int dirty;                         /* on the dirty list */
    uint32_t fails;                    /* failures not forgotten yet */
    int64_t blocked_until;             /* ms (monotonic): refused until then */
    int64_t quiet_until;               /* ms: the failures are forgotten from then on */
    int64_t forgive_after;             /* ms: a success may forgive them from then on */
    int64_t log_minute;                /* minute of the last log line */
    uint32_t log_quiet;                /* events not logged since */
    int64_t audit_minute;
    uint32_t audit[4]; /* 401, 403, 429, other */
};

static struct {
    pthread_mutex_t lock;
    struct hub_throttle_limits lim;
    struct entry *e;
    uint32_t cap, used, mask;
    uint32_t *bucket;
    uint32_t head, tail, dirty; /* LRU most recent, least recent; dirty list */
    uint64_t seed;
    struct hub_throttle_audit ring[RING];
    size_t ring_n;
    /* metrics */
    unsigned long long failures[HUB_THROTTLE_KIND_COUNT], throttled[HUB_THROTTLE_KIND_COUNT];
    unsigned long long evictions, audit_dropped;
} T = {.lock = PTHREAD_MUTEX_INITIALIZER, .head = NIL, .tail = NIL, .dirty = NIL};

static const char *const kind_names[HUB_THROTTLE_KIND_COUNT] = {"token", "device", "product",
                                                                "service", "mqtt"};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t minute_now(void)
{
    return (int64_t)time(NULL) / 60;
}

/* The key of a source: an IPv4 address as ::ffff:a.b.c.d, an IPv6 address cut to its /64;
 * all zero when it does not parse. */
static void source_key(const char *s, uint8_t key[16])
{
    char ip[INET6_ADDRSTRLEN + 1];
    size_t n;
    const char *colon = strchr(s, ':');
    if (s[0] == '[') {
        s++;
        n = strcspn(s, "]");
    } else if (colon != NULL && strchr(colon + 1, ':') == NULL) {
        n = (size_t)(colon - s); /* "a.b.c.d:port" */
    } else {
        n = strlen(s);
    }
    memset(key, 0, 16);
    if (n >= sizeof ip)
        return;
    memcpy(ip, s, n);
    ip[n] = 0;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, ip, &a4) == 1) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &a4, 4);
    } else if (inet_pton(AF_INET6, ip, &a6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6))
            memcpy(key, &a6, 16);
        else
            memcpy(key, &a6, 8);
    }
}

/* The key as a source for logs and audit: "192.0.2.1", "2001:db8::/64". */
static void key_str(const uint8_t key[16], char *out, size_t n)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char ip[INET6_ADDRSTRLEN] = "?";
    if (memcmp(key, mapped, 12) == 0) {
        inet_ntop(AF_INET, key + 12, ip, sizeof ip);
        snprintf(out, n, "%s", ip);
    } else {
        inet_ntop(AF_INET6, key, ip, sizeof ip);
        snprintf(out, n, "%s/64", ip);
    }
}

static uint32_t key_hash(const uint8_t key[16])
{
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    uint64_t h = (a ^ T.seed) * 0x9e3779b97f4a7c15ULL;
    h = (h ^ (h >> 29) ^ b) * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return (uint32_t)h & T.mask;
}

static void lru_unlink(uint32_t i)
{
    struct entry *x = &T.e[i];
    if (x->prev != NIL)
        T.e[x->prev].next = x->next;
    else
        T.head = x->next;
    if (x->next != NIL)
        T.e[x->next].prev = x->prev;
    else
        T.tail = x->prev;
    x->prev = x->next = NIL;
}

static void lru_front(uint32_t i)
{
    struct entry *x = &T.e[i];
    x->prev = NIL;
    x->next = T.head;
    if (T.head != NIL)
        T.e[T.head].prev = i;
    T.head = i;
    if (T.tail == NIL)
        T.tail = i;
}

/* Copies x's audit counts of its minute into a (the caller clears them). */
static void audit_take(const struct entry *x, struct hub_throttle_audit *a)
{
    key_str(x->key, a->source, sizeof a->source);
    a->minute = x->audit_minute;
    a->unauthorized = x->audit[0];
    a->forbidden = x->audit[1];
    a->throttled = x->audit[2];
    a->other = x->audit[3];
}

/* Keeps the audit counts of x that no longer belong to it (a minute ended, or evicted). */
static void audit_park(struct entry *x)
{
    if ((x->audit[0] | x->audit[1] | x->audit[2] | x->audit[3]) == 0)
        return;
    if (T.ring_n == RING)
        T.audit_dropped++;
    else
        audit_take(x, &T.ring[T.ring_n++]);
    memset(x->audit, 0, sizeof x->audit);
}

/* The entry of key, or NULL; create: a new one (the least recently seen evicted when full).
 * Moves it to the front of the LRU list. Call with the lock held. */
static struct entry *lookup(const uint8_t key[16], int create)
{
    if (T.e == NULL)
        return NULL;
    uint32_t h = key_hash(key), i;
    for (i = T.bucket[h]; i != NIL; i = T.e[i].hnext)
        if (memcmp(T.e[i].key, key, 16) == 0)
            break;
    if (i == NIL && !create)
        return NULL;
    if (i != NIL) {
        lru_unlink(i);
        lru_front(i);
        return &T.e[i];
    }
    if (T.used < T.cap) {
        i = T.used++;
    } else { /* evict the least recently seen */
        i = T.tail;
        struct entry *old = &T.e[i];
        uint32_t *p = &T.bucket[key_hash(old->key)];
        while (*p != i)
            p = &T.e[*p].hnext;
        *p = old->hnext;
        lru_unlink(i);
        audit_park(old);
        T.evictions++;
    }
    struct entry *x = &T.e[i];
    uint32_t dnext = x->dnext;
    int dirty = x->dirty; /* stays on the dirty list it may be on (taken as empty) */
    memset(x, 0, sizeof *x);
    x->dnext = dirty ? dnext : NIL;
    x->dirty = dirty;
    memcpy(x->key, key, 16);
    x->hnext = T.bucket[h];
    T.bucket[h] = i;
    x->prev = x->next = NIL;
    lru_front(i);
    return x;
}

/* Failures are forgotten once the source was quiet for the window after its last delay. */
static void expire(struct entry *x, int64_t now)
{
    if (x->fails > 0 && now >= x->quiet_until) {
        x->fails = 0;
        x->blocked_until = 0;
    }
}

/* 1 when a log line about x may be written now (one per minute), with *quiet the events
 * not logged since the last one. */
static int log_due(struct entry *x, uint32_t *quiet)
{
    int64_t m = minute_now();
    if (x->log_minute == m) {
        x->log_quiet++;
        return 0;
    }
    *quiet = x->log_quiet;
    x->log_minute = m;
    x->log_quiet = 0;
    return 1;
}

int hub_throttle_configure(const struct hub_throttle_limits *l)
{
    uint32_t cap = (uint32_t)l->sources, nb = 1;
    while (nb < cap && nb < (1u << 30))
        nb <<= 1;
    struct entry *e = calloc(cap, sizeof *e);
    uint32_t *bucket = malloc(nb * sizeof *bucket);
    if (e == NULL || bucket == NULL) {
        free(e);
        free(bucket);
        return HUB_ENOMEM;
    }
    memset(bucket, 0xff, nb * sizeof *bucket); /* NIL */
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != sizeof seed)
        seed = (uint64_t)mono_ms() * 0x2545f4914f6cdd1dULL;
    pthread_mutex_lock(&T.lock);
    free(T.e);
    free(T.bucket);
    T.lim = *l;
    T.e = e;
    T.bucket = bucket;
    T.cap = cap;
    T.used = 0;
    T.mask = nb - 1;
    T.head = T.tail = T.dirty = NIL;
    T.seed = seed;
    pthread_mutex_unlock(&T.lock);
    return 0;
}

void hub_throttle_free(void)
{
    pthread_mutex_lock(&T.lock);
    free(T.e);
    free(T.bucket);
    T.e = NULL;
    T.bucket = NULL;
    T.cap = T.used = 0;
    T.head = T.tail = T.dirty = NIL;
    pthread_mutex_unlock(&T.lock);
}

enum hub_throttle_state hub_throttle_check(const char *source, enum hub_throttle_kind kind,
                                           unsigned *retry_s)
{
    uint8_t key[16];
    char shown[48];
    uint32_t quiet = 0;
    int log = 0;
    enum hub_throttle_state st = HUB_THROTTLE_FREE;
    int64_t now = mono_ms();
    source_key(source, key);
    pthread_mutex_lock(&T.lock);
    struct entry *x = lookup(key, 0);
    if (x != NULL) {
        expire(x, now);
        if (now < x->blocked_until) {
            st = HUB_THROTTLE_BLOCKED;
            *retry_s = (unsigned)((x->blocked_until - now + 999) / 1000);
            T.throttled[kind]++;
            log = log_due(x, &quiet);
        } else if (x->fails >= (uint32_t)T.lim.fail_free) {
            st = HUB_THROTTLE_OVER;
        }
    }
    pthread_mutex_unlock(&T.lock);
    if (log) {
        key_str(key, shown, sizeof shown);
        hub_warn("auth: %s: %s credentials refused unchecked, too many failures (retry in %u "
                 "s; %u more refusals or failures from this source since the last line)",
                 shown, kind_names[kind], *retry_s, quiet);
    }
    return st;
}

void hub_throttle_failed(const char *source, enum hub_throttle_kind kind, const char *who)
{
    uint8_t key[16];
    char shown[48], id[72];
    uint32_t quiet = 0, fails = 0;
    unsigned delay = 0;
    int log = 0;
    int64_t now = mono_ms();
    source_key(source, key);
    pthread_mutex_lock(&T.lock);
    T.failures[kind]++;
    struct entry *x = lookup(key, 1);
    if (x != NULL) {
        expire(x, now);
        fails = ++x->fails;
        if (fails >= (uint32_t)T.lim.fail_free) {
            uint32_t step = fails - (uint32_t)T.lim.fail_free;
            long long d = step >= 30 ? T.lim.max_delay_s : 1LL << step;
            delay = (unsigned)(d < T.lim.max_delay_s ? d : T.lim.max_delay_s);
            x->blocked_until = now + (int64_t)delay * 1000;
        }
        x->quiet_until = (x->blocked_until > now ? x->blocked_until : now) + T.lim.window_s * 1000;
        log = log_due(x, &quiet);
    }
    pthread_mutex_unlock(&T.lock);
    if (!log)
        return;
    /* The id as sent, cut, ASCII only, without quotes or backslashes (a log line is not the
     * attacker's to shape); control characters are escaped by util/log.c (\n, \xHH). */
    size_t n = 0;
    for (const char *p = who != NULL ? who : ""; *p != 0 && n < 64; p++) {
        unsigned char ch = (unsigned char)*p;
        id[n++] = ch < 0x7f && ch != '"' && ch != '\\' ? (char)ch : '?';
    }
    id[n] = 0;
    key_str(key, shown, sizeof shown);
    hub_warn("auth: %s: wrong %s credentials%s%s%s (%u failures; %s%u s; %u more refusals or "
             "failures from this source since the last line)",
             shown, kind_names[kind], n ? " for \"" : "", id, n ? "\"" : "", fails,
             delay ? "refused unchecked for " : "no delay, ", delay, quiet);
}

void hub_throttle_succeeded(const char *source)
{
    uint8_t key[16];
    int64_t now = mono_ms();
    source_key(source, key);
    pthread_mutex_lock(&T.lock);
    struct entry *x = lookup(key, 0);
    if (x != NULL && x->fails > 0 && now >= x->forgive_after) {
        x->fails = 0;
        x->blocked_until = 0;
        x->forgive_after = now + T.lim.window_s * 1000;
    }
    pthread_mutex_unlock(&T.lock);
}

void hub_throttle_audit_count(const char *source, unsigned status)
{
    uint8_t key[16];
    int64_t m = minute_now();
    source_key(source, key);
    pthread_mutex_lock(&T.lock);
    struct entry *x = lookup(key, 1);
    if (x != NULL) {
        if (x->audit_minute != m) {
            audit_park(x);
            x->audit_minute = m;
        }
        x->audit[status == 401 ? 0 : status == 403 ? 1 : status == 429 ? 2 : 3]++;
        if (!x->dirty) {
            x->dirty = 1;
            x->dnext = T.dirty;
            T.dirty = (uint32_t)(x - T.e);
        }
    }
    pthread_mutex_unlock(&T.lock);
}

int hub_throttle_audit_pending(void)
{
    pthread_mutex_lock(&T.lock);
    int pending = T.ring_n > 0 || T.dirty != NIL;
    pthread_mutex_unlock(&T.lock);
    return pending;
}

size_t hub_throttle_audit_take(struct hub_throttle_audit *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&T.lock);
    while (n < max && T.ring_n > 0)
        out[n++] = T.ring[--T.ring_n];
    while (n < max && T.dirty != NIL) {
        struct entry *x = &T.e[T.dirty];
        T.dirty = x->dnext;
        x->dirty = 0;
        x->dnext = NIL;
        if ((x->audit[0] | x->audit[1] | x->audit[2] | x->audit[3]) == 0)
            continue;
        audit_take(x, &out[n++]);
        memset(x->audit, 0, sizeof x->audit);
    }
    pthread_mutex_unlock(&T.lock);
    return n;
}

int hub_throttle_metrics(hub_buf_t *out)
{
    unsigned long long fail[HUB_THROTTLE_KIND_COUNT], thr[HUB_THROTTLE_KIND_COUNT], ev, drop;
    unsigned long long used, cap;
    pthread_mutex_lock(&T.lock);
    memcpy(fail, T.failures, sizeof fail);
    memcpy(thr, T.throttled, sizeof thr);
    ev = T.evictions;
    drop = T.audit_dropped;
    used = T.used;
    cap = T.cap;
    pthread_mutex_unlock(&T.lock);
    int rc = hub_buf_puts(out, "# HELP iothub_auth_failures_total Wrong credentials (REST and "
                               "MQTT password listeners), by kind.\n"
                               "# TYPE iothub_auth_failures_total counter\n");
    for (int k = 0; rc == 0 && k < HUB_THROTTLE_KIND_COUNT; k++)
        rc = hub_buf_printf(out, "iothub_auth_failures_total{kind=\"%s\"} %llu\n", kind_names[k],
                            fail[k]);
    if (rc == 0)
        rc = hub_buf_puts(out, "# HELP iothub_auth_throttled_total Credentials refused unchecked "
                               "(429, CONNACK 5): their source failed too often, by kind.\n"
                               "# TYPE iothub_auth_throttled_total counter\n");
    for (int k = 0; rc == 0 && k < HUB_THROTTLE_KIND_COUNT; k++)
        rc = hub_buf_printf(out, "iothub_auth_throttled_total{kind=\"%s\"} %llu\n", kind_names[k],
                            thr[k]);
    if (rc == 0)
        rc = hub_buf_printf(
            out,
            "# HELP iothub_auth_throttle_sources Sources the throttle table holds (max: "
            "auth_throttle_sources).\n"
            "# TYPE iothub_auth_throttle_sources gauge\n"
            "iothub_auth_throttle_sources{state=\"used\"} %llu\n"
            "iothub_auth_throttle_sources{state=\"max\"} %llu\n"
            "# HELP iothub_auth_throttle_evictions_total Sources forgotten to make room for "
            "another (the table was full).\n"
            "# TYPE iothub_auth_throttle_evictions_total counter\n"
            "iothub_auth_throttle_evictions_total %llu\n"
            "# HELP iothub_audit_aggregate_dropped_total Aggregated audit counts of refused "
            "anonymous calls dropped before they were written (too many sources at once).\n"
            "# TYPE iothub_audit_aggregate_dropped_total counter\n"
            "iothub_audit_aggregate_dropped_total %llu\n",
            used, cap, ev, drop);
    return rc;
}
