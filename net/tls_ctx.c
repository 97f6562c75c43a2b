/* The server TLS configuration shared by listeners on several loops. Design:
 *   - revocation: a verify callback refuses a depth-0 certificate in the revset or without
 *     clientAuth (no CRL is given to mbedTLS); a ticket whose certificate was revoked is not
 *     resumed (full handshake instead); net/tls_conn re-checks the peer certificate after
 *     every completed handshake, since a resumed session never calls the verify callback;
 *   - session tickets: written and opened with the caller's key set (net/tickets), which
 *     iothubd keeps in PostgreSQL so that sessions resume after a restart and on other nodes;
 *     the ticket callback tells the handshake it resumed through a thread-local flag;
 *   - several server certificates (EC and RSA side by side): mbedTLS 2.28 walks the suites in
 *     the server's order (MBEDTLS_SSL_SRV_RESPECT_CLIENT_PREFERENCE is off in Debian's build)
 *     and, for each suite the client offers, takes the first certificate whose key that suite
 *     can use; so the order we give it decides, and forward-secret suites come first. */
#include "net/tls_ctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/dhm.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/ssl_ciphersuites.h>

#include "net/tls_suites.h"
#include "util/error.h"
#include "util/secure.h"

struct hub_tls_ctx {
    mbedtls_ssl_config conf;
    mbedtls_x509_crt chain[HUB_TLS_CTX_MAX_CERTS]; /* our certificates and intermediates */
    mbedtls_pk_context key[HUB_TLS_CTX_MAX_CERTS];
    size_t ncerts;
    mbedtls_x509_crt ca;    /* client CAs */
    hub_tickets_t *tickets; /* borrowed; NULL: no session tickets */
    int *suites;            /* 0-terminated, referenced by conf */
    uint64_t *suite_count;  /* handshakes per suite, parallel to suites (atomic) */
    size_t nsuites;
    enum hub_tls_client_auth auth;
    hub_revset_t *revset;
    hub_trust_t *trust; /* device CAs, borrowed; NULL: none */
};

/* Set by the ticket callback when this thread's current handshake step resumed a session. */
static _Thread_local int resumed_now;

void hub_tls_ctx_log(enum hub_log_level lvl, const char *what, const char *peer, int rc)
{
    char msg[160];
    mbedtls_strerror(rc, msg, sizeof msg);
    hub_log(lvl, "tls%s%s: %s failed: -0x%04x %s", peer ? " " : "", peer ? peer : "", what,
            (unsigned)-rc, msg);
}

size_t hub_tls_ctx_serial(const mbedtls_x509_buf *s, const uint8_t **p)
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

int hub_tls_ctx_revoked(const hub_tls_ctx_t *ctx, const uint8_t *serial, size_t len)
{
    return ctx->revset != NULL && hub_revset_contains(ctx->revset, serial, len);
}

static int is_revoked(hub_tls_ctx_t *ctx, const mbedtls_x509_crt *crt)
{
    return hub_tls_ctx_revoked(ctx, crt->serial.p, crt->serial.len);
}

const mbedtls_ssl_config *hub_tls_ctx_conf(const hub_tls_ctx_t *ctx)
{
    return &ctx->conf;
}

enum hub_tls_client_auth hub_tls_ctx_auth(const hub_tls_ctx_t *ctx)
{
    return ctx->auth;
}

hub_trust_t *hub_tls_ctx_trust(const hub_tls_ctx_t *ctx)
{
    return ctx->trust;
}

const mbedtls_x509_crt *hub_tls_ctx_client_cas(const hub_tls_ctx_t *ctx)
{
    return &ctx->ca;
}

int hub_tls_ctx_has_revset(const hub_tls_ctx_t *ctx)
{
    return ctx->revset != NULL;
}

void hub_tls_ctx_count_suite(hub_tls_ctx_t *ctx, int suite_id)
{
    for (size_t i = 0; i < ctx->nsuites; i++) {
        if (ctx->suites[i] == suite_id) {
            __atomic_fetch_add(&ctx->suite_count[i], 1, __ATOMIC_RELAXED);
            return;
        }
    }
}

int hub_tls_ctx_suite_stats(const hub_tls_ctx_t *ctx, size_t i, const char **name,
                            uint64_t *handshakes)
{
    if (ctx == NULL || i >= ctx->nsuites)
        return HUB_ERANGE;
    *name = mbedtls_ssl_get_ciphersuite_name(ctx->suites[i]);
    *handshakes = __atomic_load_n(&ctx->suite_count[i], __ATOMIC_RELAXED);
    return 0;
}

int hub_tls_ctx_take_resumed(void)
{
    int r = resumed_now;
    resumed_now = 0;
    return r;
}

