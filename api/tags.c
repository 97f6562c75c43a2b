/* Device tags: a set of short labels per device ("beta", "site:lyon"), replaced as a whole. */
#include "api/tags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/audit.h"
#include "api/devices.h"
#include "api/params.h"
#include "api/reply.h"
#include "api/transaction.h"
#include "db/db.h"
#include "db/devices.h"
#include "util/error.h"

int hub_api_tags_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > HUB_TAG_MAX_LEN)
        return 0;
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.' || ch == ':'))
            return 0;
    }
    return 1;
}

/* Checks body's "tags" and makes them a set (first occurrence kept). 0 or HUB_REPLIED. */
static int parse(struct hub_req *r, json_t *body, json_t **set)
{
    json_t *tags = json_object_get(body, "tags");
    *set = NULL;
    if (tags == NULL || json_object_size(body) != 1) {
        hub_reply_error(r, 400, tags ? "invalid_field" : "missing_field",
                        "the body must be {\"tags\": [...]}");
        return HUB_REPLIED;
    }
    size_t n = json_array_size(tags);
    if (!json_is_array(tags) || n > HUB_TAGS_MAX) {
        hub_reply_error(r, 400, "invalid_field", "tags must be an array of at most %d tags",
                        HUB_TAGS_MAX);
        return HUB_REPLIED;
    }
    *set = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *t = json_string_value(json_array_get(tags, i));
        if (t == NULL || !hub_api_tags_valid(t)) {
            hub_reply_error(r, 400, "invalid_field",
                            "tags[%zu] must be 1 to %d letters, digits and -_.:", i,
                            HUB_TAG_MAX_LEN);
            json_decref(*set);
            *set = NULL;
            return HUB_REPLIED;
        }
        int dup = 0;
        for (size_t j = 0; j < json_array_size(*set); j++)
            dup |= strcmp(json_string_value(json_array_get(*set, j)), t) == 0;
        if (!dup)
            json_array_append_new(*set, json_string(t));
    }
    return 0;
}

void hub_api_tags_update(struct hub_req *r)
{
    char status[16];
    json_t *body = hub_params_json(r), *set = NULL, *previous = NULL, *d = NULL;
    char *text = NULL, *details = NULL;
    if (body == NULL)
        return;
    if (parse(r, body, &set) != 0)
        goto out;
    if (hub_api_devices_lock(r, status) == NULL)
        goto out;
    int rc = (text = json_dumps(set, JSON_COMPACT)) ? 0 : HUB_ENOMEM;
    if (rc == 0)
        rc = hub_db_devices_set_tags(r->db, r->params[0], text, &previous);
    if (rc == 0) {
        json_t *a = json_pack("{s:O,s:O}", "previous", previous, "tags", set);
        details = json_dumps(a, JSON_COMPACT);
        json_decref(a);
        rc = hub_api_audit_write(r, r->params[0], details);
    }
    if (rc == 0)
        rc = hub_db_devices_get(r->db, r->params[0], &d);
    if (rc != 0) {
        hub_reply_internal(r, rc, "device update");
        goto out;
    }
    if (hub_transaction_commit(r) == 0) {
        hub_api_devices_mark_connected(r, d);
        hub_reply_json(r, 200, d);
        d = NULL;
    }
out:
    json_decref(d);
    json_decref(previous);
    json_decref(set);
    free(text);
    free(details);
    json_decref(body);
}
