/* /v1/rollouts. A rollout's devices are selected once, at creation, in one INSERT ... SELECT
 * (db/rollouts.c); a device is in at most one active (running or paused) rollout: a second
 * rollout that selects it is refused (409), enforced by a unique index. */
#include "api/rollouts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/audit.h"
#include "api/params.h"
#include "api/reply.h"
#include "api/tags.h"
#include "api/transaction.h"
#include "db/db.h"
#include "db/products.h"
#include "db/rollouts.h"
#include "util/error.h"

#define MAX_WAVE_COUNT 10000000
#define MAX_PAUSE_S (7 * 86400)
#define MAX_TIMEOUT_S (30 * 86400)
#define DEFAULT_TIMEOUT_S 86400
#define DEFAULT_FAILURE_PERCENT 10

/* "N%" with N in 1..100: N, else 0. */
static int percent(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || s[0] < '0' || s[0] > '9' || strcmp(end, "%") != 0 || v < 1 || v > 100)
        return 0;
    return (int)v;
}

/* An optional integer member in lo..hi (def when absent). 0 or HUB_REPLIED. */
static int int_field(struct hub_req *r, json_t *body, const char *key, int lo, int hi, int def,
                     int *out)
{
    json_t *v = json_object_get(body, key);
    *out = def;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        hub_reply_error(r, 400, "invalid_field", "%s must be an integer from %d to %d", key, lo,
                        hi);
        return HUB_REPLIED;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static int parse_target(struct hub_req *r, json_t *t, struct hub_rollout_spec *s)
{
    if (!json_is_object(t) || json_object_size(t) != 1) {
        hub_reply_error(r, 400, "invalid_field",
                        "target must be one of {\"product_key\"}, {\"device_ids\"}, {\"tag\"}");
        return HUB_REPLIED;
    }
    json_t *ids = json_object_get(t, "device_ids");
    if (json_object_get(t, "product_key") != NULL) {
        s->kind = HUB_TARGET_PRODUCT;
        s->product_key = hub_params_string(r, t, "product_key", 1, 64);
        return s->product_key == NULL ? HUB_REPLIED : 0;
    }
    if (json_object_get(t, "tag") != NULL) {
        s->kind = HUB_TARGET_TAG;
        s->value = hub_params_string(r, t, "tag", 1, HUB_TAG_MAX_LEN);
        if (s->value == NULL)
            return HUB_REPLIED;
        if (!hub_api_tags_valid(s->value)) {
            hub_reply_error(r, 400, "invalid_field",
                            "a tag may only contain letters, digits and -_.:");
            return HUB_REPLIED;
        }
        return 0;
    }
    size_t n = json_array_size(ids);
    if (!json_is_array(ids) || n == 0 || n > HUB_ROLLOUT_MAX_DEVICE_IDS) {
        hub_reply_error(r, 400, "invalid_field",
                        "target.device_ids must be an array of 1 to %d device ids",
                        HUB_ROLLOUT_MAX_DEVICE_IDS);
        return HUB_REPLIED;
    }
    json_t *seen = json_object();
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        if (id == NULL || !hub_params_uuid_valid(id) || json_object_get(seen, id) != NULL) {
            json_decref(seen);
            hub_reply_error(r, 400, "invalid_field",
                            "target.device_ids[%zu] is not a device id or is repeated", i);
            return HUB_REPLIED;
        }
        json_object_set_new(seen, id, json_true());
    }
    json_decref(seen);
    s->kind = HUB_TARGET_DEVICES;
    s->value = s->value_owned = json_dumps(ids, JSON_COMPACT);
    if (s->value == NULL) {
        hub_reply_internal(r, HUB_ENOMEM, "device ids");
        return HUB_REPLIED;
    }
    return 0;
}

static int parse_waves(struct hub_req *r, json_t *w, struct hub_rollout_spec *s)
{
    if (w == NULL || json_is_null(w)) {
        s->wave_count = 1;
        s->wave_value[0] = 100;
        s->wave_pct[0] = 1;
        return 0;
    }
    size_t n = json_array_size(w);
    if (!json_is_array(w) || n == 0 || n > HUB_ROLLOUT_MAX_WAVES) {
        hub_reply_error(r, 400, "invalid_field", "waves must be an array of 1 to %d sizes",
                        HUB_ROLLOUT_MAX_WAVES);
        return HUB_REPLIED;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(w, i);
        if (json_is_integer(v) && json_integer_value(v) >= 1 &&
            json_integer_value(v) <= MAX_WAVE_COUNT) {
            s->wave_value[i] = json_integer_value(v);
            s->wave_pct[i] = 0;
        } else if (json_is_string(v) && percent(json_string_value(v)) > 0) {
            s->wave_value[i] = percent(json_string_value(v));
            s->wave_pct[i] = 1;
        } else {
            hub_reply_error(r, 400, "invalid_field",
                            "waves[%zu] must be a device count (1 to %d) or a percentage"
                            " (\"1%%\" to \"100%%\")",
                            i, MAX_WAVE_COUNT);
            return HUB_REPLIED;
        }
    }
    s->wave_count = (int)n;
    return 0;
}

