/* Trust bundle refresh. A fetched bundle replaces the old one only whole and only when
 * every certificate in it is a CA valid now: a hub answering garbage (or an empty bundle)
 * cannot leave the device unable to verify it later. */
#include "agent/trust.h"

#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <mbedtls/x509_crt.h>

#include "ca/cert.h"
#include "client/http.h"
#include "util/error.h"
#include "util/log.h"

#define BUNDLE_MAX (64 * 1024)
#define BUNDLE_CERTS_MAX 16
#define TIMEOUT_S 20

/* Parses PEM text (NUL at data[len]) into chain; the earliest notAfter into *earliest.
 * Returns the number of certificates, or -1 with why set. */
static int parse_bundle(const hub_buf_t *b, mbedtls_x509_crt *chain, time_t *earliest,
                        const char **why)
{
    int n = 0;
    *earliest = 0;
    if (b->len == 0 || mbedtls_x509_crt_parse(chain, b->data, b->len + 1) != 0) {
        *why = "it is not PEM certificates";
        return -1;
    }
    for (const mbedtls_x509_crt *c = chain; c != NULL && c->raw.len > 0; c = c->next) {
        if (++n > BUNDLE_CERTS_MAX) {
            *why = "it holds too many certificates";
            return -1;
        }
        if (!c->ca_istrue) {
            *why = "a certificate in it is not a CA";
            return -1;
        }
        if (mbedtls_x509_time_is_past(&c->valid_to) ||
            mbedtls_x509_time_is_future(&c->valid_from)) {
            *why = "a certificate in it is not valid now";
            return -1;
        }
        time_t t = hub_x509_time(&c->valid_to);
        if (*earliest == 0 || t < *earliest)
            *earliest = t;
    }
    if (n == 0)
        *why = "it is empty";
    return n > 0 ? n : -1;
}

int hub_trust_earliest_expiry(const struct hub_state *st, time_t *out)
{
    char path[1100];
    hub_buf_t b = HUB_BUF_INIT;
    mbedtls_x509_crt chain;
    mbedtls_x509_crt_init(&chain);
    const char *why = "";
    int rc = hub_state_path(st, "chain.pem", path, sizeof path);
    if (rc == 0)
        rc = hub_state_file_read(path, &b, BUNDLE_MAX);
    if (rc == 0) {
        /* An expired certificate still has a notAfter: parse without the soundness rules. */
        if (mbedtls_x509_crt_parse(&chain, b.data, b.len + 1) != 0) {
            hub_warn("%s: %s", path, "not PEM certificates");
            rc = HUB_EINVAL;
        }
    }
    *out = 0;
    for (const mbedtls_x509_crt *c = &chain; rc == 0 && c != NULL && c->raw.len > 0; c = c->next)
        if (*out == 0 || hub_x509_time(&c->valid_to) < *out)
            *out = hub_x509_time(&c->valid_to);
    (void)why;
    mbedtls_x509_crt_free(&chain);
    hub_buf_free(&b);
    return rc;
}

static void pin_cb(void *ssl_ctx, void *pin)
{
    hub_pin_install(ssl_ctx, pin);
}

int hub_trust_refresh(const struct hub_state *st, struct hub_pin *pin, int *changed)
{
    char path[1100], url[600];
    hub_buf_t old = HUB_BUF_INIT, fresh = HUB_BUF_INIT;
    mbedtls_x509_crt chain;
    mbedtls_x509_crt_init(&chain);
    *changed = 0;
    snprintf(url, sizeof url, "%s/v1/ca", st->api_url);
    int rc = hub_state_path(st, "chain.pem", path, sizeof path);
    if (rc == 0) {
        rc = hub_state_file_read(path, &old, BUNDLE_MAX);
        if (rc == HUB_ENOTFOUND)
            rc = 0; /* nothing to compare with: curl then fails on the missing CA file */
    }
    CURL *c = rc == 0 ? curl_easy_init() : NULL;
    if (rc == 0 && c == NULL)
        rc = HUB_ENOMEM;
    if (rc == 0) {
        struct hub_http_request rq = {.method = "GET",
                                      .url = url,
                                      .cacert = path,
                                      .cacert_only = 1,
                                      .https_only = 1,
                                      .timeout_s = TIMEOUT_S,
                                      .answer_max = BUNDLE_MAX};
        struct hub_http_failure f;
        long status = 0;
        if (pin != NULL && pin->set) {
            pin->mismatch = 0;
            rq.ssl_ctx_fn = pin_cb;
            rq.ssl_ctx_arg = pin;
        }
        CURLcode cc = hub_http_perform(c, &rq, &status, &fresh, &f);
        if (cc != CURLE_OK) {
            hub_warn("trust bundle: GET %s failed: %s", url,
                     pin != NULL && pin->mismatch ? "the server certificate does not match the pin"
                                                  : hub_http_reason(cc, &f));
            rc = HUB_EIO;
        } else if (status != 200) {
            hub_warn("trust bundle: GET %s answered HTTP %ld", url, status);
            rc = HUB_EIO;
        }
        curl_easy_cleanup(c);
    }
    if (rc == 0 && fresh.len == old.len && memcmp(fresh.data, old.data, old.len) == 0) {
        hub_debug("trust bundle: %s is what the hub serves", path);
        goto out;
    }
    time_t earliest;
    const char *why = "";
    int n = rc == 0 ? hub_buf_reserve(&fresh, 1) : -1; /* the NUL mbedTLS parses PEM with */
    if (rc == 0 && n == 0) {
        fresh.data[fresh.len] = 0;
        n = parse_bundle(&fresh, &chain, &earliest, &why);
        if (n < 0) {
            hub_warn("trust bundle: the hub's GET /v1/ca is refused (%s); %s kept", why, path);
            rc = HUB_EINVAL;
        }
    }
    if (rc == 0)
        rc = hub_state_file_write(path, fresh.data, fresh.len, 0644);
    if (rc == 0) {
        char when[32];
        struct tm tm;
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&earliest, &tm));
        hub_info("trust bundle: %s updated from the hub (%d certificates, earliest expiry %s)",
                 path, n, when);
        *changed = 1;
    }
out:
    mbedtls_x509_crt_free(&chain);
    hub_buf_free(&old);
    hub_buf_free(&fresh);
    return rc;
}

void hub_trust_on_connect(const struct hub_state *st, struct hub_pin *pin)
{
    static time_t last; /* the agent is one thread */
    time_t now = time(NULL), earliest = 0;
    int near = hub_trust_earliest_expiry(st, &earliest) == 0 &&
               earliest - now < (time_t)HUB_TRUST_REFRESH_DAYS * 86400;
    if (last != 0 && now - last < (near ? 300 : 3600))
        return;
    last = now;
    int changed = 0;
    int rc = hub_trust_refresh(st, pin, &changed);
    if (near && !changed && hub_trust_earliest_expiry(st, &earliest) == 0 &&
        earliest - now < (time_t)HUB_TRUST_REFRESH_DAYS * 86400)
        hub_warn("trust bundle: a certificate of it expires in %.1f days and the hub %s",
                 (double)(earliest - now) / 86400.0,
                 rc == 0 ? "serves no newer bundle" : "could not be asked for a newer one");
}
