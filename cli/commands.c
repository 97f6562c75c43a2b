/* The fleet subcommands: each builds one REST call (SPEC §4, docs/api.md), then prints the
 * answer as a table or `label: value` view, or as received with --json. */
#include "cli/commands.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/output.h"
#include "cli/settings.h"
#include "util/error.h"
#include "util/secure.h"

#define PAYLOAD_MAX (64 * 1024)
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

int hub_ctl_usage_error(const struct hub_ctl *ctl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: iothubctl %s\n", ctl->usage);
    return HUB_EXIT_USAGE;
}

static int out_of_memory(void)
{
    fprintf(stderr, "error: out of memory\n");
    return HUB_EXIT_UNREACHABLE;
}

/* Checks that option o was given; prints a usage error otherwise. */
static int need(const struct hub_ctl *ctl, enum hub_opt o, const char *what)
{
    if (ctl->a->val[o] != NULL && ctl->a->val[o][0] != 0)
        return 0;
    return hub_ctl_usage_error(ctl, "%s %s is required", hub_args_name(o), what);
}

/* Appends "?key=value" or "&key=value" (escaped) to path when value is set. */
static int add_query(hub_buf_t *path, const char *key, const char *value)
{
    if (value == NULL)
        return 0;
    int rc = hub_buf_printf(path, "%s%s=", memchr(path->data, '?', path->len) ? "&" : "?", key);
    return rc != 0 ? rc : hub_client_escape(path, value);
}

/* Validates --limit (1..1000, as the API accepts) when given. */
static int check_limit(const struct hub_ctl *ctl)
{
    const char *v = ctl->a->val[OPT_LIMIT];
    if (v == NULL)
        return 0;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (*v == 0 || *end != 0 || errno != 0 || n < 1 || n > 1000)
        return hub_ctl_usage_error(ctl, "--limit must be a number from 1 to 1000, got \"%s\"", v);
    return 0;
}

/* Makes "/v1/<prefix>/<escaped id><suffix>". */
static int path_with_id(hub_buf_t *path, const char *prefix, const char *id, const char *suffix)
{
    int rc = hub_buf_printf(path, "/v1/%s/", prefix);
    if (rc == 0)
        rc = hub_client_escape(path, id);
    if (rc == 0)
        rc = hub_buf_puts(path, suffix);
    return rc;
}

/* One call whose answer is shown as fields (or as received with --json). */
static int call_and_show(struct hub_ctl *ctl, const char *method, const char *path, json_t *body,
                         enum hub_client_auth auth, const struct hub_field *f, size_t n)
{
    struct hub_response resp;
    int rc = hub_client_call(ctl->client, method, path, body, auth, &resp);
    if (rc == 0 && ctl->json)
        hub_output_json(&resp.body);
    else if (rc == 0)
        hub_output_fields(resp.json, f, n);
    hub_client_response_free(&resp);
    json_decref(body);
    return rc;
}

/* One GET whose answer holds a list under key, shown as a table. */
static int call_and_table(struct hub_ctl *ctl, const char *path, const char *key,
                          const struct hub_field *cols, size_t n)
{
    struct hub_response resp;
    int rc = hub_client_call(ctl->client, "GET", path, NULL, HUB_CLIENT_BEARER, &resp);
    if (rc == 0 && ctl->json)
        hub_output_json(&resp.body);
    else if (rc == 0)
        hub_output_table(json_object_get(resp.json, key), cols, n);
    hub_client_response_free(&resp);
    return rc;
}

int hub_cmd_products_create(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {
        {"product key", "product_key"}, {"product secret", "product_secret"}, {"name", "name"}};
    json_t *body = json_pack("{s:s}", "name", ctl->words[0]);
    if (body == NULL)
        return out_of_memory();
    int rc = call_and_show(ctl, "POST", "/v1/products", body, HUB_CLIENT_BEARER, f, ARRAY_LEN(f));
    if (rc == 0 && !ctl->json)
        fprintf(stderr, "note: the product secret is shown only this once; keep it where your "
                        "factory line can read it\n");
    return rc;
}

