#include "server/device_ca_crl.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "api/device_cas.h"
#include "db/db.h"
#include "db/device_cas.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/log.h"

#define POLL_MAX_S 10      /* how often the due list is read at most */
#define FETCH_TIMEOUT_S 30 /* one download, connection included */
#define BATCH 16           /* CAs claimed per round */

struct hub_device_ca_crl {
    char *db_url;
    int refresh_s;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop;
};

/* Appends a chunk of the body, refusing bodies over HUB_DEVCA_CRL_MAX. */
static size_t write_cb(char *p, size_t size, size_t n, void *ctx)
{
    hub_buf_t *b = ctx;
    if (b->len + n > HUB_DEVCA_CRL_MAX || hub_buf_append(b, p, n) != 0)
        return 0;
    return size * n;
}

/* Downloads url into body. Returns 0 or -1 with the reason in err. */
static int download(const char *url, hub_buf_t *body, char *err, size_t errlen)
{
    CURL *h = curl_easy_init();
    long status = 0;
    if (h == NULL) {
        snprintf(err, errlen, "curl_easy_init failed");
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)FETCH_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE, (long)HUB_DEVCA_CRL_MAX);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    CURLcode cc = curl_easy_perform(h);
    if (cc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(cc));
        return -1;
    }
    if (status != 200) {
        snprintf(err, errlen, "HTTP status %ld", status);
        return -1;
    }
    return 0;
}

/* Fetches and stores the CRL of one CA. */
static void fetch_one(PGconn *c, const char *id, const char *url)
{
    hub_buf_t body = HUB_BUF_INIT;
    struct hub_devca_crl info;
    struct hub_devca_why why = {NULL, ""};
    char err[256];
    hub_api_device_cas_count(HUB_DEVCA_M_FETCHES);
    if (download(url, &body, err, sizeof err) != 0) {
        hub_api_device_cas_count(HUB_DEVCA_M_FETCH_FAILURES);
        hub_warn("device CA %s: CRL fetch from %s failed: %s", id, url, err);
        goto out;
    }
    int rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_api_device_cas_store_crl(c, id, body.data, body.len, &info, &why);
    if (rc == 0)
        rc = hub_db_commit(c);
    else
        hub_db_rollback(c);
    if (rc == 0) {
        hub_info("device CA %s: CRL %s fetched from %s (%zu entries)", id, info.number, url,
                 info.entries);
    } else if (rc == HUB_EINVAL && why.code != NULL && strcmp(why.code, "crl_not_newer") == 0) {
        hub_debug("device CA %s: CRL at %s unchanged (%s)", id, url, why.message);
    } else {
        hub_api_device_cas_count(HUB_DEVCA_M_FETCH_FAILURES);
        if (rc == HUB_EINVAL)
            hub_api_device_cas_count(HUB_DEVCA_M_CRL_REFUSED);
        hub_warn("device CA %s: CRL fetched from %s refused: %s", id, url,
                 rc == HUB_EINVAL ? why.message : hub_strerror(rc));
    }
out:
    hub_buf_free(&body);
}

/* Claims the CAs due and fetches their CRLs. */
static void round_once(struct hub_device_ca_crl *f, PGconn *c)
{
    json_t *due = NULL, *row;
    size_t i;
    if (hub_db_device_cas_crl_due(c, f->refresh_s, BATCH, &due) != 0)
        return;
    json_array_foreach(due, i, row)
    {
        const char *id = json_string_value(json_object_get(row, "id"));
        const char *url = json_string_value(json_object_get(row, "crl_url"));
        if (id != NULL && url != NULL)
            fetch_one(c, id, url);
        pthread_mutex_lock(&f->lock);
        int stop = f->stop;
        pthread_mutex_unlock(&f->lock);
        if (stop)
            break;
    }
    json_decref(due);
}

static void *fetcher(void *arg)
{
    struct hub_device_ca_crl *f = arg;
    PGconn *c = NULL;
    int poll_s = f->refresh_s < POLL_MAX_S ? f->refresh_s : POLL_MAX_S;
    pthread_mutex_lock(&f->lock);
    while (!f->stop) {
        pthread_mutex_unlock(&f->lock);
        if (c == NULL || PQstatus(c) != CONNECTION_OK) {
            PQfinish(c);
            c = NULL;
            if (hub_db_connect(f->db_url, &c) != 0) {
                PQfinish(c);
                c = NULL;
            }
        }
        if (c != NULL)
            round_once(f, c);
        pthread_mutex_lock(&f->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += poll_s;
        if (!f->stop)
            pthread_cond_timedwait(&f->wake, &f->lock, &until);
    }
    pthread_mutex_unlock(&f->lock);
    PQfinish(c);
    return NULL;
}

struct hub_device_ca_crl *hub_device_ca_crl_start(const char *db_url, int refresh_s)
{
    struct hub_device_ca_crl *f = calloc(1, sizeof *f);
    if (f == NULL || (f->db_url = strdup(db_url)) == NULL) {
        free(f);
        return NULL;
    }
    f->refresh_s = refresh_s;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        hub_error("device CA CRL fetcher: curl_global_init failed");
        free(f->db_url);
        free(f);
        return NULL;
    }
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->wake, NULL);
    if (pthread_create(&f->thread, NULL, fetcher, f) != 0) {
        hub_error("device CA CRL fetcher: cannot start its thread");
        pthread_cond_destroy(&f->wake);
        pthread_mutex_destroy(&f->lock);
        free(f->db_url);
        free(f);
        return NULL;
    }
    return f;
}

void hub_device_ca_crl_stop(struct hub_device_ca_crl *f)
{
    if (f == NULL)
        return;
    pthread_mutex_lock(&f->lock);
    f->stop = 1;
    pthread_cond_signal(&f->wake);
    pthread_mutex_unlock(&f->lock);
    pthread_join(f->thread, NULL);
    pthread_cond_destroy(&f->wake);
    pthread_mutex_destroy(&f->lock);
    curl_global_cleanup();
    free(f->db_url);
    free(f);
}
