/* Session tickets under our own keys. Nonces: 4 random bytes drawn at start followed by a 64-bit
 * counter that starts at a random value and counts every ticket of the process, so one process
 * never repeats a nonce under a key and two processes sharing a key collide only if their runs
 * of counters overlap in a 96-bit space (random 96-bit nonces would allow 2^32 tickets per key
 * for everyone together; a busy fleet writes more than that in one rotation). A GCM context is
 * set up per ticket (about a microsecond), so readers share nothing but the key bytes. */
#include "net/tickets.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/gcm.h>

#include "util/error.h"
#include "util/secure.h"

#define ID_LEN 4
#define NONCE_LEN 12
#define TAG_LEN 16
#define HDR_LEN (ID_LEN + NONCE_LEN)
#define CLOCK_SKEW 300 /* a session may start this far in our future (another node's clock) */
#define AD_LABEL "iothub ticket"

struct hub_tickets {
    pthread_rwlock_t lock;
    struct hub_ticket_key *keys; /* oldest first, owned, wiped on replace */
    size_t n;
    uint32_t lifetime, rotation, lead;
    uint8_t nonce_hi[4];
    uint64_t nonce_ctr; /* atomic */
};

hub_tickets_t *hub_tickets_new(uint32_t lifetime_s, uint32_t rotation_s, uint32_t lead_s)
{
    hub_tickets_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    if (pthread_rwlock_init(&t->lock, NULL) != 0 || hub_random(t->nonce_hi, 4) != 0 ||
        hub_random(&t->nonce_ctr, sizeof t->nonce_ctr) != 0) {
        free(t);
        return NULL;
    }
    t->lifetime = lifetime_s;
    t->rotation = rotation_s;
    t->lead = lead_s;
    return t;
}

static void free_keys(struct hub_ticket_key *k, size_t n)
{
    if (k == NULL)
        return;
    hub_wipe(k, n * sizeof *k);
    free(k);
}

void hub_tickets_free(hub_tickets_t *t)
{
    if (t == NULL)
        return;
    free_keys(t->keys, t->n);
    pthread_rwlock_destroy(&t->lock);
    free(t);
}

uint32_t hub_tickets_max_age(const hub_tickets_t *t)
{
    return 2 * t->lead + t->rotation + t->lifetime;
}

static int by_created(const void *a, const void *b)
{
    const struct hub_ticket_key *x = a, *y = b;
    if (x->created != y->created)
        return x->created < y->created ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int hub_tickets_replace(hub_tickets_t *t, const struct hub_ticket_key *keys, size_t n)
{
    struct hub_ticket_key *k = NULL;
    if (n > 0) {
        if ((k = malloc(n * sizeof *k)) == NULL)
            return HUB_ENOMEM;
        memcpy(k, keys, n * sizeof *k);
        qsort(k, n, sizeof *k, by_created);
    }
    pthread_rwlock_wrlock(&t->lock);
    struct hub_ticket_key *old = t->keys;
    size_t old_n = t->n;
    t->keys = k;
    t->n = n;
    pthread_rwlock_unlock(&t->lock);
    free_keys(old, old_n);
    return 0;
}

int hub_tickets_generate(hub_tickets_t *t)
{
    struct hub_ticket_key k;
    int rc = hub_random(&k.id, sizeof k.id);
    if (rc == 0)
        rc = hub_random(k.key, sizeof k.key);
    k.created = (int64_t)time(NULL);
    pthread_rwlock_rdlock(&t->lock);
    size_t n = t->n;
    struct hub_ticket_key *all = rc == 0 ? malloc((n + 1) * sizeof *all) : NULL;
    if (all != NULL) {
        if (n > 0)
            memcpy(all, t->keys, n * sizeof *all);
        all[n] = k;
    }
    pthread_rwlock_unlock(&t->lock);
    if (rc == 0 && all == NULL)
        rc = HUB_ENOMEM;
    if (rc == 0)
        rc = hub_tickets_replace(t, all, n + 1);
    if (all != NULL)
        free_keys(all, n + 1);
    hub_wipe(&k, sizeof k);
    return rc;
}

size_t hub_tickets_count(hub_tickets_t *t)
{
    pthread_rwlock_rdlock(&t->lock);
    size_t n = t->n;
    pthread_rwlock_unlock(&t->lock);
    return n;
}

/* The key that writes now: the newest at least lead old, else the oldest. Read lock held. */
static const struct hub_ticket_key *writing_key(const hub_tickets_t *t, int64_t now)
{
    if (t->n == 0)
        return NULL;
    for (size_t i = t->n; i-- > 0;)
        if (now - t->keys[i].created >= (int64_t)t->lead)
            return &t->keys[i];
    return &t->keys[0];
}

static void make_ad(uint8_t purpose, const uint8_t id[ID_LEN], uint8_t ad[sizeof AD_LABEL + ID_LEN])
{
    memcpy(ad, AD_LABEL, sizeof AD_LABEL - 1);
    ad[sizeof AD_LABEL - 1] = purpose;
    memcpy(ad + sizeof AD_LABEL, id, ID_LEN);
}

/* GCM over data in place with key k: encrypt (tag written) or decrypt (tag checked). Returns
 * the mbedTLS code. */
static int gcm(const struct hub_ticket_key *k, int encrypt, uint8_t purpose, const uint8_t *hdr,
               unsigned char *data, size_t len, unsigned char *tag)
{
    uint8_t ad[sizeof AD_LABEL + ID_LEN];
    mbedtls_gcm_context g;
    make_ad(purpose, hdr, ad);
    mbedtls_gcm_init(&g);
    int rc = mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, k->key, HUB_TICKET_KEY_LEN * 8);
    if (rc == 0 && encrypt)
        rc = mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, len, hdr + ID_LEN, NONCE_LEN, ad,
                                       sizeof ad, data, data, TAG_LEN, tag);
    else if (rc == 0)
        rc = mbedtls_gcm_auth_decrypt(&g, len, hdr + ID_LEN, NONCE_LEN, ad, sizeof ad, tag, TAG_LEN,
                                      data, data);
    mbedtls_gcm_free(&g);
    return rc;
}