int hub_cmd_products_list(struct hub_ctl *ctl)
{
    static const struct hub_field cols[] = {{"PRODUCT KEY", "product_key"},
                                            {"NAME", "name"},
                                            {"DEVICES", "devices"},
                                            {"CREATED", "created_at"}};
    return call_and_table(ctl, "/v1/products", "products", cols, ARRAY_LEN(cols));
}

int hub_cmd_devices_provision(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {{"device id", "device_id"},
                                         {"device secret", "device_secret"},
                                         {"status", "status"},
                                         {"product key", "product_key"},
                                         {"serial number", "serial_number"}};
    const struct hub_args *a = ctl->a;
    char *secret = NULL;
    enum hub_client_auth auth = HUB_CLIENT_BEARER;
    int rc = need(ctl, OPT_PRODUCT, "KEY");
    if (rc == 0)
        rc = need(ctl, OPT_SERIAL, "SN");
    if (rc == 0 && a->val[OPT_PRODUCT_SECRET] && a->val[OPT_PRODUCT_SECRET_FILE])
        rc = hub_ctl_usage_error(ctl, "give either --product-secret or --product-secret-file");
    if (rc == 0 && a->val[OPT_PRODUCT_SECRET_FILE])
        rc = hub_settings_read_secret(a->val[OPT_PRODUCT_SECRET_FILE], "product secret", &secret);
    else if (rc == 0 && a->val[OPT_PRODUCT_SECRET] &&
             !(secret = strdup(a->val[OPT_PRODUCT_SECRET])))
        rc = out_of_memory();
    if (rc != 0)
        return rc;
    if (secret != NULL) {
        /* Product claim: what a factory line does, without an admin token. */
        auth = HUB_CLIENT_BASIC;
        ctl->client->user = a->val[OPT_PRODUCT];
        ctl->client->password = secret;
    }
    json_t *body = json_pack("{s:s,s:s}", "product_key", a->val[OPT_PRODUCT], "serial_number",
                             a->val[OPT_SERIAL]);
    rc = body ? call_and_show(ctl, "POST", "/v1/devices", body, auth, f, ARRAY_LEN(f))
              : out_of_memory();
    if (rc == 0 && !ctl->json)
        fprintf(stderr, "note: the device secret is shown only this once; the device needs it "
                        "to activate\n");
    ctl->client->password = NULL;
    if (secret != NULL)
        hub_wipe(secret, strlen(secret));
    free(secret);
    return rc;
}

static const struct hub_field device_cols[] = {
    {"DEVICE ID", "device_id"}, {"PRODUCT", "product_key"}, {"SERIAL", "serial_number"},
    {"STATUS", "status"},       {"CONNECTED", "connected"}, {"LAST SEEN", "last_seen"}};

int hub_cmd_devices_list(struct hub_ctl *ctl)
{
    const struct hub_args *a = ctl->a;
    int all = a->val[OPT_ALL] != NULL;
    int rc = check_limit(ctl);
    json_t *devices = json_array(), *next = NULL;
    char *after = a->val[OPT_AFTER] ? strdup(a->val[OPT_AFTER]) : NULL;
    if (devices == NULL || (a->val[OPT_AFTER] && after == NULL))
        rc = out_of_memory();
    while (rc == 0) {
        hub_buf_t path = HUB_BUF_INIT;
        struct hub_response resp;
        if (hub_buf_puts(&path, "/v1/devices") != 0 ||
            add_query(&path, "limit", a->val[OPT_LIMIT]) != 0 ||
            add_query(&path, "after", after) != 0 ||
            add_query(&path, "status", a->val[OPT_PENDING] ? "pending" : NULL) != 0) {
            hub_buf_free(&path);
            rc = out_of_memory();
            break;
        }
        rc = hub_client_call(ctl->client, "GET", (char *)path.data, NULL, HUB_CLIENT_BEARER, &resp);
        hub_buf_free(&path);
        if (rc == 0 && ctl->json && !all)
            hub_output_json(&resp.body);
        if (rc == 0)
            json_array_extend(devices, json_object_get(resp.json, "devices"));
        json_decref(next);
        next = rc == 0 ? json_incref(json_object_get(resp.json, "next_after")) : NULL;
        hub_client_response_free(&resp);
        free(after);
        after = json_is_string(next) ? strdup(json_string_value(next)) : NULL;
        if (!all || after == NULL)
            break;
    }
    if (rc == 0 && ctl->json && all) {
        json_t *doc = json_pack("{s:O,s:n}", "devices", devices, "next_after");
        char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        if (text != NULL)
            puts(text);
        free(text);
        json_decref(doc);
    } else if (rc == 0 && !ctl->json) {
        hub_output_table(devices, device_cols, ARRAY_LEN(device_cols));
        if (after != NULL)
            fprintf(stderr, "more: iothubctl devices list --after %s (or --all)\n", after);
    }
    free(after);
    json_decref(next);
    json_decref(devices);
    return rc;
}

