/* iothubctl device-cas: each command is one REST call (docs/api.md "Factory device CAs"),
 * its answer shown as fields or a table, or as received with --json. Files are read here
 * and sent as JSON strings (a DER CRL is armoured as PEM first). */
#include "cli/device_cas.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/pem.h"
#include "cli/output.h"
#include "util/error.h"

#define FILE_MAX (4 * 1024 * 1024)
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const struct hub_field ca_fields[] = {
    {"id", "id"},
    {"product key", "product_key"},
    {"subject", "subject"},
    {"fingerprint", "fingerprint"},
    {"not after", "not_after"},
    {"status", "status"},
    {"registration", "registration"},
    {"crl url", "crl_url"},
    {"crl number", "crl_number"},
    {"crl next update", "crl_next_update"},
    {"devices", "devices"},
};

static int out_of_memory(void)
{
    fprintf(stderr, "error: out of memory\n");
    return HUB_EXIT_UNREACHABLE;
}

/* Reads a whole file (at most FILE_MAX bytes) into out, NUL-terminated. */
static int read_file(const struct hub_ctl *ctl, const char *file, hub_buf_t *out)
{
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        fprintf(stderr, "error: cannot read %s: %s\n", file, strerror(errno));
        return HUB_EXIT_USAGE;
    }
    int rc = hub_buf_reserve(out, FILE_MAX + 1);
    if (rc == 0) {
        out->len = fread(out->data, 1, FILE_MAX + 1, f);
        out->data[out->len < FILE_MAX ? out->len : FILE_MAX] = 0;
    }
    int err = ferror(f);
    fclose(f);
    if (rc != 0)
        return out_of_memory();
    if (err) {
        fprintf(stderr, "error: cannot read %s\n", file);
        return HUB_EXIT_USAGE;
    }
    if (out->len > FILE_MAX || out->len == 0)
        return hub_ctl_usage_error(ctl, "%s is empty or larger than %d bytes", file, FILE_MAX);
    return 0;
}

/* method path with an optional JSON body (consumed), shown as ca_fields-like fields. */
static int call_show(struct hub_ctl *ctl, const char *method, const char *path, json_t *body,
                     const struct hub_field *f, size_t n)
{
    struct hub_response resp;
    int rc = hub_client_call(ctl->client, method, path, body, HUB_CLIENT_BEARER, &resp);
    if (rc == 0 && ctl->json)
        hub_output_json(&resp.body);
    else if (rc == 0)
        hub_output_fields(resp.json, f, n);
    hub_client_response_free(&resp);
    json_decref(body);
    return rc;
}

/* "/v1/device-cas/<escaped id><suffix>" */
static int ca_path(hub_buf_t *path, const char *prefix, const char *id, const char *suffix)
{
    int rc = hub_buf_puts(path, prefix);
    if (rc == 0)
        rc = hub_client_escape(path, id);
    if (rc == 0)
        rc = hub_buf_puts(path, suffix);
    return rc;
}

int hub_cmd_device_cas_code(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {{"code", "code"}, {"expires at", "expires_at"}};
    int rc = call_show(ctl, "POST", "/v1/device-cas/registration-codes", NULL, f, ARRAY_LEN(f));
    if (rc == 0 && !ctl->json)
        fprintf(stderr, "note: sign a verification certificate with CN=<code> with the device "
                        "CA's key, then run `iothubctl device-cas register` (docs/ca.md)\n");
    return rc;
}

int hub_cmd_device_cas_register(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {{"id", "id"},
                                         {"product key", "product_key"},
                                         {"subject", "subject"},
                                         {"fingerprint", "fingerprint"},
                                         {"not after", "not_after"},
                                         {"status", "status"},
                                         {"registration", "registration"}};
    const char *product = ctl->a->val[OPT_PRODUCT];
    const char *policy = ctl->nwords > 2 ? ctl->words[2] : "auto";
    hub_buf_t ca = HUB_BUF_INIT, ver = HUB_BUF_INIT;
    if (product == NULL || product[0] == 0)
        return hub_ctl_usage_error(ctl, "--product KEY is required");
    if (strcmp(policy, "auto") != 0 && strcmp(policy, "approve") != 0)
        return hub_ctl_usage_error(ctl, "the registration policy is auto or approve, not \"%s\"",
                                   policy);
    int rc = read_file(ctl, ctl->words[0], &ca);
    if (rc == 0)
        rc = read_file(ctl, ctl->words[1], &ver);
    if (rc == 0) {
        json_t *body = json_pack("{s:s,s:s,s:s,s:s}", "product_key", product, "ca_certificate",
                                 (char *)ca.data, "verification_certificate", (char *)ver.data,
                                 "registration", policy);
        if (body != NULL && ctl->nwords > 3)
            json_object_set_new(body, "crl_url", json_string(ctl->words[3]));
        rc = body ? call_show(ctl, "POST", "/v1/device-cas", body, f, ARRAY_LEN(f))
                  : hub_ctl_usage_error(ctl, "the certificate files must be PEM text");
    }
    hub_buf_free(&ca);
    hub_buf_free(&ver);
    return rc;
}

