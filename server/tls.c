/* TLS termination over libuv. Design:
 *   - input: one 64 KiB read buffer per listener (a loop reads one stream at a time); the
 *     read callback hands it to mbedTLS through the recv BIO and drives the handshake or
 *     mbedtls_ssl_read until mbedTLS wants more, so mbedTLS has copied every byte into its own
 *     record buffer before the next read;
 *   - output: the send BIO appends ciphertext to the connection's current output buffer and
 *     never blocks; two buffers alternate, one in a uv_write, the other filling, so writes
 *     stay ordered, records are coalesced and nothing is allocated per record; once
 *     nothing is queued, buffers over 1 KiB are freed;
 *   - idle memory: once idle, a connection gives back the pages of mbedTLS's two record
 *     buffers that its handshake or a large record wrote (the first page stays) and keeps no
 *     parsed peer certificate: about 14 KB of RSS instead of 50 KB;
 *   - revocation: a verify callback refuses a depth-0 certificate in the revset or without
 *     clientAuth (no CRL is given to mbedTLS); a ticket whose certificate was revoked is not
 *     resumed (full handshake instead); and every completed handshake re-checks the peer
 *     certificate, since a resumed session never calls the verify callback;
 *   - session tickets: written and opened with the caller's key set (server/tickets), which
 *     iothubd keeps in PostgreSQL so that sessions resume after a restart and on other nodes;
 *   - timeouts: handshaking and closing connections sit in two FIFO lists (constant
 *     timeouts, so the head expires first) served by one timer per listener;
 *   - floods: a connection over a listener-wide cap (handshakes, unauthenticated, total) is
 *     accepted into a bare uv_tcp_t and closed at once; one over the per-address handshake
 *     cap is closed before mbedtls_ssl_setup allocates its 33 KB of record buffers. The
 *     per-address counts live in an open-addressing table sized for max_handshakes;
 *   - lifetime: a connection is freed only in its uv_close callback, where on_close runs. */
#include "server/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/platform.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/x509_crt.h>

#include "util/error.h"
#include "util/log.h"
#include "util/memtune.h"
#include "util/secure.h"

#define READ_BUF_SIZE 65536
#define PLAIN_BUF_SIZE 16384
#define OUT_KEEP_MAX 65536 /* output buffers larger than this are freed once written */
#define OUT_KEEP_IDLE 1024 /* and larger than this once nothing is queued */
#define READ_PAUSE 262144  /* stop reading while this much output is queued */
#define CN_MAX 64
#define RECORD_KEEP 8 /* mbedTLS 2.28 keeps a record buffer's sequence number in its first bytes */

struct hub_tls_ctx {
    mbedtls_ssl_config conf;
    mbedtls_x509_crt chain; /* our certificate and intermediates */
    mbedtls_x509_crt ca;    /* client CAs */
    mbedtls_pk_context key;
    hub_tickets_t *tickets; /* borrowed; NULL: no session tickets */
    int *suites; /* 0-terminated, referenced by conf */
    enum hub_tls_client_auth auth;
    hub_revset_t *revset;
};

struct link {
    struct link *prev, *next;
};

struct outbuf {
    uint8_t *data;
    size_t len, cap;
};

enum conn_state { ST_HANDSHAKE, ST_OPEN, ST_CLOSING, ST_CLOSED };

struct hub_tls_conn {
    uv_tcp_t tcp;
    uv_write_t wreq;
    hub_tls_listener_t *l;
    struct link all;   /* l->conns */
    struct link timed; /* l->handshaking or l->closing */
    uint64_t deadline;
    enum conn_state state;
    enum hub_tls_close_reason reason;
    unsigned opened : 1;  /* on_open was called: on_close is due */
    unsigned in_read : 1; /* inside the read callback: flush at its end */
    unsigned writing : 1; /* wreq in flight with out[cur ^ 1] */
    unsigned resumed : 1;
    unsigned ssl_ready : 1;
    unsigned paused : 1;     /* reading stopped until the output drains */
    unsigned held : 1;       /* reading stopped by the layer above (hub_tls_conn_pause) */
    unsigned unauth : 1;     /* counted in l->nunauth */
    unsigned ip_counted : 1; /* counted in l->ips */
    unsigned fail : 4;       /* enum hub_tls_fail counted if the handshake ends badly */
    unsigned dirty : 1;      /* record buffers written past their first page: trim when idle */
    uint64_t t0_ns;          /* accept time (uv_hrtime), for the handshake histogram */
    int cur;                 /* out[cur] is filling */
    struct outbuf out[2];
    const uint8_t *in_p; /* ciphertext not yet taken by mbedTLS */
    size_t in_n;
    void *user;
    mbedtls_ssl_context ssl;
    char cn[CN_MAX + 1];
    uint8_t serial[HUB_REVSET_MAX_SERIAL];
    size_t serial_len;
    char serial_hex[2 * HUB_REVSET_MAX_SERIAL + 1];
    char peer[64];
    uint8_t addr[16]; /* peer address, IPv4 mapped into IPv6 */
};

/* Handshakes in progress from one address; count 0 marks an empty slot. */
struct ip_slot {
    uint8_t addr[16];
    unsigned count;
};

struct hub_tls_listener {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uint64_t timer_due; /* UINT64_MAX: stopped */
    hub_tls_ctx_t *ctx;
    struct hub_tls_callbacks cb;
    void *user;
    struct hub_tls_limits lim;
    struct link conns, handshaking, closing;
    unsigned nconns, nhandshakes, nunauth;
    int reads_paused; /* hub_tls_listener_pause */
    struct ip_table *ips; /* NULL without a per-address cap; lim.shared's or own_ips */
    struct ip_table *own_ips;
    int port;
    int closing_l;
    int handles; /* tcp + timer not yet closed */
    void (*done)(void *);
    void *done_arg;
    uint64_t refused, last_refused_log;
    struct hub_tls_stats st; /* conns and unauth are filled in by hub_tls_listener_stats */
    uint8_t rbuf[READ_BUF_SIZE];
    uint8_t plain[PLAIN_BUF_SIZE];
};

/* The connection whose handshake this thread is driving (seen by the ticket callback). */
static _Thread_local hub_tls_conn_t *driving;

/* ---- small helpers ----------------------------------------------------------------- */

static void link_init(struct link *k)
{
    k->prev = k->next = k;
}

static int link_empty(const struct link *head)
{
    return head->next == head;
}

static void link_push(struct link *head, struct link *k)
{
    k->prev = head->prev;
    k->next = head;
    head->prev->next = k;
    head->prev = k;
}

static void link_remove(struct link *k)
{
    k->prev->next = k->next;
    k->next->prev = k->prev;
    link_init(k);
}

#define CONN_OF(k, field) ((hub_tls_conn_t *)((char *)(k)-offsetof(hub_tls_conn_t, field)))

