/* libmicrohttpd glue. A request is accumulated (body capped at body_limit), authenticated,
 * routed, and answered; its database connection is returned to the pool when MHD reports
 * the request complete. MHD runs a thread per connection, bounded by max_connections and
 * max_per_ip, so blocking handlers stall only their own client. */
#include "api/api.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>
#include <microhttpd.h>

#include "api/deadline.h"
#include "api/http.h"
#include "api/metrics.h"
#include "api/routes.h"
#include "api/token.h"
#include "ca/cert.h"
#include "db/audit.h"
#include "db/db.h"
#include "db/devices.h"
#include "db/products.h"
#include "db/services.h"
#include "db/tokens.h"
#include "util/error.h"
#include "util/log.h"
#include "util/passhash.h"
#include "util/secure.h"

/* TLS 1.2 and 1.3, AEAD suites with forward secrecy only, over elliptic curves only (no
 * finite-field DHE groups in TLS 1.3 either). */
#define GNUTLS_PRIORITIES                                                                 \
    "SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:" \
    "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-GROUP-DH-ALL:"      \
    "%SERVER_PRECEDENCE"
#define DB_WAIT_MS 5000
#define AUDIT_WAIT_MS 1000
/* Over-long bodies of up to this size are read and dropped before the 413 answer: closing
 * a connection with unread data resets it, and the client may never see the answer. */
#define DRAIN_LIMIT (1024 * 1024)

struct hub_api {
    struct MHD_Daemon *mhd;
    struct hub_api_shared shared;
    char *cert_pem;
    char *key_pem;
    char *trust_pem; /* issuing CA + root: makes GnuTLS request (not require) a client cert */
    hub_deadlines_t *deadlines; /* request-header deadlines (slowloris), or NULL */
};

/* ---- responses ------------------------------------------------------------------------ */

static void set_response(struct hub_req *r, unsigned status, struct MHD_Response *resp)
{
    if (r->response != NULL)
        MHD_destroy_response(r->response);
    r->status = status;
    r->response = resp;
}

void hub_reply_raw(struct hub_req *r, unsigned status, const char *content_type,
                   const void *data, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    set_response(r, status, resp);
}

void hub_reply_json(struct hub_req *r, unsigned status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) {
        hub_reply_raw(r, 500, "application/json",
                      "{\"error\":{\"code\":\"internal_error\",\"message\":\"out of memory\"}}",
                      62);
        return;
    }
    size_t len = strlen(text);
    hub_reply_raw(r, status, "application/json", text, len);
    hub_reply_header(r, "Cache-Control", "no-store");
    free(text);
}

/* Replaces each byte of s that is not part of well-formed UTF-8 (RFC 3629: no overlongs,
 * surrogates or code points above U+10FFFF) with '?'. Error messages quote request text
 * (path segments, JSON parser context) and may cut it mid-character; jansson refuses
 * malformed strings, which turned such 4xx replies into 500s (found by fuzz_json). */