static const struct hub_field cert_cols[] = {
    {"SERIAL", "serial"},       {"KIND", "kind"},          {"STATUS", "status"},
    {"NOT AFTER", "not_after"}, {"REVOKED", "revoked_at"}, {"REASON", "revocation_reason"},
    {"SUBJECT", "subject"}};

int hub_cmd_devices_show(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {
        {"device id", "device_id"},         {"product key", "product_key"},
        {"serial number", "serial_number"}, {"status", "status"},
        {"connected", "connected"},         {"created", "created_at"},
        {"activated", "activated_at"},      {"last seen", "last_seen"},
        {"device ca", "device_ca_id"}};
    hub_buf_t path = HUB_BUF_INIT;
    struct hub_response resp;
    if (path_with_id(&path, "devices", ctl->words[0], "") != 0)
        return out_of_memory();
    int rc = hub_client_call(ctl->client, "GET", (char *)path.data, NULL, HUB_CLIENT_BEARER, &resp);
    if (rc == 0 && ctl->json) {
        hub_output_json(&resp.body);
    } else if (rc == 0) {
        hub_output_fields(resp.json, f, ARRAY_LEN(f));
        json_t *certs = json_object_get(resp.json, "certificates");
        if (json_array_size(certs) > 0) {
            puts("\ncertificates:");
            hub_output_table(certs, cert_cols, ARRAY_LEN(cert_cols) - 1);
        } else {
            puts("certificates:  none (the device has not activated)");
        }
    }
    hub_client_response_free(&resp);
    hub_buf_free(&path);
    return rc;
}

/* POST /v1/<prefix>/<id>/<verb> with an optional {"reason": ...}, shown as fields. */
static int revoke_like(struct hub_ctl *ctl, const char *prefix, const char *verb,
                       const struct hub_field *f, size_t n)
{
    hub_buf_t path = HUB_BUF_INIT;
    json_t *body = NULL;
    const char *reason = ctl->a->val[OPT_REASON];
    if (reason != NULL && (body = json_pack("{s:s}", "reason", reason)) == NULL)
        return out_of_memory();
    if (path_with_id(&path, prefix, ctl->words[0], verb) != 0) {
        json_decref(body);
        return out_of_memory();
    }
    int rc = call_and_show(ctl, "POST", (char *)path.data, body, HUB_CLIENT_BEARER, f, n);
    hub_buf_free(&path);
    return rc;
}

int hub_cmd_devices_revoke(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {{"device id", "device_id"},
                                         {"status", "status"},
                                         {"reason", "reason"},
                                         {"revoked certificates", "revoked"}};
    return revoke_like(ctl, "devices", "/revoke", f, ARRAY_LEN(f));
}

int hub_cmd_devices_reset(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {{"device id", "device_id"},
                                         {"device secret", "device_secret"},
                                         {"status", "status"},
                                         {"revoked certificates", "revoked"}};
    if (ctl->a->val[OPT_REASON] != NULL)
        return hub_ctl_usage_error(ctl, "devices reset takes no --reason (certificates are "
                                        "revoked as cessationOfOperation)");
    int rc = revoke_like(ctl, "devices", "/reset", f, ARRAY_LEN(f));
    if (rc == 0 && !ctl->json)
        fprintf(stderr, "note: the new device secret is shown only this once\n");
    return rc;
}

