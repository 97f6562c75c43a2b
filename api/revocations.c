/* Bulk revocation requests: exactly one selection (a list of device ids, a list of serials, a
 * product, or an issuing CA), optionally narrowed to a window of issuance (product and CA
 * only), and a reason. Every field is checked before anything is stored; lists are
 * checked against the database (422 naming the unknown entries). */
#include "api/revocations.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/audit.h"
#include "api/params.h"
#include "api/reply.h"
#include "api/transaction.h"
#include "ca/crl.h"
#include "db/db.h"
#include "db/revocation_jobs.h"
#include "util/error.h"

static const char *const SELECTORS[] = {"device_ids", "serials", "product_key", "ca"};
#define NSELECTORS 4

/* 1 when s is an RFC 3339 UTC time as the API writes them: 2026-12-07T10:00:00Z. */
static int rfc3339_valid(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
    if (strlen(s) != sizeof shape - 1)
        return 0;
    for (size_t i = 0; shape[i]; i++)
        if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i])
            return 0;
    struct tm tm = {0};
    tm.tm_year = atoi(s) - 1900;
    tm.tm_mon = atoi(s + 5) - 1;
    tm.tm_mday = atoi(s + 8);
    tm.tm_hour = atoi(s + 11);
    tm.tm_min = atoi(s + 14);
    tm.tm_sec = atoi(s + 17);
    struct tm back = tm;
    time_t t = timegm(&back);
    /* timegm normalises 2026-02-30 into March: a date that moved was not a date. */
    return t != (time_t)-1 && back.tm_mon == tm.tm_mon && back.tm_mday == tm.tm_mday &&
           tm.tm_hour < 24 && tm.tm_min < 60 && tm.tm_sec < 60;
}

/* A list field: 1..HUB_REVOCATIONS_LIST_MAX strings, each a UUID (ids) or 1..40 hex digits
 * (serials, upper-cased in place). Returns 0 or HUB_REPLIED (400). */
static int check_list(struct hub_req *r, json_t *list, int serials)
{
    const char *key = serials ? "serials" : "device_ids";
    size_t n = json_array_size(list), i;
    json_t *v;
    if (!json_is_array(list) || n == 0 || n > HUB_REVOCATIONS_LIST_MAX) {
        hub_reply_error(r, 400, "invalid_field", "field \"%s\" must be an array of 1 to %d %s",
                        key, HUB_REVOCATIONS_LIST_MAX, serials ? "serials" : "device ids");
        return HUB_REPLIED;
    }
    json_array_foreach(list, i, v)
    {
        const char *s = json_string_value(v);
        char buf[HUB_SERIAL_HEX];
        size_t len = s != NULL ? strlen(s) : 0;
        int ok = s != NULL && len == json_string_length(v);
        if (ok && serials) {
            ok = len > 0 && len < HUB_SERIAL_HEX;
            for (size_t k = 0; ok && k < len; k++) {
                ok = isxdigit((unsigned char)s[k]);
                buf[k] = (char)toupper((unsigned char)s[k]);
            }
            if (ok) {
                buf[len] = 0;
                json_array_set_new(list, i, json_string(buf));
            }
        } else if (ok) {
            ok = hub_params_uuid_valid(s);
            if (ok) {
                snprintf(buf, sizeof buf, "%s", s);
                hub_params_lower(buf);
                json_array_set_new(list, i, json_string(buf));
            }
        }
        if (!ok) {
            hub_reply_error(r, 400, "invalid_field", "%s[%zu] is not %s", key, i,
                            serials ? "a certificate serial (1 to 40 hex digits)" : "a UUID");
            return HUB_REPLIED;
        }
    }
    return 0;
}

/* Checks the body's fields and resolves them into sel (strings owned by body or the
 * buffers). Returns 0 or HUB_REPLIED (400, 404, 422). */