static void utf8_sanitise(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3
                 : (*p & 0xF8) == 0xF0 ? 4 : 0;
        uint32_t cp = n == 2 ? *p & 0x1Fu : n == 3 ? *p & 0x0Fu : *p & 0x07u;
        size_t i = 1;
        for (; i < n && (p[i] & 0xC0) == 0x80; i++)
            cp = cp << 6 | (p[i] & 0x3Fu);
        if (n == 0 || i < n || (n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
            (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

void hub_reply_error(struct hub_req *r, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    utf8_sanitise(msg);
    r->error_code = code;
    hub_reply_json(r, status,
                   json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

void hub_reply_header(struct hub_req *r, const char *name, const char *value)
{
    if (r->response != NULL)
        MHD_add_response_header(r->response, name, value);
}

void hub_reply_internal(struct hub_req *r, int err, const char *what)
{
    if (err == HUB_EDBDOWN) {
        hub_reply_error(r, 503, "database_unavailable",
                        "the database is unavailable; retry later");
        return;
    }
    hub_error("%s %s: %s failed: %s", r->method, r->path, what, hub_strerror(err));
    hub_reply_error(r, 500, "internal_error", "%s failed; the error was logged", what);
}

/* ---- request accessors ---------------------------------------------------------------- */

PGconn *hub_req_db(struct hub_req *r)
{
    if (r->db != NULL)
        return r->db;
    int rc = hub_db_pool_acquire(r->api->pool, DB_WAIT_MS, &r->db);
    if (rc != 0) {
        r->db = NULL;
        if (rc == HUB_EDBDOWN)
            hub_reply_error(r, 503, "database_unavailable",
                            "the database is unavailable; retry later");
        else
            hub_reply_error(r, 503, "busy", "all database connections are busy; retry later");
        return NULL;
    }
    return r->db;
}

const char *hub_req_query(struct hub_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *hub_req_header(struct hub_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

json_t *hub_req_json(struct hub_req *r)
{
    const char *ct = hub_req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] != 0 && ct[16] != ';' && ct[16] != ' ')) {
        hub_reply_error(r, 415, "unsupported_media_type",
                        "the request body must be application/json");
        return NULL;
    }
    return hub_req_json_body(r);
}

json_t *hub_req_json_body(struct hub_req *r)
{
    if (r->body.len == 0) {
        hub_reply_error(r, 400, "invalid_json", "the request body is empty; a JSON object "
                        "is expected");
        return NULL;
    }
    json_error_t e;
    json_t *j = json_loadb((const char *)r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &e);
    if (j == NULL) {
        hub_reply_error(r, 400, "invalid_json", "malformed JSON at line %d column %d: %s",
                        e.line, e.column, e.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        hub_reply_error(r, 400, "invalid_json", "the request body must be a JSON object");
        return NULL;
    }
    return j;
}

const char *hub_json_string(struct hub_req *r, json_t *obj, const char *key, int required,
                            size_t maxlen)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v)) {
        if (required)
            hub_reply_error(r, 400, "missing_field", "field \"%s\" is required", key);
        return NULL;
    }
    if (!json_is_string(v)) {
        hub_reply_error(r, 400, "invalid_field", "field \"%s\" must be a string", key);
        return NULL;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0 || len > maxlen || strlen(s) != len) {
        hub_reply_error(r, 400, "invalid_field", "field \"%s\" must be 1 to %zu characters",
                        key, maxlen);
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x20 && s[i] != '\n' && s[i] != '\r') {
            hub_reply_error(r, 400, "invalid_field",
                            "field \"%s\" contains control characters", key);
            return NULL;
        }
    }
    return s;
}

int hub_req_audit(struct hub_req *r, const char *target, const char *details_json)
{
    static const char *const roles[] = {NULL, "auditor", "provisioner", "operator", "admin"};
    static const char *const kinds[] = {"anonymous", "token", "device", "product", "service"};
    char result[64];
    if (r->status == 0 || r->status < 400)
        snprintf(result, sizeof result, "ok");
    else
        snprintf(result, sizeof result, "%u %s", r->status, r->error_code ? r->error_code : "");
    const char *role = r->who.kind == HUB_WHO_TOKEN ? roles[r->who.role] : kinds[r->who.kind];
    char actor[200];
    snprintf(actor, sizeof actor, "%s:%s", kinds[r->who.kind],
             r->who.name[0] ? r->who.name : "-");
    int rc = hub_db_audit_insert(r->db, actor, role, r->action, target, r->source, result,
                          details_json);
    if (rc == 0)
        r->audited = 1;
    return rc;
}

int hub_req_commit(struct hub_req *r)
{
    int rc = hub_db_commit(r->db);
    if (rc != 0) {
        hub_reply_internal(r, rc, "commit");
        return rc;
    }
    for (; r->revoked > 0; r->revoked--)
        hub_metrics_inc(HUB_M_REVOCATIONS);
    for (; r->crls > 0; r->crls--)
        hub_metrics_inc(HUB_M_CRLS);
    return 0;
}

/* ---- authentication ------------------------------------------------------------------- */

static enum hub_role role_parse(const char *s)
{
    static const char *const names[] = {"", "auditor", "provisioner", "operator", "admin"};
    for (int i = 1; i <= HUB_ROLE_ADMIN; i++)
        if (strcmp(s, names[i]) == 0)
            return (enum hub_role)i;
    return HUB_ROLE_NONE;
}

static void unauthorized(struct hub_req *r, const char *scheme, const char *msg)
{
    hub_reply_error(r, 401, "unauthorized", "%s", msg);
    hub_reply_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, scheme);
}

/* Verifies a bearer token. Returns 0 with r->who set, or replies. */
static int auth_bearer(struct hub_req *r, const char *token)
{
    char id[HUB_TOKEN_ID_LEN + 1], role[16], name[128];
    uint8_t hash[32], stored[32];
    if (hub_token_parse(token, id, hash) != 0) {
        unauthorized(r, "Bearer realm=\"iothub\"", "malformed bearer token");
        return -1;
    }
    PGconn *c = hub_req_db(r);
    if (c == NULL)
        return -1;
    int rc = hub_db_tokens_lookup(c, id, role, name, stored);
    if (rc == HUB_ENOTFOUND || (rc == 0 && !hub_ct_equal(hash, stored, 32))) {
        unauthorized(r, "Bearer realm=\"iothub\"", "unknown or revoked token");
        return -1;
    }
    if (rc != 0) {
        hub_reply_internal(r, rc, "token lookup");
        return -1;
    }
    r->who.kind = HUB_WHO_TOKEN;
    r->who.role = role_parse(role);
    snprintf(r->who.name, sizeof r->who.name, "%s", name);
    return 0;
}

/* Verifies Basic credentials of a device, product or service. Runs the slow hash even for
 * unknown principals so timing does not reveal which ids exist. */
static int auth_basic(struct hub_req *r, enum hub_auth kind, const char *user,
                      const char *pass)
{
    static const char dummy[] = "pbkdf2-sha256$10000$AAAAAAAAAAAAAAAAAAAAAA==$"
                                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    struct hub_db_secret s;
    PGconn *c = hub_req_db(r);
    if (c == NULL)
        return -1;
    int rc;
    if (kind == HUB_AUTH_PROVISION)
        rc = hub_db_products_secret(c, user, &s);
    else if (!hub_uuid_valid(user))
        rc = HUB_ENOTFOUND;
    else if (kind == HUB_AUTH_DEVICE)
        rc = hub_db_devices_secret(c, user, &s);
    else
        rc = hub_db_services_secret(c, user, &s);
    if (rc != 0 && rc != HUB_ENOTFOUND) {
        hub_reply_internal(r, rc, "credential lookup");
        return -1;
    }
    int ok = hub_passhash_verify(pass, rc == 0 ? s.hash : dummy) && rc == 0;
    if (!ok) {
        hub_warn("%s %s: wrong credentials for \"%.64s\" from %s", r->method, r->path, user,
                 r->source);
        unauthorized(r, "Basic realm=\"iothub\"", "wrong credentials");
        return -1;
    }
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

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
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
    int rc = -1;

    if (ci != NULL && ci->tls_session != NULL)
        peers = gnutls_certificate_get_peers((gnutls_session_t)ci->tls_session, &npeers);
    if (peers == NULL || npeers == 0) {
        hub_reply_error(r, 401, "client_certificate_required",
                        "this call is authenticated by the %s's current client certificate; "
                        "present it in the TLS handshake (curl --cert/--key)", what);
        return -1;
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
    if (mbedtls_x509_crt_check_extended_key_usage(
            &leaf, MBEDTLS_OID_CLIENT_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)) != 0) {
        hub_reply_error(r, 401, "invalid_client_certificate",
                        "the client certificate does not allow clientAuth");
        goto out;
    }
    hub_x509_name_attr(&leaf.subject, MBEDTLS_OID_AT_CN, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN), cn,
                 sizeof cn);
    hub_x509_name_attr(&leaf.subject, MBEDTLS_OID_AT_ORGANIZATION,
                 MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_ORGANIZATION), o, sizeof o);
    lower(cn);
    if (strcasecmp(cn, r->params[0]) != 0 ||
        (strcmp(o, "services") == 0) != (kind == HUB_AUTH_SERVICE_CERT)) {
        hub_reply_error(r, 403, "forbidden", "the client certificate is not one of %s %s",
                        what, r->params[0]);
        goto out;
    }
    struct hub_db_secret s;
    PGconn *c = hub_req_db(r);
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
    rc = 0;
