/* iothub-enroll: provisions and activates N devices and one telemetry service through the
 * REST API, as tests/bench/provision.sh does, but with C concurrent keep-alive requests in
 * one libcurl multi loop and the EC P-256 keys and CSRs made in process by OpenSSL.
 *   iothub-enroll --url https://127.0.0.1:8443 --token-file admin.token --ca trust.pem
 *                 -n N --out DIR [-c C] [--product KEY] [--no-service]
 * Writes in DIR: dev-I.pem / dev-I.key (I = 1..N, keys 0600), devices.csv ("certfile,keyfile",
 * absolute paths, the header line first), ids.csv ("index,device_id"), service.pem /
 * service.key (subscribes to devices/+/telemetry). Each device is two requests: POST
 * /v1/devices with the bearer token, then POST /v1/devices/{id}/activate with Basic
 * id:secret; a request that fails with a connection error or a 5xx is retried (3 times).
 * Exit 0 when every device was activated, 1 otherwise, 2 on bad usage. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define MAX_TRIES 4

enum step { S_IDLE, S_CREATE, S_ACTIVATE };

/* One request slot: its easy handle (kept, so its connection is reused) and the device it
 * is working on. The slot owns body, resp and key. */
typedef struct slot {
    CURL *h;
    enum step step;
    int idx, tries;
    char id[64], secret[128];
    char *body, *resp;
    size_t resp_len;
    EVP_PKEY *key;
    struct curl_slist *hdrs;
} slot_t;

static struct {
    const char *url, *token_file, *ca, *out, *product;
    int n, concurrency, service;
} opt = {.concurrency = 32, .service = 1};

static char auth_header[512];
static char stamp[64];
static char product_key[128];
static int next_idx = 1, done_ok, done_fail, retries;
static char (*ids)[64];
static double t0;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t write_cb(char *p, size_t sz, size_t nm, void *ud)
{
    slot_t *s = ud;
    size_t n = sz * nm;
    char *r = realloc(s->resp, s->resp_len + n + 1);
    if (r == NULL)
        return 0;
    memcpy(r + s->resp_len, p, n);
    s->resp = r;
    s->resp_len += n;
    s->resp[s->resp_len] = '\0';
    return n;
}

/* Writes len bytes to path, mode 0600, replacing it. */
static int write_file(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        fprintf(stderr, "iothub-enroll: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = fchmod(fd, 0600) == 0 && write(fd, data, len) == (ssize_t)len ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "iothub-enroll: %s: %s\n", path, strerror(errno));
    close(fd);
    return rc;
}

/* A new P-256 key in s->key and a PEM CSR for CN=cn in *pem (the caller frees it). */
static int make_csr(slot_t *s, const char *cn, char **pem)
{
    int rc = -1;
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    BIO *b = BIO_new(BIO_s_mem());
    EVP_PKEY_free(s->key);
    s->key = EVP_EC_gen("P-256");
    if (!req || !name || !b || !s->key)
        goto out;
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                    -1, 0) ||
        !X509_REQ_set_version(req, 0) || !X509_REQ_set_subject_name(req, name) ||
        !X509_REQ_set_pubkey(req, s->key) || !X509_REQ_sign(req, s->key, EVP_sha256()) ||
        !PEM_write_bio_X509_REQ(b, req))
        goto out;
    char *p;
    long n = BIO_get_mem_data(b, &p); /* not NUL-terminated */
    if (n > 0 && (*pem = malloc((size_t)n + 1)) != NULL) {
        memcpy(*pem, p, (size_t)n);
        (*pem)[n] = 0;
    }
    rc = *pem ? 0 : -1;
out:
    X509_NAME_free(name);
    X509_REQ_free(req);
    BIO_free(b);
    return rc;
}

/* Sets up s->h to POST s->body to path, authenticated by the bearer token (bearer) or by
 * Basic s->id:s->secret. */
static void prepare(slot_t *s, const char *path, int bearer)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", opt.url, path);
    free(s->resp);
    s->resp = NULL;
    s->resp_len = 0;
    curl_slist_free_all(s->hdrs);
    s->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (bearer)
        s->hdrs = curl_slist_append(s->hdrs, auth_header);
    curl_easy_setopt(s->h, CURLOPT_URL, url);
    curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, s->hdrs);
    curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(s->h, CURLOPT_HTTPAUTH, bearer ? CURLAUTH_NONE : CURLAUTH_BASIC);
    curl_easy_setopt(s->h, CURLOPT_USERNAME, bearer ? NULL : s->id);
    curl_easy_setopt(s->h, CURLOPT_PASSWORD, bearer ? NULL : s->secret);
}

