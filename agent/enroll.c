/* Enrollment: generate the key, make the CSR, POST /v1/devices/{id}/activate with the
 * device secret (HTTP Basic), and store key, certificate, chain and state; the secret is
 * used once and never written. Renewal runs the same steps against /renew with the current
 * certificate instead of the secret. Enrollment writes its files once the server has
 * answered; renewal writes its new key (renew.key) before asking, so that a retry after a lost
 * answer sends a CSR for the same key and the server hands back the certificate it issued.
 * Both stage renew.key and renew.pem and rename them over key.pem and cert.pem. */
#include "agent/enroll.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "agent/conf.h"
#include "agent/keystore.h"
#include "agent/pin.h"
#include "agent/update.h"
#include "ca/csrgen.h"
#include "client/http.h"
#include "ca/key.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

#define KEY_PEM_MAX 16000
#define ANSWER_MAX (1024 * 1024)
#define TIMEOUT_S 60L

/* The server and credentials of an activation or a renewal; every pointer borrowed. */
struct call {
    const char *url;         /* full URL */
    const char *cacert;      /* PEM file the server must chain to */
    struct hub_pin *pin;     /* or NULL */
    const char *user, *pass; /* HTTP Basic, or NULL */
    const char *cert, *key;  /* client certificate and key files, or NULL */
    const char *key_passwd;  /* passphrase of an encrypted key file, or NULL */
};

/* What the server answered to activate or renew. */
struct issued {
    hub_buf_t cert, chain;
    char serial[64], not_after[40];
};

static void issued_free(struct issued *is)
{
    hub_buf_free(&is->cert);
    hub_buf_free(&is->chain);
}

/* Writes key as PEM into out (wiped by the caller): encrypted PKCS#8 when the key store has
 * a passphrase (keystore.h). */
static int key_pem(mbedtls_pk_context *key, hub_buf_t *out)
{
    int rc = hub_keystore_write_pem(key, out);
    if (rc != 0)
        hub_error("cannot write the private key as PEM");
    return rc;
}

static void pin_install(void *ssl_ctx, void *pin)
{
    hub_pin_install(ssl_ctx, pin);
}

/* POSTs json to call->url: TLS 1.2+, the server verified against call->cacert only and, when
 * set, the pin. *status receives the HTTP status and resp the body (at most ANSWER_MAX).
 * Returns 0, HUB_ENOMEM, or HUB_EIO when no answer came (the reason is logged). */
static int post(const struct call *call, const char *json, long *status, hub_buf_t *resp)
{
    struct hub_http_request rq = {.method = "POST",
                                  .url = call->url,
                                  .body = json,
                                  .cacert = call->cacert,
                                  .cacert_only = 1,
                                  .https_only = 1,
                                  .user = call->user,
                                  .pass = call->pass,
                                  .cert = call->cert,
                                  .key = call->key,
                                  .key_passwd = call->key_passwd,
                                  .timeout_s = TIMEOUT_S,
                                  .answer_max = ANSWER_MAX};
    struct hub_http_failure f;
    struct hub_pin *pin = call->pin;
    CURL *c = curl_easy_init();
    if (c == NULL)
        return HUB_ENOMEM;
    if (pin != NULL && pin->set) {
        pin->mismatch = 0;
        rq.ssl_ctx_fn = pin_install;
        rq.ssl_ctx_arg = pin;
    }
    CURLcode cc = hub_http_perform(c, &rq, status, resp, &f);
    if (cc != CURLE_OK && pin != NULL && pin->mismatch)
        hub_error("POST %s refused: the server certificate does not match the pin", call->url);
    else if (cc != CURLE_OK && f.too_large)
        hub_error("POST %s: the answer exceeds %d bytes", call->url, ANSWER_MAX);
    else if (cc != CURLE_OK)
        hub_error("POST %s failed: %s", call->url, hub_http_reason(cc, &f));
    curl_easy_cleanup(c);
    return cc == CURLE_OK ? 0 : HUB_EIO;
}

/* POSTs {"csr": …} for key to path and parses a 201 (issued) or 200 (the certificate already
 * issued for this key, after a lost answer) into is; checks that the
 * certificate is for key and for device_id. */