out:
    mbedtls_x509_crt_free(&leaf);
    mbedtls_x509_crt_free(&ca);
    return rc;
}

static int authenticate(struct hub_req *r, const struct hub_route *route)
{
    struct hub_route metrics;
    if (route->handler == hub_api_metrics && r->api->metrics_token) { /* metrics_access */
        metrics = *route;
        metrics.auth = HUB_AUTH_ROLE;
        metrics.min_role = HUB_ROLE_AUDITOR;
        route = &metrics;
    }
    if (route->auth == HUB_AUTH_NONE)
        return 0;
    if (route->auth == HUB_AUTH_DEVICE_CERT || route->auth == HUB_AUTH_SERVICE_CERT)
        return auth_client_cert(r, route->auth);
    const char *h = hub_req_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    int bearer_ok = route->auth == HUB_AUTH_ROLE || route->auth == HUB_AUTH_PROVISION;
    if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0 && bearer_ok) {
        if (auth_bearer(r, h + 7) != 0)
            return -1;
        enum hub_role need = route->auth == HUB_AUTH_PROVISION ? HUB_ROLE_PROVISIONER
                                                               : route->min_role;
        if (r->who.role < need) {
            static const char *const names[] = {"", "auditor", "provisioner", "operator",
                                                "admin"};
            hub_reply_error(r, 403, "forbidden", "this call needs the %s role or higher",
                            names[need]);
            return -1;
        }
        return 0;
    }
    if (h != NULL && strncasecmp(h, "Basic ", 6) == 0 && route->auth != HUB_AUTH_ROLE) {
        char *pass = NULL;
        char *user = MHD_basic_auth_get_username_password(r->conn, &pass);
        int rc = -1;
        if (user != NULL && hub_uuid_valid(user))
            lower(user);
        if (user == NULL || pass == NULL)
            unauthorized(r, "Basic realm=\"iothub\"", "malformed Basic credentials");
        else if ((route->auth == HUB_AUTH_DEVICE || route->auth == HUB_AUTH_SERVICE) &&
                 strcasecmp(user, r->params[0]) != 0)
            hub_reply_error(r, 403, "forbidden", "credentials are for another %s",
                            route->auth == HUB_AUTH_DEVICE ? "device" : "service");
        else
            rc = auth_basic(r, route->auth, user, pass);
        if (pass != NULL) {
            hub_wipe(pass, strlen(pass));
            MHD_free(pass);
        }
        MHD_free(user);
        return rc;
    }
    const char *scheme = route->auth == HUB_AUTH_ROLE ? "Bearer realm=\"iothub\""
                                                      : "Basic realm=\"iothub\"";
    unauthorized(r, scheme,
                 route->auth == HUB_AUTH_ROLE       ? "a bearer token is required"
                 : route->auth == HUB_AUTH_PROVISION ? "a bearer token or product credentials "
                                                       "are required"
                 : route->auth == HUB_AUTH_DEVICE    ? "device credentials are required"
                                                     : "service credentials are required");
    return -1;
}

