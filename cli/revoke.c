/* iothubctl revoke: builds the job's selection from the options, posts it (lists in jobs of
 * 1,000 entries, the API's limit), then polls GET /v1/revocations/{id} twice a second and
 * prints a progress line whenever it moves. */
#include "cli/revoke.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/output.h"
#include "util/error.h"

#define LIST_MAX 1000 /* entries per job (HUB_REVOCATIONS_LIST_MAX) */
#define POLL_MS 500

static int out_of_memory(void)
{
    fprintf(stderr, "error: out of memory\n");
    return HUB_EXIT_UNREACHABLE;
}

/* Appends the entries of s (separated by commas, blanks or new lines; '#' starts a comment
 * line) to list. */
static void split_into(json_t *list, char *s)
{
    char *save;
    for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[strspn(line, " \t\r")] == '#')
            continue;
        char *save2;
        for (char *t = strtok_r(line, ", \t\r", &save2); t; t = strtok_r(NULL, ", \t\r", &save2))
            json_array_append_new(list, json_string(t));
    }
}

/* Reads path ("-": standard input) whole into a NUL-terminated malloc'ed string. */
static char *read_file(const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    while (s != NULL) {
        if (len + 1 == cap) {
            char *t = cap < (1u << 30) ? realloc(s, cap *= 2) : NULL;
            if (t == NULL) {
                free(s);
                s = NULL;
                break;
            }
            s = t;
        }
        size_t n = fread(s + len, 1, cap - len - 1, f);
        if (n == 0)
            break;
        len += n;
    }
    int err = ferror(f);
    if (f != stdin)
        fclose(f);
    if (s != NULL && err) {
        free(s);
        return NULL;
    }
    if (s != NULL)
        s[len] = 0;
    return s;
}

/* Prints "<id>: <state> <done>/<total> (skipped S, failed F)". */
static void print_progress(const char *id, json_t *job)
{
    printf("%s: %s %lld/%lld revoked (skipped %lld, failed %lld)\n", id,
           json_string_value(json_object_get(job, "state")),
           (long long)json_integer_value(json_object_get(job, "done")),
           (long long)json_integer_value(json_object_get(job, "total")),
           (long long)json_integer_value(json_object_get(job, "skipped")),
           (long long)json_integer_value(json_object_get(job, "failed")));
    fflush(stdout);
}

/* Polls the job until done or failed. Returns the exit code. */
static int wait_job(struct hub_ctl *ctl, const char *id)
{
    char path[96], last[160] = "";
    snprintf(path, sizeof path, "/v1/revocations/%s", id);
    for (;;) {
        struct hub_response resp;
        int rc = hub_client_call(ctl->client, "GET", path, NULL, HUB_CLIENT_BEARER, &resp);
        if (rc != 0) {
            hub_client_response_free(&resp);
            return rc;
        }
        const char *state = json_string_value(json_object_get(resp.json, "state"));
        int end = state == NULL || strcmp(state, "done") == 0 || strcmp(state, "failed") == 0;
        char now[160];
        snprintf(now, sizeof now, "%s %lld %lld", state ? state : "?",
                 (long long)json_integer_value(json_object_get(resp.json, "done")),
                 (long long)json_integer_value(json_object_get(resp.json, "total")));
        if (ctl->json && end)
            hub_output_json(&resp.body);
        else if (!ctl->json && strcmp(now, last) != 0)
            print_progress(id, resp.json);
        snprintf(last, sizeof last, "%s", now);
        if (end) {
            const char *error = json_string_value(json_object_get(resp.json, "error"));
            if (state != NULL && strcmp(state, "failed") == 0)
                fprintf(stderr, "error: job %s failed: %s\n", id, error ? error : "?");
            rc = state != NULL && strcmp(state, "done") == 0 ? HUB_EXIT_OK : HUB_EXIT_REFUSED;
            hub_client_response_free(&resp);
            return rc;
        }
        hub_client_response_free(&resp);
        struct timespec pause = {0, POLL_MS * 1000000L};
        nanosleep(&pause, NULL);
    }
}

