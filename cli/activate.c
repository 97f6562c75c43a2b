/* services activate: the service's EC P-256 key is made here and never leaves this machine;
 * a CSR (ca/csrgen) goes to POST /v1/services/{id}/activate with HTTP Basic id:secret, and
 * key.pem (0600), cert.pem and ca.pem land in the output directory. Every file is staged
 * before the request and renamed into place only once all are written, so a failure leaves
 * the previous credentials (if any) untouched. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mbedtls/pk.h>

#include "ca/csrgen.h"
#include "ca/key.h"
#include "ca/pem.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "cli/settings.h"
#include "util/error.h"
#include "util/secure.h"

enum { KEY_FILE, CERT_FILE, CA_FILE, NFILES };
static const char *const file_names[NFILES] = {"key.pem", "cert.pem", "ca.pem"};

/* Makes dir (one level, mode 0700) unless it exists as a directory. */
static int ensure_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    if (mkdir(dir, 0700) == 0)
        return 0;
    fprintf(stderr, "error: cannot create the directory %s: %s\n", dir, strerror(errno));
    return HUB_EXIT_USAGE;
}

/* The service secret from --secret-file or --secret into *out (caller frees). */
static int read_secret(const struct hub_ctl *ctl, char **out)
{
    const char *file = ctl->a->val[OPT_SECRET_FILE], *value = ctl->a->val[OPT_SECRET];
    if ((file == NULL) == (value == NULL))
        return hub_ctl_usage_error(ctl, "give the service secret with --secret-file F or "
                                        "--secret S (one of them)");
    if (file != NULL)
        return hub_settings_read_secret(file, "service secret", out);
    if ((*out = strdup(value)) == NULL) {
        fprintf(stderr, "error: out of memory\n");
        return HUB_EXIT_UNREACHABLE;
    }
    return 0;
}

/* The private key as PEM ("EC PRIVATE KEY", SEC1) appended to out. */
static int key_pem(mbedtls_pk_context *pk, hub_buf_t *out)
{
    hub_buf_t der = HUB_BUF_INIT;
    int rc = hub_key_write_der(pk, &der);
    if (rc == 0)
        rc = hub_pem_encode("EC PRIVATE KEY", der.data, der.len, out);
    hub_buf_free(&der);
    return rc;
}

/* Prints where the credentials are and how to use them with mosquitto_sub. */
static void print_result(const struct hub_ctl *ctl, json_t *answer, char paths[NFILES][4096])
{
    static const struct hub_field f[] = {
        {"service id", "service_id"}, {"certificate serial", "serial"},
        {"not before", "not_before"}, {"not after", "not_after"},
        {"superseded", "superseded"}, {"private key", "key"},
        {"certificate", "cert"},      {"CA chain", "ca"}};
    json_t *view = json_pack("{s:s,s:O,s:O,s:O,s:O,s:s,s:s,s:s}", "service_id", ctl->words[0],
                             "serial", json_object_get(answer, "serial"), "not_before",
                             json_object_get(answer, "not_before"), "not_after",
                             json_object_get(answer, "not_after"), "superseded",
                             json_object_get(answer, "superseded"), "key", paths[KEY_FILE], "cert",
                             paths[CERT_FILE], "ca", paths[CA_FILE]);
    if (view == NULL)
        return;
    hub_output_fields(view, f, sizeof f / sizeof f[0]);
    json_decref(view);
    const char *host = ctl->client->settings->url + 8; /* after "https://" */
    int hostlen = (int)strcspn(host, "/");
    if (host[0] == '[')
        hostlen = (int)strcspn(host, "]") + 1;
    else if (memchr(host, ':', (size_t)hostlen) != NULL)
        hostlen = (int)strcspn(host, ":");
    fprintf(stderr,
            "next: mosquitto_sub -h %.*s -p 8883 --cafile %s --cert %s --key %s -t TOPIC\n"
            "      (-p: your hub's mqtt_mtls_listen port; TOPIC within the subscribe patterns)\n",
            hostlen, host, paths[CA_FILE], paths[CERT_FILE], paths[KEY_FILE]);
}