/* ---- routing -------------------------------------------------------------------------- */

/* Matches path against pattern, storing {} segments (decoded) in r->params. */
static int match(struct hub_req *r, const char *pattern)
{
    const char *p = pattern, *s = r->path;
    int n = 0;
    while (*p && *s) {
        if (p[0] == '{' && p[1] == '}') {
            size_t len = strcspn(s, "/");
            if (len == 0 || n >= 3)
                return 0;
            r->params[n] = strndup(s, len);
            n++;
            s += len;
            p += 2;
        } else if (*p++ != *s++) {
            return 0;
        }
    }
    if (*p == 0 && *s == 0)
        return 1;
    return 0;
}

static void free_params(struct hub_req *r)
{
    for (int i = 0; i < 3; i++) {
        free(r->params[i]);
        r->params[i] = NULL;
    }
}

/* Whether route rt answers method (HEAD is served by GET routes; MHD drops the body). */
static int method_matches(const struct hub_route *rt, const char *method)
{
    return strcmp(rt->method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0);
}

static void dispatch(struct hub_req *r)
{
    const struct hub_route *found = NULL;
    char allow[64] = "";
    for (const struct hub_route *rt = hub_routes; rt->pattern; rt++) {
        free_params(r);
        if (!match(r, rt->pattern))
            continue;
        if (method_matches(rt, r->method)) {
            found = rt;
            break;
        }
        size_t used = strlen(allow);
        snprintf(allow + used, sizeof allow - used, "%s%s%s", used ? ", " : "", rt->method,
                 strcmp(rt->method, "GET") == 0 ? ", HEAD" : "");
    }
    if (found == NULL) {
        free_params(r);
        if (allow[0]) {
            hub_reply_error(r, 405, "method_not_allowed", "%s is not allowed on %s", r->method,
                            r->path);
            hub_reply_header(r, MHD_HTTP_HEADER_ALLOW, allow);
        } else {
            hub_reply_error(r, 404, "not_found", "no such endpoint: %s", r->path);
        }
        return;
    }
    /* Ids are stored, audited and put in certificate subjects in their canonical
     * lower-case form, whatever case the client used. */
    for (int i = 0; i < 3 && r->params[i] != NULL; i++)
        if (hub_uuid_valid(r->params[i]))
            lower(r->params[i]);
    r->action = found->action;
    r->mutating = found->action != NULL;
    if (r->body_too_large) {
        hub_reply_error(r, 413, "payload_too_large", "the request body exceeds %zu bytes",
                        r->api->body_limit);
        return;
    }
    if (authenticate(r, found) != 0)
        return;
    found->handler(r);
    if (r->response == NULL)
        hub_reply_error(r, 500, "internal_error", "no response");
}