static int parse_threshold(struct hub_req *r, json_t *v, struct hub_rollout_spec *s)
{
    s->failure_count = s->failure_percent = 0;
    if (v == NULL || json_is_null(v))
        s->failure_percent = DEFAULT_FAILURE_PERCENT;
    else if (json_is_integer(v) && json_integer_value(v) >= 1 &&
             json_integer_value(v) <= MAX_WAVE_COUNT)
        s->failure_count = (int)json_integer_value(v);
    else if (json_is_string(v) && percent(json_string_value(v)) > 0)
        s->failure_percent = percent(json_string_value(v));
    else {
        hub_reply_error(r, 400, "invalid_field",
                        "failure_threshold must be a device count (1 to %d) or a percentage"
                        " (\"1%%\" to \"100%%\")",
                        MAX_WAVE_COUNT);
        return HUB_REPLIED;
    }
    return 0;
}

int hub_api_rollouts_parse(struct hub_req *r, json_t *body, struct hub_rollout_spec *s)
{
    memset(s, 0, sizeof *s);
    s->firmware_id = hub_params_string(r, body, "firmware_id", 1, 36);
    if (s->firmware_id == NULL)
        return HUB_REPLIED;
    if (!hub_params_uuid_valid(s->firmware_id)) {
        hub_reply_error(r, 400, "invalid_field", "firmware_id must be an image id");
        return HUB_REPLIED;
    }
    if (json_object_get(body, "target") == NULL) {
        hub_reply_error(r, 400, "missing_field", "field \"target\" is required");
        return HUB_REPLIED;
    }
    if (parse_target(r, json_object_get(body, "target"), s) != 0 ||
        parse_waves(r, json_object_get(body, "waves"), s) != 0 ||
        parse_threshold(r, json_object_get(body, "failure_threshold"), s) != 0 ||
        int_field(r, body, "wave_pause_s", 0, MAX_PAUSE_S, 0, &s->wave_pause_s) != 0 ||
        int_field(r, body, "wave_timeout_s", 1, MAX_TIMEOUT_S, DEFAULT_TIMEOUT_S,
                  &s->wave_timeout_s) != 0)
        return HUB_REPLIED;
    return 0;
}

void hub_api_rollouts_bounds(const struct hub_rollout_spec *s, long long n, char *buf, size_t cap)
{
    size_t used = (size_t)snprintf(buf, cap, "{");
    long long prev = 0;
    for (int i = 0; i + 1 < s->wave_count && used < cap; i++) {
        long long b = s->wave_pct[i] ? (n * s->wave_value[i] + 99) / 100 : s->wave_value[i];
        if (b > n)
            b = n;
        if (b < prev)
            b = prev;
        prev = b;
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? "," : "", b);
    }
    if (used < cap)
        snprintf(buf + used, cap - used, "}");
}

/* The target's product, checked against the image's. 0 or HUB_REPLIED. */
static int target_product(struct hub_req *r, const struct hub_rollout_spec *s, long long *pid)
{
    char status[16];
    int rc = hub_db_rollouts_firmware(r->db, s->firmware_id, pid, status);
    if (rc == HUB_ENOTFOUND) {
        hub_reply_error(r, 404, "firmware_not_found", "no firmware image %s", s->firmware_id);
        return HUB_REPLIED;
    }
    if (rc != 0) {
        hub_reply_internal(r, rc, "firmware lookup");
        return HUB_REPLIED;
    }
    if (strcmp(status, "ready") != 0) {
        hub_reply_error(r, 422, "firmware_not_ready", "image %s is still being uploaded",
                        s->firmware_id);
        return HUB_REPLIED;
    }
    if (s->kind != HUB_TARGET_PRODUCT)
        return 0;
    struct hub_db_secret p;
    rc = hub_db_products_secret(r->db, s->product_key, &p);
    if (rc == HUB_ENOTFOUND) {
        hub_reply_error(r, 404, "product_not_found", "no product with key \"%s\"",
                        s->product_key);
        return HUB_REPLIED;
    }
    if (rc != 0) {
        hub_reply_internal(r, rc, "product lookup");
        return HUB_REPLIED;
    }
    if (p.id != *pid) {
        hub_reply_error(r, 422, "product_mismatch", "image %s is not for product \"%s\"",
                        s->firmware_id, s->product_key);
        return HUB_REPLIED;
    }
    return 0;
}