/* Posts one job; its id goes to id. Returns the exit code. */
static int create_job(struct hub_ctl *ctl, json_t *body, char id[64])
{
    struct hub_response resp;
    int rc = hub_client_call(ctl->client, "POST", "/v1/revocations", body, HUB_CLIENT_BEARER,
                             &resp);
    if (rc == 0) {
        const char *s = json_string_value(json_object_get(resp.json, "id"));
        snprintf(id, 64, "%s", s ? s : "");
        if (ctl->json && ctl->a->val[OPT_NO_WAIT] != NULL)
            hub_output_json(&resp.body);
        else if (!ctl->json)
            printf("%s: queued\n", id);
    }
    hub_client_response_free(&resp);
    return rc;
}

int hub_cmd_revoke(struct hub_ctl *ctl)
{
    const struct hub_args *a = ctl->a;
    const char *product = a->val[OPT_PRODUCT], *ca = a->val[OPT_CA];
    const char *ids = a->val[OPT_DEVICES], *ids_file = a->val[OPT_DEVICES_FILE];
    const char *serials_file = a->val[OPT_SERIALS_FILE], *from = a->val[OPT_ISSUED_BETWEEN];
    int given = (product != NULL) + (ca != NULL) + (ids != NULL) + (ids_file != NULL) +
                (serials_file != NULL);
    if (given != 1)
        return hub_ctl_usage_error(ctl, "give one selection: --product KEY, --ca SERIAL, "
                                        "--devices ID,ID..., --devices-file F or --serials-file F");
    if (from != NULL && product == NULL && ca == NULL)
        return hub_ctl_usage_error(ctl, "--issued-between applies to --product and --ca");
    if (from != NULL && ctl->nwords != 1)
        return hub_ctl_usage_error(ctl, "--issued-between needs two times: T1 T2");
    if (from == NULL && ctl->nwords > 0)
        return hub_ctl_usage_error(ctl, "unexpected argument \"%s\"", ctl->words[0]);
    json_t *list = json_array(), *jobs = json_array();
    char *text = NULL;
    int rc = HUB_EXIT_OK;
    if (list == NULL || jobs == NULL)
        goto nomem;
    if (ids != NULL || ids_file != NULL || serials_file != NULL) {
        const char *file = ids_file != NULL ? ids_file : serials_file;
        text = file != NULL ? read_file(file) : strdup(ids);
        if (text == NULL && file != NULL) {
            fprintf(stderr, "error: cannot read %s\n", file);
            rc = HUB_EXIT_USAGE;
            goto out;
        }
        if (text == NULL)
            goto nomem;
        split_into(list, text);
        if (json_array_size(list) == 0) {
            rc = hub_ctl_usage_error(ctl, "the list is empty");
            goto out;
        }
    }
    size_t n = json_array_size(list);
    for (size_t first = 0; rc == HUB_EXIT_OK && (first < n || (n == 0 && first == 0));
         first += LIST_MAX) {
        json_t *body = json_object();
        if (body == NULL)
            goto nomem;
        if (n > 0) {
            json_t *part = json_array();
            for (size_t i = first; i < n && i < first + LIST_MAX; i++)
                json_array_append(part, json_array_get(list, i));
            json_object_set_new(body, serials_file != NULL ? "serials" : "device_ids", part);
        } else {
            json_object_set_new(body, product != NULL ? "product_key" : "ca",
                                json_string(product != NULL ? product : ca));
            if (from != NULL) {
                json_object_set_new(body, "issued_after", json_string(from));
                json_object_set_new(body, "issued_before", json_string(ctl->words[0]));
            }
        }
        if (a->val[OPT_REASON] != NULL)
            json_object_set_new(body, "reason", json_string(a->val[OPT_REASON]));
        char id[64];
        rc = create_job(ctl, body, id);
        json_decref(body);
        if (rc == HUB_EXIT_OK)
            json_array_append_new(jobs, json_string(id));
        if (n == 0)
            break;
    }
    size_t i;
    json_t *id;
    json_array_foreach(jobs, i, id)
    {
        if (a->val[OPT_NO_WAIT] != NULL)
            break;
        int w = wait_job(ctl, json_string_value(id));
        if (rc == HUB_EXIT_OK)
            rc = w;
    }
out:
    free(text);
    json_decref(list);
    json_decref(jobs);
    return rc;
nomem:
    rc = out_of_memory();
    goto out;
}