/* Failed state-changing calls are audited too (outside the failed transaction). */
static void audit_failure(struct hub_req *r)
{
    if (!r->mutating || r->audited || r->status < 400 || r->status == 503)
        return;
    /* Refusals decided before any database work (missing or malformed credentials,
     * credentials of another device) are audited too. */
    if (r->db == NULL && hub_db_pool_acquire(r->api->pool, AUDIT_WAIT_MS, &r->db) != 0) {
        r->db = NULL;
        hub_warn("%s %s %u from %s: not audited (no database connection)", r->method, r->path,
                 r->status, r->source);
        return;
    }
    if (PQtransactionStatus(r->db) != PQTRANS_IDLE)
        hub_db_rollback(r->db);
    char target[200];
    snprintf(target, sizeof target, "%s", r->params[0] ? r->params[0] : "");
    hub_req_audit(r, target[0] ? target : NULL, NULL);
}

/* ---- MHD callbacks -------------------------------------------------------------------- */

static enum MHD_Result queue(struct hub_req *r)
{
    enum MHD_Result ret = MHD_queue_response(r->conn, r->status, r->response);
    hub_metrics_http(r->status);
    hub_debug("%s %s %u from %s", r->method, r->path, r->status, r->source);
    return ret;
}

/* Request complete (rearm = 0) or answer done (rearm = 1) on conn: see api/deadline.h. */
static void deadline_update(struct hub_api *api, struct MHD_Connection *conn, int rearm)
{
    if (api->deadlines == NULL)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci == NULL || ci->socket_context == NULL)
        return;
    if (rearm)
        hub_deadlines_rearm(api->deadlines, ci->socket_context);
    else
        hub_deadlines_met(api->deadlines, ci->socket_context);
}

/* MHD_OPTION_NOTIFY_CONNECTION: a deadline from accept to close (before the socket closes). */
static void connection_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct hub_api *api = cls;
    if (api->deadlines == NULL)
        return;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci != NULL ? hub_deadlines_add(api->deadlines, ci->connect_fd) : NULL;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context != NULL) {
        hub_deadlines_remove(api->deadlines, *socket_context);
        *socket_context = NULL;
    }
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    struct hub_api *api = cls;
    struct hub_req *r = *con_cls;
    if (r == NULL) {
        r = calloc(1, sizeof *r);
        if (r == NULL)
            return MHD_NO;
        *con_cls = r;
        r->conn = conn;
        r->api = &api->shared;
        r->method = method;
        snprintf(r->path, sizeof r->path, "%s", url);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci != NULL && ci->client_addr != NULL) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->source,
                          sizeof r->source);
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->source,
                          sizeof r->source);
        }
        const char *cl = hub_req_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long declared = cl != NULL ? strtoull(cl, NULL, 10) : 0;
        if (declared > api->shared.body_limit) {
            /* A client waiting for "100 Continue" gets the answer before sending its body;
             * other clients' bodies are dropped as they arrive (up to DRAIN_LIMIT). */
            r->body_too_large = 1;
            if (hub_req_header(r, MHD_HTTP_HEADER_EXPECT) == NULL && declared <= DRAIN_LIMIT)
                return MHD_YES;
            hub_reply_error(r, 413, "payload_too_large", "the request body exceeds %zu bytes",
                            api->shared.body_limit);
            return queue(r);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!r->body_too_large && r->body.len + *upload_data_size <= api->shared.body_limit) {
            if (hub_buf_append(&r->body, upload_data, *upload_data_size) != 0)
                r->body_too_large = 1;
        } else {
            r->body_too_large = 1;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    /* The whole request is in: the deadline covered its headers and its body (a body sent a
     * byte at a time would otherwise hold a thread for as long as the client likes). */
    deadline_update(api, conn, 0);
    if (r->response != NULL) /* answered early (413); MHD calls once more */
        return queue(r);
    dispatch(r);
    audit_failure(r);
    return queue(r);
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct hub_api *api = cls;
    struct hub_req *r = *con_cls;
    deadline_update(api, conn, 1);
    if (r == NULL)
        return;
    if (r->db != NULL)
        hub_db_pool_release(api->shared.pool, r->db);
    if (r->response != NULL)
        MHD_destroy_response(r->response);
    free_params(r);
    hub_buf_free(&r->body);
    free(r);
    *con_cls = NULL;
}

