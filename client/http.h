/* The HTTPS requests of the client programs (iothubctl, iothub-device) through libcurl:
 * TLS 1.2+, the server verified against a CA file unless told otherwise, an optional hook on
 * the OpenSSL context (the agent's pin), JSON bodies and a bounded answer. The callers map
 * failures to their own messages and exit codes. */
#ifndef HUB_CLIENT_HTTP_H
#define HUB_CLIENT_HTTP_H

#include <stddef.h>

#include <curl/curl.h>

#include "util/buf.h"

/* Called on each new OpenSSL SSL_CTX (passed as void *) before the handshake. */
typedef void (*hub_http_ssl_ctx_fn)(void *ssl_ctx, void *arg);

/* One request; every pointer is borrowed for the call. */
struct hub_http_request {
    const char *method;             /* "GET", "POST", "DELETE" ... */
    const char *url;                /* full URL */
    const char *body;               /* JSON text (Content-Type: application/json), or NULL */
    const char *cacert;             /* PEM file the server must chain to, or NULL for libcurl's */
    int cacert_only;                /* 1: cacert is the only trust (no CA directory) */
    int https_only;                 /* 1: no other protocol, not even through the URL */
    int insecure;                   /* 1: the server certificate is not verified */
    const char *user, *pass;        /* HTTP Basic, or NULL */
    const char *bearer;             /* Authorization: Bearer, or NULL */
    const char *cert, *key;         /* client certificate and key files, or NULL */
    const char *key_passwd;         /* passphrase of an encrypted key file, or NULL */
    const char *user_agent;         /* or NULL: none sent */
    long timeout_s;                 /* the whole request; connecting is bounded to 10 s */
    size_t answer_max;              /* larger answers fail with CURLE_WRITE_ERROR and too_large */
    hub_http_ssl_ctx_fn ssl_ctx_fn; /* or NULL */
    void *ssl_ctx_arg;
};

/* What a failed request left behind for the caller's message. */
struct hub_http_failure {
    char detail[CURL_ERROR_SIZE]; /* libcurl's error buffer, or "" */
    int too_large;                /* the answer exceeded answer_max */
};

/* Resets curl (a handle the caller owns and may reuse: the connection is kept alive; one
 * thread at a time) and performs rq, blocking. On CURLE_OK *status holds the HTTP status and
 * answer the body (appended); otherwise f says why. */
CURLcode hub_http_perform(CURL *curl, const struct hub_http_request *rq, long *status,
                          hub_buf_t *answer, struct hub_http_failure *f);
/* libcurl's reason for a failure: f->detail, or the text of code when it is empty. */
const char *hub_http_reason(CURLcode code, const struct hub_http_failure *f);
/* Formats an API error answer ({"error": {"code", "message"}}) as "code: message" into
 * out, or the start of the body when it is not one. */
void hub_http_error(const hub_buf_t *resp, char *out, size_t len);

#endif