/* ---- handshakes per address ---------------------------------------------------------- */

/* Handshakes in progress per address, for one listener or for the listeners of one port on
 * several loops (hub_tls_shared_t): hence the mutex. */
struct ip_table {
    pthread_mutex_t mu;
    struct ip_slot *slots;
    size_t mask;
    uint64_t seed;
    unsigned cap; /* max_handshakes_per_ip */
};

static struct ip_table *ip_table_new(unsigned max_handshakes, unsigned cap)
{
    struct ip_table *t = calloc(1, sizeof *t);
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

static void ip_table_free(struct ip_table *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t->slots);
    free(t);
}

static size_t ip_hash(const struct ip_table *t, const uint8_t a[16])
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
static size_t ip_slot_of(const struct ip_table *t, const uint8_t a[16])
{
    size_t i = ip_hash(t, a);
    while (t->slots[i].count != 0 && memcmp(t->slots[i].addr, a, 16) != 0)
        i = (i + 1) & t->mask;
    return i;
}

/* Counts one more handshake from a unless a is at the cap: returns 1 if counted. */
static int ip_try_acquire(struct ip_table *t, const uint8_t a[16])
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
static void ip_release(struct ip_table *t, const uint8_t a[16])
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

struct hub_tls_shared {
    _Atomic unsigned conns, handshakes, unauth;
    struct ip_table *ips; /* NULL without a per-address cap */
};

hub_tls_shared_t *hub_tls_shared_new(const struct hub_tls_limits *lim)
{
    hub_tls_shared_t *s = calloc(1, sizeof *s);
    if (s == NULL || lim->max_handshakes_per_ip == 0)
        return s;
    unsigned hs = lim->max_handshakes ? lim->max_handshakes : 512;
    if ((s->ips = ip_table_new(hs, lim->max_handshakes_per_ip)) == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

void hub_tls_shared_free(hub_tls_shared_t *s)
{
    if (s == NULL)
        return;
    ip_table_free(s->ips);
    free(s);
}

const double hub_tls_hs_bounds[HUB_TLS_HS_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1,
                                                      0.25,  0.5,  1,     2.5};

const char *hub_tls_fail_name(enum hub_tls_fail f)
{
    static const char *const names[HUB_TLS_FAIL_COUNT] = {
        "closed",     "timeout", "limit",   "no_certificate", "bad_certificate",
        "unknown_ca", "expired", "revoked", "protocol"};
    return (unsigned)f < HUB_TLS_FAIL_COUNT ? names[f] : "protocol";
}

/* A handshake succeeded: counted by kind and in the duration histogram. */
static void count_handshake(hub_tls_conn_t *c)
{
    struct hub_tls_stats *st = &c->l->st;
    uint64_t us = (uv_hrtime() - c->t0_ns) / 1000;
    size_t i = 0;
    while (i < HUB_TLS_HS_BUCKETS && (double)us > hub_tls_hs_bounds[i] * 1e6)
        i++;
    st->hs_bucket[i]++;
    st->hs_sum_us += us;
    if (c->resumed)
        st->resumed++;
    else
        st->full++;
}

/* The connection leaves ST_HANDSHAKE (done, failed or closed). */
static void handshake_end(hub_tls_conn_t *c)
{
    c->l->nhandshakes--;
    if (c->l->lim.shared != NULL)
        c->l->lim.shared->handshakes--;
    if (c->ip_counted) {
        ip_release(c->l->ips, c->addr);
        c->ip_counted = 0;
    }
}

static void log_mbedtls(enum hub_log_level lvl, const char *what, const char *peer, int rc)
{
    char msg[160];
    mbedtls_strerror(rc, msg, sizeof msg);
    hub_log(lvl, "tls%s%s: %s failed: -0x%04x %s", peer ? " " : "", peer ? peer : "", what,
            (unsigned)-rc, msg);
}

/* Strips leading zero bytes of a DER INTEGER; 0 if the serial is empty or too long. */
static size_t serial_norm(const mbedtls_x509_buf *s, const uint8_t **p)
{
    const uint8_t *b = s->p;
    size_t n = s->len;
    while (n > 1 && b[0] == 0) {
        b++;
        n--;
    }
    *p = b;
    return n <= HUB_REVSET_MAX_SERIAL ? n : 0;
}

static int is_revoked(hub_tls_ctx_t *ctx, const mbedtls_x509_crt *crt)
{
    return ctx->revset != NULL && hub_revset_contains(ctx->revset, crt->serial.p, crt->serial.len);
}

/* ---- context --------------------------------------------------------------------- */

/* The default for the MQTT listeners (SPEC §6): ECDHE with AEAD only. */
static const char DEFAULT_CIPHERS[] =
    "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256,TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384,"
    "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256,TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256,"
    "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384,TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256";

static const mbedtls_ecp_group_id CURVES[] = {MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1,
                                              MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_NONE};

/* Parses a comma-separated list of IANA (TLS_A_B) or mbedTLS (TLS-A-B) suite names. */
static int parse_ciphers(const char *list, int **out)
{
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    int *ids = calloc(n + 1, sizeof *ids);
    if (ids == NULL)
        return HUB_ENOMEM;
    size_t k = 0;
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = strcspn(p, ", ");
        if (len == 0)
            break;
        char name[128];
        if (len >= sizeof name) {
            hub_error("tls_ciphers: cipher suite name too long");
            free(ids);
            return HUB_EINVAL;
        }
        for (size_t i = 0; i < len; i++)
            name[i] = p[i] == '_' ? '-' : p[i];
        name[len] = 0;
        int id = mbedtls_ssl_get_ciphersuite_id(name);
        if (id == 0) {
            hub_error("tls_ciphers: unknown TLS cipher suite \"%s\"", name);
            free(ids);
            return HUB_EINVAL;
        }
        ids[k++] = id;
        p += len;
    }
    if (k == 0) {
        hub_error("tls_ciphers: empty list");
        free(ids);
        return HUB_EINVAL;
    }
    *out = ids;
    return 0;
}

/* Verify callback: runs for every certificate of the client's chain during a full
 * handshake, after mbedTLS has checked signatures and validity against the CA chain. */
static int verify_cb(void *p, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    hub_tls_ctx_t *ctx = p;
    const uint8_t *s;
    if (depth != 0)
        return 0;
    if (serial_norm(&crt->serial, &s) == 0)
        *flags |= MBEDTLS_X509_BADCERT_OTHER;
    else if (is_revoked(ctx, crt))
        *flags |= MBEDTLS_X509_BADCERT_REVOKED;
    if (mbedtls_x509_crt_check_extended_key_usage(crt, MBEDTLS_OID_CLIENT_AUTH,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)) != 0)
        *flags |= MBEDTLS_X509_BADCERT_EXT_KEY_USAGE;
    return 0;
}