/* Request for the slot's current step. Returns -1 when the step cannot even be built. */
static int start_step(slot_t *s)
{
    char path[256];
    free(s->body);
    s->body = NULL;
    if (s->step == S_CREATE) {
        char serial[128];
        snprintf(serial, sizeof serial, "BENCH-%s-%d", stamp, s->idx);
        json_t *j = json_pack("{s:s, s:s}", "product_key", product_key, "serial_number", serial);
        s->body = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        prepare(s, "/v1/devices", 1);
        return s->body ? 0 : -1;
    }
    char *csr = NULL;
    if (make_csr(s, s->id, &csr) != 0)
        return -1;
    json_t *j = json_pack("{s:s}", "csr", csr);
    free(csr);
    s->body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    snprintf(path, sizeof path, "/v1/%s/%s/activate", s->idx > 0 ? "devices" : "services",
             s->id);
    prepare(s, path, 0);
    return s->body ? 0 : -1;
}

/* Stores the certificate and key of a finished activation as NAME.pem / NAME.key. */
static int save_identity(slot_t *s, const char *name, const char *cert)
{
    char path[4096];
    BIO *b = BIO_new(BIO_s_mem());
    int rc = -1;
    if (b && PEM_write_bio_PrivateKey(b, s->key, NULL, NULL, 0, NULL, NULL)) {
        char *p;
        long n = BIO_get_mem_data(b, &p);
        snprintf(path, sizeof path, "%s/%s.key", opt.out, name);
        rc = write_file(path, p, (size_t)n);
    }
    BIO_free(b);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/%s.pem", opt.out, name);
        rc = write_file(path, cert, strlen(cert));
    }
    return rc;
}

/* Handles a finished request: next step, retry, or done. Returns 1 when the slot is free. */
static int finish_step(slot_t *s, CURLcode res)
{
    long status = 0;
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    json_t *j = res == CURLE_OK && status / 100 == 2 ? json_loads(s->resp ? s->resp : "", 0, NULL)
                                                      : NULL;
    if (j == NULL) {
        int transient = res != CURLE_OK || status >= 500;
        if (transient && ++s->tries < MAX_TRIES && start_step(s) == 0) {
            retries++;
            return 0;
        }
        fprintf(stderr, "iothub-enroll: device %d %s: %s %ld: %.300s\n", s->idx,
                s->step == S_CREATE ? "create" : "activate",
                res != CURLE_OK ? curl_easy_strerror(res) : "HTTP", status,
                s->resp ? s->resp : "");
        done_fail++;
        return 1;
    }
    int rc = 0;
    if (s->step == S_CREATE) {
        const char *id = json_string_value(json_object_get(j, "device_id"));
        const char *sec = json_string_value(json_object_get(j, "device_secret"));
        if (id && sec && strlen(id) < sizeof s->id && strlen(sec) < sizeof s->secret) {
            strcpy(s->id, id);
            strcpy(s->secret, sec);
            s->step = S_ACTIVATE;
            s->tries = 0;
            json_decref(j);
            if (start_step(s) == 0)
                return 0;
        } else {
            json_decref(j);
        }
        fprintf(stderr, "iothub-enroll: device %d: bad answer to POST /v1/devices\n", s->idx);
        done_fail++;
        return 1;
    }
    const char *cert = json_string_value(json_object_get(j, "certificate"));
    char name[32];
    snprintf(name, sizeof name, "dev-%d", s->idx);
    rc = cert ? save_identity(s, name, cert) : -1;
    json_decref(j);
    if (rc == 0) {
        snprintf(ids[s->idx - 1], sizeof ids[0], "%s", s->id);
        done_ok++;
    } else {
        done_fail++;
    }
    if ((done_ok + done_fail) % 1000 == 0)
        fprintf(stderr, "iothub-enroll: %d of %d devices (%.1f/s)\n", done_ok + done_fail,
                opt.n, (done_ok + done_fail) / (now() - t0));
    return 1;
}

/* One blocking request on a fresh slot (product, service): returns the parsed answer. */
static json_t *request(slot_t *s, const char *path, int bearer)
{
    prepare(s, path, bearer);
    CURLcode res = curl_easy_perform(s->h);
    long status = 0;
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    json_t *j = res == CURLE_OK && status / 100 == 2 ? json_loads(s->resp ? s->resp : "", 0, NULL)
                                                      : NULL;
    if (j == NULL)
        fprintf(stderr, "iothub-enroll: POST %s: %s %ld: %.300s\n", path,
                res != CURLE_OK ? curl_easy_strerror(res) : "HTTP", status,
                s->resp ? s->resp : "");
    return j;
}

