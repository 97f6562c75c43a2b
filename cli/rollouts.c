/* Rollout subcommands: the body of POST /v1/rollouts from options (--waves 10,50%,100%:
 * numbers are device counts, "N%" percentages), the other calls with an id operand. */
#include "cli/rollouts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/output.h"
#include "util/error.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const struct hub_field rollout_fields[] = {
    {"rollout id", "rollout_id"},     {"firmware id", "firmware_id"},
    {"version", "version"},           {"product key", "product_key"},
    {"state", "state"},               {"reason", "reason"},
    {"current wave", "current_wave"}, {"waves", "wave_count"},
    {"devices", "device_count"},      {"failure threshold", "failure_threshold"},
    {"created by", "created_by"},     {"created", "created_at"}};

static const struct hub_field device_cols[] = {{"DEVICE ID", "device_id"}, {"WAVE", "wave"},
                                               {"STATE", "state"},         {"REASON", "reason"},
                                               {"UPDATED", "updated_at"}};

static int out_of_memory(void)
{
    fprintf(stderr, "error: out of memory\n");
    return HUB_EXIT_UNREACHABLE;
}

/* A call whose answer is a rollout: fields, then (show) its per-state counts and devices. */
static int call_rollout(struct hub_ctl *ctl, const char *method, const char *path, json_t *body)
{
    struct hub_response resp;
    int rc = hub_client_call(ctl->client, method, path, body, HUB_CLIENT_BEARER, &resp);
    json_decref(body);
    if (rc == 0 && ctl->json) {
        hub_output_json(&resp.body);
    } else if (rc == 0) {
        hub_output_fields(resp.json, rollout_fields, ARRAY_LEN(rollout_fields));
        const char *state;
        json_t *n;
        printf("\ndevices by state:");
        json_object_foreach(json_object_get(resp.json, "counts"), state, n)
        {
            printf(" %s %lld", state, (long long)json_integer_value(n));
        }
        printf("\n");
        json_t *devices = json_object_get(resp.json, "devices");
        if (json_array_size(devices) > 0) {
            puts("");
            hub_output_table(devices, device_cols, ARRAY_LEN(device_cols));
        }
    }
    hub_client_response_free(&resp);
    return rc;
}

/* "/v1/rollouts/<escaped id><suffix>" */
static int rollout_path(hub_buf_t *path, const char *id, const char *suffix)
{
    int rc = hub_buf_puts(path, "/v1/rollouts/");
    if (rc == 0)
        rc = hub_client_escape(path, id);
    return rc == 0 ? hub_buf_puts(path, suffix) : rc;
}

/* A wave size or threshold: a number is a count, "N%" stays a string. */
static json_t *size_value(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end != s && *end == 0)
        return json_integer(v);
    return json_string(s);
}

