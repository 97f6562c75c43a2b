/* OCSP requests on API threads: parse (ca/ocsp_req.c), find the CA the CertIDs name and
 * its delegated signer (ca/ocsp_signers.c), read each certificate's status with one
 * primary-key probe on a pooled connection (db/ocsp.c), sign (ca/ocsp.c).
 *
 * Cache: a signed answer for one certificate without a nonce is kept up to CACHE_S seconds
 * and reused only while the database still says the same thing (status, revocation time
 * and reason are part of the key): a revocation is answered at once, and a burst of
 * identical requests costs one database probe each instead of one probe and one signature.
 * Requests with a nonce are signed every time (their answer is unique). */
#include "api/ocsp.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <mbedtls/base64.h>
#include <microhttpd.h>

#include "api/reply.h"
#include "ca/ocsp.h"
#include "ca/ocsp_req.h"
#include "ca/ocsp_signers.h"
#include "db/db.h"
#include "db/ocsp.h"
#include "db/pool.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

#define CONTENT_TYPE "application/ocsp-response"
#define NEXT_UPDATE_S 3600 /* how long a client may rely on an answer */
#define CACHE_S 60
#define CACHE_SLOTS 1024
#define CACHE_KEY_MAX 160
#define DB_WAIT_MS 2000

/* ---- counters ------------------------------------------------------------------------- */

static _Atomic unsigned long long by_status[7]; /* OCSPResponseStatus */
static _Atomic unsigned long long by_cert[3];   /* good, revoked, unknown */
static _Atomic unsigned long long cache_hits;

int hub_api_ocsp_metrics(hub_buf_t *out)
{
    static const enum hub_ocsp_resp_status statuses[] = {
        HUB_OCSP_SUCCESSFUL, HUB_OCSP_MALFORMED_REQUEST, HUB_OCSP_INTERNAL_ERROR,
        HUB_OCSP_TRY_LATER, HUB_OCSP_UNAUTHORIZED};
    static const char *const certs[] = {"good", "revoked", "unknown"};
    int rc = hub_buf_puts(out, "# HELP iothub_ocsp_responses_total OCSP responses by "
                               "responseStatus.\n# TYPE iothub_ocsp_responses_total counter\n");
    for (size_t i = 0; rc == 0 && i < sizeof statuses / sizeof statuses[0]; i++)
        rc =
            hub_buf_printf(out, "iothub_ocsp_responses_total{status=\"%s\"} %llu\n",
                           hub_ocsp_status_name(statuses[i]), atomic_load(&by_status[statuses[i]]));
    if (rc == 0)
        rc = hub_buf_puts(out, "# HELP iothub_ocsp_certificates_total Certificate statuses "
                               "answered by the OCSP responder.\n"
                               "# TYPE iothub_ocsp_certificates_total counter\n");
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = hub_buf_printf(out, "iothub_ocsp_certificates_total{status=\"%s\"} %llu\n", certs[i],
                            atomic_load(&by_cert[i]));
    if (rc == 0)
        rc = hub_buf_printf(out,
                            "# HELP iothub_ocsp_cache_hits_total OCSP answers served from "
                            "the signed-response cache.\n"
                            "# TYPE iothub_ocsp_cache_hits_total counter\n"
                            "iothub_ocsp_cache_hits_total %llu\n",
                            atomic_load(&cache_hits));
    return rc;
}

/* ---- signed-response cache ------------------------------------------------------------ */

struct slot {
    uint8_t key[CACHE_KEY_MAX];
    size_t key_len;
    time_t made;
    hub_buf_t der;
};

static struct slot cache[CACHE_SLOTS];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* The cache key: CA index, status, revocation time and reason, then the CertID DER. */
static size_t cache_key(int ca, const struct hub_ocsp_single *s, uint8_t *key)
{
    if (s->certid_len + 24 > CACHE_KEY_MAX)
        return 0;
    long long t = (long long)s->revoked_at;
    int head[3] = {ca, (int)s->status, s->reason};
    memcpy(key, head, sizeof head);
    memcpy(key + sizeof head, &t, sizeof t);
    memcpy(key + 20, s->certid, s->certid_len);
    return 20 + s->certid_len;
}

static struct slot *cache_slot(const uint8_t *key, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ key[i]) * 16777619u;
    return &cache[h % CACHE_SLOTS];
}

/* Appends a cached answer for key to out and sets *made to when it was signed: 1 when one
 * was found fresh, else 0. */
