/* Unit tests for net/tickets.c: round trip through mbedtls_ssl_session_save/load, refusals
 * (other purpose, tampered, unknown key, expired session, key too old, no key), which key
 * writes, distinct nonces, and readers racing a writer that swaps the key list. */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "net/tickets.h"
#include "tests/unit/harness.h"

#define CAP 2048

static struct hub_ticket_key key_of(uint32_t id, int64_t created, uint8_t fill)
{
    struct hub_ticket_key k;
    k.id = id;
    k.created = created;
    memset(k.key, fill, sizeof k.key);
    return k;
}

static void session_of(mbedtls_ssl_session *s, time_t start)
{
    mbedtls_ssl_session_init(s);
    s->start = start;
    s->ciphersuite = 0xC02B; /* ECDHE-ECDSA-AES128-GCM-SHA256 */
    for (size_t i = 0; i < sizeof s->master; i++)
        s->master[i] = (unsigned char)i;
}

/* Writes a ticket of a session started at start into buf; returns its length (0: none). */
static size_t ticket(hub_tickets_t *t, uint8_t purpose, time_t start, unsigned char *buf)
{
    mbedtls_ssl_session s;
    size_t len = 0;
    uint32_t life = 0;
    session_of(&s, start);
    if (hub_tickets_write(t, purpose, &s, buf, buf + CAP, &len, &life) != 0)
        len = 0;
    mbedtls_ssl_session_free(&s);
    return len;
}

static int parse(hub_tickets_t *t, uint8_t purpose, unsigned char *buf, size_t len)
{
    unsigned char copy[CAP];
    mbedtls_ssl_session s;
    memcpy(copy, buf, len);
    mbedtls_ssl_session_init(&s);
    int rc = hub_tickets_parse(t, purpose, &s, copy, len);
    if (rc == 0 && (s.ciphersuite != 0xC02B || s.master[47] != 47))
        rc = -1;
    mbedtls_ssl_session_free(&s);
    return rc;
}

static uint32_t id_of(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void test_round_trip_and_refusals(void)
{
    time_t now = time(NULL);
    hub_tickets_t *t = hub_tickets_new(100, 50, 10);
    CHECK(t != NULL);
    unsigned char a[CAP], b[CAP];
    CHECK_EQ(ticket(t, 1, now, a), 0); /* no key: no ticket */
    struct hub_ticket_key k = key_of(7, now - 20, 0x11);
    CHECK_EQ(hub_tickets_replace(t, &k, 1), 0);
    size_t n = ticket(t, 1, now, a);
    CHECK(n > 4 + 12 + 16);
    CHECK_EQ(id_of(a), 7);
    CHECK_EQ(parse(t, 1, a, n), 0);
    CHECK_EQ(parse(t, 0, a, n), MBEDTLS_ERR_SSL_INVALID_MAC); /* other listener kind */
    a[n / 2] ^= 1;
    CHECK_EQ(parse(t, 1, a, n), MBEDTLS_ERR_SSL_INVALID_MAC);
    a[n / 2] ^= 1;
    CHECK_EQ(parse(t, 1, a, 10), MBEDTLS_ERR_SSL_INVALID_MAC); /* truncated */
    size_t m = ticket(t, 1, now, b);
    CHECK(m == n && memcmp(a + 4, b + 4, 12) != 0); /* nonces differ */
    size_t old = ticket(t, 1, now - 101, b);
    CHECK_EQ(parse(t, 1, b, old), MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED);
    struct hub_ticket_key other = key_of(8, now - 20, 0x22);
    CHECK_EQ(hub_tickets_replace(t, &other, 1), 0);
    CHECK_EQ(parse(t, 1, a, n), MBEDTLS_ERR_SSL_INVALID_MAC); /* its key is gone */
    struct hub_ticket_key same_id = key_of(7, now - 20, 0x33);
    CHECK_EQ(hub_tickets_replace(t, &same_id, 1), 0);
    CHECK_EQ(parse(t, 1, a, n), MBEDTLS_ERR_SSL_INVALID_MAC); /* same id, other key */
    CHECK_EQ(hub_tickets_replace(t, &k, 1), 0);
    CHECK_EQ(parse(t, 1, a, n), 0);
    /* The key grew older than 2 lead + rotation + lifetime = 170 s. */
    k.created = now - 171;
    CHECK_EQ(hub_tickets_replace(t, &k, 1), 0);
    CHECK_EQ(parse(t, 1, a, n), MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED);
    hub_tickets_free(t);
}

static void test_writing_key(void)
{
    time_t now = time(NULL);
    hub_tickets_t *t = hub_tickets_new(100, 50, 10);
    unsigned char a[CAP];
    struct hub_ticket_key ks[] = {key_of(1, now - 3, 1)};
    CHECK_EQ(hub_tickets_replace(t, ks, 1), 0);
    CHECK(ticket(t, 0, now, a) > 0 && id_of(a) == 1); /* the only key, though young */
    struct hub_ticket_key two[] = {key_of(3, now - 2, 3), key_of(2, now - 40, 2)};
    CHECK_EQ(hub_tickets_replace(t, two, 2), 0);
    CHECK_EQ(hub_tickets_count(t), 2);
    CHECK(ticket(t, 0, now, a) > 0 && id_of(a) == 2); /* 3 is younger than the lead */
    two[0].created = now - 12;
    CHECK_EQ(hub_tickets_replace(t, two, 2), 0);
    CHECK(ticket(t, 0, now, a) > 0 && id_of(a) == 3);
    CHECK_EQ(hub_tickets_generate(t), 0);
    CHECK_EQ(hub_tickets_count(t), 3);
    hub_tickets_free(t);
}

struct reader {
    hub_tickets_t *t;
    unsigned char *ticket;
    size_t len;
    int failures;
};

static void *read_loop(void *arg)
{
    struct reader *r = arg;
    for (int i = 0; i < 3000; i++)
        if (parse(r->t, 1, r->ticket, r->len) != 0)
            r->failures++;
    return NULL;
}

static void test_concurrent_readers(void)
{
    time_t now = time(NULL);
    hub_tickets_t *t = hub_tickets_new(100, 50, 0);
    struct hub_ticket_key ks[] = {key_of(5, now - 1, 5), key_of(6, now, 6)};
    CHECK_EQ(hub_tickets_replace(t, ks, 1), 0);
    unsigned char a[CAP];
    size_t n = ticket(t, 1, now, a);
    struct reader r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (struct reader){t, a, n, 0};
        pthread_create(&th[i], NULL, read_loop, &r[i]);
    }
    for (int i = 0; i < 500; i++) /* key 5 stays in every list */
        CHECK_EQ(hub_tickets_replace(t, ks, 1 + (size_t)(i % 2)), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(r[i].failures, 0);
    }
    hub_tickets_free(t);
}

int main(void)
{
    RUN(test_round_trip_and_refusals);
    RUN(test_writing_key);
    RUN(test_concurrent_readers);
    return harness_failed_tests > 0;
}