static CURL *new_handle(slot_t *s)
{
    CURL *h = curl_easy_init();
    if (h == NULL)
        return NULL;
    curl_easy_setopt(h, CURLOPT_CAINFO, opt.ca);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(h, CURLOPT_PRIVATE, s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    return h;
}

static void slot_free(slot_t *s)
{
    curl_easy_cleanup(s->h);
    curl_slist_free_all(s->hdrs);
    free(s->body);
    free(s->resp);
    EVP_PKEY_free(s->key);
}

/* The service: POST /v1/services, then activate it; service.pem / service.key. */
static int enroll_service(void)
{
    slot_t s = {0};
    int rc = -1;
    if ((s.h = new_handle(&s)) == NULL)
        return -1;
    char name[96];
    snprintf(name, sizeof name, "bench-reader-%s", stamp);
    json_t *b = json_pack("{s:s, s:[s], s:[s]}", "name", name, "publish",
                          "devices/+/commands/#", "subscribe", "devices/+/telemetry");
    s.body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    json_t *j = request(&s, "/v1/services", 1);
    const char *id = json_string_value(json_object_get(j, "service_id"));
    const char *sec = json_string_value(json_object_get(j, "service_secret"));
    if (id && sec && strlen(id) < sizeof s.id && strlen(sec) < sizeof s.secret) {
        strcpy(s.id, id);
        strcpy(s.secret, sec);
        s.step = S_ACTIVATE;
        s.idx = 0;
        if (start_step(&s) == 0) {
            json_decref(j);
            j = NULL;
            CURLcode res = curl_easy_perform(s.h);
            long status = 0;
            curl_easy_getinfo(s.h, CURLINFO_RESPONSE_CODE, &status);
            if (res == CURLE_OK && status == 201)
                j = json_loads(s.resp, 0, NULL);
            else
                fprintf(stderr, "iothub-enroll: service activation: %ld %.300s\n", status,
                        s.resp ? s.resp : "");
            const char *cert = json_string_value(json_object_get(j, "certificate"));
            rc = cert ? save_identity(&s, "service", cert) : -1;
        }
    }
    json_decref(j);
    slot_free(&s);
    return rc;
}

static int product(void)
{
    slot_t s = {0};
    int rc = -1;
    if ((s.h = new_handle(&s)) == NULL)
        return -1;
    char name[96];
    snprintf(name, sizeof name, "bench-%s", stamp);
    json_t *b = json_pack("{s:s}", "name", name);
    s.body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    json_t *j = request(&s, "/v1/products", 1);
    const char *pk = json_string_value(json_object_get(j, "product_key"));
    if (pk && strlen(pk) < sizeof product_key) {
        strcpy(product_key, pk);
        rc = 0;
    }
    json_decref(j);
    slot_free(&s);
    return rc;
}

static int write_csv(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/devices.csv", opt.out);
    FILE *f = fopen(path, "w");
    snprintf(path, sizeof path, "%s/ids.csv", opt.out);
    FILE *g = fopen(path, "w");
    if (!f || !g) {
        fprintf(stderr, "iothub-enroll: cannot write %s/devices.csv, ids.csv\n", opt.out);
        if (f)
            fclose(f);
        if (g)
            fclose(g);
        return -1;
    }
    fprintf(f, "certfile,keyfile\n");
    fprintf(g, "index,device_id\n");
    for (int i = 1; i <= opt.n; i++) {
        if (ids[i - 1][0] == '\0')
            continue;
        fprintf(f, "%s/dev-%d.pem,%s/dev-%d.key\n", opt.out, i, opt.out, i);
        fprintf(g, "%d,%s\n", i, ids[i - 1]);
    }
    int rc = fclose(f) == 0 && fclose(g) == 0 ? 0 : -1;
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: iothub-enroll --url URL --token-file FILE --ca CA.pem -n N --out DIR\n"
               "         [-c CONCURRENCY (32; iothubd's API allows 64 per address)]\n"
               "         [--product PRODUCT_KEY (default: a new product)] [--no-service]\n");
}