static int request(const struct call *h, const char *what, mbedtls_pk_context *key,
                   const char *device_id, struct issued *is)
{
    hub_buf_t csr = HUB_BUF_INIT, resp = HUB_BUF_INIT;
    json_t *body = NULL, *ans = NULL;
    char *text = NULL, err[512];
    long status = 0;
    int rc = hub_csrgen_write_pem(key, device_id, &csr);
    if (rc != 0)
        goto out;
    body = json_pack("{s:s%}", "csr", (const char *)csr.data, csr.len);
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (text == NULL) {
        rc = HUB_ENOMEM;
        goto out;
    }
    rc = post(h, text, &status, &resp);
    if (rc != 0)
        goto out;
    if (status != 201 && status != 200) {
        hub_http_error(&resp, err, sizeof err);
        hub_error("%s refused by the server: HTTP %ld %s%s", what, status, err,
                  status == 401 && h->user != NULL ? " (check --device-id and the device secret)"
                                                   : "");
        rc = HUB_EINVAL;
        goto out;
    }
    ans = json_loadb((const char *)resp.data, resp.len, 0, NULL);
    const char *cert = json_string_value(json_object_get(ans, "certificate"));
    const char *chain = json_string_value(json_object_get(ans, "ca_chain"));
    const char *serial = json_string_value(json_object_get(ans, "serial"));
    const char *not_after = json_string_value(json_object_get(ans, "not_after"));
    if (cert == NULL || chain == NULL || serial == NULL) {
        hub_error("%s: the server's answer lacks certificate, ca_chain or serial", what);
        rc = HUB_EINVAL;
        goto out;
    }
    struct hub_cert_info info;
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int ok = mbedtls_x509_crt_parse(&crt, (const unsigned char *)cert, strlen(cert) + 1) == 0 &&
             mbedtls_pk_check_pair(&crt.pk, key) == 0;
    mbedtls_x509_crt_free(&crt);
    if (!ok || hub_state_cert_info_mem(cert, strlen(cert), &info) != 0 ||
        strcasecmp(info.cn, device_id) != 0) {
        hub_error("%s: the certificate returned is not for this key and device", what);
        rc = HUB_EINVAL;
        goto out;
    }
    if (status == 200)
        hub_info("%s: the server returned the certificate it had already issued for this key "
                 "(an earlier answer was lost)",
                 what);
    snprintf(is->serial, sizeof is->serial, "%s", serial);
    snprintf(is->not_after, sizeof is->not_after, "%s", not_after ? not_after : "?");
    rc = hub_buf_puts(&is->cert, cert);
    if (rc == 0)
        rc = hub_buf_puts(&is->chain, chain);
out:
    free(text);
    json_decref(body);
    json_decref(ans);
    hub_buf_free(&csr);
    hub_buf_free(&resp);
    return rc;
}

static void wipe_free(hub_buf_t *b)
{
    if (b->data != NULL)
        hub_wipe(b->data, b->len);
    hub_buf_free(b);
}

/* Writes renew.key (0600) and renew.pem. */
static int stage_pair(const struct hub_state *st, const hub_buf_t *kpem, const hub_buf_t *cert)
{
    char path[1100];
    int rc = hub_state_path(st, "renew.key", path, sizeof path);
    if (rc == 0)
        rc = hub_state_file_write(path, kpem->data, kpem->len, 0600);
    if (rc == 0)
        rc = hub_state_path(st, "renew.pem", path, sizeof path);
    if (rc == 0)
        rc = hub_state_file_write(path, cert->data, cert->len, 0644);
    return rc;
}

/* Renames renew.key and renew.pem over key.pem and cert.pem (the directory's fsync is the
 * caller's next file write). */
static int install_pair(const struct hub_state *st)
{
    char nkey[1100], ncert[1100], key[1100], cert[1100];
    hub_state_path(st, "renew.key", nkey, sizeof nkey);
    hub_state_path(st, "renew.pem", ncert, sizeof ncert);
    hub_state_path(st, "key.pem", key, sizeof key);
    hub_state_path(st, "cert.pem", cert, sizeof cert);
    if (rename(nkey, key) != 0 || rename(ncert, cert) != 0) {
        hub_error("cannot install the new key and certificate: %s", strerror(errno));
        return HUB_EIO;
    }
    return 0;
}