int hub_cmd_certs_list(struct hub_ctl *ctl)
{
    hub_buf_t path = HUB_BUF_INIT;
    int rc = check_limit(ctl);
    if (rc != 0)
        return rc;
    if (hub_buf_puts(&path, "/v1/certificates") != 0 ||
        add_query(&path, "device_id", ctl->a->val[OPT_DEVICE]) != 0 ||
        add_query(&path, "limit", ctl->a->val[OPT_LIMIT]) != 0)
        rc = out_of_memory();
    if (rc == 0)
        rc =
            call_and_table(ctl, (char *)path.data, "certificates", cert_cols, ARRAY_LEN(cert_cols));
    hub_buf_free(&path);
    return rc;
}

int hub_cmd_certs_show(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {
        {"serial", "serial"},         {"kind", "kind"},
        {"subject", "subject"},       {"status", "status"},
        {"device id", "device_id"},   {"service id", "service_id"},
        {"not before", "not_before"}, {"not after", "not_after"},
        {"revoked at", "revoked_at"}, {"revocation reason", "revocation_reason"},
        {"device ca", "device_ca_id"}};
    hub_buf_t path = HUB_BUF_INIT;
    struct hub_response resp;
    if (path_with_id(&path, "certificates", ctl->words[0], "") != 0)
        return out_of_memory();
    int rc = hub_client_call(ctl->client, "GET", (char *)path.data, NULL, HUB_CLIENT_BEARER, &resp);
    const char *pem = json_string_value(json_object_get(resp.json, "certificate"));
    if (rc == 0 && ctl->json) {
        hub_output_json(&resp.body);
    } else if (rc == 0 && ctl->a->val[OPT_PEM] != NULL) {
        if (pem != NULL)
            fputs(pem, stdout);
    } else if (rc == 0) {
        hub_output_fields(resp.json, f, ARRAY_LEN(f));
        if (pem != NULL)
            printf("\n%s", pem);
    }
    hub_client_response_free(&resp);
    hub_buf_free(&path);
    return rc;
}

int hub_cmd_certs_revoke(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {
        {"serial", "serial"}, {"status", "status"}, {"reason", "reason"}};
    int rc = need(ctl, OPT_REASON, "R (an RFC 5280 reason name, e.g. keyCompromise)");
    return rc != 0 ? rc : revoke_like(ctl, "certificates", "/revoke", f, ARRAY_LEN(f));
}

/* GET of a public document (CRL, CA chain) in format def or alt, to -o FILE or stdout; the
 * binary one of the two goes to a terminal only through -o. */
static int fetch_document(struct hub_ctl *ctl, const char *path, const char *def, const char *alt,
                          const char *binary_format)
{
    const char *format = ctl->a->val[OPT_FORMAT], *out = ctl->a->val[OPT_OUTPUT];
    if (format != NULL && strcmp(format, def) != 0 && strcmp(format, alt) != 0)
        return hub_ctl_usage_error(ctl, "--format must be %s or %s, got \"%s\"", def, alt, format);
    int binary = strcmp(format ? format : def, binary_format) == 0;
    const char *text_format = strcmp(def, binary_format) == 0 ? alt : def;
    if (out != NULL && out[0] == 0)
        return hub_ctl_usage_error(ctl, "-o needs a file name");
    if (binary && out == NULL && isatty(STDOUT_FILENO))
        return hub_ctl_usage_error(ctl,
                                   "refusing to write %s (binary) to a terminal: use "
                                   "-o FILE, a pipe, or --format %s",
                                   binary_format, text_format);
    hub_buf_t p = HUB_BUF_INIT;
    struct hub_response resp;
    if (hub_buf_puts(&p, path) != 0 || add_query(&p, "format", format) != 0) {
        hub_buf_free(&p);
        return out_of_memory();
    }
    int rc = hub_client_call(ctl->client, "GET", (char *)p.data, NULL, HUB_CLIENT_ANONYMOUS, &resp);
    hub_buf_free(&p);
    if (rc == 0 && out != NULL) {
        if (hub_output_file(out, resp.body.data, resp.body.len, 0644) != 0)
            rc = HUB_EXIT_USAGE;
        else
            fprintf(stderr, "wrote %s (%zu bytes)\n", out, resp.body.len);
    } else if (rc == 0 && resp.body.len > 0) {
        fwrite(resp.body.data, 1, resp.body.len, stdout);
    }
    hub_client_response_free(&resp);
    return rc;
}

