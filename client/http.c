/* libcurl glue. The SSL_CTX hook (the agent's pin check) is installed on each new OpenSSL
 * context through CURLOPT_SSL_CTX_FUNCTION, so it runs during the handshake, before any
 * credentials or request bytes are sent. */
#include "client/http.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#define CONNECT_TIMEOUT_S 10L

/* A write callback's state: the answer and whether it outgrew its bound. */
struct sink {
    hub_buf_t *b;
    size_t max;
    int too_large;
};

static size_t write_cb(char *p, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    size_t len = size * n;
    if (s->b->len + len > s->max) {
        s->too_large = 1;
        return 0;
    }
    return hub_buf_append(s->b, p, len) == 0 ? len : 0;
}

static CURLcode ssl_ctx_cb(CURL *curl, void *ssl_ctx, void *arg)
{
    const struct hub_http_request *rq = arg;
    rq->ssl_ctx_fn(ssl_ctx, rq->ssl_ctx_arg);
    return CURLE_OK;
}

CURLcode hub_http_perform(CURL *h, const struct hub_http_request *rq, long *status,
                          hub_buf_t *answer, struct hub_http_failure *f)
{
    struct sink s = {answer, rq->answer_max, 0};
    struct curl_slist *hdrs = NULL;
    f->detail[0] = 0;
    f->too_large = 0;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, rq->url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, f->detail);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, rq->timeout_s);
    if (rq->user_agent != NULL)
        curl_easy_setopt(h, CURLOPT_USERAGENT, rq->user_agent);
    if (rq->https_only)
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    if (rq->cacert != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, rq->cacert);
    if (rq->cacert_only)
        curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, rq->insecure ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, rq->insecure ? 0L : 2L);
    if (rq->ssl_ctx_fn != NULL) {
        curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
        curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, rq);
    }
    if (rq->bearer != NULL) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, rq->bearer);
    } else if (rq->user != NULL) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, rq->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, rq->pass);
    }
    if (rq->cert != NULL) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, rq->cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, rq->key);
        if (rq->key_passwd != NULL)
            curl_easy_setopt(h, CURLOPT_KEYPASSWD, rq->key_passwd);
    }
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (rq->body != NULL) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(rq->body));
    } else if (strcmp(rq->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    CURLcode code = curl_easy_perform(h);
    if (code == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    f->too_large = s.too_large;
    /* The options point into this frame: none may outlive the call. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdrs);
    return code;
}

const char *hub_http_reason(CURLcode code, const struct hub_http_failure *f)
{
    return f->detail[0] ? f->detail : curl_easy_strerror(code);
}

void hub_http_error(const hub_buf_t *resp, char *out, size_t len)
{
    json_t *j = json_loadb((const char *)resp->data, resp->len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (code != NULL && msg != NULL)
        snprintf(out, len, "%s: %s", code, msg);
    else
        snprintf(out, len, "%.*s", (int)(resp->len < 200 ? resp->len : 200),
                 resp->data ? (const char *)resp->data : "");
    json_decref(j);
}