/* The pending renewal key (renew.key) when one parses; else a new key of type kt, written
 * to renew.key (0600, fsync) before anything is sent. */
static int pending_key(const char *path, enum hub_key_type kt, mbedtls_pk_context *key)
{
    hub_buf_t pem = HUB_BUF_INIT;
    if (access(path, F_OK) == 0) {
        if (hub_keystore_load(path, key) == 0) {
            hub_info("reusing the key of a pending renewal (%s)", path);
            return 0;
        }
        hub_warn("%s does not parse; generating a new key", path);
        mbedtls_pk_free(key);
        mbedtls_pk_init(key);
    }
    int rc = hub_key_generate(kt, key);
    if (rc == 0)
        rc = key_pem(key, &pem);
    if (rc == 0)
        rc = hub_state_file_write(path, pem.data, pem.len, 0600);
    wipe_free(&pem);
    return rc;
}

static int read_secret(const char *file, char *out, size_t len)
{
    const char *env = getenv("IOTHUB_DEVICE_SECRET");
    hub_buf_t b = HUB_BUF_INIT;
    int rc = 0;
    if (file != NULL) {
        rc = hub_state_file_read(file, &b, 4096);
        if (rc == HUB_ENOTFOUND)
            hub_error("--secret-file %s: no such file", file);
        if (rc != 0)
            goto out;
        while (b.len > 0 && isspace(b.data[b.len - 1]))
            b.len--;
        if (b.len == 0 || b.len >= len) {
            hub_error("--secret-file %s: empty or too long", file);
            rc = HUB_EINVAL;
            goto out;
        }
        memcpy(out, b.data, b.len);
        out[b.len] = 0;
    } else if (env != NULL && env[0] != 0 && strlen(env) < len) {
        snprintf(out, len, "%s", env);
    } else {
        hub_error("the device secret is required: --secret-file FILE or the environment "
                  "variable IOTHUB_DEVICE_SECRET");
        rc = HUB_EINVAL;
    }
out:
    hub_buf_free(&b);
    return rc;
}

/* Splits https://HOST[:PORT][/] into host (brackets kept for IPv6) and validates it. */
static int url_host(const char *url, char *host, size_t len)
{
    if (strncmp(url, "https://", 8) != 0) {
        hub_error("--url must start with https:// (got \"%s\")", url);
        return HUB_EINVAL;
    }
    const char *h = url + 8, *end;
    if (*h == '[')
        end = strchr(h, ']') ? strchr(h, ']') + 1 : NULL;
    else
        end = h + strcspn(h, ":/");
    if (end == NULL || end == h || (size_t)(end - h) >= len) {
        hub_error("--url \"%s\" has no host", url);
        return HUB_EINVAL;
    }
    snprintf(host, len, "%.*s", (int)(end - h), h);
    return 0;
}

