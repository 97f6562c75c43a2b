#include "cli/client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <config.h>

#include "client/http.h"
#include "util/error.h"

#define BODY_MAX (256u * 1024 * 1024) /* a CRL of a million entries is ~43 MB */
#define TOTAL_TIMEOUT_S 120L

int hub_client_init(struct hub_client *c, const struct hub_settings *s)
{
    memset(c, 0, sizeof *c);
    c->settings = s;
    if (s->url == NULL) {
        fprintf(stderr, "error: no server URL: pass --url https://HOST:PORT, set IOTHUB_URL or "
                        "put `url = ...` in the config file\n");
        return HUB_EXIT_USAGE;
    }
    if (s->cacert != NULL && access(s->cacert, R_OK) != 0) {
        fprintf(stderr, "error: cannot read the trust anchor %s: %s\n", s->cacert, strerror(errno));
        return HUB_EXIT_USAGE;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (c->curl = curl_easy_init()) == NULL) {
        fprintf(stderr, "error: libcurl failed to initialise\n");
        return HUB_EXIT_UNREACHABLE;
    }
    if (s->insecure)
        fprintf(stderr, "warning: --insecure: the server's certificate is not verified; "
                        "anyone on the path can read the credentials sent\n");
    return 0;
}

void hub_client_free(struct hub_client *c)
{
    if (c->curl != NULL) {
        curl_easy_cleanup(c->curl);
        curl_global_cleanup();
    }
    c->curl = NULL;
}

int hub_client_escape(hub_buf_t *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        int plain = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~';
        char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
        int rc = plain ? hub_buf_append(out, s, 1) : hub_buf_append(out, enc, 3);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Maps a libcurl failure to an exit code and prints why, with a hint for TLS trust. */
static int transport_error(const struct hub_client *c, CURLcode code,
                           const struct hub_http_failure *f)
{
    const char *url = c->settings->url;
    const char *why = hub_http_reason(code, f);
    switch (code) {
    case CURLE_PEER_FAILED_VERIFICATION:
        fprintf(stderr,
                "error: TLS: the server certificate of %s is not trusted (%s)\n"
                "hint: pass --cacert FILE (or set IOTHUB_CACERT) with the hub's CA chain, "
                "e.g. the output of `iothubd ca chain` or .dev/ca.pem from deploy/dev.sh run\n",
                url, why);
        return HUB_EXIT_TLS;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
        fprintf(stderr, "error: TLS with %s failed: %s\n", url, why);
        return HUB_EXIT_TLS;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        fprintf(stderr, "error: bad server URL %s: %s\n", url, why);
        return HUB_EXIT_USAGE;
    case CURLE_WRITE_ERROR:
        if (f->too_large) {
            fprintf(stderr, "error: the answer of %s exceeds %u MiB\n", url, BODY_MAX >> 20);
            return HUB_EXIT_UNREACHABLE;
        }
        /* fall through */
    default: fprintf(stderr, "error: cannot reach %s: %s\n", url, why); return HUB_EXIT_UNREACHABLE;
    }
}

int hub_client_send(struct hub_client *c, const char *method, const char *path, json_t *body,
                    enum hub_client_auth auth, struct hub_response *resp)
{
    const struct hub_settings *s = c->settings;
    struct hub_http_failure f;
    char *text = NULL;
    hub_buf_t url = HUB_BUF_INIT;
    int rc = HUB_EXIT_UNREACHABLE;
    memset(resp, 0, sizeof *resp);

    if (auth == HUB_CLIENT_BEARER && s->token == NULL) {
        fprintf(stderr, "error: no admin token: pass --token-file FILE, set IOTHUB_TOKEN or put "
                        "`token = ...` in the config file\n");
        return HUB_EXIT_USAGE;
    }
    if (hub_buf_printf(&url, "%s%s", s->url, path) != 0 ||
        (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL)) {
        fprintf(stderr, "error: out of memory\n");
        goto out;
    }
    struct hub_http_request rq = {.method = method,
                                  .url = (const char *)url.data,
                                  .body = text,
                                  .cacert = s->cacert,
                                  .insecure = s->insecure,
                                  .user_agent = "iothubctl/" PACKAGE_VERSION,
                                  .timeout_s = TOTAL_TIMEOUT_S,
                                  .answer_max = BODY_MAX};
    if (auth == HUB_CLIENT_BEARER) {
        rq.bearer = s->token;
    } else if (auth == HUB_CLIENT_BASIC) {
        rq.user = c->user;
        rq.pass = c->password;
    }
    CURLcode code = hub_http_perform(c->curl, &rq, &resp->status, &resp->body, &f);
    if (code != CURLE_OK) {
        rc = transport_error(c, code, &f);
        goto out;
    }
    if (resp->body.len > 0 && resp->body.data[0] == '{')
        resp->json = json_loadb((const char *)resp->body.data, resp->body.len, 0, NULL);
    rc = 0;
out:
    free(text);
    hub_buf_free(&url);
    return rc;
}

int hub_client_check(const struct hub_response *resp)
{
    if (resp->status < 300)
        return 0;
    json_t *e = json_object_get(resp->json, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (code != NULL && msg != NULL)
        fprintf(stderr, "error: %s: %s (HTTP %ld)\n", code, msg, resp->status);
    else
        fprintf(stderr, "error: the server answered HTTP %ld\n", resp->status);
    return HUB_EXIT_REFUSED;
}

int hub_client_call(struct hub_client *c, const char *method, const char *path, json_t *body,
                    enum hub_client_auth auth, struct hub_response *resp)
{
    int rc = hub_client_send(c, method, path, body, auth, resp);
    return rc != 0 ? rc : hub_client_check(resp);
}

void hub_client_response_free(struct hub_response *resp)
{
    hub_buf_free(&resp->body);
    json_decref(resp->json);
    resp->json = NULL;
}
