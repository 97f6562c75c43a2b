/* HTTPS calls of the agent to the REST API (libcurl with OpenSSL): TLS 1.2+, the server
 * verified against a CA file, optionally pinned. */
#ifndef HUB_AGENT_HTTP_H
#define HUB_AGENT_HTTP_H

#include "agent/pin.h"
#include "util/buf.h"

struct hub_http_call {
    const char *url;         /* full URL */
    const char *cacert;      /* PEM file the server must chain to */
    struct hub_pin *pin;     /* or NULL */
    const char *user, *pass; /* HTTP Basic, or NULL */
    const char *cert, *key;  /* client certificate and key files, or NULL */
    const char *json;        /* request body (application/json) */
};

/* POSTs h->json to h->url. *status receives the HTTP status and resp the body (at most
 * 1 MiB). Returns 0, or HUB_EIO when no answer came (the reason is logged). */
int hub_http_post(const struct hub_http_call *h, long *status, hub_buf_t *resp);
/* Formats an API error answer ({"error": {"code", "message"}}) as "code: message" into
 * out, or the start of the body when it is not one. */
void hub_http_error(const hub_buf_t *resp, char *out, size_t len);

#endif