static int ticket_write_cb(void *p, const mbedtls_ssl_session *session, unsigned char *start,
                           const unsigned char *end, size_t *tlen, uint32_t *lifetime)
{
    hub_tls_ctx_t *ctx = p;
    return hub_tickets_write(ctx->tickets, (uint8_t)ctx->auth, session, start, end, tlen,
                             lifetime);
}

/* A ticket whose certificate is now revoked or expired is refused: mbedTLS then falls back
 * to a full handshake, which the verify callback refuses with the right alert. */
static int ticket_parse_cb(void *p, mbedtls_ssl_session *session, unsigned char *buf, size_t len)
{
    hub_tls_ctx_t *ctx = p;
    int rc = hub_tickets_parse(ctx->tickets, (uint8_t)ctx->auth, session, buf, len);
    if (rc != 0)
        return rc;
    if (ctx->auth == HUB_TLS_CLIENT_REQUIRED) {
        const mbedtls_x509_crt *crt = session->peer_cert;
        if (crt == NULL || is_revoked(ctx, crt) || mbedtls_x509_time_is_past(&crt->valid_to))
            return MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
    }
    if (driving != NULL)
        driving->resumed = 1;
    return 0;
}

/* mbedTLS 2.28 caches an EC group's comb table for the generator on first use, without a
 * lock: do that first use here, so that loops sharing the context never race on it. */
static void warm_up_ec(mbedtls_pk_context *pk, int is_private)
{
    if (!mbedtls_pk_can_do(pk, MBEDTLS_PK_ECDSA))
        return;
    unsigned char hash[32] = {1}, sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    size_t slen = 0;
    if (is_private) {
        (void)mbedtls_pk_sign(pk, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, &slen, hub_rng_cb,
                              NULL);
    } else {
        /* r = s = 1: in range, so verification computes u1*G + u2*Q (and fails). */
        static const unsigned char bogus[] = {0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01};
        (void)mbedtls_pk_verify(pk, MBEDTLS_MD_SHA256, hash, sizeof hash, bogus, sizeof bogus);
    }
}

static int load_key(hub_tls_ctx_t *ctx, const struct hub_tls_ctx_options *o)
{
    int rc;
    if (o->key_pem != NULL) {
        rc = mbedtls_pk_parse_key(&ctx->key, (const unsigned char *)o->key_pem,
                                  strlen(o->key_pem) + 1, NULL, 0);
        if (rc != 0)
            log_mbedtls(HUB_LOG_ERROR, "server key: mbedtls_pk_parse_key", NULL, rc);
        return rc == 0 ? 0 : HUB_EINVAL;
    }
    if (o->key == NULL) {
        hub_error("tls: no server key given");
        return HUB_EINVAL;
    }
    /* Keep a private copy: serialise and parse again. */
    size_t cap = 8192;
    unsigned char *der = malloc(cap);
    if (der == NULL)
        return HUB_ENOMEM;
    int len = mbedtls_pk_write_key_der(o->key, der, cap);
    rc = len < 0 ? len : mbedtls_pk_parse_key(&ctx->key, der + cap - len, (size_t)len, NULL, 0);
    hub_wipe(der, cap);
    free(der);
    if (rc != 0)
        log_mbedtls(HUB_LOG_ERROR, "server key: copy", NULL, rc);
    return rc == 0 ? 0 : HUB_EINVAL;
}