/* Counts and checks the target's devices. 0 or HUB_REPLIED. */
static int target_devices(struct hub_req *r, const struct hub_rollout_spec *s, long long pid,
                          long long *n)
{
    char dev[37], other[37];
    int rc = hub_db_rollouts_target_count(r->db, pid, s->kind, s->value, n);
    if (rc != 0) {
        hub_reply_internal(r, rc, "target lookup");
        return HUB_REPLIED;
    }
    if (*n == 0) {
        hub_reply_error(r, 422, "empty_target", "the target selects no device of the image's"
                                                " product");
        return HUB_REPLIED;
    }
    rc = hub_db_rollouts_target_busy(r->db, pid, s->kind, s->value, dev, other);
    if (rc == 0) {
        hub_reply_error(r, 409, "device_busy", "device %s is already in active rollout %s", dev,
                        other);
        return HUB_REPLIED;
    }
    if (rc != HUB_ENOTFOUND) {
        hub_reply_internal(r, rc, "target lookup");
        return HUB_REPLIED;
    }
    return 0;
}

void hub_api_rollouts_create(struct hub_req *r)
{
    struct hub_rollout_spec s;
    json_t *body = hub_params_json(r), *out = NULL;
    char id[37], bounds[HUB_ROLLOUT_MAX_WAVES * 12 + 4];
    long long pid, n, made;
    memset(&s, 0, sizeof s);
    if (body == NULL)
        return;
    if (hub_api_rollouts_parse(r, body, &s) != 0)
        goto out;
    if (hub_transaction_db(r) == NULL)
        goto out;
    int rc = hub_db_begin(r->db);
    if (rc != 0) {
        hub_reply_internal(r, rc, "transaction");
        goto out;
    }
    if (target_product(r, &s, &pid) != 0 || target_devices(r, &s, pid, &n) != 0)
        goto out;
    if (s.kind == HUB_TARGET_DEVICES) {
        json_t *ids = json_object_get(json_object_get(body, "target"), "device_ids");
        if ((size_t)n != json_array_size(ids)) {
            hub_reply_error(r, 422, "unknown_devices",
                            "%zu of the device ids are unknown, revoked or not of the image's"
                            " product",
                            json_array_size(ids) - (size_t)n);
            goto out;
        }
    }
    json_t *target = json_object_get(body, "target");
    json_t *waves = json_object_get(body, "waves");
    char *target_text = json_dumps(target, JSON_COMPACT);
    char *waves_text = json_is_array(waves) ? json_dumps(waves, JSON_COMPACT)
                                            : strdup("[\"100%\"]");
    rc = target_text && waves_text ? 0 : HUB_ENOMEM;
    if (rc == 0)
        rc = hub_db_rollouts_insert(r->db, s.firmware_id, target_text, waves_text, s.wave_count,
                                    s.wave_pause_s, s.wave_timeout_s, s.failure_count,
                                    s.failure_percent, r->who.name, id);
    hub_api_rollouts_bounds(&s, n, bounds, sizeof bounds);
    if (rc == 0)
        rc = hub_db_rollouts_materialize(r->db, id, pid, s.kind, s.value, bounds, &made);
    free(target_text);
    free(waves_text);
    if (rc == HUB_EEXIST) {
        hub_reply_error(r, 409, "device_busy",
                        "a device of the target joined another active rollout meanwhile");
        goto out;
    }
    if (rc == 0)
        rc = hub_db_rollouts_get(r->db, id, &out);
    if (rc == 0) {
        json_t *d = json_pack("{s:s,s:O,s:I}", "firmware_id", s.firmware_id, "target", target,
                              "devices", (json_int_t)made);
        char *text = json_dumps(d, JSON_COMPACT);
        json_decref(d);
        rc = hub_api_audit_write(r, id, text);
        free(text);
    }
    if (rc != 0) {
        hub_reply_internal(r, rc, "rollout creation");
        goto out;
    }
    if (hub_transaction_commit(r) == 0) {
        hub_reply_json(r, 201, out);
        out = NULL;
    }
out:
    json_decref(out);
    free(s.value_owned);
    json_decref(body);
}