int hub_cmd_device_cas_list(struct hub_ctl *ctl)
{
    static const struct hub_field cols[] = {{"ID", "id"},
                                            {"PRODUCT", "product_key"},
                                            {"STATUS", "status"},
                                            {"REGISTRATION", "registration"},
                                            {"NOT AFTER", "not_after"},
                                            {"DEVICES", "devices"},
                                            {"SUBJECT", "subject"}};
    struct hub_response resp;
    int rc = hub_client_call(ctl->client, "GET", "/v1/device-cas", NULL, HUB_CLIENT_BEARER, &resp);
    if (rc == 0 && ctl->json)
        hub_output_json(&resp.body);
    else if (rc == 0)
        hub_output_table(json_object_get(resp.json, "device_cas"), cols, ARRAY_LEN(cols));
    hub_client_response_free(&resp);
    return rc;
}

int hub_cmd_device_cas_show(struct hub_ctl *ctl)
{
    hub_buf_t path = HUB_BUF_INIT;
    struct hub_response resp;
    if (ca_path(&path, "/v1/device-cas/", ctl->words[0], "") != 0)
        return out_of_memory();
    int rc = hub_client_call(ctl->client, "GET", (char *)path.data, NULL, HUB_CLIENT_BEARER, &resp);
    if (rc == 0 && ctl->json)
        hub_output_json(&resp.body);
    else if (rc == 0 && ctl->a->val[OPT_PEM] != NULL)
        fputs(json_string_value(json_object_get(resp.json, "certificate_pem")) ?: "", stdout);
    else if (rc == 0)
        hub_output_fields(resp.json, ca_fields, ARRAY_LEN(ca_fields));
    hub_client_response_free(&resp);
    hub_buf_free(&path);
    return rc;
}

/* PATCH /v1/device-cas/<id> {field: value}. */
static int patch_ca(struct hub_ctl *ctl, const char *field, const char *value)
{
    hub_buf_t path = HUB_BUF_INIT;
    json_t *body = json_pack("{s:s}", field, value);
    if (body == NULL || ca_path(&path, "/v1/device-cas/", ctl->words[0], "") != 0) {
        json_decref(body);
        hub_buf_free(&path);
        return out_of_memory();
    }
    int rc = call_show(ctl, "PATCH", (char *)path.data, body, ca_fields, ARRAY_LEN(ca_fields));
    hub_buf_free(&path);
    return rc;
}

int hub_cmd_device_cas_enable(struct hub_ctl *ctl)
{
    return patch_ca(ctl, "status", "enabled");
}

int hub_cmd_device_cas_disable(struct hub_ctl *ctl)
{
    return patch_ca(ctl, "status", "disabled");
}

int hub_cmd_device_cas_registration(struct hub_ctl *ctl)
{
    const char *policy = ctl->words[1];
    if (strcmp(policy, "auto") != 0 && strcmp(policy, "approve") != 0)
        return hub_ctl_usage_error(ctl, "the registration policy is auto or approve, not \"%s\"",
                                   policy);
    return patch_ca(ctl, "registration", policy);
}

int hub_cmd_device_cas_crl(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {{"id", "id"},
                                         {"crl number", "crl_number"},
                                         {"entries", "entries"},
                                         {"this update", "this_update"},
                                         {"next update", "next_update"}};
    hub_buf_t file = HUB_BUF_INIT, pem = HUB_BUF_INIT, path = HUB_BUF_INIT;
    if (strcmp(ctl->words[0], "upload") != 0)
        return hub_ctl_usage_error(ctl, "unknown crl command \"%s\"", ctl->words[0]);
    int rc = read_file(ctl, ctl->words[2], &file);
    if (rc == 0 && file.data[0] == 0x30) { /* DER: sent as PEM inside JSON */
        if (hub_pem_encode("X509 CRL", file.data, file.len, &pem) != 0 ||
            hub_buf_append(&pem, "", 1) != 0)
            rc = out_of_memory();
    }
    if (rc == 0 && ca_path(&path, "/v1/device-cas/", ctl->words[1], "/crl") != 0)
        rc = out_of_memory();
    if (rc == 0) {
        json_t *body = json_pack("{s:s}", "crl", pem.len ? (char *)pem.data : (char *)file.data);
        rc = body ? call_show(ctl, "PUT", (char *)path.data, body, f, ARRAY_LEN(f))
                  : hub_ctl_usage_error(ctl, "%s is neither DER nor PEM text", ctl->words[2]);
    }
    hub_buf_free(&file);
    hub_buf_free(&pem);
    hub_buf_free(&path);
    return rc;
}

int hub_cmd_devices_approve(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {{"device id", "device_id"}, {"status", "status"}};
    hub_buf_t path = HUB_BUF_INIT;
    if (ca_path(&path, "/v1/devices/", ctl->words[0], "/approve") != 0)
        return out_of_memory();
    int rc = call_show(ctl, "POST", (char *)path.data, NULL, f, ARRAY_LEN(f));
    hub_buf_free(&path);
    return rc;
}
