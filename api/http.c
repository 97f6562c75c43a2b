/* libmicrohttpd glue. A request is accumulated (body capped at body_limit), authenticated,
 * routed, and answered; its database connection is returned to the pool when MHD reports
 * the request complete. MHD runs a thread per connection, bounded by max_connections and
 * max_per_ip, so blocking handlers stall only their own client. */
#include "api/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>

#include "api/audit.h"
#include "api/deadline.h"
#include "api/firmware_cache.h"
#include "api/firmware_upload.h"
#include "api/metrics.h"
#include "api/priorities.h"
#include "api/proxy_listen.h"
#include "api/reply.h"
#include "api/request.h"
#include "api/router.h"
#include "api/strict.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

/* Over-long bodies of up to this size are read and dropped before the 413 answer: closing
 * a connection with unread data resets it, and the client may never see the answer. */
#define DRAIN_LIMIT (1024 * 1024)

struct hub_api {
    struct MHD_Daemon *mhd;
    struct hub_api_shared shared;
    char *cert_pem;
    char *key_pem;
    char *trust_pem; /* issuing CA + root: makes GnuTLS request (not require) a client cert */
    char *priorities; /* GnuTLS priority string (api/priorities.h) */
    /* Every server certificate side by side (server_key_types), the trust and the DH group;
     * set on each session in place of MHD's single-certificate credentials, so GnuTLS picks
     * the certificate the negotiated suite can use. NULL (one certificate, default suites):
     * MHD's own. */
    gnutls_certificate_credentials_t creds;
    hub_deadlines_t *deadlines; /* request-header deadlines (slowloris), or NULL */
    struct hub_api_proxy *proxy; /* api_proxy_protocol: our own accept and PROXY headers */
};

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
    if (code == MHD_CONNECTION_NOTIFY_STARTED && api->creds != NULL) {
        const union MHD_ConnectionInfo *ti =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        if (ti != NULL && ti->tls_session != NULL)
            gnutls_credentials_set((gnutls_session_t)ti->tls_session, GNUTLS_CRD_CERTIFICATE,
                                   api->creds);
    }
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
        if (hub_api_strict_check(r, version) != 0) /* ambiguous framing: 400, closed */
            return queue(r);
        const char *cl = hub_request_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long declared = cl != NULL ? strtoull(cl, NULL, 10) : 0;
        if (hub_api_firmware_upload_wanted(r)) {
            /* Streamed to the database as it arrives (api/firmware_upload.h). A refusal
             * before the body is answered at once to a client waiting for "100 Continue",
             * else after the body is read and dropped. */
            hub_api_firmware_upload_begin(r);
            if (r->response == NULL) {
                /* An admin's image may take minutes: from here on the idle timeout, not the
                 * request deadline, bounds it. */
                deadline_update(api, conn, 0);
                return MHD_YES;
            }
            hub_api_audit_failure(r);
            if (hub_request_header(r, MHD_HTTP_HEADER_EXPECT) == NULL && declared <= DRAIN_LIMIT)
                return MHD_YES;
            return queue(r);
        }
        if (declared > api->shared.body_limit) {
            /* A client waiting for "100 Continue" gets the answer before sending its body;
             * other clients' bodies are dropped as they arrive (up to DRAIN_LIMIT). */
            r->body_too_large = 1;
            if (hub_request_header(r, MHD_HTTP_HEADER_EXPECT) == NULL && declared <= DRAIN_LIMIT)
                return MHD_YES;
            hub_reply_error(r, 413, "payload_too_large", "the request body exceeds %zu bytes",
                            api->shared.body_limit);
            return queue(r);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0 && hub_api_firmware_upload_wanted(r)) {
        int rc = hub_api_firmware_upload_data(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return rc == 0 ? MHD_YES : MHD_NO;
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
    hub_router_dispatch(r);
    hub_api_audit_failure(r);
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
    hub_router_release(r);
    hub_api_firmware_upload_free(r);
    hub_buf_free(&r->body);
    free(r);
    *con_cls = NULL;
}

/* Credentials with every server certificate, the client CAs and the RFC 7919 DH groups. */
static int make_creds(struct hub_api *api, const struct hub_api_options *o)
{
    int g = gnutls_certificate_allocate_credentials(&api->creds);
    for (size_t i = 0; g >= 0 && i <= o->n_more_certs; i++) {
        const char *cert = i == 0 ? o->cert_pem : o->more_certs[i - 1].cert_pem;
        const char *key = i == 0 ? o->key_pem : o->more_certs[i - 1].key_pem;
        gnutls_datum_t c = {(unsigned char *)cert, (unsigned)strlen(cert)};
        gnutls_datum_t k = {(unsigned char *)key, (unsigned)strlen(key)};
        g = gnutls_certificate_set_x509_key_mem(api->creds, &c, &k, GNUTLS_X509_FMT_PEM);
    }
    if (g >= 0) {
        gnutls_datum_t t = {(unsigned char *)api->trust_pem, (unsigned)strlen(api->trust_pem)};
        g = gnutls_certificate_set_x509_trust_mem(api->creds, &t, GNUTLS_X509_FMT_PEM);
    }
    if (g >= 0)
        g = gnutls_certificate_set_known_dh_params(api->creds, GNUTLS_SEC_PARAM_MEDIUM);
    if (g < 0) {
        hub_error("HTTPS API credentials: %s", gnutls_strerror(g));
        return HUB_ECRYPTO;
    }
    return 0;
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
    api->shared.mqtt_starting = o->mqtt != NULL; /* until hub_api_mqtt_ready */
    api->shared.firmware_max_size = o->firmware_max_size;
    api->shared.firmware_max_downloads = o->firmware_max_downloads;
    hub_fw_cache_init(o->firmware_cache_size);
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
    int rc = hub_api_priorities(o->ciphers, &api->priorities);
    if (rc == 0 && (o->n_more_certs > 0 || o->ciphers != NULL)) /* several keys, or DHE */
        rc = make_creds(api, o);
    if (rc != 0) {
        hub_api_stop(api);
        return rc;
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
    if (o->proxy_trust != NULL) /* api/proxy_listen.c accepts and adds the connections */
        flags |= MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    if (o->header_timeout_s > 0 &&
        (api->deadlines = hub_deadlines_new(o->header_timeout_s)) == NULL) {
        hub_api_stop(api);
        return HUB_ENOMEM;
    }
    api->mhd = MHD_start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, access_cb, api, MHD_OPTION_SOCK_ADDR, &ss,
        MHD_OPTION_HTTPS_MEM_CERT, api->cert_pem, MHD_OPTION_HTTPS_MEM_KEY, api->key_pem,
        MHD_OPTION_HTTPS_MEM_TRUST, api->trust_pem,
        MHD_OPTION_HTTPS_PRIORITIES, api->priorities, MHD_OPTION_NOTIFY_COMPLETED,
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
    struct hub_api_proxy_options po = {o->host, o->port, api->mhd, o->proxy_trust,
                                       o->proxy_timeout_ms, o->max_connections};
    if (o->proxy_trust != NULL && (rc = hub_api_proxy_start(&po, &api->proxy)) != 0) {
        hub_api_stop(api);
        return rc;
    }
    hub_info("REST API listening on https://%s%s%s:%d/v1%s", strchr(o->host, ':') ? "[" : "",
             o->host, strchr(o->host, ':') ? "]" : "", o->port,
             o->proxy_trust != NULL ? " (PROXY protocol header required)" : "");
    *out = api;
    return 0;
}

void hub_api_drain(struct hub_api *api)
{
    if (api != NULL)
        __atomic_store_n(&api->shared.draining, 1, __ATOMIC_RELEASE);
}

void hub_api_mqtt_ready(struct hub_api *api)
{
    if (api != NULL)
        __atomic_store_n(&api->shared.mqtt_starting, 0, __ATOMIC_RELEASE);
}

void hub_api_stop(struct hub_api *api)
{
    if (api == NULL)
        return;
    hub_api_proxy_stop(api->proxy);
    if (api->mhd != NULL)
        MHD_stop_daemon(api->mhd);
    hub_deadlines_free(api->deadlines);
    if (api->key_pem != NULL) {
        hub_wipe(api->key_pem, strlen(api->key_pem));
        free(api->key_pem);
    }
    free(api->cert_pem);
    free(api->trust_pem);
    free(api->priorities);
    if (api->creds != NULL)
        gnutls_certificate_free_credentials(api->creds);
    free(api);
}
