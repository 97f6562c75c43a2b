#include "cli/firmware.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <config.h>
#include <mbedtls/base64.h>

#include "cli/output.h"
#include "util/error.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define CERT_MAX (64 * 1024)
#define SIG_MAX 1024
#define UPLOAD_TIMEOUT_S 3600L

static const struct hub_field signer_fields[] = {
    {"id", "id"},           {"name", "name"},           {"subject", "subject"},
    {"key type", "key_type"}, {"fingerprint", "fingerprint"}, {"not before", "not_before"},
    {"not after", "not_after"}, {"status", "status"},     {"created at", "created_at"}};
static const struct hub_field manifest_fields[] = {
    {"id", "id"},
    {"product key", "product_key"},
    {"version", "version"},
    {"size", "size"},
    {"sha256", "sha256"},
    {"signer", "signer"},
    {"signer name", "signer_name"},
    {"hardware", "hardware"},
    {"min version", "min_version"},
    {"release notes", "release_notes"},
    {"status", "status"},
    {"created at", "created_at"}};

static int out_of_memory(void)
{
    fprintf(stderr, "error: out of memory\n");
    return HUB_EXIT_UNREACHABLE;
}

/* Reads a small file (at most max bytes) into out, NUL-terminated. */
static int read_small(const char *what, const char *file, size_t max, hub_buf_t *out)
{
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        fprintf(stderr, "error: cannot read the %s %s: %s\n", what, file, strerror(errno));
        return HUB_EXIT_USAGE;
    }
    int rc = hub_buf_reserve(out, max + 1);
    if (rc == 0) {
        out->len = fread(out->data, 1, max + 1, f);
        out->data[out->len] = 0;
    }
    int err = ferror(f);
    fclose(f);
    if (rc != 0)
        return out_of_memory();
    if (err || out->len == 0 || out->len > max) {
        fprintf(stderr, "error: the %s %s must hold 1 to %zu bytes\n", what, file, max);
        return HUB_EXIT_USAGE;
    }
    return 0;
}

/* method /v1/<prefix>/<id> with an optional body, shown as fields f. */
static int call_id(struct hub_ctl *ctl, const char *method, const char *prefix, json_t *body,
                   const struct hub_field *f, size_t n)
{
    hub_buf_t path = HUB_BUF_INIT;
    struct hub_response resp;
    int rc = hub_buf_printf(&path, "/v1/%s/", prefix) || hub_client_escape(&path, ctl->words[0]);
    if (rc != 0) {
        json_decref(body);
        hub_buf_free(&path);
        return out_of_memory();
    }
    rc = hub_client_call(ctl->client, method, (const char *)path.data, body, HUB_CLIENT_BEARER,
                         &resp);
    if (rc == 0 && ctl->json && resp.body.len > 0)
        hub_output_json(&resp.body);
    else if (rc == 0 && f != NULL)
        hub_output_fields(resp.json, f, n);
    hub_client_response_free(&resp);
    hub_buf_free(&path);
    json_decref(body);
    return rc;
}

