/* The server TLS configuration (mbedTLS, TLS 1.2 only): certificate chain and key, cipher
 * suites and curves, client-certificate verification against the revocation set, and the
 * session-ticket callbacks. Built once at startup; then read-only, shared by the listeners
 * of every loop. */
#ifndef HUB_NET_TLS_CTX_H
#define HUB_NET_TLS_CTX_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "net/revset.h"
#include "net/tickets.h"
#include "net/trust.h"
#include "util/log.h"

typedef struct hub_tls_ctx hub_tls_ctx_t;

enum hub_tls_client_auth {
    HUB_TLS_CLIENT_NONE,     /* no client certificate asked for (username/password TLS) */
    HUB_TLS_CLIENT_REQUIRED, /* mTLS: a valid, unrevoked clientAuth certificate required */
};

/* Most server certificates one context presents side by side. */
#define HUB_TLS_CTX_MAX_CERTS 4

/* One more server certificate (chain and key, PEM, NUL-terminated; copied). */
struct hub_tls_ctx_cert {
    const char *cert_chain_pem;
    const char *key_pem;
};

struct hub_tls_ctx_options {
    const char *cert_chain_pem; /* server certificate, then intermediates (NUL-terminated) */
    const char *key_pem;        /* server private key as PEM, or NULL to use key */
    mbedtls_pk_context *key;    /* or the parsed key (copied; the caller keeps its own) */
    /* Further certificates presented side by side with the first (an RSA one next to an EC
     * one): each handshake gets the first whose key the negotiated suite can use. */
    const struct hub_tls_ctx_cert *more_certs;
    size_t n_more_certs; /* at most HUB_TLS_CTX_MAX_CERTS - 1 */
    const char *ca_pem;         /* CAs client certificates must chain to (issuing + root) */
    enum hub_tls_client_auth client_auth;
    /* Comma-separated IANA or mbedTLS names; NULL: ECDHE AEAD. Handed to mbedTLS (which
     * follows the server's order) forward-secret first: ECDHE, then DHE (RFC 7919 ffdhe2048),
     * then static RSA, the listed order kept within each group. A list no certificate can
     * serve is refused (HUB_ECONFIG, logged with the keys and the suites). */
    const char *ciphers;
    hub_tickets_t *tickets; /* session-ticket keys, borrowed, must outlive the context
                               (shared by contexts and threads); NULL: no tickets */
    hub_revset_t *revset;   /* borrowed, must outlive the context; NULL: no revocation */
    hub_trust_t *trust;     /* device CAs trusted besides ca_pem (net/trust.h), borrowed,
                               must outlive the context; NULL: none */
};

/* Builds a server TLS configuration (TLS 1.2 only). The context may be shared by listeners
 * on several loops, must outlive them, and is freed with hub_tls_ctx_free. Tickets are written
 * and opened with o->tickets, bound to the client_auth mode. Returns 0 or
 * HUB_EINVAL/HUB_ENOMEM/HUB_ECRYPTO (logged). */
int hub_tls_ctx_new(const struct hub_tls_ctx_options *o, hub_tls_ctx_t **out);
void hub_tls_ctx_free(hub_tls_ctx_t *ctx);

/* What net/tls_conn needs while it drives handshakes (any thread, the context is read-only):
 * the mbedTLS configuration to set a connection up with, the client_auth mode, and whether
 * revocation is checked at all. */
const mbedtls_ssl_config *hub_tls_ctx_conf(const hub_tls_ctx_t *ctx);
enum hub_tls_client_auth hub_tls_ctx_auth(const hub_tls_ctx_t *ctx);
int hub_tls_ctx_has_revset(const hub_tls_ctx_t *ctx);
/* 1 when the serial (DER INTEGER bytes, leading zeros allowed) is in the revocation set. */
int hub_tls_ctx_revoked(const hub_tls_ctx_t *ctx, const uint8_t *serial, size_t len);
/* The device CAs (NULL: none) and our client CAs (the parsed ca_pem), for net/tls_peer. */
hub_trust_t *hub_tls_ctx_trust(const hub_tls_ctx_t *ctx);
const mbedtls_x509_crt *hub_tls_ctx_client_cas(const hub_tls_ctx_t *ctx);
/* Points *p at the serial without its leading zero bytes and returns its length; 0 when it is
 * empty or longer than HUB_REVSET_MAX_SERIAL. */
size_t hub_tls_ctx_serial(const mbedtls_x509_buf *s, const uint8_t **p);
/* Counts a completed handshake under its negotiated suite (any thread; atomic). */
void hub_tls_ctx_count_suite(hub_tls_ctx_t *ctx, int suite_id);
/* The i-th configured suite (server order): its mbedTLS name and how many handshakes
 * negotiated it. Returns 0, or HUB_ERANGE past the last suite. */
int hub_tls_ctx_suite_stats(const hub_tls_ctx_t *ctx, size_t i, const char **name,
                            uint64_t *handshakes);
/* Returns 1 if a session ticket was accepted on this thread since the last call (i.e. by the
 * mbedtls_ssl_handshake step that just ran: the session resumed), and clears the flag. */
int hub_tls_ctx_take_resumed(void);
/* Logs an mbedTLS failure of `what` at lvl, with the peer ("ip:port", or NULL) and the
 * mbedTLS code and message. */
void hub_tls_ctx_log(enum hub_log_level lvl, const char *what, const char *peer, int rc);

#endif