int hub_cmd_crl_get(struct hub_ctl *ctl)
{
    return fetch_document(ctl, "/v1/crl", "der", "pem", "der");
}

int hub_cmd_ca_get(struct hub_ctl *ctl)
{
    return fetch_document(ctl, "/v1/ca", "pem", "p7b", "p7b");
}

int hub_cmd_tokens_create(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {
        {"token", "token"}, {"token id", "token_id"}, {"name", "name"}, {"role", "role"}};
    int rc = need(ctl, OPT_ROLE, "ROLE (admin, operator, provisioner or auditor)");
    if (rc != 0)
        return rc;
    json_t *body = json_pack("{s:s,s:s}", "name", ctl->words[0], "role", ctl->a->val[OPT_ROLE]);
    rc = body ? call_and_show(ctl, "POST", "/v1/tokens", body, HUB_CLIENT_BEARER, f, ARRAY_LEN(f))
              : out_of_memory();
    if (rc == 0 && !ctl->json)
        fprintf(stderr, "note: the new token is shown only this once\n");
    return rc;
}

int hub_cmd_tokens_list(struct hub_ctl *ctl)
{
    static const struct hub_field cols[] = {{"TOKEN ID", "token_id"},
                                            {"NAME", "name"},
                                            {"ROLE", "role"},
                                            {"CREATED", "created_at"},
                                            {"LAST USED", "last_used_at"},
                                            {"REVOKED", "revoked_at"}};
    return call_and_table(ctl, "/v1/tokens", "tokens", cols, ARRAY_LEN(cols));
}

int hub_cmd_tokens_revoke(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {
        {"token id", "token_id"}, {"name", "name"}, {"role", "role"}, {"revoked", "revoked"}};
    return revoke_like(ctl, "tokens", "/revoke", f, ARRAY_LEN(f));
}