static int valid_device_id(const char *s)
{
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++)
        if ((i == 8 || i == 13 || i == 18 || i == 23) ? s[i] != '-'
                                                      : !isxdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

static const char enroll_usage[] =
    "usage: iothub-device enroll --url https://HOST:PORT --cacert CA.pem --device-id ID\n"
    "                            (--secret-file FILE | env IOTHUB_DEVICE_SECRET)\n"
    "                            [--dir STATE] [--key-type ec-p256|ec-p384|rsa-2048]\n"
    "                            [--mqtt HOST:PORT] [--pin-sha256 HEX] [--force]\n"
    "                            [--config FILE]\n";

int hub_enroll_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"cacert", required_argument, NULL, 'c'},
        {"device-id", required_argument, NULL, 'i'},
        {"secret-file", required_argument, NULL, 's'},
        {"dir", required_argument, NULL, 'd'},
        {"key-type", required_argument, NULL, 'k'},
        {"mqtt", required_argument, NULL, 'm'},
        {"pin-sha256", required_argument, NULL, 'p'},
        {"force", no_argument, NULL, 'f'},
        {"config", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *cacert = NULL, *id_arg = NULL, *secret_file = NULL;
    const char *dir = HUB_STATE_DEFAULT_DIR, *key_type = "ec-p256", *mqtt = NULL, *pin_hex = NULL;
    const char *conf_path = NULL;
    int force = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'u': url = optarg; break;
        case 'c': cacert = optarg; break;
        case 'i': id_arg = optarg; break;
        case 's': secret_file = optarg; break;
        case 'd': dir = optarg; break;
        case 'k': key_type = optarg; break;
        case 'm': mqtt = optarg; break;
        case 'p': pin_hex = optarg; break;
        case 'f': force = 1; break;
        case 'C': conf_path = optarg; break;
        case 'h': fputs(enroll_usage, stdout); return 0;
        default: fputs(enroll_usage, stderr); return 2;
        }
    }
    if (optind < argc || url == NULL || cacert == NULL || id_arg == NULL) {
        fprintf(stderr, "iothub-device enroll: --url, --cacert and --device-id are required\n%s",
                enroll_usage);
        return 2;
    }

    struct hub_state st;
    struct hub_pin pin;
    enum hub_key_type kt;
    char host[256], secret[256] = "", path[1100];
    memset(&st, 0, sizeof st);
    if (hub_key_type_parse(key_type, &kt) != 0 || kt > HUB_KEY_RSA_2048) {
        fprintf(stderr, "iothub-device enroll: --key-type must be ec-p256, ec-p384 or rsa-2048\n");
        return 2;
    }
    if (!valid_device_id(id_arg)) {
        fprintf(stderr, "iothub-device enroll: --device-id must be a device id (a UUID)\n");
        return 2;
    }
    if (hub_pin_parse(pin_hex, &pin) != 0) {
        fprintf(stderr, "iothub-device enroll: --pin-sha256 must be 64 hex digits (colons "
                        "allowed), the SHA-256 fingerprint of the server certificate\n");
        return 2;
    }
    if (url_host(url, host, sizeof host) != 0)
        return 2;
    if (access(cacert, R_OK) != 0) {
        fprintf(stderr, "iothub-device enroll: --cacert %s: %s\n", cacert, strerror(errno));
        return 2;
    }
    snprintf(st.dir, sizeof st.dir, "%s", dir);
    for (size_t i = 0; i < 36; i++)
        st.device_id[i] = (char)tolower((unsigned char)id_arg[i]);
    snprintf(st.api_url, sizeof st.api_url, "%.*s", (int)strcspn(url + 8, "/") + 8, url);
    snprintf(st.key_type, sizeof st.key_type, "%s", hub_key_type_name(kt));
    hub_pin_hex(&pin, st.pin);
    if (mqtt == NULL) {
        snprintf(st.mqtt_host, sizeof st.mqtt_host, "%s", host);
        st.mqtt_port = 8883;
    } else {
        const char *colon = strrchr(mqtt, ':');
        long port = colon ? strtol(colon + 1, NULL, 10) : 0;
        if (colon == NULL || colon == mqtt || port < 1 || port > 65535 ||
            (size_t)(colon - mqtt) >= sizeof st.mqtt_host) {
            fprintf(stderr, "iothub-device enroll: --mqtt must be HOST:PORT\n");
            return 2;
        }
        snprintf(st.mqtt_host, sizeof st.mqtt_host, "%.*s", (int)(colon - mqtt), mqtt);
        st.mqtt_port = (int)port;
    }
    if (hub_state_exists(dir) && !force) {
        struct hub_state old;
        if (hub_state_load(dir, &old) == 0)
            hub_error("%s is already enrolled as device %s; use --force to enroll again", dir,
                      old.device_id);
        else
            hub_error("%s holds a state file; use --force to enroll again", dir);
        return 1;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        hub_error("cannot create %s: %s", dir, strerror(errno));
        return 1;
    }
    struct hub_agent_conf conf;
    if (hub_agent_conf_load(conf_path, dir, &conf) != 0 || hub_keystore_open(&conf, dir) != 0)
        return 1;
    int lock_fd = -1;
    if (hub_state_lock(dir, &lock_fd) != 0 ||
        read_secret(secret_file, secret, sizeof secret) != 0) {
        hub_keystore_close();
        if (lock_fd >= 0)
            close(lock_fd);
        return 1;
    }

    mbedtls_pk_context key;
    hub_buf_t kpem = HUB_BUF_INIT, url_buf = HUB_BUF_INIT;
    struct issued is = {HUB_BUF_INIT, HUB_BUF_INIT, "", ""};
    int rc;
    mbedtls_pk_init(&key);
    hub_info("generating a %s key", st.key_type);
    rc = hub_key_generate(kt, &key);
    if (rc == 0)
        rc = hub_buf_printf(&url_buf, "%s/v1/devices/%s/activate", st.api_url, st.device_id);
    if (rc == 0) {
        struct call h = {.url = (const char *)url_buf.data,
                         .cacert = cacert,
                         .pin = &pin,
                         .user = st.device_id,
                         .pass = secret};
        rc = request(&h, "activation", &key, st.device_id, &is);
    }
    hub_wipe(secret, sizeof secret);
    if (rc == 0)
        rc = key_pem(&key, &kpem);
    if (rc == 0 && (rc = hub_state_path(&st, "chain.pem", path, sizeof path)) == 0)
        rc = hub_state_file_write(path, is.chain.data, is.chain.len, 0644);
    /* Staged like a renewal: a crash leaves the old pair or the new one (hub_state_recover
     * installs a staged pair once the state file names its device). */
    if (rc == 0)
        rc = stage_pair(&st, &kpem, &is.cert);
    if (rc == 0)
        rc = hub_state_save(&st);
    if (rc == 0)
        rc = install_pair(&st);
    if (rc == 0)
        hub_info("enrolled device %s: certificate %s valid until %s; state in %s%s", st.device_id,
                 is.serial, is.not_after, st.dir,
                 hub_keystore_passphrase() ? " (key encrypted)" : "");
    if (rc == 0) /* the firmware signers it trusts; a failure keeps the device enrolled */
        hub_update_fetch_signers(&st, &conf, &pin);
    else
        hub_error("enrollment of device %s failed", st.device_id);
    mbedtls_pk_free(&key);
    wipe_free(&kpem);
    hub_buf_free(&url_buf);
    issued_free(&is);
    close(lock_fd);
    hub_keystore_close();
    return rc == 0 ? 0 : 1;
}