static int call_table(struct hub_ctl *ctl, const char *path, const char *key,
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

int hub_cmd_fw_signers_add(struct hub_ctl *ctl)
{
    hub_buf_t pem = HUB_BUF_INIT;
    struct hub_response resp;
    int rc = read_small("certificate file", ctl->words[1], CERT_MAX, &pem);
    if (rc != 0)
        goto out;
    json_t *body = json_pack("{s:s,s:s}", "name", ctl->words[0], "certificate", (char *)pem.data);
    if (body == NULL) {
        rc = hub_ctl_usage_error(ctl, "the name and the certificate must be UTF-8 text");
        goto out;
    }
    rc = hub_client_call(ctl->client, "POST", "/v1/firmware-signers", body, HUB_CLIENT_BEARER,
                         &resp);
    if (rc == 0 && ctl->json)
        hub_output_json(&resp.body);
    else if (rc == 0)
        hub_output_fields(resp.json, signer_fields, ARRAY_LEN(signer_fields));
    hub_client_response_free(&resp);
    json_decref(body);
out:
    hub_buf_free(&pem);
    return rc;
}

int hub_cmd_fw_signers_list(struct hub_ctl *ctl)
{
    static const struct hub_field cols[] = {{"ID", "id"},
                                            {"NAME", "name"},
                                            {"KEY", "key_type"},
                                            {"STATUS", "status"},
                                            {"NOT AFTER", "not_after"},
                                            {"FINGERPRINT", "fingerprint"}};
    return call_table(ctl, "/v1/firmware-signers", "signers", cols, ARRAY_LEN(cols));
}

int hub_cmd_fw_signers_show(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {
        {"id", "id"},           {"name", "name"},           {"subject", "subject"},
        {"key type", "key_type"}, {"fingerprint", "fingerprint"}, {"not before", "not_before"},
        {"not after", "not_after"}, {"status", "status"},     {"created by", "created_by"},
        {"created at", "created_at"}, {"certificate", "certificate"}};
    return call_id(ctl, "GET", "firmware-signers", NULL, f, ARRAY_LEN(f));
}

static int set_status(struct hub_ctl *ctl, const char *status)
{
    json_t *body = json_pack("{s:s}", "status", status);
    if (body == NULL)
        return out_of_memory();
    return call_id(ctl, "PATCH", "firmware-signers", body, signer_fields,
                   ARRAY_LEN(signer_fields));
}

int hub_cmd_fw_signers_disable(struct hub_ctl *ctl)
{
    return set_status(ctl, "disabled");
}

int hub_cmd_fw_signers_enable(struct hub_ctl *ctl)
{
    return set_status(ctl, "active");
}

int hub_cmd_firmware_list(struct hub_ctl *ctl)
{
    static const struct hub_field cols[] = {{"ID", "id"},
                                            {"PRODUCT", "product_key"},
                                            {"VERSION", "version"},
                                            {"SIZE", "size"},
                                            {"SIGNER", "signer_name"},
                                            {"HARDWARE", "hardware"},
                                            {"CREATED", "created_at"}};
    hub_buf_t path = HUB_BUF_INIT;
    const char *product = ctl->a->val[OPT_PRODUCT];
    int rc = hub_buf_puts(&path, "/v1/firmware");
    if (rc == 0 && product != NULL)
        rc = hub_buf_puts(&path, "?product_key=") || hub_client_escape(&path, product);
    rc = rc != 0 ? out_of_memory()
                 : call_table(ctl, (const char *)path.data, "firmware", cols, ARRAY_LEN(cols));
    hub_buf_free(&path);
    return rc;
}

int hub_cmd_firmware_show(struct hub_ctl *ctl)
{
    static const struct hub_field f[] = {{"id", "id"},
                                         {"product key", "product_key"},
                                         {"version", "version"},
                                         {"size", "size"},
                                         {"sha256", "sha256"},
                                         {"signature", "signature"},
                                         {"signer", "signer"},
                                         {"signer name", "signer_name"},
                                         {"hardware", "hardware"},
                                         {"min version", "min_version"},
                                         {"release notes", "release_notes"},
                                         {"status", "status"},
                                         {"created by", "created_by"},
                                         {"created at", "created_at"}};
    return call_id(ctl, "GET", "firmware", NULL, f, ARRAY_LEN(f));
}

int hub_cmd_firmware_delete(struct hub_ctl *ctl)
{
    int rc = call_id(ctl, "DELETE", "firmware", NULL, NULL, 0);
    if (rc == 0 && !ctl->json)
        printf("deleted: %s\n", ctl->words[0]);
    return rc;
}

/* ---- upload ------------------------------------------------------------------------------ */

static size_t read_cb(char *buf, size_t size, size_t n, void *f)
{
    size_t got = fread(buf, size, n, f);
    return got == 0 && ferror((FILE *)f) ? CURL_READFUNC_ABORT : got;
}

static size_t write_cb(char *data, size_t size, size_t n, void *out)
{
    hub_buf_t *b = out;
    if (b->len + size * n > 1024 * 1024 || hub_buf_append(b, data, size * n) != 0)
        return 0;
    return size * n;
}

/* Adds key=value (escaped) to the query of path when value is set. */
static int add_query(hub_buf_t *path, const char *key, const char *value)
{
    if (value == NULL)
        return 0;
    return hub_buf_printf(path, "%s%s=", memchr(path->data, '?', path->len) ? "&" : "?", key) ||
           hub_client_escape(path, value);
}

int hub_cmd_firmware_upload(struct hub_ctl *ctl)
{
    const struct hub_args *a = ctl->a;
    const struct hub_settings *s = ctl->client->settings;
    hub_buf_t sig = HUB_BUF_INIT, url = HUB_BUF_INIT, answer = HUB_BUF_INIT;
    char sig64[2 * SIG_MAX + 8], header[2 * SIG_MAX + 40], size_text[24], err[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    FILE *f = NULL;
    struct stat st;
    int rc;
    static const enum hub_opt required[] = {OPT_PRODUCT, OPT_FIRMWARE_VERSION, OPT_SIGNATURE,
                                            OPT_SIGNER};
    for (size_t i = 0; i < ARRAY_LEN(required); i++)
        if (a->val[required[i]] == NULL || a->val[required[i]][0] == 0)
            return hub_ctl_usage_error(ctl, "%s is required", hub_args_name(required[i]));
    if (s->token == NULL) {
        fprintf(stderr, "error: no admin token: pass --token-file FILE, set IOTHUB_TOKEN or put "
                        "`token = ...` in the config file\n");
        return HUB_EXIT_USAGE;
    }
    if ((rc = read_small("signature file", a->val[OPT_SIGNATURE], SIG_MAX, &sig)) != 0)
        goto out;
    size_t n = 0;
    mbedtls_base64_encode((unsigned char *)sig64, sizeof sig64, &n, sig.data, sig.len);
    sig64[n] = 0;
    if ((f = fopen(ctl->words[0], "rb")) == NULL || fstat(fileno(f), &st) != 0 ||
        !S_ISREG(st.st_mode) || st.st_size == 0) {
        fprintf(stderr, "error: cannot read the image %s: %s\n", ctl->words[0],
                f == NULL || errno ? strerror(errno) : "not a non-empty regular file");
        rc = HUB_EXIT_USAGE;
        goto out;
    }
    snprintf(size_text, sizeof size_text, "%lld", (long long)st.st_size);
    rc = hub_buf_printf(&url, "%s/v1/firmware", s->url) ||
         add_query(&url, "product_key", a->val[OPT_PRODUCT]) ||
         add_query(&url, "version", a->val[OPT_FIRMWARE_VERSION]) ||
         add_query(&url, "signer", a->val[OPT_SIGNER]) ||
         add_query(&url, "hardware", a->val[OPT_HARDWARE]) ||
         add_query(&url, "min_version", a->val[OPT_MIN_VERSION]) ||
         add_query(&url, "release_notes", a->val[OPT_NOTES]) ||
         add_query(&url, "size", size_text);
    snprintf(header, sizeof header, "X-Firmware-Signature: %s", sig64);
    struct curl_slist *h1 = curl_slist_append(NULL, "Content-Type: application/octet-stream");
    struct curl_slist *h2 = h1 ? curl_slist_append(h1, header) : NULL;
    hdrs = h2 ? h2 : h1;
    if (rc != 0 || h2 == NULL) {
        rc = out_of_memory();
        goto out;
    }
    CURL *h = ctl->client->curl;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, (const char *)url.data);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "POST");
    curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(h, CURLOPT_READDATA, f);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, UPLOAD_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "iothubctl/" PACKAGE_VERSION);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (s->cacert != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, s->cacert);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, s->insecure ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, s->insecure ? 0L : 2L);
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
    curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, s->token);
    CURLcode code = curl_easy_perform(h);
    struct hub_response resp = {0};
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
    curl_easy_reset(h);
    if (code != CURLE_OK) {
        fprintf(stderr, "error: uploading %s to %s failed: %s\n", ctl->words[0], s->url,
                err[0] ? err : curl_easy_strerror(code));
        rc = code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CONNECT_ERROR
                 ? HUB_EXIT_TLS
                 : HUB_EXIT_UNREACHABLE;
        goto out;
    }
    resp.body = answer;
    resp.json = json_loadb((const char *)answer.data, answer.len, 0, NULL);
    rc = hub_client_check(&resp);
    if (rc == 0 && ctl->json)
        hub_output_json(&answer);
    else if (rc == 0)
        hub_output_fields(resp.json, manifest_fields, ARRAY_LEN(manifest_fields));
    json_decref(resp.json);
out:
    if (f != NULL)
        fclose(f);
    curl_slist_free_all(hdrs);
    hub_buf_free(&sig);
    hub_buf_free(&url);
    hub_buf_free(&answer);
    return rc;
}