int hub_tls_ctx_new(const struct hub_tls_ctx_options *o, hub_tls_ctx_t **out)
{
    *out = NULL;
    hub_tls_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return HUB_ENOMEM;
    mbedtls_ssl_config_init(&ctx->conf);
    mbedtls_x509_crt_init(&ctx->chain);
    mbedtls_x509_crt_init(&ctx->ca);
    mbedtls_pk_init(&ctx->key);
    ctx->auth = o->client_auth;
    ctx->revset = o->revset;
    ctx->tickets = o->tickets;
    int rc = HUB_EINVAL, m;

    if (o->cert_chain_pem == NULL ||
        (m = mbedtls_x509_crt_parse(&ctx->chain, (const unsigned char *)o->cert_chain_pem,
                                    strlen(o->cert_chain_pem) + 1)) != 0) {
        hub_error("tls: the server certificate chain does not parse");
        goto out;
    }
    if ((rc = load_key(ctx, o)) != 0)
        goto out;
    rc = HUB_EINVAL;
    if ((m = mbedtls_pk_check_pair(&ctx->chain.pk, &ctx->key)) != 0) {
        log_mbedtls(HUB_LOG_ERROR, "server key does not match the certificate: check_pair", NULL,
                    m);
        goto out;
    }
    if (o->client_auth == HUB_TLS_CLIENT_REQUIRED &&
        (o->ca_pem == NULL ||
         (m = mbedtls_x509_crt_parse(&ctx->ca, (const unsigned char *)o->ca_pem,
                                     strlen(o->ca_pem) + 1)) != 0)) {
        hub_error("tls: the client CA certificates do not parse");
        goto out;
    }
    if ((rc = parse_ciphers(o->ciphers ? o->ciphers : DEFAULT_CIPHERS, &ctx->suites)) != 0)
        goto out;

    rc = HUB_ECRYPTO;
    if ((m = mbedtls_ssl_config_defaults(&ctx->conf, MBEDTLS_SSL_IS_SERVER,
                                         MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
        log_mbedtls(HUB_LOG_ERROR, "mbedtls_ssl_config_defaults", NULL, m);
        goto out;
    }
    mbedtls_ssl_conf_min_version(&ctx->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&ctx->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_rng(&ctx->conf, hub_rng_cb, NULL);
    mbedtls_ssl_conf_ciphersuites(&ctx->conf, ctx->suites);
    mbedtls_ssl_conf_curves(&ctx->conf, CURVES);
    mbedtls_ssl_conf_renegotiation(&ctx->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    if ((m = mbedtls_ssl_conf_own_cert(&ctx->conf, &ctx->chain, &ctx->key)) != 0) {
        log_mbedtls(HUB_LOG_ERROR, "mbedtls_ssl_conf_own_cert", NULL, m);
        goto out;
    }
    if (o->client_auth == HUB_TLS_CLIENT_REQUIRED) {
        mbedtls_ssl_conf_authmode(&ctx->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
        mbedtls_ssl_conf_ca_chain(&ctx->conf, &ctx->ca, NULL); /* no CRL: see verify_cb */
        mbedtls_ssl_conf_verify(&ctx->conf, verify_cb, ctx);
    } else {
        mbedtls_ssl_conf_authmode(&ctx->conf, MBEDTLS_SSL_VERIFY_NONE);
    }
    if (o->tickets != NULL)
        mbedtls_ssl_conf_session_tickets_cb(&ctx->conf, ticket_write_cb, ticket_parse_cb, ctx);
    else
        mbedtls_ssl_conf_session_tickets(&ctx->conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);

    warm_up_ec(&ctx->key, 1);
    for (mbedtls_x509_crt *c = &ctx->ca; c != NULL && c->raw.p != NULL; c = c->next)
        warm_up_ec(&c->pk, 0);
    *out = ctx;
    return 0;
out:
    hub_tls_ctx_free(ctx);
    return rc;
}

void hub_tls_ctx_free(hub_tls_ctx_t *ctx)
{
    if (ctx == NULL)
        return;
    mbedtls_ssl_config_free(&ctx->conf);
    mbedtls_x509_crt_free(&ctx->chain);
    mbedtls_x509_crt_free(&ctx->ca);
    mbedtls_pk_free(&ctx->key);
    free(ctx->suites);
    free(ctx);
}

/* ---- timers ------------------------------------------------------------------------ */

static void timer_cb(uv_timer_t *t);

static void timer_arm_at(hub_tls_listener_t *l, uint64_t due)
{
    if (l->closing_l || due >= l->timer_due)
        return;
    uint64_t now = uv_now(l->loop);
    l->timer_due = due;
    uv_timer_start(&l->timer, timer_cb, due > now ? due - now : 0, 0);
}

static void timed_add(hub_tls_conn_t *c, struct link *list, unsigned ms)
{
    link_remove(&c->timed);
    c->deadline = uv_now(c->l->loop) + ms;
    link_push(list, &c->timed);
    timer_arm_at(c->l, c->deadline);
}

/* ---- connection output ----------------------------------------------------------- */

static void conn_destroy(hub_tls_conn_t *c);
static void conn_close(hub_tls_conn_t *c, enum hub_tls_close_reason reason, int flags);
#define CLOSE_FLUSH 1  /* send what is queued (alerts, data) before closing */
#define CLOSE_NOTIFY 2 /* and a close_notify if the session is open */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static int outbuf_append(struct outbuf *b, const void *p, size_t n)
{
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2)
                return HUB_ENOMEM;
            cap *= 2;
        }
        uint8_t *d = realloc(b->data, cap);
        if (d == NULL)
            return HUB_ENOMEM;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static void outbuf_release(struct outbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->cap = 0;
}

static void write_cb(uv_write_t *req, int status)
{
    hub_tls_conn_t *c = req->data;
    struct outbuf *b = &c->out[c->cur ^ 1];
    c->writing = 0;
    b->len = 0;
    /* An idle connection keeps small output buffers only (its handshake grew them). */
    if (b->cap > OUT_KEEP_MAX || (c->out[c->cur].len == 0 && b->cap > OUT_KEEP_IDLE))
        outbuf_release(b);
    if (c->out[c->cur].len == 0 && c->out[c->cur].cap > OUT_KEEP_IDLE)
        outbuf_release(&c->out[c->cur]);
    if (c->state == ST_CLOSED)
        return;
    if (c->paused && c->state < ST_CLOSING && c->out[c->cur].len < READ_PAUSE) {
        c->paused = 0;
        if (!c->l->reads_paused && !c->held)
            uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    }
    if (status < 0) {
        hub_debug("tls %s: write failed: %s", c->peer, uv_strerror(status));
        conn_close(c, HUB_TLS_CLOSE_ERROR, 0);
        conn_destroy(c);
        return;
    }
    if (c->out[c->cur].len > 0) {
        c->cur ^= 1;
        uv_buf_t ub = uv_buf_init((char *)c->out[c->cur ^ 1].data, c->out[c->cur ^ 1].len);
        if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &ub, 1, write_cb) == 0) {
            c->writing = 1;
            return;
        }
        c->out[c->cur ^ 1].len = 0;
        conn_close(c, HUB_TLS_CLOSE_ERROR, 0);
    }
    if (c->state == ST_CLOSING)
        conn_destroy(c);
}

/* Starts a uv_write of the filling buffer unless one is in flight. */
static void conn_flush(hub_tls_conn_t *c)
{
    if (c->writing || c->state == ST_CLOSED || c->out[c->cur].len == 0)
        return;
    struct outbuf *b = &c->out[c->cur];
    c->cur ^= 1;
    uv_buf_t ub = uv_buf_init((char *)b->data, b->len);
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &ub, 1, write_cb);
    if (rc == 0) {
        c->writing = 1;
        return;
    }
    b->len = 0;
    hub_debug("tls %s: uv_write: %s", c->peer, uv_strerror(rc));
    conn_close(c, HUB_TLS_CLOSE_ERROR, 0);
    conn_destroy(c);
}

/* mbedTLS send BIO: never blocks, the bytes go out with the next flush. */
static int bio_send(void *p, const unsigned char *buf, size_t len)
{
    hub_tls_conn_t *c = p;
    if (outbuf_append(&c->out[c->cur], buf, len) != 0)
        return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    if (hub_memtune_touches(c->ssl.out_buf, RECORD_KEEP, buf, len))
        c->dirty = 1;
    return (int)len;
}

static int bio_recv(void *p, unsigned char *buf, size_t len)
{
    hub_tls_conn_t *c = p;
    if (c->in_n == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    size_t n = len < c->in_n ? len : c->in_n;
    if (hub_memtune_touches(c->ssl.in_buf, RECORD_KEEP, buf, n))
        c->dirty = 1;
    memcpy(buf, c->in_p, n);
    c->in_p += n;
    c->in_n -= n;
    return (int)n;
}

/* An open connection with no partial record in its buffers gives back the record-buffer
 * pages that its handshake or a large record wrote (about 24 KiB of the 33 KiB): an idle
 * connection keeps the first page of each. */
static void conn_trim(hub_tls_conn_t *c)
{
    if (!c->dirty || c->state != ST_OPEN || c->ssl.in_left != 0 || c->ssl.out_left != 0 ||
        mbedtls_ssl_check_pending(&c->ssl))
        return;
    hub_memtune_discard(c->ssl.in_buf, RECORD_KEEP);
    hub_memtune_discard(c->ssl.out_buf, RECORD_KEEP);
    c->dirty = 0;
}

/* ---- connection lifecycle -------------------------------------------------------- */

static void listener_maybe_done(hub_tls_listener_t *l);

static void conn_closed_cb(uv_handle_t *h)
{
    hub_tls_conn_t *c = h->data;
    hub_tls_listener_t *l = c->l;
    link_remove(&c->all);
    link_remove(&c->timed);
    l->nconns--;
    if (c->unauth)
        l->nunauth--;
    if (l->lim.shared != NULL) {
        l->lim.shared->conns--;
        if (c->unauth)
            l->lim.shared->unauth--;
    }
    if (c->opened && l->cb.on_close != NULL)
        l->cb.on_close(c, c->reason);
    if (c->ssl_ready)
        mbedtls_ssl_free(&c->ssl);
    free(c->out[0].data);
    free(c->out[1].data);
    free(c);
    listener_maybe_done(l);
}

/* Closes the socket now; the memory goes in conn_closed_cb (pending writes are cancelled). */
static void conn_destroy(hub_tls_conn_t *c)
{
    if (c->state == ST_CLOSED)
        return;
    if (c->state == ST_HANDSHAKE) {
        c->l->st.failed[c->fail]++;
        handshake_end(c);
    }
    c->state = ST_CLOSED;
    link_remove(&c->timed);
    uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
}

/* Stops reading and, with CLOSE_FLUSH, lets queued bytes (and a close_notify with
 * CLOSE_NOTIFY) go out first, for at most close_timeout_ms. */
static void conn_close(hub_tls_conn_t *c, enum hub_tls_close_reason reason, int flags)
{
    if (c->state >= ST_CLOSING)
        return;
    if (c->state == ST_HANDSHAKE) {
        c->l->st.failed[c->fail]++;
        handshake_end(c);
    }
    int was_open = c->state == ST_OPEN;
    c->state = ST_CLOSING;
    c->reason = reason;
    link_remove(&c->timed);
    uv_read_stop((uv_stream_t *)&c->tcp);
    if ((flags & CLOSE_NOTIFY) && was_open && c->l->ctx != NULL)
        (void)mbedtls_ssl_close_notify(&c->ssl); /* best effort */
    if (!(flags & CLOSE_FLUSH)) {
        conn_destroy(c);
        return;
    }
    conn_flush(c);
    if (c->state == ST_CLOSED)
        return;
    if (!c->writing)
        conn_destroy(c);
    else
        timed_add(c, &c->l->closing, c->l->lim.close_timeout_ms);
}

/* Refuses a peer after a completed handshake: a fatal alert, then close. */
static void conn_refuse(hub_tls_conn_t *c, unsigned char alert, enum hub_tls_fail fail,
                        const char *why)
{
    c->l->st.failed[fail]++;
    hub_info("tls %s: client refused: %s (serial %s)", c->peer, why,
             c->serial_hex[0] ? c->serial_hex : "-");
    (void)mbedtls_ssl_send_alert_message(&c->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL, alert);
    conn_close(c, HUB_TLS_CLOSE_ERROR, CLOSE_FLUSH);
}

/* Extracts the single subject attribute oid (CN, O); 0 or -1 (absent, repeated, too long,
 * control characters). */
static int extract_attr(const mbedtls_x509_crt *crt, const char *oid, size_t oid_len,
                        char out[CN_MAX + 1])
{
    const mbedtls_x509_buf *v = NULL;
    int count = 0;
    for (const mbedtls_x509_name *n = &crt->subject; n != NULL; n = n->next) {
        if (n->oid.p != NULL && n->oid.len == oid_len && memcmp(n->oid.p, oid, oid_len) == 0) {
            v = &n->val;
            count++;
        }
    }
    if (count != 1 || v->len == 0 || v->len > CN_MAX)
        return -1;
    for (size_t i = 0; i < v->len; i++)
        if (v->p[i] < 0x20 || v->p[i] == 0x7f)
            return -1;
    memcpy(out, v->p, v->len);
    out[v->len] = 0;
    return 0;
}

/* After every completed handshake, full or resumed: re-check the certificate, open. */
static void handshake_done(hub_tls_conn_t *c)
{
    hub_tls_listener_t *l = c->l;
    hub_tls_ctx_t *ctx = l->ctx;
    link_remove(&c->timed);
    handshake_end(c);
    c->state = ST_OPEN;
    struct hub_tls_identity id = {.resumed = c->resumed}, *idp = NULL;
    char org[CN_MAX + 1];
    if (ctx->auth == HUB_TLS_CLIENT_REQUIRED) {
        const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&c->ssl);
        const uint8_t *s;
        if (crt == NULL) {
            conn_refuse(c, MBEDTLS_SSL_ALERT_MSG_NO_CERT, HUB_TLS_FAIL_NO_CERT,
                        "no certificate in the session");
            return;
        }
        c->serial_len = serial_norm(&crt->serial, &s);
        if (c->serial_len == 0) {
            conn_refuse(c, MBEDTLS_SSL_ALERT_MSG_BAD_CERT, HUB_TLS_FAIL_BAD_CERT,
                        "serial longer than 20 bytes");
            return;
        }
        memcpy(c->serial, s, c->serial_len);
        hub_hex_upper(c->serial, c->serial_len, c->serial_hex);
        if (is_revoked(ctx, crt)) {
            conn_refuse(c, MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED, HUB_TLS_FAIL_REVOKED,
                        "certificate revoked");
            return;
        }
        if (mbedtls_x509_time_is_past(&crt->valid_to)) {
            conn_refuse(c, MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED, HUB_TLS_FAIL_EXPIRED,
                        "certificate expired");
            return;
        }
        if (extract_attr(crt, MBEDTLS_OID_AT_CN, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN), c->cn) !=
            0) {
            conn_refuse(c, MBEDTLS_SSL_ALERT_MSG_BAD_CERT, HUB_TLS_FAIL_BAD_CERT,
                        "subject CN missing or invalid");
            return;
        }
        id.cn = c->cn;
        if (extract_attr(crt, MBEDTLS_OID_AT_ORGANIZATION,
                         MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_ORGANIZATION), org) == 0)
            id.o = org;
        id.serial_hex = c->serial_hex;
        id.serial = c->serial;
        id.serial_len = c->serial_len;
        idp = &id;
        /* Everything used later is copied, and the session ticket was written during the
         * handshake: the parsed certificate (about 3 KB) is not kept. */
        mbedtls_x509_crt_free(c->ssl.session->peer_cert);
        mbedtls_free(c->ssl.session->peer_cert);
        c->ssl.session->peer_cert = NULL;
    }
    hub_debug("tls %s: handshake done (%s, %s)%s%s", c->peer, mbedtls_ssl_get_ciphersuite(&c->ssl),
              c->resumed ? "resumed" : "full", c->cn[0] ? " CN=" : "", c->cn);
    count_handshake(c);
    l->st.opened++;
    c->opened = 1;
    if (l->reads_paused) /* handshakes go on during a pause; application data waits */
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->user = l->cb.on_open(c, idp, l->user);
}

