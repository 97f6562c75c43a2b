#include "api/firmware_download.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "api/firmware_cache.h"
#include "api/firmware_metrics.h"
#include "api/params.h"
#include "api/reply.h"
#include "api/transaction.h"
#include "db/firmware.h"
#include "util/error.h"
#include "util/log.h"

#define DB_WAIT_MS 5000
#define RETRY_AFTER_S "5"

/* Downloads in progress: a count and the devices downloading (a small array: at most
 * firmware_max_downloads entries, scanned under the mutex). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char (*devices)[37];
static unsigned ndevices, capacity;

struct download {
    char firmware_id[37];
    char device_id[37];
    hub_db_pool_t *pool;
    uint64_t start, len;               /* the bytes answered: [start, start + len) */
    const struct hub_fw_chunk *chunk;  /* the chunk being sent (a cache reference), or NULL */
    int seq;                           /* its number */
};

/* Takes a download slot for device: 0, 503 (busy) or 429 (the device downloads already). */
static unsigned take_slot(unsigned max, const char *device)
{
    unsigned rc = 0;
    pthread_mutex_lock(&lock);
    if (devices == NULL || capacity < max) {
        char(*grown)[37] = realloc(devices, (size_t)max * sizeof *devices);
        if (grown != NULL) {
            devices = grown;
            capacity = max;
        }
    }
    if (devices == NULL || ndevices >= max || ndevices >= capacity)
        rc = 503;
    for (unsigned i = 0; rc == 0 && i < ndevices; i++)
        if (strcmp(devices[i], device) == 0)
            rc = 429;
    if (rc == 0)
        snprintf(devices[ndevices++], sizeof devices[0], "%s", device);
    pthread_mutex_unlock(&lock);
    return rc;
}

static void release_slot(const char *device)
{
    pthread_mutex_lock(&lock);
    for (unsigned i = 0; i < ndevices; i++)
        if (strcmp(devices[i], device) == 0) {
            memcpy(devices[i], devices[--ndevices], sizeof devices[0]);
            break;
        }
    pthread_mutex_unlock(&lock);
}