/* A JSON array of the strings in list. */
static json_t *string_array(const char *const *list, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++) {
        if (json_array_append_new(a, json_string(list[i])) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

int hub_cmd_services_create(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {{"service id", "service_id"},
                                         {"service secret", "service_secret"},
                                         {"name", "name"},
                                         {"publish", "publish"},
                                         {"subscribe", "subscribe"}};
    const struct hub_args *a = ctl->a;
    if (a->npublish + a->nsubscribe == 0)
        return hub_ctl_usage_error(ctl, "give at least one --publish or --subscribe pattern");
    json_t *pub = string_array(a->publish, a->npublish);
    json_t *sub = string_array(a->subscribe, a->nsubscribe);
    json_t *body = pub && sub ? json_pack("{s:s,s:O,s:O}", "name", ctl->words[0], "publish", pub,
                                          "subscribe", sub)
                              : NULL;
    json_decref(pub);
    json_decref(sub);
    if (body == NULL)
        return hub_ctl_usage_error(ctl, "the name and patterns must be UTF-8 text");
    int rc = call_and_show(ctl, "POST", "/v1/services", body, HUB_CLIENT_BEARER, f, ARRAY_LEN(f));
    if (rc == 0 && !ctl->json)
        fprintf(stderr, "note: the service secret is shown only this once; next: iothubctl "
                        "services activate ID --secret-file FILE --out-dir DIR\n");
    return rc;
}

/* Reads a command payload file (at most PAYLOAD_MAX bytes) into out. */
static int read_payload(const struct hub_ctl *ctl, const char *file, hub_buf_t *out)
{
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        fprintf(stderr, "error: cannot read the payload file %s: %s\n", file, strerror(errno));
        return HUB_EXIT_USAGE;
    }
    int rc = hub_buf_reserve(out, PAYLOAD_MAX + 1);
    if (rc == 0) {
        out->len = fread(out->data, 1, PAYLOAD_MAX + 1, f);
        out->data[out->len] = 0;
    }
    int err = ferror(f);
    fclose(f);
    if (rc != 0)
        return out_of_memory();
    if (err) {
        fprintf(stderr, "error: cannot read the payload file %s\n", file);
        return HUB_EXIT_USAGE;
    }
    if (out->len > PAYLOAD_MAX)
        return hub_ctl_usage_error(ctl, "the payload file %s exceeds %d bytes", file, PAYLOAD_MAX);
    return 0;
}

int hub_cmd_commands_send(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {{"device id", "device_id"},
                                         {"topic", "topic"},
                                         {"name", "name"},
                                         {"delivered", "delivered"}};
    const char *file = ctl->a->val[OPT_PAYLOAD_FILE];
    hub_buf_t payload = HUB_BUF_INIT, path = HUB_BUF_INIT;
    int rc = 0;
    if (file != NULL && ctl->nwords > 2)
        return hub_ctl_usage_error(ctl, "give the payload either as an argument or with "
                                        "--payload-file, not both");
    if (file != NULL)
        rc = read_payload(ctl, file, &payload);
    else if (ctl->nwords > 2 && hub_buf_puts(&payload, ctl->words[2]) != 0)
        rc = out_of_memory();
    if (rc == 0 && path_with_id(&path, "devices", ctl->words[0], "/commands") != 0)
        rc = out_of_memory();
    if (rc == 0) {
        /* The API sends a string payload as is: the bytes the device receives. */
        json_t *text = json_stringn(payload.data ? (char *)payload.data : "", payload.len);
        json_t *body = text ? json_pack("{s:s,s:o}", "name", ctl->words[1], "payload", text) : NULL;
        if (body == NULL)
            rc = hub_ctl_usage_error(ctl, "the command name and payload must be UTF-8 text "
                                          "(binary payloads cannot be sent through the API)");
        else
            rc = call_and_show(ctl, "POST", (char *)path.data, body, HUB_CLIENT_BEARER, f,
                               ARRAY_LEN(f));
    }
    hub_buf_free(&payload);
    hub_buf_free(&path);
    return rc;
}

int hub_cmd_audit(struct hub_ctl *ctl)
{
    static const struct hub_field cols[] = {
        {"ID", "id"},         {"AT", "at"},         {"ACTOR", "actor"},   {"ROLE", "role"},
        {"ACTION", "action"}, {"TARGET", "target"}, {"SOURCE", "source"}, {"RESULT", "result"}};
    hub_buf_t path = HUB_BUF_INIT;
    int rc = check_limit(ctl);
    if (rc != 0)
        return rc;
    if (hub_buf_puts(&path, "/v1/audit") != 0 ||
        add_query(&path, "limit", ctl->a->val[OPT_LIMIT]) != 0 ||
        add_query(&path, "before", ctl->a->val[OPT_BEFORE]) != 0)
        rc = out_of_memory();
    if (rc == 0)
        rc = call_and_table(ctl, (char *)path.data, "entries", cols, ARRAY_LEN(cols));
    hub_buf_free(&path);
    return rc;
}

int hub_cmd_health(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {
        {"status", "status"}, {"database", "database"}, {"api", "api"}};
    struct hub_response resp;
    int rc = hub_client_send(ctl->client, "GET", "/healthz", NULL, HUB_CLIENT_ANONYMOUS, &resp);
    if (rc == 0 && ctl->json)
        hub_output_json(&resp.body);
    else if (rc == 0 && resp.json != NULL)
        hub_output_fields(resp.json, f, ARRAY_LEN(f));
    if (rc == 0 && resp.status != 200) {
        fprintf(stderr, "error: the hub is not healthy (HTTP %ld)\n", resp.status);
        rc = HUB_EXIT_REFUSED;
    }
    hub_client_response_free(&resp);
    return rc;
}