static void handshake_failed(hub_tls_conn_t *c, int rc)
{
    c->fail = HUB_TLS_FAIL_PROTOCOL;
    if (rc == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE)
        c->fail = HUB_TLS_FAIL_NO_CERT;
    else if (rc == MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE || (-rc >= 0x2000 && -rc < 0x3000))
        c->fail = HUB_TLS_FAIL_BAD_CERT; /* X.509 parse errors */
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        char info[512];
        uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);
        if (flags & MBEDTLS_X509_BADCERT_REVOKED)
            c->fail = HUB_TLS_FAIL_REVOKED;
        else if (flags & (MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE))
            c->fail = HUB_TLS_FAIL_EXPIRED;
        else if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
            c->fail = HUB_TLS_FAIL_UNKNOWN_CA;
        else
            c->fail = HUB_TLS_FAIL_BAD_CERT;
        int n = mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
        for (int i = 0; i < n - 1; i++)
            if (info[i] == '\n')
                info[i] = ';';
        if (n > 0 && info[n - 1] == '\n')
            info[n - 1] = 0;
        hub_info("tls %s: client certificate refused: %s", c->peer, n > 0 ? info : "?");
    } else {
        log_mbedtls(HUB_LOG_DEBUG, "handshake", c->peer, rc);
    }
    conn_close(c, HUB_TLS_CLOSE_ERROR, CLOSE_FLUSH); /* flushes mbedTLS's alert */
}