static int parse(struct hub_req *r, json_t *body, struct hub_db_revjob_sel *sel, int *reason,
                 char product_id[24], char ca_id[16])
{
    const char *key, *which = NULL;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        int known = strcmp(key, "issued_after") == 0 || strcmp(key, "issued_before") == 0 ||
                    strcmp(key, "reason") == 0;
        for (int i = 0; i < NSELECTORS; i++) {
            if (strcmp(key, SELECTORS[i]) != 0)
                continue;
            known = 1;
            if (which != NULL) {
                hub_reply_error(r, 400, "invalid_field",
                                "give exactly one of device_ids, serials, product_key, ca (got %s "
                                "and %s)",
                                which, key);
                return HUB_REPLIED;
            }
            which = SELECTORS[i];
        }
        if (!known) {
            hub_reply_error(r, 400, "invalid_field", "unknown field \"%.64s\"", key);
            return HUB_REPLIED;
        }
    }
    if (which == NULL) {
        hub_reply_error(r, 400, "missing_field",
                        "one of device_ids, serials, product_key or ca is required");
        return HUB_REPLIED;
    }
    if (hub_params_reason_parse(r, body, HUB_REASON_UNSPECIFIED, reason) != 0)
        return HUB_REPLIED;
    if (*reason == HUB_REASON_SUPERSEDED || *reason == 8 /* removeFromCRL */) {
        hub_reply_error(r, 400, "invalid_reason",
                        "reason superseded is for renewals, not bulk revocation");
        return HUB_REPLIED;
    }
    const char *bounds[2] = {"issued_after", "issued_before"};
    const char **out[2] = {&sel->issued_after, &sel->issued_before};
    for (int i = 0; i < 2; i++) {
        if (json_object_get(body, bounds[i]) == NULL)
            continue;
        if (strcmp(which, "product_key") != 0 && strcmp(which, "ca") != 0) {
            hub_reply_error(r, 400, "invalid_field",
                            "%s applies to product_key and ca, not to %s", bounds[i], which);
            return HUB_REPLIED;
        }
        const char *t = hub_params_string(r, body, bounds[i], 1, 32);
        if (t == NULL)
            return HUB_REPLIED;
        if (!rfc3339_valid(t)) {
            hub_reply_error(r, 400, "invalid_field",
                            "field \"%s\" must be an RFC 3339 UTC time (2026-12-07T10:00:00Z)",
                            bounds[i]);
            return HUB_REPLIED;
        }
        *out[i] = t;
    }
    if (sel->issued_after != NULL && sel->issued_before != NULL &&
        strcmp(sel->issued_after, sel->issued_before) >= 0) {
        hub_reply_error(r, 400, "invalid_field", "issued_after must be before issued_before");
        return HUB_REPLIED;
    }
    if (hub_transaction_db(r) == NULL)
        return HUB_REPLIED;
    json_t *list = json_object_get(body, which);
    if (strcmp(which, "device_ids") == 0 || strcmp(which, "serials") == 0) {
        int serials = which[0] == 's';
        if (check_list(r, list, serials) != 0)
            return HUB_REPLIED;
        return 0; /* checked against the database by the caller */
    }
    const char *name = hub_params_string(r, body, which, 1, 128);
    if (name == NULL)
        return HUB_REPLIED;
    int rc;
    if (which[0] == 'p') {
        rc = hub_db_revjobs_product(r->db, name, product_id);
        sel->product_id = product_id;
    } else {
        char serial[HUB_SERIAL_HEX];
        size_t n = strlen(name), k;
        for (k = 0; k < n && k < sizeof serial - 1; k++)
            serial[k] = (char)toupper((unsigned char)name[k]);
        serial[k] = 0;
        rc = hub_db_revjobs_ca(r->db, strcmp(name, "issuing") == 0 ? name : serial, ca_id);
        sel->ca_id = ca_id;
    }
    if (rc == HUB_ENOTFOUND)
        hub_reply_error(r, 404, which[0] == 'p' ? "product_not_found" : "ca_not_found",
                        which[0] == 'p' ? "no product %.128s"
                                        : "no issuing CA with serial %.128s (or \"issuing\")",
                        name);
    else if (rc != 0)
        hub_reply_internal(r, rc, "revocation selection");
    return rc == 0 ? 0 : HUB_REPLIED;
}

