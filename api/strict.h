/* Strict HTTP framing (issue 19): a request whose length could be read two ways is refused
 * before any handler sees it, so no second request can hide in its body (request
 * smuggling). libmicrohttpd 0.9.75 parses the request and picks a framing (Transfer-Encoding
 * over the first Content-Length); this check looks at every header it kept, before the
 * body is read. What libmicrohttpd refuses by itself, and what it cannot see, is in
 * docs/security.md ("Strict HTTP"). */
#ifndef HUB_API_STRICT_H
#define HUB_API_STRICT_H

#include "api/request.h"
#include "util/buf.h"

/* Checks the headers of a request that just arrived (version: "HTTP/1.1" ...): header
 * names are RFC 9110 tokens, values hold no control character but tab, at most one
 * Content-Length of 1 to 18 digits, Transfer-Encoding only as one "chunked" on HTTP/1.1
 * and never with a Content-Length, one Host on HTTP/1.1 (RFC 9112 section 3.2). Returns 0
 * when they pass; else sets a 400 "bad_request" reply with "Connection: close" (the
 * connection ends after it: what follows the headers is never read as a request), counts
 * and logs the refusal (one line a minute), and returns HUB_REPLIED. */
int hub_api_strict_check(struct hub_req *r, const char *version);
/* Appends iothub_http_strict_refusals_total by reason (Prometheus text). */
int hub_api_strict_metrics(hub_buf_t *out);

#endif