/* Feeds the ciphertext in c->in_p to mbedTLS until it wants more. */
static void conn_drive(hub_tls_conn_t *c)
{
    hub_tls_listener_t *l = c->l;
    if (c->state == ST_HANDSHAKE) {
        driving = c;
        int rc = mbedtls_ssl_handshake(&c->ssl);
        driving = NULL;
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
            return;
        if (rc != 0) {
            handshake_failed(c, rc);
            return;
        }
        handshake_done(c);
    }
    while (c->state == ST_OPEN) {
        int rc = mbedtls_ssl_read(&c->ssl, l->plain, sizeof l->plain);
        if (rc > 0) {
            l->cb.on_data(c, l->plain, (size_t)rc);
        } else if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
            break;
        } else if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
            conn_close(c, HUB_TLS_CLOSE_PEER, CLOSE_FLUSH | CLOSE_NOTIFY);
        } else {
            if (rc != 0)
                log_mbedtls(HUB_LOG_DEBUG, "mbedtls_ssl_read", c->peer, rc);
            conn_close(c, HUB_TLS_CLOSE_ERROR, CLOSE_FLUSH);
        }
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    hub_tls_conn_t *c = h->data;
    buf->base = (char *)c->l->rbuf;
    buf->len = sizeof c->l->rbuf;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    hub_tls_conn_t *c = s->data;
    if (nread == 0 || c->state >= ST_CLOSING)
        return;
    if (nread < 0) {
        if (nread != UV_EOF)
            hub_debug("tls %s: read: %s", c->peer, uv_strerror((int)nread));
        conn_close(c, nread == UV_EOF ? HUB_TLS_CLOSE_PEER : HUB_TLS_CLOSE_ERROR,
                   nread == UV_EOF ? CLOSE_FLUSH : 0);
        return;
    }
    c->in_read = 1;
    if (c->l->ctx == NULL) {
        c->l->cb.on_data(c, (const uint8_t *)buf->base, (size_t)nread);
    } else {
        c->in_p = (const uint8_t *)buf->base;
        c->in_n = (size_t)nread;
        conn_drive(c);
        c->in_p = NULL;
        c->in_n = 0;
    }
    c->in_read = 0;
    if (c->state == ST_CLOSED)
        return;
    conn_flush(c);
    if (c->state == ST_CLOSING && !c->writing)
        conn_destroy(c);
    else if (c->state < ST_CLOSING && hub_tls_conn_pending(c) >= READ_PAUSE) {
        c->paused = 1; /* the peer sends faster than it reads: TCP backpressure */
        uv_read_stop(s);
    }
    conn_trim(c);
}

/* The peer as "ip:port" in out and, in addr, the 16 bytes that the per-address limits count
 * by: an IPv4 address mapped into IPv6, or an IPv6 address's /64 (one host usually holds a
 * whole /64, so counting /128s would let it open as many handshakes as it likes). */
static void peer_name(uv_tcp_t *t, char *out, size_t n, uint8_t addr[16])
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    memset(addr, 0, 16);
    if (uv_tcp_getpeername(t, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof ip);
            port = ntohs(a->sin6_port);
            memcpy(addr, &a->sin6_addr, 16);
            if (!IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
                memset(addr + 8, 0, 8);
            snprintf(out, n, "[%s]:%d", ip, port);
            return;
        }
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
        addr[10] = addr[11] = 0xff;
        memcpy(addr + 12, &a->sin_addr, 4);
    }
    snprintf(out, n, "%s:%d", ip, port);
}

static void free_handle_cb(uv_handle_t *h)
{
    free(h);
}

/* Counts a refused connection (logged at most once a second). */
static void count_refused(hub_tls_listener_t *l)
{
    l->st.failed[HUB_TLS_FAIL_LIMIT]++;
    l->refused++;
    uint64_t now = uv_now(l->loop);
    if (now - l->last_refused_log >= 1000) {
        hub_warn("tls listener :%d: %llu connection(s) refused over the limits (%u handshakes, "
                 "%u unauthenticated, %u connections in progress)",
                 l->port, (unsigned long long)l->refused, l->nhandshakes, l->nunauth,
                 l->nconns);
        l->refused = 0;
        l->last_refused_log = now;
    }
}

/* Accepts and closes at once a connection over the listener-wide limits. */
static void refuse_connection(hub_tls_listener_t *l, uv_stream_t *server)
{
    uv_tcp_t *t = malloc(sizeof *t);
    if (t == NULL)
        return;
    uv_tcp_init(l->loop, t);
    (void)uv_accept(server, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, free_handle_cb);
    count_refused(l);
}