static int cache_get(const uint8_t *key, size_t len, time_t now, hub_buf_t *out, time_t *made)
{
    int found = 0;
    struct slot *s = cache_slot(key, len);
    pthread_mutex_lock(&cache_lock);
    if (s->key_len == len && memcmp(s->key, key, len) == 0 && now - s->made < CACHE_S &&
        now >= s->made) {
        found = hub_buf_append(out, s->der.data, s->der.len) == 0;
        *made = s->made;
    }
    pthread_mutex_unlock(&cache_lock);
    return found;
}

static void cache_put(const uint8_t *key, size_t len, time_t made, const hub_buf_t *der)
{
    struct slot *s = cache_slot(key, len);
    pthread_mutex_lock(&cache_lock);
    s->der.len = 0;
    if (hub_buf_append(&s->der, der->data, der->len) == 0) {
        memcpy(s->key, key, len);
        s->key_len = len;
        s->made = made;
    } else {
        s->key_len = 0;
    }
    pthread_mutex_unlock(&cache_lock);
}

/* ---- answering ------------------------------------------------------------------------ */

static void reply_der(struct hub_req *r, const hub_buf_t *der, int cacheable, time_t made)
{
    hub_reply_raw(r, 200, CONTENT_TYPE, der->data, der->len);
    if (cacheable && made != 0) { /* RFC 5019 §6: HTTP caching of GET answers */
        char v[96], lm[64], ex[64];
        struct tm tm;
        time_t until = made + NEXT_UPDATE_S, now = time(NULL);
        snprintf(v, sizeof v, "max-age=%lld, public, no-transform, must-revalidate",
                 (long long)(until > now ? until - now : 0));
        strftime(lm, sizeof lm, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&made, &tm));
        strftime(ex, sizeof ex, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&until, &tm));
        hub_reply_header(r, "Cache-Control", v);
        hub_reply_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, lm);
        hub_reply_header(r, MHD_HTTP_HEADER_EXPIRES, ex);
    } else {
        hub_reply_header(r, "Cache-Control", "no-cache");
    }
}

static void reply_status(struct hub_req *r, enum hub_ocsp_resp_status st)
{
    hub_buf_t der = HUB_BUF_INIT;
    atomic_fetch_add(&by_status[st], 1);
    if (hub_ocsp_response_error(st, &der) != 0) {
        hub_reply_error(r, 500, "internal_error", "out of memory");
        return;
    }
    reply_der(r, &der, 0, 0);
    hub_buf_free(&der);
}

/* The status of one certificate of CA ca_id (is_root: the CAs the root signed, which live
 * in memory). Returns 0 or a database HUB_E* code. */
static int lookup(struct hub_req *r, const struct hub_ocsp_certid *id, int ca_id, int is_root,
                  struct hub_ocsp_single *out)
{
    char serial[HUB_SERIAL_HEX];
    out->status = HUB_OCSP_UNKNOWN;
    if (id->serial_negative || id->serial_len > 20)
        return 0; /* no certificate of ours has such a serial */
    hub_hex_upper(id->serial, id->serial_len, serial);
    if (is_root) {
        int sub = hub_authority_ca_by_serial(r->api->authority, serial);
        if (sub != 0 && sub != ca_id)
            out->status = HUB_OCSP_GOOD; /* an issuing CA, active or retired */
        return 0;
    }
    if (r->db == NULL) {
        int rc = hub_db_pool_acquire(r->api->pool, DB_WAIT_MS, &r->db);
        if (rc != 0) {
            r->db = NULL;
            return rc == HUB_ERANGE ? HUB_EDBDOWN : rc;
        }
    }
    struct hub_db_ocsp_status st;
    int rc = hub_db_ocsp_status(r->db, serial, &st);
    if (rc == HUB_ENOTFOUND || (rc == 0 && st.ca_id != ca_id))
        return 0; /* never issued, or issued by another CA */
    if (rc != 0)
        return rc;
    if (st.revoked) {
        out->status = HUB_OCSP_REVOKED;
        out->revoked_at = st.revoked_at;
        out->reason = st.reason;
    } else {
        out->status = HUB_OCSP_GOOD;
    }
    return 0;
}