void hub_api_rollouts_list(struct hub_req *r)
{
    int limit;
    json_t *list;
    if (hub_params_limit(r, 100, 1000, &limit) != 0)
        return;
    const char *before = hub_request_query(r, "before");
    if (before != NULL && !hub_params_uuid_valid(before)) {
        hub_reply_error(r, 400, "invalid_parameter", "before must be a rollout id");
        return;
    }
    if (hub_transaction_db(r) == NULL)
        return;
    int rc = hub_db_rollouts_list(r->db, before, limit, &list);
    if (rc != 0) {
        hub_reply_internal(r, rc, "rollout listing");
        return;
    }
    json_t *next = hub_reply_next_cursor(list, limit, "rollout_id");
    hub_reply_json(r, 200, json_pack("{s:o,s:o?}", "rollouts", list, "next_before", next));
}

static int state_valid(const char *s)
{
    static const char *const states[] = {"pending",    "notified",  "downloading",
                                         "verifying",  "installing", "installed",
                                         "failed",     "rolled_back", "skipped"};
    for (size_t i = 0; i < sizeof states / sizeof *states; i++)
        if (strcmp(s, states[i]) == 0)
            return 1;
    return 0;
}

void hub_api_rollouts_show(struct hub_req *r)
{
    const char *id = r->params[0];
    json_t *d, *list;
    int limit;
    if (!hub_params_uuid_valid(id)) {
        hub_reply_error(r, 404, "not_found", "no rollout %s", id);
        return;
    }
    if (hub_params_limit(r, 100, 1000, &limit) != 0)
        return;
    const char *after = hub_request_query(r, "after");
    const char *state = hub_request_query(r, "state");
    if (after != NULL && !hub_params_uuid_valid(after)) {
        hub_reply_error(r, 400, "invalid_parameter", "after must be a device id");
        return;
    }
    if (state != NULL && !state_valid(state)) {
        hub_reply_error(r, 400, "invalid_parameter", "state must be a device state of a rollout");
        return;
    }
    if (hub_transaction_db(r) == NULL)
        return;
    int rc = hub_db_rollouts_get(r->db, id, &d);
    if (rc == HUB_ENOTFOUND) {
        hub_reply_error(r, 404, "not_found", "no rollout %s", id);
        return;
    }
    if (rc == 0 && (rc = hub_db_rollouts_devices(r->db, id, after, state, limit, &list)) != 0)
        json_decref(d);
    if (rc != 0) {
        hub_reply_internal(r, rc, "rollout lookup");
        return;
    }
    json_object_set_new(d, "next_after", hub_reply_next_cursor(list, limit, "device_id"));
    json_object_set_new(d, "devices", list);
    hub_reply_json(r, 200, d);
}

/* Moves the rollout of the path from one of the states in `from` to `to`. */
static void transition(struct hub_req *r, const char *const *from, const char *to)
{
    const char *id = r->params[0];
    char state[16];
    json_t *d = NULL;
    if (!hub_params_uuid_valid(id)) {
        hub_reply_error(r, 404, "not_found", "no rollout %s", id);
        return;
    }
    if (hub_transaction_db(r) == NULL)
        return;
    int rc = hub_db_begin(r->db);
    if (rc == 0)
        rc = hub_db_rollouts_lock(r->db, id, state);
    if (rc == HUB_ENOTFOUND) {
        hub_reply_error(r, 404, "not_found", "no rollout %s", id);
        return;
    }
    if (rc != 0) {
        hub_reply_internal(r, rc, "rollout lookup");
        return;
    }
    int allowed = 0;
    for (; *from != NULL; from++)
        allowed |= strcmp(state, *from) == 0;
    if (!allowed) {
        hub_reply_error(r, 409, "invalid_state", "rollout %s is %s", id, state);
        return;
    }
    if (strcmp(to, "cancelled") == 0)
        rc = hub_db_rollouts_finish(r->db, id, to, "cancelled by an operator");
    else
        rc = hub_db_rollouts_set_state(r->db, id, to);
    if (rc == 0) {
        char details[64];
        snprintf(details, sizeof details, "{\"from\":\"%s\",\"to\":\"%s\"}", state, to);
        rc = hub_api_audit_write(r, id, details);
    }
    if (rc == 0)
        rc = hub_db_rollouts_get(r->db, id, &d);
    if (rc != 0) {
        hub_reply_internal(r, rc, "rollout update");
        return;
    }
    if (hub_transaction_commit(r) == 0)
        hub_reply_json(r, 200, d);
    else
        json_decref(d);
}

void hub_api_rollouts_pause(struct hub_req *r)
{
    static const char *const from[] = {"running", NULL};
    transition(r, from, "paused");
}

void hub_api_rollouts_resume(struct hub_req *r)
{
    static const char *const from[] = {"paused", NULL};
    transition(r, from, "running");
}

void hub_api_rollouts_cancel(struct hub_req *r)
{
    static const char *const from[] = {"running", "paused", "halted", NULL};
    transition(r, from, "cancelled");
}