static void connection_cb(uv_stream_t *server, int status)
{
    hub_tls_listener_t *l = server->data;
    if (status < 0) {
        hub_warn("tls listener :%d: accept: %s", l->port, uv_strerror(status));
        return;
    }
    if (l->closing_l)
        return;
    const struct hub_tls_shared *sh = l->lim.shared;
    unsigned hs = sh ? sh->handshakes : l->nhandshakes, ua = sh ? sh->unauth : l->nunauth,
             nc = sh ? sh->conns : l->nconns;
    if ((l->ctx != NULL && hs >= l->lim.max_handshakes) ||
        (l->lim.max_unauthenticated != 0 && ua >= l->lim.max_unauthenticated) ||
        (l->lim.max_connections != 0 && nc >= l->lim.max_connections)) {
        refuse_connection(l, server);
        return;
    }
    hub_tls_conn_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        refuse_connection(l, server);
        return;
    }
    c->l = l;
    c->t0_ns = uv_hrtime();
    c->fail = HUB_TLS_FAIL_CLOSED;
    link_init(&c->timed);
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    c->wreq.data = c;
    c->state = ST_OPEN; /* until the TLS set-up below */
    link_push(&l->conns, &c->all);
    l->nconns++;
    l->nunauth++;
    if (l->lim.shared != NULL) {
        l->lim.shared->conns++;
        l->lim.shared->unauth++;
    }
    c->unauth = 1;
    int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc != 0) {
        hub_warn("tls listener :%d: uv_accept: %s", l->port, uv_strerror(rc));
        conn_destroy(c);
        return;
    }
    peer_name(&c->tcp, c->peer, sizeof c->peer, c->addr);
    if (l->ctx != NULL && l->ips != NULL && !ip_try_acquire(l->ips, c->addr)) {
        hub_debug("tls %s: too many handshakes from this address: closed", c->peer);
        count_refused(l);
        conn_destroy(c);
        return;
    }
    l->st.accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    if (l->ctx != NULL) {
        mbedtls_ssl_init(&c->ssl);
        c->ssl_ready = 1;
        c->ip_counted = l->ips != NULL; /* by ip_try_acquire above */
        if ((rc = mbedtls_ssl_setup(&c->ssl, &l->ctx->conf)) != 0) {
            log_mbedtls(HUB_LOG_WARN, "mbedtls_ssl_setup", c->peer, rc);
            if (c->ip_counted)
                ip_release(l->ips, c->addr);
            c->ip_counted = 0;
            conn_destroy(c);
            return;
        }
        mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
        c->dirty = 1; /* calloc may have zeroed every page */
        c->state = ST_HANDSHAKE;
        l->nhandshakes++;
        if (l->lim.shared != NULL)
            l->lim.shared->handshakes++;
        timed_add(c, &l->handshaking, l->lim.handshake_timeout_ms);
    }
    if ((rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb)) != 0) {
        hub_debug("tls %s: uv_read_start: %s", c->peer, uv_strerror(rc));
        conn_destroy(c);
        return;
    }
    if (l->ctx == NULL) {
        l->st.opened++;
        c->opened = 1;
        if (l->reads_paused)
            uv_read_stop((uv_stream_t *)&c->tcp);
        c->user = l->cb.on_open(c, NULL, l->user);
    }
}

static void timer_cb(uv_timer_t *t)
{
    hub_tls_listener_t *l = t->data;
    uint64_t now = uv_now(l->loop);
    l->timer_due = UINT64_MAX;
    while (!link_empty(&l->handshaking)) {
        hub_tls_conn_t *c = CONN_OF(l->handshaking.next, timed);
        if (c->deadline > now)
            break;
        hub_debug("tls %s: handshake timeout", c->peer);
        c->fail = HUB_TLS_FAIL_TIMEOUT;
        conn_close(c, HUB_TLS_CLOSE_ERROR, 0);
    }
    while (!link_empty(&l->closing)) {
        hub_tls_conn_t *c = CONN_OF(l->closing.next, timed);
        if (c->deadline > now)
            break;
        conn_destroy(c);
    }
    if (!link_empty(&l->handshaking))
        timer_arm_at(l, CONN_OF(l->handshaking.next, timed)->deadline);
    if (!link_empty(&l->closing))
        timer_arm_at(l, CONN_OF(l->closing.next, timed)->deadline);
}

/* ---- listener ---------------------------------------------------------------------- */

/* SO_REUSEPORT would let a second daemon of the same user share (and split) the port
 * silently: a plain listening socket first tells whether the port is taken. Returns 0 when
 * it is free. */
static int probe_port(const struct addrinfo *a)
{
    int fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return 0; /* the real socket will report it */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    int rc = bind(fd, a->ai_addr, a->ai_addrlen) != 0 && errno == EADDRINUSE ? -1 : 0;
    close(fd);
    return rc;
}

static int open_socket(const char *host, int port, int reuseport, int *fd_out, int *port_out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host && *host ? host : NULL, ps, &hints, &res);
    if (rc != 0) {
        hub_error("listen %s:%d: %s", host, port, gai_strerror(rc));
        return HUB_EIO;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0) {
        hub_error("listen %s:%d: socket: %s", host, port, strerror(errno));
        freeaddrinfo(res);
        return HUB_EIO;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport == 1 && probe_port(res) != 0) {
        hub_error("listen %s:%d: bind: %s", host, port, strerror(EADDRINUSE));
        freeaddrinfo(res);
        close(fd);
        return HUB_EIO;
    }
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (res->ai_family == AF_INET6) /* "::" listens on IPv6 only, as its name says */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
        hub_error("listen %s:%d: bind: %s", host, port, strerror(errno));
        freeaddrinfo(res);
        close(fd);
        return HUB_EIO;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *port_out = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    return 0;
}

static void listener_handle_closed(uv_handle_t *h)
{
    hub_tls_listener_t *l = h->data;
    l->handles--;
    listener_maybe_done(l);
}

static void listener_maybe_done(hub_tls_listener_t *l)
{
    if (!l->closing_l || l->handles > 0 || l->nconns > 0)
        return;
    void (*done)(void *) = l->done;
    void *arg = l->done_arg;
    ip_table_free(l->own_ips);
    free(l);
    if (done != NULL)
        done(arg);
}

int hub_tls_listen(uv_loop_t *loop, const char *host, int port, hub_tls_ctx_t *ctx,
                   const struct hub_tls_callbacks *cb, void *user,
                   const struct hub_tls_limits *limits, hub_tls_listener_t **out)
{
    *out = NULL;
    if (cb == NULL || cb->on_open == NULL || cb->on_data == NULL)
        return HUB_EINVAL;
    hub_tls_listener_t *l = calloc(1, sizeof *l);
    if (l == NULL)
        return HUB_ENOMEM;
    if (limits != NULL)
        l->lim = *limits;
    if (l->lim.handshake_timeout_ms == 0)
        l->lim.handshake_timeout_ms = 10000;
    if (l->lim.max_handshakes == 0)
        l->lim.max_handshakes = 512;
    if (l->lim.close_timeout_ms == 0)
        l->lim.close_timeout_ms = 5000;
    if (l->lim.max_pending == 0)
        l->lim.max_pending = 16u << 20;
    if (l->lim.backlog <= 0)
        l->lim.backlog = 511;
    if (l->lim.shared != NULL) {
        l->ips = l->lim.shared->ips;
    } else if (ctx != NULL && l->lim.max_handshakes_per_ip != 0) {
        l->own_ips = l->ips = ip_table_new(l->lim.max_handshakes, l->lim.max_handshakes_per_ip);
        if (l->ips == NULL) {
            free(l);
            return HUB_ENOMEM;
        }
    }
    int fd, rc = open_socket(host, port, l->lim.reuseport, &fd, &l->port);
    if (rc != 0) {
        ip_table_free(l->own_ips);
        free(l);
        return rc;
    }
    l->loop = loop;
    l->ctx = ctx;
    l->cb = *cb;
    l->user = user;
    l->timer_due = UINT64_MAX;
    link_init(&l->conns);
    link_init(&l->handshaking);
    link_init(&l->closing);
    uv_tcp_init(loop, &l->tcp);
    uv_timer_init(loop, &l->timer);
    l->tcp.data = l->timer.data = l;
    l->handles = 2;
    if ((rc = uv_tcp_open(&l->tcp, fd)) != 0)
        close(fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, l->lim.backlog, connection_cb);
    if (rc != 0) {
        hub_error("listen %s:%d: %s", host, port, uv_strerror(rc));
        hub_tls_listener_close(l, NULL, NULL);
        return HUB_EIO;
    }
    hub_info("listening on %s:%d (%s)", host, l->port,
             ctx == NULL                            ? "plain TCP"
             : ctx->auth == HUB_TLS_CLIENT_REQUIRED ? "TLS, client certificate required"
                                                    : "TLS");
    *out = l;
    return 0;
}

