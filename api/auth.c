/* Authentication: bearer tokens (api/token.h) looked up by id and compared in constant
 * time, Basic credentials verified by their slow hash (also for unknown ids, so timing
 * does not reveal which exist, unless the source is past its free failures), and client
 * certificates verified against the issuing CAs. Tokens and Basic credentials are throttled
 * per source address (api/throttle.h): 429 + Retry-After without any check while a delay runs. */
#include "api/auth.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/gnutls.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>
#include <microhttpd.h>

#include "api/params.h"
#include "api/reply.h"
#include "api/throttle.h"
#include "api/token.h"
#include "api/transaction.h"
#include "ca/cert.h"
#include "db/db.h"
#include "db/devices.h"
#include "db/pool.h"
#include "db/products.h"
#include "db/services.h"
#include "db/tokens.h"
#include "util/error.h"
#include "util/log.h"
#include "util/passhash.h"
#include "util/secure.h"

static void unauthorized(struct hub_req *r, const char *scheme, const char *msg)
{
    hub_reply_error(r, 401, "unauthorized", "%s", msg);
    hub_reply_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, scheme);
}

/* What Basic credentials of a route of kind name (metrics label). */
static enum hub_throttle_kind throttle_kind(enum hub_auth kind)
{
    return kind == HUB_AUTH_PROVISION ? HUB_THROTTLE_PRODUCT
           : kind == HUB_AUTH_DEVICE  ? HUB_THROTTLE_DEVICE
                                      : HUB_THROTTLE_SERVICE;
}

/* The throttle state of the request's source for credentials of kind; while a delay runs,
 * answers 429 too_many_attempts with Retry-After (nothing checked, nothing hashed). */
