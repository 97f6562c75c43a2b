/* Peer certificate checks and handshake failure reasons (see tls_peer.h). */
#include "net/tls_peer.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/oid.h>

#include "net/admission.h"
#include "util/log.h"
#include "util/secure.h"

const char *hub_tls_peer_fail_name(enum hub_tls_fail f)
{
    static const char *const names[HUB_TLS_FAIL_COUNT] = {
        "closed",     "timeout", "limit",   "no_certificate", "bad_certificate",
        "unknown_ca", "expired", "revoked", "protocol"};
    return (unsigned)f < HUB_TLS_FAIL_COUNT ? names[f] : "protocol";
}

/* Extracts the single subject attribute oid (CN, O); 0 or -1 (absent, repeated, too long,
 * control characters). */
static int extract_attr(const mbedtls_x509_crt *crt, const char *oid, size_t oid_len,
                        char out[HUB_TLS_PEER_NAME_MAX + 1])
{
    const mbedtls_x509_buf *v = NULL;
    int count = 0;
    for (const mbedtls_x509_name *n = &crt->subject; n != NULL; n = n->next) {
        if (n->oid.p != NULL && n->oid.len == oid_len && memcmp(n->oid.p, oid, oid_len) == 0) {
            v = &n->val;
            count++;
        }
    }
    if (count != 1 || v->len == 0 || v->len > HUB_TLS_PEER_NAME_MAX)
        return -1;
    for (size_t i = 0; i < v->len; i++)
        if (v->p[i] < 0x20 || v->p[i] == 0x7f)
            return -1;
    memcpy(out, v->p, v->len);
    out[v->len] = 0;
    return 0;
}

void hub_tls_peer_address(uv_tcp_t *t, const struct sockaddr *from, char *out, size_t n,
                          uint8_t addr[16])
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    memset(addr, 0, 16);
    if (from != NULL)
        memcpy(&ss, from, from->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                      : sizeof(struct sockaddr_in));
    if (from != NULL || uv_tcp_getpeername(t, (struct sockaddr *)&ss, &len) == 0) {
        hub_admission_addr_key((const struct sockaddr *)&ss, addr);
        if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof ip);
            port = ntohs(a->sin6_port);
            snprintf(out, n, "[%s]:%d", ip, port);
            return;
        }
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
    }
    snprintf(out, n, "%s:%d", ip, port);
}

int hub_tls_peer_check(const hub_tls_ctx_t *ctx, const mbedtls_x509_crt *crt,
                       struct hub_tls_peer *p, char org[HUB_TLS_PEER_NAME_MAX + 1],
                       unsigned char *alert, const char **why)
{
    const uint8_t *s;
    org[0] = 0;
    if (crt == NULL) {
        *alert = MBEDTLS_SSL_ALERT_MSG_NO_CERT;
        *why = "no certificate in the session";
        return HUB_TLS_FAIL_NO_CERT;
    }
    p->serial_len = hub_tls_ctx_serial(&crt->serial, &s);
    if (p->serial_len == 0) {
        *alert = MBEDTLS_SSL_ALERT_MSG_BAD_CERT;
        *why = "serial longer than 20 bytes";
        return HUB_TLS_FAIL_BAD_CERT;
    }
    memcpy(p->serial, s, p->serial_len);
    hub_hex_upper(p->serial, p->serial_len, p->serial_hex);
    if (hub_tls_ctx_revoked(ctx, crt->serial.p, crt->serial.len)) {
        *alert = MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED;
        *why = "certificate revoked";
        return HUB_TLS_FAIL_REVOKED;
    }
    if (mbedtls_x509_time_is_past(&crt->valid_to)) {
        *alert = MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED;
        *why = "certificate expired";
        return HUB_TLS_FAIL_EXPIRED;
    }
    p->device_ca[0] = 0;
    if (hub_tls_ctx_trust(ctx) != NULL) {
        switch (hub_trust_classify(hub_tls_ctx_trust(ctx), crt, hub_tls_ctx_client_cas(ctx),
                                   p->device_ca)) {
        case HUB_TRUST_OURS: p->device_ca[0] = 0; break;
        case HUB_TRUST_DEVICE: break;
        case HUB_TRUST_REVOKED:
            *alert = MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED;
            *why = "certificate listed in its device CA's CRL";
            return HUB_TLS_FAIL_REVOKED;
        case HUB_TRUST_DISABLED:
            *alert = MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA;
            *why = "device CA disabled";
            return HUB_TLS_FAIL_UNKNOWN_CA;
        default:
            *alert = MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA;
            *why = "issuer is no longer trusted";
            return HUB_TLS_FAIL_UNKNOWN_CA;
        }
    }
    if (extract_attr(crt, MBEDTLS_OID_AT_CN, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN), p->cn) != 0) {
        *alert = MBEDTLS_SSL_ALERT_MSG_BAD_CERT;
        *why = "subject CN missing or invalid";
        return HUB_TLS_FAIL_BAD_CERT;
    }
    if (extract_attr(crt, MBEDTLS_OID_AT_ORGANIZATION,
                     MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_ORGANIZATION), org) != 0)
        org[0] = 0;
    return -1;
}

int hub_tls_peer_revoked(const hub_tls_ctx_t *ctx, const struct hub_tls_peer *p)
{
    if (hub_tls_ctx_revoked(ctx, p->serial, p->serial_len))
        return 1;
    return p->device_ca[0] != 0 && hub_tls_ctx_trust(ctx) != NULL &&
           !hub_trust_still_trusted(hub_tls_ctx_trust(ctx), p->device_ca, p->serial, p->serial_len);
}

void hub_tls_peer_refused(const hub_tls_ctx_t *ctx, const mbedtls_x509_crt *crt,
                          enum hub_tls_fail fail, const char *peer)
{
    hub_trust_t *t = hub_tls_ctx_trust(ctx);
    if (t == NULL || (fail != HUB_TLS_FAIL_BAD_CERT && fail != HUB_TLS_FAIL_UNKNOWN_CA &&
                      fail != HUB_TLS_FAIL_EXPIRED && fail != HUB_TLS_FAIL_REVOKED))
        return;
    hub_trust_note_refusal(t, hub_tls_peer_fail_name(fail), peer, crt);
}

enum hub_tls_fail hub_tls_peer_failure(const mbedtls_ssl_context *ssl, int rc, const char *peer)
{
    enum hub_tls_fail fail = HUB_TLS_FAIL_PROTOCOL;
    if (rc == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE)
        fail = HUB_TLS_FAIL_NO_CERT;
    else if (rc == MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE || (-rc >= 0x2000 && -rc < 0x3000))
        fail = HUB_TLS_FAIL_BAD_CERT; /* X.509 parse errors */
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        char info[512];
        uint32_t flags = mbedtls_ssl_get_verify_result(ssl);
        if (flags & MBEDTLS_X509_BADCERT_REVOKED)
            fail = HUB_TLS_FAIL_REVOKED;
        else if (flags & (MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE))
            fail = HUB_TLS_FAIL_EXPIRED;
        else if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
            fail = HUB_TLS_FAIL_UNKNOWN_CA;
        else
            fail = HUB_TLS_FAIL_BAD_CERT;
        int n = mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
        for (int i = 0; i < n - 1; i++)
            if (info[i] == '\n')
                info[i] = ';';
        if (n > 0 && info[n - 1] == '\n')
            info[n - 1] = 0;
        hub_info("tls %s: client certificate refused: %s", peer, n > 0 ? info : "?");
    } else {
        hub_tls_ctx_log(HUB_LOG_DEBUG, "handshake", peer, rc);
    }
    return fail;
}