void hub_tls_listener_stats(const hub_tls_listener_t *l, struct hub_tls_stats *out)
{
    *out = l->st;
    out->conns = l->nconns;
    out->unauth = l->nunauth;
}

int hub_tls_listener_port(const hub_tls_listener_t *l)
{
    return l->port;
}

void hub_tls_listener_close(hub_tls_listener_t *l, void (*done)(void *arg), void *arg)
{
    if (l->closing_l)
        return;
    l->closing_l = 1;
    l->done = done;
    l->done_arg = arg;
    uv_close((uv_handle_t *)&l->tcp, listener_handle_closed);
    uv_close((uv_handle_t *)&l->timer, listener_handle_closed);
    for (struct link *k = l->conns.next; k != &l->conns; k = k->next) {
        hub_tls_conn_t *c = CONN_OF(k, all);
        if (c->state == ST_CLOSED)
            continue;
        if (c->state == ST_OPEN && l->ctx != NULL && !c->writing) {
            /* Best effort close_notify without waiting. */
            if (mbedtls_ssl_close_notify(&c->ssl) == 0) {
                uv_buf_t ub = uv_buf_init((char *)c->out[c->cur].data, c->out[c->cur].len);
                (void)uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
            }
        }
        if (c->state < ST_CLOSING)
            c->reason = HUB_TLS_CLOSE_SHUTDOWN;
        conn_destroy(c);
    }
}

void hub_tls_listener_pause(hub_tls_listener_t *l, int pause)
{
    if (l->reads_paused == !!pause)
        return;
    l->reads_paused = !!pause;
    for (struct link *k = l->conns.next; k != &l->conns; k = k->next) {
        hub_tls_conn_t *c = CONN_OF(k, all);
        if (c->state != ST_OPEN || c->paused || c->held)
            continue;
        if (pause)
            uv_read_stop((uv_stream_t *)&c->tcp);
        else
            uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    }
}

int hub_tls_listener_recheck(hub_tls_listener_t *l)
{
    if (l->ctx == NULL || l->ctx->auth != HUB_TLS_CLIENT_REQUIRED || l->ctx->revset == NULL)
        return 0;
    int n = 0;
    for (struct link *k = l->conns.next; k != &l->conns; k = k->next) {
        hub_tls_conn_t *c = CONN_OF(k, all);
        if (c->state != ST_OPEN || c->serial_len == 0 ||
            !hub_revset_contains(l->ctx->revset, c->serial, c->serial_len))
            continue;
        hub_info("tls %s: certificate %s of %s revoked: closing", c->peer, c->serial_hex, c->cn);
        (void)mbedtls_ssl_send_alert_message(&c->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                             MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED);
        conn_close(c, HUB_TLS_CLOSE_REVOKED, CLOSE_FLUSH);
        n++;
    }
    return n;
}

/* ---- connection API -------------------------------------------------------------- */

int hub_tls_write(hub_tls_conn_t *c, const void *data, size_t len)
{
    if (c->state != ST_OPEN)
        return HUB_EIO;
    if (len > c->l->lim.max_pending || hub_tls_conn_pending(c) > c->l->lim.max_pending - len) {
        hub_warn("tls %s: more than %zu bytes queued: closing", c->peer, c->l->lim.max_pending);
        conn_close(c, HUB_TLS_CLOSE_ERROR, 0);
        return HUB_ERANGE;
    }
    const unsigned char *p = data;
    if (c->l->ctx == NULL) {
        if (outbuf_append(&c->out[c->cur], p, len) != 0)
            return HUB_ENOMEM;
    } else {
        while (len > 0) {
            int rc = mbedtls_ssl_write(&c->ssl, p, len);
            if (rc < 0) {
                log_mbedtls(HUB_LOG_DEBUG, "mbedtls_ssl_write", c->peer, rc);
                conn_close(c, HUB_TLS_CLOSE_ERROR, 0);
                return rc == MBEDTLS_ERR_SSL_ALLOC_FAILED ? HUB_ENOMEM : HUB_EIO;
            }
            p += rc;
            len -= (size_t)rc;
        }
    }
    if (!c->in_read) {
        conn_flush(c);
        conn_trim(c);
    }
    return 0;
}

void hub_tls_conn_authenticated(hub_tls_conn_t *c)
{
    if (c->unauth) {
        c->unauth = 0;
        c->l->nunauth--;
        if (c->l->lim.shared != NULL)
            c->l->lim.shared->unauth--;
    }
}

void hub_tls_close(hub_tls_conn_t *c)
{
    conn_close(c, HUB_TLS_CLOSE_LOCAL, CLOSE_FLUSH | CLOSE_NOTIFY);
}

void hub_tls_conn_pause(hub_tls_conn_t *c, int paused)
{
    if (c->held == !!paused || c->state != ST_OPEN)
        return;
    c->held = !!paused;
    if (c->paused || c->l->reads_paused)
        return; /* stopped anyway; restarted by whichever pause ends last */
    if (paused)
        uv_read_stop((uv_stream_t *)&c->tcp);
    else
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

void *hub_tls_conn_user(const hub_tls_conn_t *c)
{
    return c->user;
}

void hub_tls_conn_set_user(hub_tls_conn_t *c, void *user)
{
    c->user = user;
}

const char *hub_tls_conn_cn(const hub_tls_conn_t *c)
{
    return c->cn;
}

const char *hub_tls_conn_serial_hex(const hub_tls_conn_t *c)
{
    return c->serial_hex;
}

const char *hub_tls_conn_peer(const hub_tls_conn_t *c)
{
    return c->peer;
}

size_t hub_tls_conn_pending(const hub_tls_conn_t *c)
{
    return c->out[0].len + c->out[1].len;
}

hub_tls_listener_t *hub_tls_conn_listener(const hub_tls_conn_t *c)
{
    return c->l;
}

uv_loop_t *hub_tls_conn_loop(const hub_tls_conn_t *c)
{
    return c->l->loop;
}