/* MHD's content reader: pos counts from the first byte answered. */
static ssize_t reader_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct download *d = cls;
    if (pos >= d->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    uint64_t off = d->start + pos;
    int seq = (int)(off / HUB_DB_FIRMWARE_CHUNK);
    size_t in = (size_t)(off % HUB_DB_FIRMWARE_CHUNK);
    if (d->chunk == NULL || d->seq != seq) {
        if (d->chunk != NULL)
            hub_fw_cache_release(d->chunk);
        d->chunk = NULL;
        int rc = hub_fw_cache_get(d->pool, DB_WAIT_MS, d->firmware_id, seq, &d->chunk);
        if (rc != 0) {
            hub_warn("firmware %s to device %s: reading chunk %d failed: %s", d->firmware_id,
                     d->device_id, seq, hub_strerror(rc));
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        d->seq = seq;
    }
    if (in >= d->chunk->len) {
        hub_warn("firmware %s: chunk %d is shorter than its manifest says", d->firmware_id, seq);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = d->chunk->len - in;
    if (n > max)
        n = max;
    if (n > d->len - pos)
        n = (size_t)(d->len - pos);
    memcpy(buf, d->chunk->data + in, n);
    hub_fw_metrics_bytes(n);
    return (ssize_t)n;
}

static void free_cb(void *cls)
{
    struct download *d = cls;
    if (d->chunk != NULL)
        hub_fw_cache_release(d->chunk);
    release_slot(d->device_id);
    hub_fw_metrics_active(-1);
    free(d);
}

int hub_api_firmware_range(const char *value, uint64_t size, uint64_t *start, uint64_t *len)
{
    if (strncmp(value, "bytes=", 6) != 0)
        return -1;
    const char *p = value + 6;
    unsigned long long a = 0, b = 0;
    int has_a = 0, has_b = 0;
    for (; *p >= '0' && *p <= '9'; p++, has_a = 1)
        if ((a = a * 10 + (unsigned)(*p - '0')) > (1ULL << 62))
            return -1;
    if (*p++ != '-')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++, has_b = 1)
        if ((b = b * 10 + (unsigned)(*p - '0')) > (1ULL << 62))
            b = 1ULL << 62;
    if (*p != 0 || (!has_a && !has_b) || (has_a && has_b && b < a))
        return -1; /* several ranges, junk, or an invalid range: ignored */
    if (!has_a) { /* suffix: the last b bytes */
        if (b == 0)
            return 0;
        *len = b < size ? b : size;
        *start = size - *len;
        return 1;
    }
    if (a >= size)
        return 0;
    *start = a;
    *len = (has_b && b < size - 1 ? b : size - 1) - a + 1;
    return 1;
}

/* Whether an If-None-Match list holds etag (or "*"). */
static int etag_listed(const char *list, const char *etag)
{
    size_t n = strlen(etag);
    for (const char *p = list; *p;) {
        p += strspn(p, " \t,");
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        size_t len = strcspn(p, " \t,");
        if ((len == 1 && *p == '*') || (len == n && strncmp(p, etag, n) == 0))
            return 1;
        p += len;
    }
    return 0;
}

/* Checks the device and the image; 0 with *dl set, or HUB_REPLIED. */
static int check(struct hub_req *r, struct hub_db_firmware_dl *dl)
{
    const char *fw = r->params[1];
    PGconn *c = hub_params_uuid_valid(fw) ? hub_transaction_db(r) : NULL;
    if (!hub_params_uuid_valid(fw)) {
        hub_reply_error(r, 404, "not_found", "no firmware image %s", fw);
        return HUB_REPLIED;
    }
    if (c == NULL)
        return HUB_REPLIED;
    hub_params_lower(r->params[1]);
    int rc = hub_db_firmware_for_device(c, fw, r->params[0], r->who.cert_serial, dl);
    if (rc == HUB_ENOTFOUND) {
        hub_reply_error(r, 404, "not_found", "no firmware image %s ready for download", fw);
        return HUB_REPLIED;
    }
    if (rc != 0) {
        hub_reply_internal(r, rc, "firmware lookup");
        return HUB_REPLIED;
    }
    if (!dl->device_ok || !dl->cert_ok) {
        hub_reply_error(r, 403, dl->device_ok ? "certificate_not_current" : "forbidden",
                        dl->device_ok ? "the client certificate is not a current certificate of "
                                        "device %s"
                                      : "device %s is revoked",
                        r->params[0]);
        return HUB_REPLIED;
    }
    if (!dl->same_product) {
        hub_reply_error(r, 403, "forbidden", "firmware %s is not for the product of device %s", fw,
                        r->params[0]);
        return HUB_REPLIED;
    }
    return 0;
}

void hub_api_firmware_download(struct hub_req *r)
{
    struct hub_db_firmware_dl dl;
    char etag[70], header[96];
    if (check(r, &dl) != 0)
        return;
    /* The rest needs no database: give the connection back for the whole transfer. */
    hub_db_pool_release(r->api->pool, r->db);
    r->db = NULL;
    snprintf(etag, sizeof etag, "\"%s\"", dl.sha256);
    uint64_t size = (uint64_t)dl.size, start = 0, len = size;
    const char *inm = hub_request_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm != NULL && etag_listed(inm, etag)) {
        hub_reply_raw(r, 304, "application/octet-stream", "", 0);
        hub_reply_header(r, MHD_HTTP_HEADER_ETAG, etag);
        return;
    }
    const char *range = hub_request_header(r, MHD_HTTP_HEADER_RANGE);
    const char *if_range = hub_request_header(r, MHD_HTTP_HEADER_IF_RANGE);
    int ranged = range != NULL && (if_range == NULL || strcmp(if_range, etag) == 0)
                     ? hub_api_firmware_range(range, size, &start, &len)
                     : -1;
    if (ranged == 0) {
        hub_reply_error(r, 416, "range_not_satisfiable", "the image has %llu bytes",
                        (unsigned long long)size);
        snprintf(header, sizeof header, "bytes */%llu", (unsigned long long)size);
        hub_reply_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, header);
        return;
    }
    unsigned busy = take_slot(r->api->firmware_max_downloads, r->params[0]);
    if (busy != 0) {
        hub_fw_metrics_refused(busy == 503 ? "busy" : "device_busy");
        if (busy == 503)
            hub_reply_error(r, 503, "busy", "%u firmware downloads are running; retry later",
                            r->api->firmware_max_downloads);
        else
            hub_reply_error(r, 429, "download_in_progress",
                            "device %s is downloading firmware already; one download at a time",
                            r->params[0]);
        hub_reply_header(r, MHD_HTTP_HEADER_RETRY_AFTER, RETRY_AFTER_S);
        return;
    }
    struct download *d = calloc(1, sizeof *d);
    struct MHD_Response *resp = NULL;
    if (d != NULL) {
        snprintf(d->firmware_id, sizeof d->firmware_id, "%s", r->params[1]);
        snprintf(d->device_id, sizeof d->device_id, "%s", r->params[0]);
        d->pool = r->api->pool;
        d->start = start;
        d->len = len;
        resp = MHD_create_response_from_callback(len, 32 * 1024, reader_cb, d, free_cb);
    }
    if (resp == NULL) {
        free(d);
        release_slot(r->params[0]);
        hub_reply_internal(r, HUB_ENOMEM, "firmware download");
        return;
    }
    hub_fw_metrics_active(1);
    if (r->response != NULL)
        MHD_destroy_response(r->response);
    r->response = resp;
    r->status = ranged == 1 ? 206 : 200;
    hub_reply_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    hub_reply_header(r, MHD_HTTP_HEADER_ETAG, etag);
    hub_reply_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    hub_reply_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (ranged == 1) {
        snprintf(header, sizeof header, "bytes %llu-%llu/%llu", (unsigned long long)start,
                 (unsigned long long)(start + len - 1), (unsigned long long)size);
        hub_reply_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, header);
    }
}
