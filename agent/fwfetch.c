/* libcurl for the image: the partial file is opened for appending, a Range request asks for
 * what is missing, and If-Range makes a server whose image changed answer 200 with the whole
 * new image, which restarts the file from zero. A stalled transfer (under 1 byte/s for 30 s)
 * is abandoned; the caller retries with back-off. */
#include "agent/fwfetch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <mbedtls/x509_crt.h>

#include "agent/state.h"
#include "client/http.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/log.h"

#define CONNECT_TIMEOUT_S 10L
#define STALL_S 30L
#define SIGNERS_MAX (1024 * 1024)
#define ERR_BODY_MAX 512

struct xfer {
    struct hub_fw_download *d;
    CURL *curl;
    int fd;
    long long have; /* bytes in the file */
    long status;    /* 0 until the first body byte */
    int too_large;
    hub_buf_t errbody;
};

static size_t write_cb(char *p, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n;
    if (x->status == 0) {
        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &x->status);
        if (x->status == 200 && x->have > 0) {
            /* A full answer (no Range support, or If-Range did not match): start over. */
            if (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0)
                return 0;
            x->have = 0;
        }
    }
    if (x->status != 200 && x->status != 206) {
        size_t keep = x->errbody.len < ERR_BODY_MAX ? ERR_BODY_MAX - x->errbody.len : 0;
        hub_buf_append(&x->errbody, p, len < keep ? len : keep);
        return len;
    }
    if (x->have + (long long)len > x->d->size) {
        x->too_large = 1;
        return 0;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(x->fd, p + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return 0;
        off += (size_t)w;
    }
    x->have += (long long)len;
    return len;
}

static int progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct xfer *x = arg;
    if (x->d->progress != NULL && (x->status == 200 || x->status == 206))
        x->d->progress(x->d->arg, x->have);
    return 0;
}

static CURLcode ssl_ctx_cb(CURL *curl, void *ssl_ctx, void *arg)
{
    hub_pin_install(ssl_ctx, arg);
    return CURLE_OK;
}

/* The TLS options shared by both transfers. */
static void tls_setopt(CURL *c, const struct hub_fw_tls *t)
{
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(c, CURLOPT_CAINFO, t->cacert);
    curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_SSLCERT, t->cert);
    curl_easy_setopt(c, CURLOPT_SSLKEY, t->key);
    if (t->key_passwd != NULL)
        curl_easy_setopt(c, CURLOPT_KEYPASSWD, t->key_passwd);
    if (t->pin != NULL && t->pin->set) {
        curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
        curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, t->pin);
    }
}