static int parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        {"url", 1, 0, 'u'},     {"token-file", 1, 0, 't'}, {"ca", 1, 0, 'a'},
        {"out", 1, 0, 'o'},     {"product", 1, 0, 'p'},    {"no-service", 0, 0, 'S'},
        {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "n:c:h", lo, NULL)) != -1) {
        switch (c) {
        case 'u': opt.url = optarg; break;
        case 't': opt.token_file = optarg; break;
        case 'a': opt.ca = optarg; break;
        case 'o': opt.out = optarg; break;
        case 'p': opt.product = optarg; break;
        case 'S': opt.service = 0; break;
        case 'n': opt.n = atoi(optarg); break;
        case 'c': opt.concurrency = atoi(optarg); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (!opt.url || !opt.token_file || !opt.ca || !opt.out || opt.n <= 0 ||
        opt.concurrency <= 0 || optind != argc) {
        usage(stderr);
        return -1;
    }
    return 0;
}

/* Reads the token (first line) into the Authorization header; never printed. */
static int read_token(void)
{
    FILE *f = fopen(opt.token_file, "r");
    char tok[400] = "";
    if (f == NULL) {
        fprintf(stderr, "iothub-enroll: cannot read the token file %s\n", opt.token_file);
        return -1;
    }
    if (fgets(tok, sizeof tok, f) == NULL)
        tok[0] = '\0';
    fclose(f);
    tok[strcspn(tok, "\r\n")] = '\0';
    if (tok[0] == '\0') {
        fprintf(stderr, "iothub-enroll: %s is empty\n", opt.token_file);
        return -1;
    }
    snprintf(auth_header, sizeof auth_header, "Authorization: Bearer %s", tok);
    memset(tok, 0, sizeof tok);
    return 0;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0)
        return 2;
    static char out_abs[4096];
    if (mkdir(opt.out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "iothub-enroll: %s: %s\n", opt.out, strerror(errno));
        return 2;
    }
    if (realpath(opt.out, out_abs) == NULL) {
        fprintf(stderr, "iothub-enroll: %s: %s\n", opt.out, strerror(errno));
        return 2;
    }
    opt.out = out_abs;
    if (access(opt.ca, R_OK) != 0) {
        fprintf(stderr, "iothub-enroll: cannot read the CA file %s\n", opt.ca);
        return 2;
    }
    if (read_token() != 0)
        return 2;
    snprintf(stamp, sizeof stamp, "%ld-%d", (long)time(NULL), (int)getpid());
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ids = calloc((size_t)opt.n, sizeof *ids);
    if (ids == NULL)
        return 1;
    int status = 1;
    t0 = now();
    if (opt.product)
        snprintf(product_key, sizeof product_key, "%s", opt.product);
    else if (product() != 0)
        goto out;

    int nslots = opt.concurrency < opt.n ? opt.concurrency : opt.n;
    slot_t *slots = calloc((size_t)nslots, sizeof *slots);
    CURLM *m = curl_multi_init();
    if (slots == NULL || m == NULL) {
        free(slots);
        curl_multi_cleanup(m);
        goto out;
    }
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)nslots);
    int running = 0;
    for (int i = 0; i < nslots; i++) {
        slots[i].h = new_handle(&slots[i]);
        slots[i].idx = next_idx++;
        slots[i].step = S_CREATE;
        if (slots[i].h == NULL || start_step(&slots[i]) != 0) {
            done_fail++;
            continue;
        }
        curl_multi_add_handle(m, slots[i].h);
        running++;
    }
    do {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            slot_t *s;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            CURLcode res = msg->data.result;
            curl_multi_remove_handle(m, s->h);
            if (finish_step(s, res)) {
                if (next_idx > opt.n)
                    continue;
                s->idx = next_idx++;
                s->step = S_CREATE;
                s->tries = 0;
                if (start_step(s) != 0) {
                    done_fail++;
                    continue;
                }
            }
            curl_multi_add_handle(m, s->h);
            running++;
        }
        if (running)
            curl_multi_poll(m, NULL, 0, 1000, NULL);
    } while (running);
    double secs = now() - t0;
    for (int i = 0; i < nslots; i++)
        slot_free(&slots[i]);
    free(slots);
    curl_multi_cleanup(m);

    int svc = opt.service ? enroll_service() : 0;
    if (write_csv() != 0)
        goto out;
    fprintf(stderr,
            "iothub-enroll: %d of %d devices activated in %.1f s (%.1f/s, %d at a time, %d "
            "retries)%s; %s/devices.csv\n",
            done_ok, opt.n, secs, done_ok / (secs > 0 ? secs : 1), nslots, retries,
            svc == 0 ? (opt.service ? ", service.pem" : "") : ", SERVICE FAILED", opt.out);
    status = done_ok == opt.n && svc == 0 ? 0 : 1;
out:
    free(ids);
    curl_global_cleanup();
    memset(auth_header, 0, sizeof auth_header);
    return status;
}
