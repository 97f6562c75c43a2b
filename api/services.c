/* POST /v1/services: backend applications with explicit MQTT topic patterns. Activation is
 * shared with devices (api/activation.c). */
#include "api/services.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/audit.h"
#include "api/params.h"
#include "api/reply.h"
#include "api/transaction.h"
#include "db/db.h"
#include "db/services.h"
#include "util/error.h"
#include "util/passhash.h"
#include "util/secure.h"

#define MAX_PATTERNS 64
#define MAX_PATTERN_LEN 256

/* An MQTT topic filter, optionally prefixed by '!' (deny): '#' only as the whole last level,
 * '+' only as a whole level, no NUL/control characters. */
static int pattern_valid(const char *s)
{
    if (*s == '!')
        s++;
    size_t n = strlen(s);
    if (n == 0 || n > MAX_PATTERN_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        int starts = i == 0 || s[i - 1] == '/', ends = i + 1 == n || s[i + 1] == '/';
        if (ch < 0x20 || ch == 0x7f)
            return 0;
        if (ch == '+' && !(starts && ends))
            return 0;
        if (ch == '#' && !(starts && i + 1 == n))
            return 0;
    }
    return 1;
}

/* Validates an array of patterns; replies 400 and returns NULL when invalid. */
static json_t *patterns(struct hub_req *r, json_t *body, const char *key)
{
    json_t *a = json_object_get(body, key);
    if (a == NULL)
        return json_array();
    if (!json_is_array(a) || json_array_size(a) > MAX_PATTERNS) {
        hub_reply_error(r, 400, "invalid_field", "%s must be an array of at most %d topic "
                        "patterns", key, MAX_PATTERNS);
        return NULL;
    }
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
            !pattern_valid(json_string_value(v))) {
            hub_reply_error(r, 400, "invalid_field",
                            "%s[%zu] is not a valid MQTT topic pattern (\"+\" and \"#\" only "
                            "as whole levels, \"#\" last, optional leading \"!\" to deny)",
                            key, i);
            return NULL;
        }
    }
    return json_incref(a);
}

int hub_api_services_parse(struct hub_req *r, json_t *body, const char **name, json_t **pub,
                           json_t **sub)
{
    *pub = *sub = NULL;
    *name = hub_params_string(r, body, "name", 1, 100);
    if (*name == NULL || (*pub = patterns(r, body, "publish")) == NULL ||
        (*sub = patterns(r, body, "subscribe")) == NULL)
        return HUB_REPLIED;
    return 0;
}

void hub_api_services_create(struct hub_req *r)
{
    json_t *pub = NULL, *sub = NULL;
    char *pub_text = NULL, *sub_text = NULL;
    const char *name;
    json_t *body = hub_params_json(r);
    if (body == NULL)
        return;
    if (hub_api_services_parse(r, body, &name, &pub, &sub) != 0 || hub_transaction_db(r) == NULL)
        goto out;
    pub_text = json_dumps(pub, JSON_COMPACT | JSON_ENCODE_ANY);
    sub_text = json_dumps(sub, JSON_COMPACT | JSON_ENCODE_ANY);
    char secret[25], hash[HUB_PASSHASH_MAX], id[37];
    int rc = pub_text && sub_text ? hub_secret_generate(secret) : HUB_ENOMEM;
    if (rc == 0)
        rc = hub_passhash_make(secret, hash);
    if (rc == 0)
        rc = hub_db_begin(r->db);
    if (rc == 0)
        rc = hub_db_services_insert(r->db, name, pub_text, sub_text, hash, id);
    if (rc == HUB_EEXIST) {
        hub_db_rollback(r->db);
        hub_reply_error(r, 409, "conflict", "a service named \"%s\" already exists", name);
        goto out;
    }
    if (rc == 0) {
        json_t *d = json_pack("{s:s,s:O,s:O}", "name", name, "publish", pub, "subscribe", sub);
        char *text = json_dumps(d, JSON_COMPACT);
        json_decref(d);
        rc = hub_api_audit_write(r, id, text);
        free(text);
    }
    if (rc != 0) {
        hub_reply_internal(r, rc, "service creation");
        goto out;
    }
    if (hub_transaction_commit(r) == 0)
        hub_reply_json(r, 201, json_pack("{s:s,s:s,s:s,s:O,s:O}", "service_id", id,
                                         "service_secret", secret, "name", name, "publish",
                                         pub, "subscribe", sub));
    hub_wipe(secret, sizeof secret);
out:
    free(pub_text);
    free(sub_text);
    json_decref(pub);
    json_decref(sub);
    json_decref(body);
}