int hub_fw_download(struct hub_fw_download *d)
{
    char range[64], ifrange[200], cerr[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    struct xfer x = {d, NULL, -1, 0, 0, 0, HUB_BUF_INIT};
    struct stat sb;
    int rc = HUB_EIO;
    d->error[0] = 0;
    x.fd = open(d->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (x.fd < 0 || fstat(x.fd, &sb) != 0) {
        snprintf(d->error, sizeof d->error, "cannot open %s: %s", d->path, strerror(errno));
        goto out;
    }
    x.have = sb.st_size;
    if (x.have > d->size) { /* not this image: start over */
        if (ftruncate(x.fd, 0) != 0)
            goto out;
        x.have = 0;
    }
    if (x.have == d->size) {
        rc = 0;
        goto out;
    }
    x.curl = curl_easy_init();
    if (x.curl == NULL)
        goto out;
    curl_easy_setopt(x.curl, CURLOPT_URL, d->url);
    curl_easy_setopt(x.curl, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(x.curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x.curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(x.curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(x.curl, CURLOPT_LOW_SPEED_TIME, STALL_S);
    tls_setopt(x.curl, &d->tls);
    curl_easy_setopt(x.curl, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(x.curl, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(x.curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(x.curl, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(x.curl, CURLOPT_XFERINFODATA, &x);
    hdrs = curl_slist_append(hdrs, "Accept: application/octet-stream");
    if (x.have > 0) {
        snprintf(range, sizeof range, "Range: bytes=%lld-", x.have);
        snprintf(ifrange, sizeof ifrange, "If-Range: %s", d->etag);
        hdrs = curl_slist_append(hdrs, range);
        hdrs = curl_slist_append(hdrs, ifrange);
        hub_info("firmware download resumes at byte %lld of %lld", x.have, d->size);
    }
    curl_easy_setopt(x.curl, CURLOPT_HTTPHEADER, hdrs);
    CURLcode cc = curl_easy_perform(x.curl);
    if (x.status == 0)
        curl_easy_getinfo(x.curl, CURLINFO_RESPONSE_CODE, &x.status);
    if (x.too_large) {
        snprintf(d->error, sizeof d->error, "the server sent more than the %lld bytes announced",
                 d->size);
        rc = HUB_EINVAL;
    } else if (cc != CURLE_OK) {
        snprintf(d->error, sizeof d->error, "%s (after %lld of %lld bytes)",
                 cerr[0] ? cerr : curl_easy_strerror(cc), x.have, d->size);
    } else if (x.status == 416) {
        snprintf(d->error, sizeof d->error, "HTTP 416 for bytes=%lld-: starting over", x.have);
        if (ftruncate(x.fd, 0) != 0)
            snprintf(d->error, sizeof d->error, "cannot truncate %s", d->path);
    } else if (x.status != 200 && x.status != 206) {
        char msg[240];
        hub_http_error(&x.errbody, msg, sizeof msg);
        snprintf(d->error, sizeof d->error, "GET %s: HTTP %ld %s", d->url, x.status, msg);
        rc = x.status >= 400 && x.status < 500 && x.status != 408 && x.status != 429 ? HUB_EINVAL
                                                                                     : HUB_EIO;
    } else if (x.have != d->size) {
        snprintf(d->error, sizeof d->error, "the transfer ended after %lld of %lld bytes", x.have,
                 d->size);
    } else {
        rc = 0;
    }
    if (x.fd >= 0 && fsync(x.fd) != 0 && rc == 0) {
        snprintf(d->error, sizeof d->error, "fsync %s: %s", d->path, strerror(errno));
        rc = HUB_EIO;
    }
out:
    if (x.curl != NULL) {
        curl_easy_setopt(x.curl, CURLOPT_HTTPHEADER, NULL);
        curl_easy_cleanup(x.curl);
    }
    curl_slist_free_all(hdrs);
    hub_buf_free(&x.errbody);
    if (x.fd >= 0)
        close(x.fd);
    return rc;
}

static void pin_fn(void *ssl_ctx, void *pin)
{
    hub_pin_install(ssl_ctx, pin);
}

int hub_fw_fetch_signers(const char *url, const struct hub_fw_tls *tls, const char *path)
{
    struct hub_http_request rq = {.method = "GET",
                                  .url = url,
                                  .cacert = tls->cacert,
                                  .cacert_only = 1,
                                  .https_only = 1,
                                  .cert = tls->cert,
                                  .key = tls->key,
                                  .key_passwd = tls->key_passwd,
                                  .timeout_s = 20,
                                  .answer_max = SIGNERS_MAX};
    struct hub_http_failure f;
    hub_buf_t body = HUB_BUF_INIT;
    long status = 0;
    int rc = HUB_EIO;
    CURL *c = curl_easy_init();
    if (c == NULL)
        return HUB_ENOMEM;
    if (tls->pin != NULL && tls->pin->set) {
        rq.ssl_ctx_fn = pin_fn;
        rq.ssl_ctx_arg = tls->pin;
    }
    CURLcode cc = hub_http_perform(c, &rq, &status, &body, &f);
    curl_easy_cleanup(c);
    if (cc != CURLE_OK) {
        hub_warn("cannot refresh the firmware signers from %s: %s; keeping the stored ones", url,
                 hub_http_reason(cc, &f));
        goto out;
    }
    if (status == 404) {
        hub_warn("GET %s: 404; keeping the stored firmware signers", url);
        rc = HUB_ENOTFOUND;
        goto out;
    }
    if (status != 200) {
        char msg[240];
        hub_http_error(&body, msg, sizeof msg);
        hub_warn("GET %s: HTTP %ld %s; keeping the stored firmware signers", url, status, msg);
        goto out;
    }
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int n = 0;
    if (body.len > 0 && hub_buf_reserve(&body, 1) == 0) {
        body.data[body.len] = 0;
        n = mbedtls_x509_crt_parse(&crt, body.data, body.len + 1);
    }
    int count = 0;
    for (const mbedtls_x509_crt *p = &crt; p != NULL && p->raw.len > 0; p = p->next)
        count++;
    mbedtls_x509_crt_free(&crt);
    if (n != 0) {
        hub_warn("GET %s: the signer bundle does not parse (%d); keeping the stored one", url, n);
        rc = HUB_EINVAL;
        goto out;
    }
    rc = hub_state_file_write(path, body.data ? body.data : (uint8_t *)"", body.len, 0644);
    if (rc == 0)
        hub_info("firmware signers refreshed: %d certificate%s", count, count == 1 ? "" : "s");
out:
    hub_buf_free(&body);
    return rc;
}