static const mbedtls_ecp_group_id CURVES[] = {MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1,
                                              MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_NONE};

/* With device CAs, the flags of the upper certificates of the chain being verified on this
 * thread (mbedTLS calls the callback from the top of the chain down to depth 0). */
static _Thread_local uint32_t upper_flags;

/* Verify callback: runs for every certificate of the client's chain during a full
 * handshake, after mbedTLS has checked signatures and validity against the CA chain. With
 * device CAs (net/trust.h), the flags of upper certificates are held until depth 0: a
 * certificate our CAs do not verify is then verified against the enabled device CAs. */
static int verify_cb(void *p, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    hub_tls_ctx_t *ctx = p;
    const uint8_t *s;
    if (depth != 0 && ctx->trust != NULL) {
        upper_flags |= *flags;
        *flags = 0;
    }
    if (depth != 0)
        return 0;
    if (ctx->trust != NULL) {
        uint32_t all = *flags | upper_flags, dev = 0;
        char id[HUB_TRUST_ID_LEN + 1];
        upper_flags = 0;
        *flags =
            (all & MBEDTLS_X509_BADCERT_NOT_TRUSTED) && hub_trust_verify(ctx->trust, crt, &dev, id)
                ? dev
                : all;
    }
    if (hub_tls_ctx_serial(&crt->serial, &s) == 0)
        *flags |= MBEDTLS_X509_BADCERT_OTHER;
    else if (is_revoked(ctx, crt))
        *flags |= MBEDTLS_X509_BADCERT_REVOKED;
    if (mbedtls_x509_crt_check_extended_key_usage(crt, MBEDTLS_OID_CLIENT_AUTH,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)) != 0)
        *flags |= MBEDTLS_X509_BADCERT_EXT_KEY_USAGE;
    if (ctx->trust != NULL && *flags != 0) /* for the audit of the refusal (net/trust.h) */
        hub_trust_capture(ctx->trust, crt);
    return 0;
}

