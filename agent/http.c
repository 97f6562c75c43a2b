/* libcurl glue. The pin check is installed on each new OpenSSL context through
 * CURLOPT_SSL_CTX_FUNCTION, so it runs during the handshake, before any credentials or
 * request bytes are sent. */
#include "agent/http.h"

#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "util/error.h"
#include "util/log.h"

#define RESP_MAX (1024 * 1024)

struct sink {
    hub_buf_t *b;
    int too_large;
};

static size_t write_cb(char *p, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    size_t len = size * n;
    if (s->b->len + len > RESP_MAX) {
        s->too_large = 1;
        return 0;
    }
    return hub_buf_append(s->b, p, len) == 0 ? len : 0;
}

static CURLcode ssl_ctx_cb(CURL *curl, void *ssl_ctx, void *arg)
{
    hub_pin_install(ssl_ctx, arg);
    return CURLE_OK;
}

int hub_http_post(const struct hub_http_call *h, long *status, hub_buf_t *resp)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct sink s = {resp, 0};
    struct curl_slist *hdrs = NULL;
    int rc = HUB_EIO;
    CURL *c = curl_easy_init();
    if (c == NULL)
        return HUB_ENOMEM;
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    curl_easy_setopt(c, CURLOPT_URL, h->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(c, CURLOPT_CAINFO, h->cacert);
    curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (h->pin != NULL && h->pin->set) {
        h->pin->mismatch = 0;
        curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
        curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, h->pin);
    }
    if (h->user != NULL) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, h->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, h->pass);
    }
    if (h->cert != NULL) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, h->cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, h->key);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, h->json);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        rc = 0;
    } else if (h->pin != NULL && h->pin->mismatch) {
        hub_error("POST %s refused: the server certificate does not match the pin", h->url);
    } else if (s.too_large) {
        hub_error("POST %s: the answer exceeds %d bytes", h->url, RESP_MAX);
    } else {
        hub_error("POST %s failed: %s", h->url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return rc;
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
