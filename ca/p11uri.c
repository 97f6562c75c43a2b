/* RFC 7512: "pkcs11:" path attributes separated by ';', then an optional '?' and query
 * attributes separated by '&'; every value is percent-encoded. */
#include "ca/p11uri.h"

#include <stdio.h>
#include <string.h>

#include "util/error.h"
#include "util/secure.h"

#define SCHEME "pkcs11:"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Whether c may appear unencoded in a value: pk11-pchar (path) or pk11-qchar (query). */
static int plain_char(int c, int query)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    if (c != 0 && strchr("-._~:[]@!$'()*+,=", c) != NULL)
        return 1;
    return c != 0 && strchr(query ? "/?|" : "&", c) != NULL;
}

/* Percent-decodes [v, v+len) into out (cap bytes). Returns the length or -1. */
static int pct_decode(const char *v, size_t len, uint8_t *out, size_t cap, int query)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)v[i];
        if (c != '%' && !plain_char(c, query))
            return -1;
        if (c == '%') {
            int hi = i + 2 < len ? hexval(v[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(v[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (n >= cap)
            return -1;
        out[n++] = (uint8_t)c;
    }
    return (int)n;
}

/* Decodes a text value into a NUL-terminated string of size cap (no NUL inside). */
static int text_value(const char *v, size_t len, char *out, size_t cap, int query)
{
    int n = pct_decode(v, len, (uint8_t *)out, cap - 1, query);
    if (n < 0 || memchr(out, 0, (size_t)n) != NULL)
        return -1;
    out[n] = 0;
    return 0;
}

/* Sets one attribute name=value (value still encoded). */
static int set_attr(struct hub_p11_uri *u, int query, const char *name, size_t nlen, const char *v,
                    size_t vlen, char *err, size_t errlen)
{
    struct {
        int query;
        const char *name;
        char *dst;
        size_t cap;
    } texts[] = {
        {0, "token", u->token, sizeof u->token},
        {0, "manufacturer", u->manufacturer, sizeof u->manufacturer},
        {0, "serial", u->serial, sizeof u->serial},
        {0, "model", u->model, sizeof u->model},
        {0, "object", u->object, sizeof u->object},
        {1, "module-path", u->module_path, sizeof u->module_path},
        {1, "pin-source", u->pin_source, sizeof u->pin_source},
        {1, "pin-value", u->pin_value, sizeof u->pin_value},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        if (texts[i].query != query || strlen(texts[i].name) != nlen ||
            memcmp(texts[i].name, name, nlen) != 0)
            continue;
        if (texts[i].dst[0] != 0) {
            snprintf(err, errlen, "attribute %s is given twice", texts[i].name);
            return HUB_EINVAL;
        }
        if (text_value(v, vlen, texts[i].dst, texts[i].cap, query) != 0 || texts[i].dst[0] == 0) {
            snprintf(err, errlen,
                     "attribute %s: empty, too long (at most %zu bytes), or a "
                     "character to percent-encode",
                     texts[i].name, texts[i].cap - 1);
            return HUB_EINVAL;
        }
        return 0;
    }
    if (!query && nlen == 2 && memcmp(name, "id", 2) == 0) {
        int n = u->id_len ? -1 : pct_decode(v, vlen, u->id, sizeof u->id, 0);
        if (n <= 0) {
            snprintf(err, errlen,
                     "attribute id: given twice, empty, over %zu bytes or badly "
                     "percent-encoded",
                     sizeof u->id);
            return HUB_EINVAL;
        }
        u->id_len = (size_t)n;
        return 0;
    }
    if (!query && nlen == 4 && memcmp(name, "type", 4) == 0) {
        if (vlen == 7 && memcmp(v, "private", 7) == 0)
            return 0;
        snprintf(err, errlen, "type=%.*s: the CA key is a private key (type=private)",
                 (int)(vlen > 32 ? 32 : vlen), v);
        return HUB_EINVAL;
    }
    snprintf(err, errlen,
             "%s attribute \"%.*s\" is not supported (path: token, manufacturer, "
             "serial, model, object, id, type; query: module-path, pin-source, pin-value)",
             query ? "query" : "path", (int)(nlen > 32 ? 32 : nlen), name);
    return HUB_EINVAL;
}

int hub_p11_uri_parse(const char *s, struct hub_p11_uri *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    err[0] = 0;
    size_t total = s ? strlen(s) : 0;
    if (total == 0 || total >= HUB_P11_URI_MAX || strncmp(s, SCHEME, strlen(SCHEME)) != 0) {
        snprintf(err, errlen, "not a PKCS#11 URI (\"pkcs11:...\", at most %d bytes)",
                 HUB_P11_URI_MAX - 1);
        return HUB_EINVAL;
    }
    const char *p = s + strlen(SCHEME), *end = s + total;
    int query = 0;
    while (p < end) {
        const char *sep = p;
        while (sep < end && *sep != (query ? '&' : ';') && (query || *sep != '?'))
            sep++;
        if (sep > p) {
            const char *eq = memchr(p, '=', (size_t)(sep - p));
            if (eq == NULL) {
                snprintf(err, errlen, "attribute \"%.*s\" has no value",
                         (int)(sep - p > 32 ? 32 : sep - p), p);
                goto fail;
            }
            if (set_attr(out, query, p, (size_t)(eq - p), eq + 1, (size_t)(sep - eq - 1), err,
                         errlen) != 0)
                goto fail;
        }
        if (sep < end && *sep == '?')
            query = 1;
        p = sep + 1;
    }
    if (out->object[0] == 0 && out->id_len == 0) {
        snprintf(err, errlen, "the URI names no key: give object=LABEL and/or id=%%XX...");
        goto fail;
    }
    return 0;
fail:
    hub_wipe(out->pin_value, sizeof out->pin_value);
    return HUB_EINVAL;
}

int hub_p11_uri_redact(const char *s, char *out, size_t outlen)
{
    size_t n = 0, len = strlen(s);
    const char *q = strchr(s, '?');
    size_t path_len = q ? (size_t)(q - s) : len;
    if (path_len >= outlen)
        return HUB_ERANGE;
    memcpy(out, s, path_len);
    n = path_len;
    out[n] = 0;
    if (q == NULL)
        return 0;
    const char *p = q + 1, *end = s + len;
    int first = 1;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        if (amp == NULL)
            amp = end;
        size_t alen = (size_t)(amp - p);
        if (alen > 0 && !(alen >= 10 && memcmp(p, "pin-value=", 10) == 0)) {
            if (n + 1 + alen >= outlen)
                return HUB_ERANGE;
            out[n++] = first ? '?' : '&';
            memcpy(out + n, p, alen);
            n += alen;
            out[n] = 0;
            first = 0;
        }
        p = amp + 1;
    }
    return 0;
}