int hub_tickets_write(hub_tickets_t *t, uint8_t purpose, const mbedtls_ssl_session *session,
                      unsigned char *start, const unsigned char *end, size_t *tlen,
                      uint32_t *lifetime)
{
    *tlen = 0;
    if (end < start || (size_t)(end - start) < HDR_LEN + TAG_LEN)
        return MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL;
    size_t cap = (size_t)(end - start) - HDR_LEN - TAG_LEN, len = 0;
    int rc = mbedtls_ssl_session_save(session, start + HDR_LEN, cap, &len);
    if (rc != 0)
        return rc;
    int64_t now = (int64_t)time(NULL);
    uint64_t ctr = __atomic_fetch_add(&t->nonce_ctr, 1, __ATOMIC_RELAXED);
    pthread_rwlock_rdlock(&t->lock);
    const struct hub_ticket_key *k = writing_key(t, now);
    if (k == NULL) {
        rc = MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    } else {
        for (int i = 0; i < ID_LEN; i++)
            start[i] = (unsigned char)(k->id >> (24 - 8 * i));
        memcpy(start + ID_LEN, t->nonce_hi, 4);
        for (int i = 0; i < 8; i++)
            start[ID_LEN + 4 + i] = (unsigned char)(ctr >> (56 - 8 * i));
        rc = gcm(k, 1, purpose, start, start + HDR_LEN, len, start + HDR_LEN + len);
    }
    pthread_rwlock_unlock(&t->lock);
    if (rc != 0) {
        hub_wipe(start, HDR_LEN + len);
        return rc;
    }
    *tlen = HDR_LEN + len + TAG_LEN;
    *lifetime = t->lifetime;
    return 0;
}

int hub_tickets_parse(hub_tickets_t *t, uint8_t purpose, mbedtls_ssl_session *session,
                      unsigned char *buf, size_t len)
{
    if (len < HDR_LEN + TAG_LEN)
        return MBEDTLS_ERR_SSL_INVALID_MAC;
    uint32_t id = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
    size_t clen = len - HDR_LEN - TAG_LEN;
    int64_t now = (int64_t)time(NULL);
    int rc = MBEDTLS_ERR_SSL_INVALID_MAC;
    pthread_rwlock_rdlock(&t->lock);
    for (size_t i = 0; i < t->n; i++) {
        const struct hub_ticket_key *k = &t->keys[i];
        if (k->id != id)
            continue;
        if (now - k->created > (int64_t)hub_tickets_max_age(t))
            rc = MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
        else if (gcm(k, 0, purpose, buf, buf + HDR_LEN, clen, buf + HDR_LEN + clen) == 0)
            rc = 0;
        break;
    }
    pthread_rwlock_unlock(&t->lock);
    if (rc != 0)
        return rc;
    rc = mbedtls_ssl_session_load(session, buf + HDR_LEN, clen);
    hub_wipe(buf + HDR_LEN, clen); /* the plaintext holds the master secret */
    if (rc != 0)
        return MBEDTLS_ERR_SSL_INVALID_MAC;
    if ((int64_t)session->start > now + CLOCK_SKEW ||
        now - (int64_t)session->start > (int64_t)t->lifetime)
        return MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
    return 0;
}