static void answer(struct hub_req *r, const uint8_t *der, size_t len, int is_get)
{
    struct hub_ocsp_request q;
    struct hub_ocsp_single single[HUB_OCSP_MAX_REQUESTS];
    const char *why = "";
    struct hub_ocsp_signers *signers = r->api->authority->ocsp;
    if (hub_ocsp_request_parse(der, len, &q, &why) != 0) {
        hub_debug("OCSP request from %s refused: %s", r->source, why);
        reply_status(r, HUB_OCSP_MALFORMED_REQUEST);
        return;
    }
    /* Every certificate of one request must belong to one CA: the answer has one signer. */
    int ca = -1, ca_id = 0, is_root = 0;
    for (size_t i = 0; i < q.n; i++) {
        int id, root;
        int idx = hub_ocsp_signers_find(signers, &q.ids[i], &id, &root);
        if (idx < 0 || (ca >= 0 && idx != ca)) {
            hub_debug("OCSP request from %s: %s", r->source,
                      idx < 0 ? "a CA (or hash algorithm) this hub does not serve"
                              : "certificates of several CAs");
            reply_status(r, HUB_OCSP_UNAUTHORIZED);
            return;
        }
        ca = idx;
        ca_id = id;
        is_root = root;
    }
    for (size_t i = 0; i < q.n; i++) {
        single[i] =
            (struct hub_ocsp_single){.certid = q.ids[i].raw, .certid_len = q.ids[i].raw_len};
        int rc = lookup(r, &q.ids[i], ca_id, is_root, &single[i]);
        if (rc != 0) {
            hub_warn("OCSP: certificate status lookup failed (%s)", hub_strerror(rc));
            reply_status(r, rc == HUB_EDBDOWN ? HUB_OCSP_TRY_LATER : HUB_OCSP_INTERNAL_ERROR);
            return;
        }
    }
    /* Give the connection back before signing. */
    if (r->db != NULL) {
        hub_db_pool_release(r->api->pool, r->db);
        r->db = NULL;
    }
    time_t now = time(NULL), made = now;
    uint8_t key[CACHE_KEY_MAX];
    size_t key_len = q.n == 1 && q.nonce == NULL ? cache_key(ca, &single[0], key) : 0;
    hub_buf_t out = HUB_BUF_INIT;
    if (key_len > 0 && cache_get(key, key_len, now, &out, &made)) {
        atomic_fetch_add(&cache_hits, 1);
    } else {
        struct hub_ocsp_basic b = {.produced_at = now,
                                   .this_update = now,
                                   .next_update = now + NEXT_UPDATE_S,
                                   .single = single,
                                   .n = q.n,
                                   .nonce = q.nonce,
                                   .nonce_len = q.nonce_len};
        int rc = hub_ocsp_signers_sign(signers, ca, &b, &out);
        if (rc != 0) {
            if (rc == HUB_ENOTFOUND)
                hub_warn("OCSP: CA %d has no valid responder certificate yet", ca_id);
            reply_status(r, rc == HUB_ENOTFOUND ? HUB_OCSP_TRY_LATER : HUB_OCSP_INTERNAL_ERROR);
            hub_buf_free(&out);
            return;
        }
        if (key_len > 0)
            cache_put(key, key_len, now, &out);
    }
    atomic_fetch_add(&by_status[HUB_OCSP_SUCCESSFUL], 1);
    for (size_t i = 0; i < q.n; i++)
        atomic_fetch_add(&by_cert[single[i].status], 1);
    reply_der(r, &out, is_get && q.nonce == NULL, made);
    hub_buf_free(&out);
}

void hub_api_ocsp_get(struct hub_req *r)
{
    const char *b64 = r->params[0];
    size_t n = strlen(b64), len = 0;
    uint8_t der[HUB_OCSP_REQUEST_MAX];
    /* MHD has percent-decoded the path; base64 is at most 4/3 of the largest request. */
    if (n == 0 || n > (HUB_OCSP_REQUEST_MAX / 3 + 1) * 4 ||
        mbedtls_base64_decode(der, sizeof der, &len, (const unsigned char *)b64, n) != 0) {
        hub_debug("OCSP GET from %s: the path is not base64", r->source);
        reply_status(r, HUB_OCSP_MALFORMED_REQUEST);
        return;
    }
    answer(r, der, len, 1);
}

void hub_api_ocsp_post(struct hub_req *r)
{
    const char *ct = hub_request_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    size_t want = strlen("application/ocsp-request");
    if (ct == NULL || strncasecmp(ct, "application/ocsp-request", want) != 0 ||
        (ct[want] != 0 && ct[want] != ';' && ct[want] != ' ')) {
        hub_reply_error(r, 415, "unsupported_media_type",
                        "an OCSP request is sent as application/ocsp-request (got %.64s)",
                        ct ? ct : "none");
        return;
    }
    answer(r, r->body.data, r->body.len, 0);
}