int hub_enroll_renew(const struct hub_state *st, struct hub_pin *pin)
{
    enum hub_key_type kt;
    mbedtls_pk_context key;
    hub_buf_t kpem = HUB_BUF_INIT, url = HUB_BUF_INIT;
    struct issued is = {HUB_BUF_INIT, HUB_BUF_INIT, "", ""};
    char cert[1100], keyp[1100], chain[1100], nkey[1100];
    int rc;
    if (hub_key_type_parse(st->key_type, &kt) != 0)
        kt = HUB_KEY_EC_P256;
    hub_state_path(st, "cert.pem", cert, sizeof cert);
    hub_state_path(st, "key.pem", keyp, sizeof keyp);
    hub_state_path(st, "chain.pem", chain, sizeof chain);
    hub_state_path(st, "renew.key", nkey, sizeof nkey);
    mbedtls_pk_init(&key);
    rc = pending_key(nkey, kt, &key);
    if (rc == 0)
        rc = hub_buf_printf(&url, "%s/v1/devices/%s/renew", st->api_url, st->device_id);
    if (rc == 0) {
        struct call h = {.url = (const char *)url.data,
                         .cacert = chain,
                         .pin = pin,
                         .cert = cert,
                         .key = keyp,
                         .key_passwd = hub_keystore_passphrase()};
        rc = request(&h, "renewal", &key, st->device_id, &is);
    }
    /* renew.key is kept on failure: the next attempt asks for the same key. */
    if (rc == 0)
        rc = key_pem(&key, &kpem);
    if (rc == 0)
        rc = stage_pair(st, &kpem, &is.cert);
    if (rc == 0)
        rc = install_pair(st);
    /* Rewriting the chain also fsyncs the directory, which makes both renames durable. */
    if (rc == 0)
        rc = hub_state_file_write(chain, is.chain.data, is.chain.len, 0644);
    if (rc == 0)
        hub_info("certificate renewed: serial %s, valid until %s", is.serial, is.not_after);
    mbedtls_pk_free(&key);
    wipe_free(&kpem);
    hub_buf_free(&url);
    issued_free(&is);
    return rc == HUB_EIO ? HUB_EIO : rc == 0 ? 0 : HUB_EINVAL;
}