int hub_cmd_services_activate(struct hub_ctl *ctl)
{
    const char *id = ctl->words[0], *dir = ctl->a->val[OPT_OUT_DIR];
    char *secret = NULL, paths[NFILES][4096];
    hub_buf_t key = HUB_BUF_INIT, csr = HUB_BUF_INIT, path = HUB_BUF_INIT;
    hub_buf_t tmp[NFILES] = {HUB_BUF_INIT, HUB_BUF_INIT, HUB_BUF_INIT};
    struct hub_response resp = {0};
    json_t *body = NULL;
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);

    int rc = dir == NULL || dir[0] == 0 ? hub_ctl_usage_error(ctl, "--out-dir DIR is required")
                                        : read_secret(ctl, &secret);
    for (int i = 0; rc == 0 && i < NFILES; i++) {
        int n = snprintf(paths[i], sizeof paths[i], "%s/%s", dir, file_names[i]);
        if (n < 0 || (size_t)n >= sizeof paths[i])
            rc = hub_ctl_usage_error(ctl, "the --out-dir path is too long");
    }
    if (rc == 0)
        rc = ensure_dir(dir);
    if (rc != 0)
        goto out;
    int err = hub_key_generate(HUB_KEY_EC_P256, &pk);
    if (err == 0)
        err = key_pem(&pk, &key);
    if (err == 0)
        err = hub_csrgen_write_pem(&pk, id, &csr);
    if (err == 0 && ((body = json_pack("{s:s}", "csr", (char *)csr.data)) == NULL ||
                     hub_buf_printf(&path, "/v1/services/") != 0 ||
                     hub_client_escape(&path, id) != 0 || hub_buf_puts(&path, "/activate") != 0))
        err = HUB_ENOMEM;
    if (err != 0) {
        fprintf(stderr, "error: cannot make the key and CSR: %s\n", hub_strerror(err));
        rc = HUB_EXIT_USAGE;
        goto out;
    }
    /* The key is on disk (not yet in place) before the server supersedes the old certificate. */
    if (hub_output_stage(paths[KEY_FILE], key.data, key.len, 0600, &tmp[KEY_FILE]) != 0) {
        rc = HUB_EXIT_USAGE;
        goto out;
    }
    ctl->client->user = id;
    ctl->client->password = secret;
    rc = hub_client_call(ctl->client, "POST", (char *)path.data, body, HUB_CLIENT_BASIC, &resp);
    ctl->client->password = NULL;
    if (rc != 0)
        goto out;
    const char *cert = json_string_value(json_object_get(resp.json, "certificate"));
    const char *chain = json_string_value(json_object_get(resp.json, "ca_chain"));
    if (cert == NULL || chain == NULL) {
        fprintf(stderr, "error: the server's answer has no certificate or ca_chain\n");
        rc = HUB_EXIT_REFUSED;
        goto out;
    }
    if (hub_output_stage(paths[CERT_FILE], cert, strlen(cert), 0644, &tmp[CERT_FILE]) != 0 ||
        hub_output_stage(paths[CA_FILE], chain, strlen(chain), 0644, &tmp[CA_FILE]) != 0) {
        rc = HUB_EXIT_USAGE;
        goto out;
    }
    for (int i = 0; i < NFILES; i++)
        if (hub_output_commit(&tmp[i], paths[i]) != 0)
            rc = HUB_EXIT_USAGE;
    if (rc == 0 && ctl->json)
        hub_output_json(&resp.body);
    else if (rc == 0)
        print_result(ctl, resp.json, paths);
out:
    for (int i = 0; i < NFILES; i++)
        hub_output_discard(&tmp[i]);
    if (secret != NULL) {
        hub_wipe(secret, strlen(secret));
        free(secret);
    }
    mbedtls_pk_free(&pk);
    hub_buf_free(&key);
    hub_buf_free(&csr);
    hub_buf_free(&path);
    hub_client_response_free(&resp);
    json_decref(body);
    return rc;
}