static enum hub_throttle_state throttle(struct hub_req *r, enum hub_throttle_kind kind)
{
    unsigned retry = 1;
    char v[16];
    enum hub_throttle_state st = hub_throttle_check(r->source, kind, &retry);
    if (st == HUB_THROTTLE_BLOCKED) {
        hub_reply_error(r, 429, "too_many_attempts",
                        "too many failed authentications from this address: retry in %u s", retry);
        snprintf(v, sizeof v, "%u", retry);
        hub_reply_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    return st;
}

/* Verifies a bearer token. Returns 0 with r->who set, or replies. */
static int auth_bearer(struct hub_req *r, const char *token)
{
    char id[HUB_TOKEN_ID_LEN + 1], role[16], name[128];
    uint8_t hash[32], stored[32];
    if (hub_token_parse(token, id, hash) != 0) {
        hub_throttle_failed(r->source, HUB_THROTTLE_TOKEN, NULL);
        unauthorized(r, "Bearer realm=\"iothub\"", "malformed bearer token");
        return HUB_REPLIED;
    }
    PGconn *c = hub_transaction_db(r);
    if (c == NULL)
        return HUB_REPLIED;
    int rc = hub_db_tokens_lookup(c, id, role, name, stored);
    if (rc == HUB_ENOTFOUND || (rc == 0 && !hub_ct_equal(hash, stored, 32))) {
        hub_throttle_failed(r->source, HUB_THROTTLE_TOKEN, id);
        unauthorized(r, "Bearer realm=\"iothub\"", "unknown or revoked token");
        return HUB_REPLIED;
    }
    if (rc != 0) {
        hub_reply_internal(r, rc, "token lookup");
        return HUB_REPLIED;
    }
    hub_throttle_succeeded(r->source);
    r->who.kind = HUB_WHO_TOKEN;
    r->who.role = hub_request_role_parse(role);
    snprintf(r->who.name, sizeof r->who.name, "%s", name);
    return 0;
}

/* Verifies Basic credentials of a device, product or service. Runs the slow hash even for
 * unknown principals so timing does not reveal which ids exist, unless the source is over
 * its free failures (ts HUB_THROTTLE_OVER): then an unknown id costs no hashing. */
static int auth_basic(struct hub_req *r, enum hub_auth kind, const char *user, const char *pass,
                      enum hub_throttle_state ts)
{
    static const char dummy[] = "pbkdf2-sha256$10000$AAAAAAAAAAAAAAAAAAAAAA==$"
                                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    struct hub_db_secret s;
    int fresh = r->db == NULL; /* the request's connection was taken for this lookup */
    PGconn *c = hub_transaction_db(r);
    if (c == NULL)
        return HUB_REPLIED;
    int rc;
    if (kind == HUB_AUTH_PROVISION)
        rc = hub_db_products_secret(c, user, &s);
    else if (!hub_params_uuid_valid(user))
        rc = HUB_ENOTFOUND;
    else if (kind == HUB_AUTH_DEVICE)
        rc = hub_db_devices_secret(c, user, &s);
    else
        rc = hub_db_services_secret(c, user, &s);
    if (rc != 0 && rc != HUB_ENOTFOUND) {
        hub_reply_internal(r, rc, "credential lookup");
        return HUB_REPLIED;
    }
    if (fresh) { /* the slow hash holds none of the pool's connections (the handler takes one) */
        hub_db_pool_release(r->api->pool, r->db);
        r->db = NULL;
    }
    int ok = 0;
    if (rc == 0)
        ok = hub_passhash_verify(pass, s.hash);
    else if (ts != HUB_THROTTLE_OVER)
        hub_passhash_verify(pass, dummy); /* below the limit: the time of a known id */
    if (!ok) { /* counted, logged once per source and minute (api/throttle.h) */
        hub_throttle_failed(r->source, throttle_kind(kind), user);
        unauthorized(r, "Basic realm=\"iothub\"", "wrong credentials");
        return HUB_REPLIED;
    }
    hub_throttle_succeeded(r->source);
    if (kind == HUB_AUTH_PROVISION) {
        r->who.kind = HUB_WHO_PRODUCT;
        r->who.product_id = s.id;
    } else {
        r->who.kind = kind == HUB_AUTH_DEVICE ? HUB_WHO_DEVICE : HUB_WHO_SERVICE;
        snprintf(r->who.product_key, sizeof r->who.product_key, "%s", s.extra);
    }
    snprintf(r->who.name, sizeof r->who.name, "%s", user);
    return 0;
}

/* Authenticates by the TLS client certificate: it must chain to the issuing CA, be within
 * its validity, allow clientAuth and name the principal of the path as its CN. Its serial
 * goes to r->who.cert_serial; the handler checks, in its transaction, that it is a current
 * certificate of the principal. Returns 0 or replies (401 no/invalid certificate, 403). */
static int auth_client_cert(struct hub_req *r, enum hub_auth kind)
{
    const char *what = kind == HUB_AUTH_DEVICE_CERT ? "device" : "service";
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    const gnutls_datum_t *peers = NULL;
    unsigned npeers = 0;
    mbedtls_x509_crt leaf, ca;
    char cn[80], o[80], info[256];
    uint32_t flags = 0;
    int rc = HUB_REPLIED;

    if (ci != NULL && ci->tls_session != NULL)
        peers = gnutls_certificate_get_peers((gnutls_session_t)ci->tls_session, &npeers);
    if (peers == NULL || npeers == 0) {
        hub_reply_error(r, 401, "client_certificate_required",
                        "this call is authenticated by the %s's current client certificate; "
                        "present it in the TLS handshake (curl --cert/--key)",
                        what);
        return HUB_REPLIED;
    }
    mbedtls_x509_crt_init(&leaf);
    mbedtls_x509_crt_init(&ca);
    /* Private copies of the issuing CAs (the active one and those a rotation retired):
     * verification caches EC tables in the key, without a lock. */
    const struct hub_authority *a = r->api->authority;
    for (size_t i = 0; i <= a->nretired; i++) {
        const hub_buf_t *ca_der = i == 0 ? &a->der[HUB_CA_ISSUING] : &a->retired[i - 1].der;
        if (mbedtls_x509_crt_parse_der(&ca, ca_der->data, ca_der->len) != 0) {
            hub_reply_internal(r, HUB_ECRYPTO, "issuing CA parsing");
            goto out;
        }
    }
    if (mbedtls_x509_crt_parse_der(&leaf, peers[0].data, peers[0].size) != 0) {
        hub_reply_error(r, 401, "invalid_client_certificate",
                        "the client certificate does not parse");
        goto out;
    }
    if (mbedtls_x509_crt_verify(&leaf, &ca, NULL, NULL, &flags, NULL, NULL) != 0) {
        mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
        info[strcspn(info, "\n")] = 0;
        hub_reply_error(r, 401, "invalid_client_certificate",
                        "the client certificate is not valid: %s",
                        info[0] ? info : "not issued by this gateway's CA");
        goto out;
    }
    if (mbedtls_x509_crt_check_extended_key_usage(&leaf, MBEDTLS_OID_CLIENT_AUTH,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)) != 0) {
        hub_reply_error(r, 401, "invalid_client_certificate",
                        "the client certificate does not allow clientAuth");
        goto out;
    }
    hub_x509_name_attr(&leaf.subject, MBEDTLS_OID_AT_CN, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN), cn,
                       sizeof cn);
    hub_x509_name_attr(&leaf.subject, MBEDTLS_OID_AT_ORGANIZATION,
                       MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_ORGANIZATION), o, sizeof o);
    hub_params_lower(cn);
    if (r->params[0] == NULL && !hub_params_uuid_valid(cn)) { /* no id in the path (EST) */
        hub_reply_error(r, 403, "forbidden", "the client certificate names no %s", what);
        goto out;
    }
    if (r->params[0] != NULL && strcasecmp(cn, r->params[0]) != 0) {
        hub_reply_error(r, 403, "forbidden", "the client certificate is not one of %s %s", what,
                        r->params[0]);
        goto out;
    }
    if ((strcmp(o, "services") == 0) != (kind == HUB_AUTH_SERVICE_CERT)) {
        hub_reply_error(r, 403, "forbidden", "the client certificate is not one of a %s", what);
        goto out;
    }
    struct hub_db_secret s;
    PGconn *c = hub_transaction_db(r);
    if (c == NULL)
        goto out;
    int dbrc = kind == HUB_AUTH_DEVICE_CERT ? hub_db_devices_secret(c, cn, &s)
                                            : hub_db_services_secret(c, cn, &s);
    if (dbrc == HUB_ENOTFOUND) {
        hub_reply_error(r, 403, "forbidden", "no %s %s", what, cn);
        goto out;
    }
    if (dbrc != 0) {
        hub_reply_internal(r, dbrc, "credential lookup");
        goto out;
    }
    hub_wipe(s.hash, sizeof s.hash);
    r->who.kind = kind == HUB_AUTH_DEVICE_CERT ? HUB_WHO_DEVICE : HUB_WHO_SERVICE;
    snprintf(r->who.name, sizeof r->who.name, "%s", cn);
    snprintf(r->who.product_key, sizeof r->who.product_key, "%s", s.extra);
    if (hub_x509_serial_hex(&leaf.serial, r->who.cert_serial, sizeof r->who.cert_serial) != 0) {
        hub_reply_error(r, 401, "invalid_client_certificate", "bad certificate serial");
        goto out;
    }
    if (r->params[0] == NULL && (r->params[0] = strdup(cn)) == NULL) {
        hub_reply_internal(r, HUB_ENOMEM, "authentication");
        goto out;
    }
    rc = 0;
