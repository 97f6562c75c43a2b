/* Request parameters: the JSON body (jansson, duplicate keys refused), its string fields,
 * query parameters, ids and revocation reasons. */
#include "api/params.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "api/reply.h"
#include "ca/crl.h"

json_t *hub_params_json(struct hub_req *r)
{
    const char *ct = hub_request_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] != 0 && ct[16] != ';' && ct[16] != ' ')) {
        hub_reply_error(r, 415, "unsupported_media_type",
                        "the request body must be application/json");
        return NULL;
    }
    return hub_params_json_body(r);
}

json_t *hub_params_json_body(struct hub_req *r)
{
    if (r->body.len == 0) {
        hub_reply_error(r, 400, "invalid_json",
                        "the request body is empty; a JSON object "
                        "is expected");
        return NULL;
    }
    json_error_t e;
    json_t *j = json_loadb((const char *)r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &e);
    if (j == NULL) {
        hub_reply_error(r, 400, "invalid_json", "malformed JSON at line %d column %d: %s", e.line,
                        e.column, e.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        hub_reply_error(r, 400, "invalid_json", "the request body must be a JSON object");
        return NULL;
    }
    return j;
}

const char *hub_params_string(struct hub_req *r, json_t *obj, const char *key, int required,
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
        hub_reply_error(r, 400, "invalid_field", "field \"%s\" must be 1 to %zu characters", key,
                        maxlen);
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x20 && s[i] != '\n' && s[i] != '\r') {
            hub_reply_error(r, 400, "invalid_field", "field \"%s\" contains control characters",
                            key);
            return NULL;
        }
    }
    return s;
}

int hub_params_limit(struct hub_req *r, int def, int max, int *limit)
{
    const char *s = hub_request_query(r, "limit");
    *limit = def;
    if (s == NULL)
        return 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < 1 || v > max) {
        hub_reply_error(r, 400, "invalid_parameter", "limit must be an integer from 1 to %d", max);
        return HUB_REPLIED;
    }
    *limit = (int)v;
    return 0;
}

int hub_params_format(struct hub_req *r, const char *first, const char *second, int *is_second)
{
    const char *f = hub_request_query(r, "format");
    *is_second = 0;
    if (f == NULL || strcmp(f, first) == 0)
        return 0;
    if (strcmp(f, second) == 0) {
        *is_second = 1;
        return 0;
    }
    hub_reply_error(r, 400, "invalid_parameter", "format must be %s or %s", first, second);
    return HUB_REPLIED;
}

int hub_params_reason_parse(struct hub_req *r, json_t *body, int def, int *reason)
{
    *reason = def;
    const char *name = hub_params_string(r, body, "reason", 0, 64);
    if (r->status != 0)
        return HUB_REPLIED;
    if (name != NULL &&
        (hub_crl_reason_parse(name, reason) != 0 || *reason == HUB_REASON_CERTIFICATE_HOLD)) {
        hub_reply_error(r, 400, "invalid_reason",
                        "reason must be an RFC 5280 reason name: unspecified, keyCompromise, "
                        "cACompromise, affiliationChanged, superseded, cessationOfOperation, "
                        "privilegeWithdrawn or aACompromise");
        return HUB_REPLIED;
    }
    return 0;
}

int hub_params_reason(struct hub_req *r, int def, int *reason)
{
    *reason = def;
    if (r->body.len == 0)
        return 0;
    json_t *body = hub_params_json(r);
    if (body == NULL)
        return HUB_REPLIED;
    int rc = hub_params_reason_parse(r, body, def, reason);
    json_decref(body);
    return rc;
}

int hub_params_uuid_valid(const char *s)
{
    static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    if (strlen(s) != 36)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        if (shape[i] == '-' ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

void hub_params_lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}