static int ticket_write_cb(void *p, const mbedtls_ssl_session *session, unsigned char *start,
                           const unsigned char *end, size_t *tlen, uint32_t *lifetime)
{
    hub_tls_ctx_t *ctx = p;
    return hub_tickets_write(ctx->tickets, (uint8_t)ctx->auth, session, start, end, tlen, lifetime);
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
    resumed_now = 1;
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

/* Loads the server key from key_pem, or copies the parsed key `in`, into dst. */
static int load_key(mbedtls_pk_context *dst, const char *key_pem, mbedtls_pk_context *in)
{
    int rc;
    if (key_pem != NULL) {
        rc = mbedtls_pk_parse_key(dst, (const unsigned char *)key_pem, strlen(key_pem) + 1,
                                  NULL, 0);
        if (rc != 0)
            hub_tls_ctx_log(HUB_LOG_ERROR, "server key: mbedtls_pk_parse_key", NULL, rc);
        return rc == 0 ? 0 : HUB_EINVAL;
    }
    if (in == NULL) {
        hub_error("tls: no server key given");
        return HUB_EINVAL;
    }
    /* Keep a private copy: serialise and parse again. */
    size_t cap = 8192;
    unsigned char *der = malloc(cap);
    if (der == NULL)
        return HUB_ENOMEM;
    int len = mbedtls_pk_write_key_der(in, der, cap);
    rc = len < 0 ? len : mbedtls_pk_parse_key(dst, der + cap - len, (size_t)len, NULL, 0);
    hub_wipe(der, cap);
    free(der);
    if (rc != 0)
        hub_tls_ctx_log(HUB_LOG_ERROR, "server key: copy", NULL, rc);
    return rc == 0 ? 0 : HUB_EINVAL;
}

/* Parses one server certificate chain and its key into slot i, and checks they match. */
static int load_cert(hub_tls_ctx_t *ctx, size_t i, const char *chain_pem, const char *key_pem,
                     mbedtls_pk_context *key)
{
    int m, rc;
    if (chain_pem == NULL ||
        (m = mbedtls_x509_crt_parse(&ctx->chain[i], (const unsigned char *)chain_pem,
                                    strlen(chain_pem) + 1)) != 0) {
        hub_error("tls: the server certificate chain does not parse");
        return HUB_EINVAL;
    }
    if ((rc = load_key(&ctx->key[i], key_pem, key)) != 0)
        return rc;
    if ((m = mbedtls_pk_check_pair(&ctx->chain[i].pk, &ctx->key[i])) != 0) {
        hub_tls_ctx_log(HUB_LOG_ERROR, "server key does not match the certificate: check_pair",
                        NULL, m);
        return HUB_EINVAL;
    }
    return 0;
}

int hub_tls_ctx_new(const struct hub_tls_ctx_options *o, hub_tls_ctx_t **out)
{
    *out = NULL;
    hub_tls_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return HUB_ENOMEM;
    mbedtls_ssl_config_init(&ctx->conf);
    for (size_t i = 0; i < HUB_TLS_CTX_MAX_CERTS; i++) {
        mbedtls_x509_crt_init(&ctx->chain[i]);
        mbedtls_pk_init(&ctx->key[i]);
    }
    mbedtls_x509_crt_init(&ctx->ca);
    ctx->auth = o->client_auth;
    ctx->revset = o->revset;
    ctx->trust = o->trust;
    ctx->tickets = o->tickets;
    int rc = HUB_EINVAL, m;

    if (o->n_more_certs >= HUB_TLS_CTX_MAX_CERTS) {
        hub_error("tls: at most %d server certificates", HUB_TLS_CTX_MAX_CERTS);
        goto out;
    }
    if ((rc = load_cert(ctx, 0, o->cert_chain_pem, o->key_pem, o->key)) != 0)
        goto out;
    for (ctx->ncerts = 1; ctx->ncerts <= o->n_more_certs; ctx->ncerts++) {
        const struct hub_tls_ctx_cert *c = &o->more_certs[ctx->ncerts - 1];
        if ((rc = load_cert(ctx, ctx->ncerts, c->cert_chain_pem, c->key_pem, NULL)) != 0)
            goto out;
    }
    rc = HUB_EINVAL;
    if (o->client_auth == HUB_TLS_CLIENT_REQUIRED &&
        (o->ca_pem == NULL ||
         (m = mbedtls_x509_crt_parse(&ctx->ca, (const unsigned char *)o->ca_pem,
                                     strlen(o->ca_pem) + 1)) != 0)) {
        hub_error("tls: the client CA certificates do not parse");
        goto out;
    }
    if ((rc = hub_tls_suites_parse(o->ciphers, &ctx->suites)) != 0)
        goto out;
    struct hub_tls_key_kind kinds[HUB_TLS_CTX_MAX_CERTS];
    for (size_t i = 0; i < ctx->ncerts; i++)
        hub_tls_suites_key_kind(&ctx->key[i], &kinds[i]);
    /* Named in the listed order, before reordering. */
    if ((rc = hub_tls_suites_check(ctx->suites, kinds, ctx->ncerts, o->ciphers != NULL)) != 0)
        goto out;
    hub_tls_suites_order(ctx->suites);
    while (ctx->suites[ctx->nsuites] != 0)
        ctx->nsuites++;
    rc = HUB_ENOMEM;
    if ((ctx->suite_count = calloc(ctx->nsuites, sizeof *ctx->suite_count)) == NULL)
        goto out;

    rc = HUB_ECRYPTO;
    if ((m = mbedtls_ssl_config_defaults(&ctx->conf, MBEDTLS_SSL_IS_SERVER,
                                         MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
        hub_tls_ctx_log(HUB_LOG_ERROR, "mbedtls_ssl_config_defaults", NULL, m);
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
    for (size_t i = 0; i < ctx->ncerts; i++) {
        if ((m = mbedtls_ssl_conf_own_cert(&ctx->conf, &ctx->chain[i], &ctx->key[i])) != 0) {
            hub_tls_ctx_log(HUB_LOG_ERROR, "mbedtls_ssl_conf_own_cert", NULL, m);
            goto out;
        }
    }
    /* DHE_RSA suites (opt-in): the RFC 7919 2048-bit group. */
    static const unsigned char dh_p[] = MBEDTLS_DHM_RFC7919_FFDHE2048_P_BIN;
    static const unsigned char dh_g[] = MBEDTLS_DHM_RFC7919_FFDHE2048_G_BIN;
    if ((m = mbedtls_ssl_conf_dh_param_bin(&ctx->conf, dh_p, sizeof dh_p, dh_g, sizeof dh_g)) !=
        0) {
        hub_tls_ctx_log(HUB_LOG_ERROR, "mbedtls_ssl_conf_dh_param_bin", NULL, m);
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

    for (size_t i = 0; i < ctx->ncerts; i++)
        warm_up_ec(&ctx->key[i], 1);
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
    for (size_t i = 0; i < HUB_TLS_CTX_MAX_CERTS; i++) {
        mbedtls_x509_crt_free(&ctx->chain[i]);
        mbedtls_pk_free(&ctx->key[i]);
    }
    mbedtls_x509_crt_free(&ctx->ca);
    free(ctx->suites);
    free(ctx->suite_count);
    free(ctx);
}