out:
    mbedtls_x509_crt_free(&leaf);
    mbedtls_x509_crt_free(&ca);
    return rc;
}

int hub_auth_check(struct hub_req *r, enum hub_auth kind, enum hub_role min_role)
{
    if (kind == HUB_AUTH_NONE)
        return 0;
    if (kind == HUB_AUTH_DEVICE_ANY)
        kind = hub_request_header(r, MHD_HTTP_HEADER_AUTHORIZATION) != NULL ? HUB_AUTH_DEVICE
                                                                           : HUB_AUTH_DEVICE_CERT;
    if (kind == HUB_AUTH_DEVICE_CERT || kind == HUB_AUTH_SERVICE_CERT)
        return auth_client_cert(r, kind);
    const char *h = hub_request_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    int bearer_ok = kind == HUB_AUTH_ROLE || kind == HUB_AUTH_PROVISION;
    if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0 && bearer_ok) {
        if (throttle(r, HUB_THROTTLE_TOKEN) == HUB_THROTTLE_BLOCKED || auth_bearer(r, h + 7) != 0)
            return HUB_REPLIED;
        enum hub_role need = kind == HUB_AUTH_PROVISION ? HUB_ROLE_PROVISIONER : min_role;
        if (r->who.role < need) {
            hub_reply_error(r, 403, "forbidden", "this call needs the %s role or higher",
                            hub_request_role_name(need));
            return HUB_REPLIED;
        }
        return 0;
    }
    if (h != NULL && strncasecmp(h, "Basic ", 6) == 0 && kind != HUB_AUTH_ROLE) {
        enum hub_throttle_kind tk = throttle_kind(kind);
        enum hub_throttle_state ts = throttle(r, tk);
        if (ts == HUB_THROTTLE_BLOCKED)
            return HUB_REPLIED;
        char *pass = NULL;
        char *user = MHD_basic_auth_get_username_password(r->conn, &pass);
        int rc = HUB_REPLIED;
        if (user != NULL && hub_params_uuid_valid(user))
            hub_params_lower(user);
        if (user == NULL || pass == NULL) {
            hub_throttle_failed(r->source, tk, NULL);
            unauthorized(r, "Basic realm=\"iothub\"", "malformed Basic credentials");
        } else if ((kind == HUB_AUTH_DEVICE || kind == HUB_AUTH_SERVICE) && r->params[0] != NULL &&
                   strcasecmp(user, r->params[0]) != 0) {
            hub_reply_error(r, 403, "forbidden", "credentials are for another %s",
                            kind == HUB_AUTH_DEVICE ? "device" : "service");
        } else {
            rc = auth_basic(r, kind, user, pass, ts);
        }
        if (rc == 0 && r->params[0] == NULL && kind != HUB_AUTH_PROVISION &&
            (r->params[0] = strdup(user)) == NULL) { /* no id in the path (EST) */
            hub_reply_internal(r, HUB_ENOMEM, "authentication");
            rc = HUB_REPLIED;
        }
        if (pass != NULL) {
            hub_wipe(pass, strlen(pass));
            MHD_free(pass);
        }
        MHD_free(user);
        return rc;
    }
    const char *scheme =
        kind == HUB_AUTH_ROLE ? "Bearer realm=\"iothub\"" : "Basic realm=\"iothub\"";
    unauthorized(r, scheme,
                 kind == HUB_AUTH_ROLE        ? "a bearer token is required"
                 : kind == HUB_AUTH_PROVISION ? "a bearer token or product credentials "
                                                "are required"
                 : kind == HUB_AUTH_DEVICE    ? "device credentials are required"
                                              : "service credentials are required");
    return HUB_REPLIED;
}

const char *hub_auth_name(enum hub_auth kind)
{
    static const char *const names[] = {"none",        "role",         "provision",
                                        "device",      "service",      "device_cert",
                                        "service_cert", "device_any"};
    return kind >= HUB_AUTH_NONE && kind <= HUB_AUTH_DEVICE_ANY ? names[kind] : "?";
}
