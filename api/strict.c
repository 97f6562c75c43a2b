#include "api/strict.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <microhttpd.h>

#include "api/reply.h"
#include "util/log.h"

enum reason {
    R_HEADER_NAME,    /* a name with a space, a colon or a control character */
    R_HEADER_VALUE,   /* a value with a control character (or a NUL) */
    R_LENGTH_TWICE,   /* more than one Content-Length */
    R_LENGTH_BAD,     /* a Content-Length that is not 1 to 18 digits */
    R_LENGTH_CHUNKED, /* Content-Length and Transfer-Encoding together */
    R_CODING,         /* a Transfer-Encoding other than one "chunked", or on HTTP/1.0 */
    R_HOST,           /* HTTP/1.1 without a Host, or with two */
    R_COUNT
};

static const char *const reason_names[R_COUNT] = {"header_name",
                                                  "header_value",
                                                  "duplicate_content_length",
                                                  "bad_content_length",
                                                  "content_length_and_transfer_encoding",
                                                  "transfer_encoding",
                                                  "host"};

static _Atomic unsigned long long refused[R_COUNT];
/* One log line a minute, with the count of the refusals it stands for. */
static _Atomic long long log_minute;
static _Atomic unsigned long long unlogged;

struct scan {
    int lengths, codings, hosts, bad_length, bad_coding, bad_name, bad_value;
};

/* RFC 9110 tchar. */
static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    struct scan *s = cls;
    if (key_size == 0 || strlen(key) != key_size)
        s->bad_name = 1;
    for (size_t i = 0; i < key_size; i++)
        if (!is_tchar((unsigned char)key[i]))
            s->bad_name = 1;
    if (value == NULL)
        value = "", value_size = 0;
    if (strlen(value) != value_size)
        s->bad_value = 1;
    for (size_t i = 0; i < value_size; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            s->bad_value = 1;
    }
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        s->lengths++;
        /* Digits only: no sign, no space, no list ("5, 5"); 18 digits fit a long long. */
        if (value_size == 0 || value_size > 18 || strspn(value, "0123456789") != value_size)
            s->bad_length = 1;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
        s->hosts++;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        s->codings++;
        /* libmicrohttpd decodes "chunked" only, compared whole: "chunked, gzip", "gzip" or
         * "identity" would be read to the end of the connection. */
        if (strcasecmp(value, "chunked") != 0)
            s->bad_coding = 1;
    }
    return MHD_YES;
}

static void log_refusal(const struct hub_req *r, enum reason why)
{
    long long minute = (long long)time(NULL) / 60;
    long long last = atomic_load(&log_minute);
    unsigned long long n = atomic_fetch_add(&unlogged, 1) + 1;
    if (last == minute || !atomic_compare_exchange_strong(&log_minute, &last, minute))
        return;
    n = atomic_exchange(&unlogged, 0);
    hub_warn("HTTP: refused %llu request(s) with ambiguous framing since the last such line "
             "(last: %s %s from %s: %s)",
             n, r->method, r->path, r->source, reason_names[why]);
}

int hub_api_strict_check(struct hub_req *r, const char *version)
{
    struct scan s = {0};
    MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, scan_header, &s);
    enum reason why;
    const char *msg;
    if (s.bad_name) {
        why = R_HEADER_NAME;
        msg = "a header name holds a space, a control character or a separator";
    } else if (s.bad_value) {
        why = R_HEADER_VALUE;
        msg = "a header value holds a control character";
    } else if (s.lengths > 1) {
        why = R_LENGTH_TWICE;
        msg = "more than one Content-Length header";
    } else if (s.bad_length) {
        why = R_LENGTH_BAD;
        msg = "Content-Length must be a decimal number of at most 18 digits";
    } else if (s.lengths > 0 && s.codings > 0) {
        why = R_LENGTH_CHUNKED;
        msg = "Content-Length and Transfer-Encoding together";
    } else if (s.codings > 1 || s.bad_coding) {
        why = R_CODING;
        msg = "the only transfer coding accepted is one \"chunked\"";
    } else if (s.codings > 0 && strcmp(version, MHD_HTTP_VERSION_1_1) != 0) {
        why = R_CODING;
        msg = "Transfer-Encoding needs HTTP/1.1";
    } else if (s.hosts > 1 || (s.hosts == 0 && strcmp(version, MHD_HTTP_VERSION_1_1) == 0)) {
        why = R_HOST;
        msg = "an HTTP/1.1 request needs exactly one Host header";
    } else {
        return 0;
    }
    atomic_fetch_add(&refused[why], 1);
    log_refusal(r, why);
    hub_reply_error(r, 400, "bad_request", "%s; the connection is closed", msg);
    hub_reply_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    return HUB_REPLIED;
}

int hub_api_strict_metrics(hub_buf_t *out)
{
    int rc = hub_buf_puts(out, "# HELP iothub_http_strict_refusals_total Requests refused "
                               "with 400 before any handler for ambiguous framing or "
                               "malformed headers, by reason.\n"
                               "# TYPE iothub_http_strict_refusals_total counter\n");
    for (int i = 0; rc == 0 && i < R_COUNT; i++)
        rc = hub_buf_printf(out, "iothub_http_strict_refusals_total{reason=\"%s\"} %llu\n",
                            reason_names[i], atomic_load(&refused[i]));
    return rc;
}
