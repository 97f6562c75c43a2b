/* The peer of a connection: its address, the checks of its certificate after every
 * completed handshake (a resumed session never ran the verify callback), the identity copied
 * out of it, and why a handshake failed. No state of its own; any thread. */
#ifndef HUB_NET_TLS_PEER_H
#define HUB_NET_TLS_PEER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "net/tls_ctx.h"

#define HUB_TLS_PEER_NAME_MAX 64

/* Why a handshake did not lead to an open connection (metrics). */
enum hub_tls_fail {
    HUB_TLS_FAIL_CLOSED,     /* the peer or the server closed during the handshake */
    HUB_TLS_FAIL_TIMEOUT,    /* handshake_timeout_ms elapsed */
    HUB_TLS_FAIL_LIMIT,      /* refused at accept: over a listener-wide or per-address cap */
    HUB_TLS_FAIL_NO_CERT,    /* mTLS: no client certificate */
    HUB_TLS_FAIL_BAD_CERT,   /* malformed, wrong key usage, bad subject or serial */
    HUB_TLS_FAIL_UNKNOWN_CA, /* does not chain to the configured CAs */
    HUB_TLS_FAIL_EXPIRED,    /* expired or not yet valid */
    HUB_TLS_FAIL_REVOKED,    /* serial in the revocation set */
    HUB_TLS_FAIL_PROTOCOL,   /* any other TLS error (alerts, versions, ciphers...) */
    HUB_TLS_FAIL_COUNT
};

/* The label of a failure reason ("timeout", "bad_certificate", ...). */
const char *hub_tls_peer_fail_name(enum hub_tls_fail f);

/* What a connection keeps of its peer's certificate (owned by the connection). */
struct hub_tls_peer {
    char cn[HUB_TLS_PEER_NAME_MAX + 1];
    uint8_t serial[HUB_REVSET_MAX_SERIAL];
    size_t serial_len;
    char serial_hex[2 * HUB_REVSET_MAX_SERIAL + 1];
    char device_ca[HUB_TRUST_ID_LEN + 1]; /* the device CA that issued it, "" for our CAs */
};

/* The peer of an accepted socket (or from, when not NULL: the client a PROXY header named)
 * as "ip:port" in out (n bytes) and, in addr, the key the per-address handshake cap counts
 * it by (hub_admission_addr_key); "?:0" and zeros when the socket has no peer any more. */
void hub_tls_peer_address(uv_tcp_t *t, const struct sockaddr *from, char *out, size_t n,
                          uint8_t addr[16]);
/* Checks the certificate of a completed mTLS handshake (crt may be NULL) and fills p (serial
 * first, then CN) and org (the single organizationName, or "" when absent or invalid).
 * Returns -1 when it is acceptable, else the failure, with the alert to send and why (a
 * static string, for the log). */
int hub_tls_peer_check(const hub_tls_ctx_t *ctx, const mbedtls_x509_crt *crt,
                       struct hub_tls_peer *p, char org[HUB_TLS_PEER_NAME_MAX + 1],
                       unsigned char *alert, const char **why);
/* 1 when the certificate of a live connection must go: its serial is in the revocation set,
 * or its device CA is disabled, gone, or lists it in its CRL (hub_tls_conn_group_recheck). */
int hub_tls_peer_revoked(const hub_tls_ctx_t *ctx, const struct hub_tls_peer *p);
/* Notes a refused client certificate (crt may be NULL) for the daemon's rate-limited audit
 * (hub_trust_note_refusal), when the context has device CAs; failures that are not about
 * the certificate are not noted. */
void hub_tls_peer_refused(const hub_tls_ctx_t *ctx, const mbedtls_x509_crt *crt,
                          enum hub_tls_fail fail, const char *peer);
/* The failure reason of a handshake that failed with mbedTLS code rc; a refused client
 * certificate is logged (info) with the verification flags, anything else at debug level
 * with peer ("ip:port"). */
enum hub_tls_fail hub_tls_peer_failure(const mbedtls_ssl_context *ssl, int rc, const char *peer);

#endif
