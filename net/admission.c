/* Admission counts (see admission.h). The per-address counts live in an open-addressing
 * table sized for max_handshakes, so a flood from many addresses never grows it. */
#include "net/admission.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <uv.h>

#include "util/error.h"

#define DEFAULT_MAX_HANDSHAKES 512

/* Handshakes in progress from one address; count 0 marks an empty slot. */
struct ip_slot {
    uint8_t addr[16];
    unsigned count;
};

/* Handshakes in progress per address, for one listener or for the listeners of one port on
 * several loops (hub_admission_shared_t): hence the mutex. */
struct hub_admission_ips {
    pthread_mutex_t mu;
    struct ip_slot *slots;
    size_t mask;
    uint64_t seed;
    unsigned cap; /* max_handshakes_per_ip */
};

struct hub_admission_shared {
    _Atomic unsigned conns, handshakes, unauth;
    struct hub_admission_ips *ips; /* NULL without a per-address cap */
};

/* ---- handshakes per address ---------------------------------------------------------- */

static struct hub_admission_ips *ip_table_new(unsigned max_handshakes, unsigned cap)
{
    struct hub_admission_ips *t = calloc(1, sizeof *t);
    size_t slots = 16;
    while (slots < 2 * (size_t)max_handshakes + 1)
        slots *= 2;
    if (t == NULL || (t->slots = calloc(slots, sizeof *t->slots)) == NULL) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    t->mask = slots - 1;
    t->seed = uv_hrtime() * 0x9e3779b97f4a7c15ull;
    t->cap = cap;
    return t;
}

static void ip_table_free(struct hub_admission_ips *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t->slots);
    free(t);
}

static size_t ip_hash(const struct hub_admission_ips *t, const uint8_t a[16])
{
    uint64_t h = t->seed ^ 0xcbf29ce484222325ull; /* FNV-1a, seeded per table */
    for (int i = 0; i < 16; i++) {
        h ^= a[i];
        h *= 0x100000001b3ull;
    }
    return (size_t)(h ^ (h >> 31)) & t->mask;
}

/* The slot of address a, or the empty slot where it would go. The table has more than
 * twice as many slots as addresses (at most max_handshakes), so an empty one exists. */
static size_t ip_slot_of(const struct hub_admission_ips *t, const uint8_t a[16])
{
    size_t i = ip_hash(t, a);
    while (t->slots[i].count != 0 && memcmp(t->slots[i].addr, a, 16) != 0)
        i = (i + 1) & t->mask;
    return i;
}

/* Counts one more handshake from a unless a is at the cap: returns 1 if counted. */
static int ip_try_acquire(struct hub_admission_ips *t, const uint8_t a[16])
{
    pthread_mutex_lock(&t->mu);
    struct ip_slot *s = &t->slots[ip_slot_of(t, a)];
    int ok = s->count < t->cap;
    if (ok) {
        memcpy(s->addr, a, 16);
        s->count++;
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

/* Drops one count of a; an emptied slot is filled by shifting later entries of its probe
 * run back, so lookups never need tombstones. */
static void ip_release(struct hub_admission_ips *t, const uint8_t a[16])
{
    pthread_mutex_lock(&t->mu);
    size_t i = ip_slot_of(t, a), j = i;
    if (t->slots[i].count == 0 || --t->slots[i].count > 0) {
        pthread_mutex_unlock(&t->mu);
        return;
    }
    for (;;) {
        j = (j + 1) & t->mask;
        if (t->slots[j].count == 0)
            break;
        size_t home = ip_hash(t, t->slots[j].addr);
        /* Entry j may move to i unless its home lies cyclically in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            t->slots[i] = t->slots[j];
            t->slots[j].count = 0;
            i = j;
        }
    }
    pthread_mutex_unlock(&t->mu);
}

void hub_admission_addr_key(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        memcpy(key, &a->sin6_addr, 16);
        if (!IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
            memset(key + 8, 0, 8);
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &a->sin_addr, 4);
    }
}

/* ---- shared counts ---------------------------------------------------------------------- */

hub_admission_shared_t *hub_admission_shared_new(unsigned max_handshakes,
                                                 unsigned max_handshakes_per_ip)
{
    hub_admission_shared_t *s = calloc(1, sizeof *s);
    if (s == NULL || max_handshakes_per_ip == 0)
        return s;
    unsigned hs = max_handshakes ? max_handshakes : DEFAULT_MAX_HANDSHAKES;
    if ((s->ips = ip_table_new(hs, max_handshakes_per_ip)) == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

void hub_admission_shared_free(hub_admission_shared_t *s)
{
    if (s == NULL)
        return;
    ip_table_free(s->ips);
    free(s);
}

/* ---- one listener's counts ------------------------------------------------------------- */

int hub_admission_init(struct hub_admission *a, const struct hub_admission_caps *caps, int tls,
                       hub_admission_shared_t *shared)
{
    memset(a, 0, sizeof *a);
    a->caps = *caps;
    if (a->caps.max_handshakes == 0)
        a->caps.max_handshakes = DEFAULT_MAX_HANDSHAKES;
    a->tls = tls;
    a->shared = shared;
    if (shared != NULL) {
        a->ips = shared->ips;
    } else if (tls && a->caps.max_handshakes_per_ip != 0) {
        a->own_ips = a->ips = ip_table_new(a->caps.max_handshakes, a->caps.max_handshakes_per_ip);
        if (a->ips == NULL)
            return HUB_ENOMEM;
    }
    return 0;
}

void hub_admission_fini(struct hub_admission *a)
{
    ip_table_free(a->own_ips);
    a->own_ips = a->ips = NULL;
}

int hub_admission_full(const struct hub_admission *a)
{
    const hub_admission_shared_t *sh = a->shared;
    unsigned hs = sh ? sh->handshakes : a->handshakes, ua = sh ? sh->unauth : a->unauth,
             nc = sh ? sh->conns : a->conns;
    return (a->tls && hs >= a->caps.max_handshakes) ||
           (a->caps.max_unauthenticated != 0 && ua >= a->caps.max_unauthenticated) ||
           (a->caps.max_connections != 0 && nc >= a->caps.max_connections);
}

void hub_admission_conn_add(struct hub_admission *a)
{
    a->conns++;
    a->unauth++;
    if (a->shared != NULL) {
        a->shared->conns++;
        a->shared->unauth++;
    }
}

void hub_admission_conn_remove(struct hub_admission *a, int unauth)
{
    a->conns--;
    if (unauth)
        a->unauth--;
    if (a->shared != NULL) {
        a->shared->conns--;
        if (unauth)
            a->shared->unauth--;
    }
}

void hub_admission_authenticated(struct hub_admission *a)
{
    a->unauth--;
    if (a->shared != NULL)
        a->shared->unauth--;
}

int hub_admission_addr_counted(const struct hub_admission *a)
{
    return a->tls && a->ips != NULL;
}

int hub_admission_addr_acquire(struct hub_admission *a, const uint8_t addr[16])
{
    return !hub_admission_addr_counted(a) || ip_try_acquire(a->ips, addr);
}

void hub_admission_addr_release(struct hub_admission *a, const uint8_t addr[16])
{
    if (hub_admission_addr_counted(a))
        ip_release(a->ips, addr);
}

void hub_admission_handshake_begin(struct hub_admission *a)
{
    a->handshakes++;
    if (a->shared != NULL)
        a->shared->handshakes++;
}

void hub_admission_handshake_end(struct hub_admission *a)
{
    a->handshakes--;
    if (a->shared != NULL)
        a->shared->handshakes--;
}