int hub_cmd_rollouts_create(struct hub_ctl *ctl)
{
    const struct hub_args *a = ctl->a;
    const char *fw = a->val[OPT_FIRMWARE], *tag = a->val[OPT_TAG], *ids = a->val[OPT_DEVICES];
    const char *product = a->val[OPT_PRODUCT];
    if (fw == NULL)
        return hub_ctl_usage_error(ctl, "--firmware ID is required");
    if ((tag != NULL) + (ids != NULL) + (product != NULL) != 1)
        return hub_ctl_usage_error(ctl, "give one target: --product KEY, --tag TAG or "
                                        "--devices ID,ID...");
    json_t *body = json_pack("{s:s}", "firmware_id", fw), *target = json_object();
    char *copy = NULL;
    if (body == NULL || target == NULL)
        goto nomem;
    if (tag != NULL) {
        json_object_set_new(target, "tag", json_string(tag));
    } else if (product != NULL) {
        json_object_set_new(target, "product_key", json_string(product));
    } else {
        json_t *list = json_array();
        if ((copy = strdup(ids)) == NULL || list == NULL) {
            json_decref(list);
            goto nomem;
        }
        for (char *save, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_array_append_new(list, json_string(t));
        json_object_set_new(target, "device_ids", list);
    }
    json_object_set_new(body, "target", target);
    target = NULL;
    if (a->val[OPT_WAVES] != NULL) {
        json_t *waves = json_array();
        free(copy);
        if ((copy = strdup(a->val[OPT_WAVES])) == NULL || waves == NULL) {
            json_decref(waves);
            goto nomem;
        }
        for (char *save, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_array_append_new(waves, size_value(t));
        json_object_set_new(body, "waves", waves);
    }
    if (a->val[OPT_WAVE_PAUSE] != NULL)
        json_object_set_new(body, "wave_pause_s", size_value(a->val[OPT_WAVE_PAUSE]));
    if (a->val[OPT_FAILURE_THRESHOLD] != NULL)
        json_object_set_new(body, "failure_threshold",
                            size_value(a->val[OPT_FAILURE_THRESHOLD]));
    free(copy);
    return call_rollout(ctl, "POST", "/v1/rollouts", body);
nomem:
    free(copy);
    json_decref(target);
    json_decref(body);
    return out_of_memory();
}

int hub_cmd_rollouts_list(struct hub_ctl *ctl)
{
    static const struct hub_field cols[] = {
        {"ROLLOUT ID", "rollout_id"}, {"VERSION", "version"},  {"PRODUCT", "product_key"},
        {"STATE", "state"},           {"WAVE", "current_wave"}, {"WAVES", "wave_count"},
        {"DEVICES", "device_count"},  {"CREATED", "created_at"}};
    hub_buf_t path = HUB_BUF_INIT;
    struct hub_response resp;
    int rc = hub_buf_puts(&path, "/v1/rollouts?limit=");
    if (rc == 0)
        rc = hub_buf_puts(&path, ctl->a->val[OPT_LIMIT] ? ctl->a->val[OPT_LIMIT] : "100");
    if (rc == 0 && ctl->a->val[OPT_BEFORE] != NULL &&
        (rc = hub_buf_puts(&path, "&before=")) == 0)
        rc = hub_client_escape(&path, ctl->a->val[OPT_BEFORE]);
    if (rc != 0) {
        hub_buf_free(&path);
        return out_of_memory();
    }
    rc = hub_client_call(ctl->client, "GET", (char *)path.data, NULL, HUB_CLIENT_BEARER, &resp);
    if (rc == 0 && ctl->json)
        hub_output_json(&resp.body);
    else if (rc == 0)
        hub_output_table(json_object_get(resp.json, "rollouts"), cols, ARRAY_LEN(cols));
    hub_client_response_free(&resp);
    hub_buf_free(&path);
    return rc;
}

int hub_cmd_rollouts_show(struct hub_ctl *ctl)
{
    hub_buf_t path = HUB_BUF_INIT;
    const struct hub_args *a = ctl->a;
    int rc = rollout_path(&path, ctl->words[0], "?limit=");
    if (rc == 0)
        rc = hub_buf_puts(&path, a->val[OPT_LIMIT] ? a->val[OPT_LIMIT] : "100");
    if (rc == 0 && a->val[OPT_STATE] != NULL && (rc = hub_buf_puts(&path, "&state=")) == 0)
        rc = hub_client_escape(&path, a->val[OPT_STATE]);
    if (rc == 0 && a->val[OPT_AFTER] != NULL && (rc = hub_buf_puts(&path, "&after=")) == 0)
        rc = hub_client_escape(&path, a->val[OPT_AFTER]);
    rc = rc == 0 ? call_rollout(ctl, "GET", (char *)path.data, NULL) : out_of_memory();
    hub_buf_free(&path);
    return rc;
}

static int action(struct hub_ctl *ctl, const char *suffix)
{
    hub_buf_t path = HUB_BUF_INIT;
    int rc = rollout_path(&path, ctl->words[0], suffix);
    rc = rc == 0 ? call_rollout(ctl, "POST", (char *)path.data, NULL) : out_of_memory();
    hub_buf_free(&path);
    return rc;
}

int hub_cmd_rollouts_pause(struct hub_ctl *ctl)
{
    return action(ctl, "/pause");
}

int hub_cmd_rollouts_resume(struct hub_ctl *ctl)
{
    return action(ctl, "/resume");
}

int hub_cmd_rollouts_cancel(struct hub_ctl *ctl)
{
    return action(ctl, "/cancel");
}

int hub_cmd_devices_tag(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {{"device id", "device_id"},
                                         {"tags", "tags"},
                                         {"firmware version", "firmware_version"}};
    hub_buf_t path = HUB_BUF_INIT;
    struct hub_response resp;
    json_t *tags = json_array();
    for (int i = 1; tags != NULL && i < ctl->nwords; i++)
        json_array_append_new(tags, json_string(ctl->words[i]));
    json_t *body = tags ? json_pack("{s:o}", "tags", tags) : NULL;
    if (body == NULL || hub_buf_puts(&path, "/v1/devices/") != 0 ||
        hub_client_escape(&path, ctl->words[0]) != 0) {
        json_decref(body);
        hub_buf_free(&path);
        return out_of_memory();
    }
    int rc = hub_client_call(ctl->client, "PATCH", (char *)path.data, body, HUB_CLIENT_BEARER,
                             &resp);
    json_decref(body);
    if (rc == 0 && ctl->json)
        hub_output_json(&resp.body);
    else if (rc == 0)
        hub_output_fields(resp.json, f, ARRAY_LEN(f));
    hub_client_response_free(&resp);
    hub_buf_free(&path);
    return rc;
}
