/* Responses: JSON and raw bodies (copied into an MHD response), SPEC §4 errors. */
#include "api/reply.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "util/error.h"
#include "util/log.h"

static void set_response(struct hub_req *r, unsigned status, struct MHD_Response *resp)
{
    if (r->response != NULL)
        MHD_destroy_response(r->response);
    r->status = status;
    r->response = resp;
}

void hub_reply_raw(struct hub_req *r, unsigned status, const char *content_type, const void *data,
                   size_t len)
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
        size_t n = *p < 0x80             ? 1
                   : (*p & 0xE0) == 0xC0 ? 2
                   : (*p & 0xF0) == 0xE0 ? 3
                   : (*p & 0xF8) == 0xF0 ? 4
                                         : 0;
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
    hub_reply_json(r, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

void hub_reply_header(struct hub_req *r, const char *name, const char *value)
{
    if (r->response != NULL)
        MHD_add_response_header(r->response, name, value);
}

void hub_reply_internal(struct hub_req *r, int err, const char *what)
{
    if (err == HUB_EDBDOWN) {
        hub_reply_error(r, 503, "database_unavailable", "the database is unavailable; retry later");
        return;
    }
    hub_error("%s %s: %s failed: %s", r->method, r->path, what, hub_strerror(err));
    hub_reply_error(r, 500, "internal_error", "%s failed; the error was logged", what);
}

json_t *hub_reply_next_cursor(json_t *list, int limit, const char *field)
{
    size_t n = json_array_size(list);
    if (n == 0 || n != (size_t)limit)
        return NULL;
    return json_incref(json_object_get(json_array_get(list, n - 1), field));
}