static void mhd_log_cb(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    hub_debug("httpd: %s", msg);
}

int hub_api_start(const struct hub_api_options *o, struct hub_api **out)
{
    struct hub_api *api = calloc(1, sizeof *api);
    if (api == NULL)
        return HUB_ENOMEM;
    api->shared.authority = o->authority;
    api->shared.pool = o->pool;
    api->shared.device_cert_days = o->device_cert_days;
    api->shared.body_limit = o->body_limit;
    api->shared.metrics_token = o->metrics_token;
    api->shared.mqtt = o->mqtt;
    api->cert_pem = strdup(o->cert_pem);
    api->key_pem = strdup(o->key_pem);
    hub_buf_t trust = HUB_BUF_INIT;
    if (hub_authority_trust_pem(o->authority, &trust) == 0)
        api->trust_pem = strndup((const char *)trust.data, trust.len);
    hub_buf_free(&trust);
    if (api->cert_pem == NULL || api->key_pem == NULL || api->trust_pem == NULL) {
        hub_api_stop(api);
        return HUB_ENOMEM;
    }

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_TLS | MHD_USE_ERROR_LOG | MHD_USE_POLL;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, o->host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)o->port);
    } else if (inet_pton(AF_INET6, o->host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)o->port);
        flags |= MHD_USE_IPv6;
    } else {
        hub_error("api_listen: \"%s\" is not an IP address", o->host);
        hub_api_stop(api);
        return HUB_ECONFIG;
    }
    if (o->header_timeout_s > 0 &&
        (api->deadlines = hub_deadlines_new(o->header_timeout_s)) == NULL) {
        hub_api_stop(api);
        return HUB_ENOMEM;
    }
    api->mhd = MHD_start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, access_cb, api, MHD_OPTION_SOCK_ADDR, &ss,
        MHD_OPTION_HTTPS_MEM_CERT, api->cert_pem, MHD_OPTION_HTTPS_MEM_KEY, api->key_pem,
        MHD_OPTION_HTTPS_MEM_TRUST, api->trust_pem,
        MHD_OPTION_HTTPS_PRIORITIES, GNUTLS_PRIORITIES, MHD_OPTION_NOTIFY_COMPLETED,
        completed_cb, api, MHD_OPTION_CONNECTION_LIMIT, o->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->max_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
        o->timeout_s, MHD_OPTION_NOTIFY_CONNECTION, connection_cb, api,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log_cb, NULL, MHD_OPTION_END);
    if (api->mhd == NULL) {
        hub_error("cannot start the HTTPS API on %s:%d (address in use, or bad TLS "
                  "credentials)",
                  o->host, o->port);
        hub_api_stop(api);
        return HUB_EIO;
    }
    hub_info("REST API listening on https://%s%s%s:%d/v1", strchr(o->host, ':') ? "[" : "",
             o->host, strchr(o->host, ':') ? "]" : "", o->port);
    *out = api;
    return 0;
}

void hub_api_stop(struct hub_api *api)
{
    if (api == NULL)
        return;
    if (api->mhd != NULL)
        MHD_stop_daemon(api->mhd);
    hub_deadlines_free(api->deadlines);
    if (api->key_pem != NULL) {
        hub_wipe(api->key_pem, strlen(api->key_pem));
        free(api->key_pem);
    }
    free(api->cert_pem);
    free(api->trust_pem);
    free(api);
}