/* The job as answered: the reason by its RFC 5280 name. */
static void name_reason(json_t *job)
{
    const char *name = hub_crl_reason_name((int)json_integer_value(json_object_get(job, "reason")));
    json_object_set_new(job, "reason", name ? json_string(name) : json_null());
}

void hub_api_revocations_create(struct hub_req *r)
{
    struct hub_db_revjob_sel sel = {0};
    char product_id[24], ca_id[16], id[HUB_REVJOB_ID];
    int reason;
    json_t *missing = NULL, *job = NULL;
    char *selector = NULL, *list = NULL;
    json_t *body = hub_params_json(r);
    if (body == NULL || parse(r, body, &sel, &reason, product_id, ca_id) != 0)
        goto out;
    json_t *l = json_object_get(body, "device_ids");
    sel.by_serial = l == NULL;
    if (l == NULL)
        l = json_object_get(body, "serials");
    int rc = 0;
    if (l != NULL) {
        sel.list_json = list = json_dumps(l, JSON_COMPACT);
        rc = list == NULL ? HUB_ENOMEM : hub_db_revjobs_missing(r->db, list, sel.by_serial, &missing);
        if (rc == 0 && json_array_size(missing) > 0) {
            char *text = json_dumps(missing, JSON_COMPACT);
            hub_reply_error(r, 422, sel.by_serial ? "unknown_serials" : "unknown_devices",
                            "%zu of the %s are unknown: %.400s", json_array_size(missing),
                            sel.by_serial ? "serials (device or service certificates)"
                                          : "device ids",
                            text ? text : "");
            free(text);
            goto out;
        }
    }
    json_object_del(body, "reason");
    json_object_set_new(body, "reason", json_string(hub_crl_reason_name(reason)));
    if (rc == 0 && (selector = json_dumps(body, JSON_COMPACT)) == NULL)
        rc = HUB_ENOMEM;
    if (rc == 0)
        rc = hub_db_begin(r->db);
    if (rc == 0)
        rc = hub_db_revjobs_create(r->db, selector, &sel, reason, r->who.name, id);
    if (rc == 0)
        rc = hub_db_revjobs_get(r->db, id, &job);
    if (rc == 0) {
        json_t *d = json_pack("{s:O}", "selector", json_object_get(job, "selector"));
        char *text = json_dumps(d, JSON_COMPACT);
        json_decref(d);
        rc = text == NULL ? HUB_ENOMEM : hub_api_audit_write(r, id, text);
        free(text);
    }
    if (rc != 0) {
        hub_reply_internal(r, rc, "revocation job");
        goto out;
    }
    if (hub_transaction_commit(r) == 0) {
        char location[64];
        snprintf(location, sizeof location, "/v1/revocations/%s", id);
        name_reason(job);
        hub_reply_json(r, 202, job);
        hub_reply_header(r, "Location", location);
        job = NULL;
    }
out:
    free(list);
    free(selector);
    json_decref(missing);
    json_decref(job);
    json_decref(body);
}

void hub_api_revocations_show(struct hub_req *r)
{
    json_t *job = NULL;
    if (!hub_params_uuid_valid(r->params[0])) {
        hub_reply_error(r, 404, "not_found", "no revocation job %.64s", r->params[0]);
        return;
    }
    if (hub_transaction_db(r) == NULL)
        return;
    int rc = hub_db_revjobs_get(r->db, r->params[0], &job);
    if (rc == HUB_ENOTFOUND)
        hub_reply_error(r, 404, "not_found", "no revocation job %s", r->params[0]);
    else if (rc != 0)
        hub_reply_internal(r, rc, "revocation job");
    else {
        name_reason(job);
        hub_reply_json(r, 200, job);
    }
}
