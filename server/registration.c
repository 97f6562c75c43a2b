/* Just-in-time registration (see registration.h). One database connection, used by one job
 * at a time under a mutex: lookups are short indexed queries (~1 ms), and the limit on
 * queued jobs keeps a flood of new certificates from piling up behind it. */
#include "server/registration.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <mbedtls/sha1.h>

#include "db/db.h"
#include "db/registrations.h"
#include "server/trustfeed.h"
#include "util/error.h"
#include "util/log.h"

#define AUDIT_PER_S 10    /* handshake refusals audited per second at most */
#define MAX_WAIT_MS 10000 /* a lookup queued longer is answered "server unavailable" */
/* A device registered through a device CA has no password: a well-formed hash no secret
 * matches, so the password listener spends the same time on it as on any id. */
#define NO_SECRET                                                                                  \
    "pbkdf2-sha256$10000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

struct job {
    struct hub_registration *r;
    struct job *next; /* r->queue */
    uint64_t queued_ms;
    uv_work_t work;
    hub_registration_cb cb;
    void *arg;
    char device_ca[HUB_TRUST_ID_LEN + 1];
    char cn[HUB_TLS_PEER_NAME_MAX + 1];
    char serial[41];
    char peer[64];
    uint8_t *der;
    size_t der_len;
    /* results */
    enum hub_registration_result result;
    char device_id[37];
    int registered; /* 1: this job created the device */
    const char *why;
};

struct counters {
    unsigned long long lookups, registered[2], refused, busy, errors;
    unsigned long long audited, unaudited;
};

struct hub_registration {
    uv_loop_t *loop;
    char *db_url;
    hub_trust_t *trust; /* owned */
    struct hub_trustfeed *feed;
    unsigned max_pending, pending; /* queued + running */
    struct job *head, *tail;       /* waiting for the one running job (FIFO) */
    int running;
    int in_callback; /* a job's callback may free r (hub_registration_free): deferred */
    int stopping, freeing, audit_running;
    pthread_mutex_t db_lock;
    PGconn *db;
    uv_work_t audit;
    struct hub_trust_refusal refusals[AUDIT_PER_S];
    size_t nrefusals;
    pthread_mutex_t stats_lock;
    struct counters st;
};

void hub_registration_device_id(const char *fingerprint, const char *cn, char out[37])
{
    static const uint8_t ns_url[16] = {0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
                                       0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
    uint8_t h[20];
    mbedtls_sha1_context s;
    mbedtls_sha1_init(&s);
    mbedtls_sha1_starts_ret(&s);
    mbedtls_sha1_update_ret(&s, ns_url, sizeof ns_url);
    mbedtls_sha1_update_ret(&s, (const uint8_t *)fingerprint, strlen(fingerprint));
    mbedtls_sha1_update_ret(&s, (const uint8_t *)"/", 1);
    mbedtls_sha1_update_ret(&s, (const uint8_t *)cn, strlen(cn));
    mbedtls_sha1_finish_ret(&s, h);
    mbedtls_sha1_free(&s);
    h[6] = (uint8_t)((h[6] & 0x0f) | 0x50);
    h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        p += sprintf(p, "%02x", h[i]);
    }
}

int hub_registration_new(uv_loop_t *loop, const char *db_url, unsigned max_pending,
                         struct hub_registration **out)
{
    struct hub_registration *r = calloc(1, sizeof *r);
    if (r == NULL || (r->db_url = strdup(db_url)) == NULL || (r->trust = hub_trust_new()) == NULL) {
        if (r != NULL)
            free(r->db_url);
        free(r);
        return HUB_ENOMEM;
    }
    r->loop = loop;
    r->max_pending = max_pending ? max_pending : 1;
    pthread_mutex_init(&r->db_lock, NULL);
    pthread_mutex_init(&r->stats_lock, NULL);
    *out = r;
    return 0;
}

hub_trust_t *hub_registration_trust(struct hub_registration *r)
{
    return r->trust;
}

int hub_registration_feed(struct hub_registration *r, struct hub_pgfeed *pg,
                          void (*changed)(const char *, void *), void *ctx)
{
    return hub_trustfeed_start(pg, r->trust, changed, ctx, &r->feed);
}

static void free_if_done(struct hub_registration *r)
{
    if (!r->freeing || r->pending > 0 || r->running || r->in_callback || r->audit_running)
        return;
    PQfinish(r->db);
    hub_trust_free(r->trust);
    pthread_mutex_destroy(&r->db_lock);
    pthread_mutex_destroy(&r->stats_lock);
    free(r->db_url);
    free(r);
}

void hub_registration_stop(struct hub_registration *r)
{
    if (r == NULL)
        return;
    r->stopping = 1;
    hub_trustfeed_stop(r->feed);
    r->feed = NULL;
}

void hub_registration_free(struct hub_registration *r)
{
    if (r == NULL)
        return;
    hub_registration_stop(r);
    r->freeing = 1;
    free_if_done(r);
}

/* The connection, reset or reopened when broken; NULL when unreachable. db_lock held. */
static PGconn *conn(struct hub_registration *r)
{
    if (r->db != NULL && !hub_db_idle_ok(r->db) && hub_db_reset(r->db) != 0) {
        PQfinish(r->db);
        r->db = NULL;
    }
    if (r->db == NULL && hub_db_connect(r->db_url, &r->db) == 0 &&
        hub_db_exec(r->db, NULL, "SET statement_timeout = 5000", 0, NULL) != 0) {
        PQfinish(r->db); /* bounded: a CONNECT never waits on a stuck query for long */
        r->db = NULL;
    }
    return r->db;
}

static time_t x509_time(const mbedtls_x509_time *t)
{
    struct tm tm = {.tm_year = t->year - 1900,
                    .tm_mon = t->mon - 1,
                    .tm_mday = t->day,
                    .tm_hour = t->hour,
                    .tm_min = t->min,
                    .tm_sec = t->sec};
    return timegm(&tm);
}

/* First contact: the device and its certificate, per the CA's policy. */
static void do_register(struct job *j, PGconn *c)
{
    struct hub_db_device_ca_policy pol;
    int rc = hub_db_registrations_policy(c, j->device_ca, &pol);
    if (rc != 0 || strcmp(pol.status, "enabled") != 0) {
        j->result = rc == 0 || rc == HUB_ENOTFOUND ? HUB_REG_REFUSED : HUB_REG_ERROR;
        j->why = "device CA unknown or disabled";
        return;
    }
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    char subject[256];
    if (mbedtls_x509_crt_parse_der(&crt, j->der, j->der_len) != 0 ||
        mbedtls_x509_dn_gets(subject, sizeof subject, &crt.subject) < 0) {
        mbedtls_x509_crt_free(&crt);
        j->result = HUB_REG_REFUSED;
        j->why = "certificate does not parse";
        return;
    }
    hub_registration_device_id(pol.fingerprint, j->cn, j->device_id);
    int approve = strcmp(pol.registration, "approve") == 0;
    struct hub_db_registration g = {
        .device_ca_id = j->device_ca,
        .device_id = j->device_id,
        .serial_number = j->cn,
        .secret_hash = NO_SECRET,
        .cert_serial = j->serial,
        .subject = subject,
        .der = j->der,
        .der_len = j->der_len,
        .not_before = x509_time(&crt.valid_from),
        .not_after = x509_time(&crt.valid_to),
        .peer = j->peer,
    };
    rc = hub_db_registrations_register(c, &g, pol.product_id, approve ? "pending" : "active");
    mbedtls_x509_crt_free(&crt);
    if (rc == 0) {
        j->registered = 1;
        j->result = approve ? HUB_REG_PENDING : HUB_REG_ACTIVE;
    } else {
        j->result = rc == HUB_EEXIST ? HUB_REG_REFUSED : HUB_REG_ERROR;
        j->why = rc == HUB_EEXIST ? "its device id or serial number is already registered "
                                    "with another certificate"
                                  : "database error";
    }
}

static void lookup_work(uv_work_t *w)
{
    struct job *j = w->data;
    struct hub_registration *r = j->r;
    struct hub_db_registered reg;
    pthread_mutex_lock(&r->db_lock);
    PGconn *c = conn(r);
    int rc = c == NULL ? HUB_EDBDOWN
                       : hub_db_registrations_lookup(c, j->serial, j->device_ca, j->der, j->der_len,
                                                     &reg);
    if (rc == HUB_ENOTFOUND) {
        do_register(j, c);
    } else if (rc != 0) {
        j->result = HUB_REG_ERROR;
        j->why = "database unreachable";
    } else {
        snprintf(j->device_id, sizeof j->device_id, "%s", reg.device_id);
        if (!reg.same) {
            j->result = HUB_REG_REFUSED;
            j->why = "its serial is recorded for another certificate";
        } else if (strcmp(reg.cert_status, "valid") != 0 ||
                   strcmp(reg.device_status, "revoked") == 0) {
            j->result = HUB_REG_REFUSED;
            j->why = "revoked";
        } else if (strcmp(reg.device_status, "pending") == 0) {
            j->result = HUB_REG_PENDING;
        } else {
            j->result = HUB_REG_ACTIVE;
        }
    }
    pthread_mutex_unlock(&r->db_lock);
}

static void run_next(struct hub_registration *r);

/* Answers a job (it is no longer queued nor running) and frees it. */
static void answer(struct hub_registration *r, struct job *j, enum hub_registration_result res,
                   const char *device_id)
{
    r->pending--;
    r->in_callback++;
    j->cb(j->arg, res, device_id);
    r->in_callback--;
    free(j->der);
    free(j);
}

static void lookup_done(uv_work_t *w, int status)
{
    (void)status;
    struct job *j = w->data;
    struct hub_registration *r = j->r;
    const char *what = j->registered ? "registered" : "known";
    switch (j->result) {
    case HUB_REG_ACTIVE:
        hub_info("mqtt %s: device %s (serial number \"%s\") of device CA %s %s: active", j->peer,
                 j->device_id, j->cn, j->device_ca, what);
        break;
    case HUB_REG_PENDING:
        hub_warn("mqtt %s: device %s (serial number \"%s\") of device CA %s %s: pending "
                 "approval, refused (not authorized)",
                 j->peer, j->device_id, j->cn, j->device_ca, what);
        break;
    default:
        hub_warn("mqtt %s: certificate %s (CN \"%s\") of device CA %s refused: %s", j->peer,
                 j->serial, j->cn, j->device_ca, j->why ? j->why : "?");
    }
    pthread_mutex_lock(&r->stats_lock);
    r->st.lookups++;
    if (j->registered)
        r->st.registered[j->result == HUB_REG_PENDING]++;
    r->st.refused += j->result == HUB_REG_REFUSED;
    r->st.errors += j->result == HUB_REG_ERROR;
    pthread_mutex_unlock(&r->stats_lock);
    r->running = 0;
    answer(r, j, j->result, j->device_id);
    run_next(r);
    free_if_done(r);
}

/* Starts the oldest waiting job: one at a time, so that a flood of new certificates holds
 * one thread of the shared pool, not all of them. One that waited over MAX_WAIT_MS is
 * answered "server unavailable" without a query. Loop thread. */
static void run_next(struct hub_registration *r)
{
    while (!r->running && r->head != NULL) {
        struct job *j = r->head;
        r->head = j->next;
        if (r->head == NULL)
            r->tail = NULL;
        if (!r->stopping && uv_now(r->loop) - j->queued_ms <= MAX_WAIT_MS) {
            r->running = 1;
            uv_queue_work(r->loop, &j->work, lookup_work, lookup_done);
            return;
        }
        hub_warn("mqtt %s: certificate %s not looked up (queued over %d ms, or stopping): "
                 "refused (server unavailable)",
                 j->peer, j->serial, MAX_WAIT_MS);
        pthread_mutex_lock(&r->stats_lock);
        r->st.busy++;
        pthread_mutex_unlock(&r->stats_lock);
        answer(r, j, HUB_REG_BUSY, "");
    }
}

int hub_registration_start(struct hub_registration *r, const struct hub_tls_identity *id,
                           const char *peer, hub_registration_cb cb, void *arg)
{
    if (r->pending >= r->max_pending || r->stopping) {
        pthread_mutex_lock(&r->stats_lock);
        r->st.busy++;
        pthread_mutex_unlock(&r->stats_lock);
        hub_warn("mqtt %s: %u device lookups/registrations already queued: refused (server "
                 "unavailable)",
                 peer, r->pending);
        return HUB_ERANGE;
    }
    struct job *j = calloc(1, sizeof *j);
    if (j == NULL || id->der == NULL || (j->der = malloc(id->der_len)) == NULL) {
        free(j);
        return HUB_ENOMEM;
    }
    memcpy(j->der, id->der, id->der_len);
    j->der_len = id->der_len;
    j->r = r;
    j->cb = cb;
    j->arg = arg;
    snprintf(j->device_ca, sizeof j->device_ca, "%s", id->device_ca);
    snprintf(j->cn, sizeof j->cn, "%s", id->cn);
    snprintf(j->serial, sizeof j->serial, "%s", id->serial_hex);
    snprintf(j->peer, sizeof j->peer, "%s", peer);
    j->work.data = j;
    j->queued_ms = uv_now(r->loop);
    r->pending++;
    if (r->tail != NULL)
        r->tail->next = j;
    else
        r->head = j;
    r->tail = j;
    run_next(r);
    return 0;
}

/* ---- audit of handshake refusals ---------------------------------------------------------- */

static void audit_work(uv_work_t *w)
{
    struct hub_registration *r = w->data;
    const char *targets[AUDIT_PER_S], *sources[AUDIT_PER_S], *details[AUDIT_PER_S];
    char *texts[AUDIT_PER_S] = {0};
    for (size_t i = 0; i < r->nrefusals; i++) {
        struct hub_trust_refusal *f = &r->refusals[i];
        json_t *d = json_pack("{s:s,s:s,s:s,s:s,s:s?}", "reason", f->reason, "subject", f->subject,
                              "issuer", f->issuer, "serial", f->serial, "device_ca_id",
                              f->device_ca[0] ? f->device_ca : NULL);
        texts[i] = d ? json_dumps(d, JSON_COMPACT) : NULL;
        json_decref(d);
        targets[i] = f->device_ca[0] ? f->device_ca : f->subject;
        sources[i] = f->peer;
        details[i] = texts[i] ? texts[i] : "{}";
    }
    pthread_mutex_lock(&r->db_lock);
    PGconn *c = conn(r);
    int rc = c == NULL
                 ? HUB_EDBDOWN
                 : hub_db_registrations_audit_refusals(c, targets, sources, details, r->nrefusals);
    pthread_mutex_unlock(&r->db_lock);
    for (size_t i = 0; i < r->nrefusals; i++)
        free(texts[i]);
    pthread_mutex_lock(&r->stats_lock);
    if (rc == 0)
        r->st.audited += r->nrefusals;
    else
        r->st.unaudited += r->nrefusals;
    pthread_mutex_unlock(&r->stats_lock);
}

static void audit_done(uv_work_t *w, int status)
{
    (void)status;
    struct hub_registration *r = w->data;
    r->audit_running = 0;
    free_if_done(r);
}

void hub_registration_tick(struct hub_registration *r)
{
    if (r == NULL || r->stopping || r->audit_running)
        return;
    unsigned long long dropped;
    r->nrefusals = hub_trust_take_refusals(r->trust, r->refusals, AUDIT_PER_S, &dropped);
    for (size_t i = 0; i < r->nrefusals; i++) {
        struct hub_trust_refusal *f = &r->refusals[i];
        if (f->device_ca[0] && strcmp(f->reason, "unknown_ca") == 0)
            snprintf(f->reason, sizeof f->reason, "device_ca_disabled");
    }
    if (dropped > 0) {
        pthread_mutex_lock(&r->stats_lock);
        r->st.unaudited += dropped;
        pthread_mutex_unlock(&r->stats_lock);
        hub_warn("mqtt: %llu handshake refusals not audited (over the audit rate)", dropped);
    }
    if (r->nrefusals == 0)
        return;
    r->audit_running = 1;
    r->audit.data = r;
    uv_queue_work(r->loop, &r->audit, audit_work, audit_done);
}

int hub_registration_metrics(struct hub_registration *r, hub_buf_t *out)
{
    struct counters s;
    pthread_mutex_lock(&r->stats_lock);
    s = r->st;
    pthread_mutex_unlock(&r->stats_lock);
    return hub_buf_printf(
        out,
        "# HELP iothub_jit_lookups_total Connections with a device CA's certificate looked up "
        "(registered on first contact).\n# TYPE iothub_jit_lookups_total counter\n"
        "iothub_jit_lookups_total %llu\n"
        "# HELP iothub_jit_registrations_total Devices registered just in time, by status.\n"
        "# TYPE iothub_jit_registrations_total counter\n"
        "iothub_jit_registrations_total{status=\"active\"} %llu\n"
        "iothub_jit_registrations_total{status=\"pending\"} %llu\n"
        "# HELP iothub_jit_refused_total Device CA certificates refused at CONNECT, by reason.\n"
        "# TYPE iothub_jit_refused_total counter\n"
        "iothub_jit_refused_total{reason=\"refused\"} %llu\n"
        "iothub_jit_refused_total{reason=\"busy\"} %llu\n"
        "iothub_jit_refused_total{reason=\"database\"} %llu\n"
        "# HELP iothub_tls_refusals_audited_total Client certificates refused at the handshake "
        "and audited.\n# TYPE iothub_tls_refusals_audited_total counter\n"
        "iothub_tls_refusals_audited_total %llu\n"
        "# HELP iothub_tls_refusals_unaudited_total Refusals not audited (over the audit rate "
        "or database down).\n# TYPE iothub_tls_refusals_unaudited_total counter\n"
        "iothub_tls_refusals_unaudited_total %llu\n"
        "# HELP iothub_device_cas_trusted Enabled device CAs trusted for client certificates.\n"
        "# TYPE iothub_device_cas_trusted gauge\niothub_device_cas_trusted %zu\n",
        s.lookups, s.registered[0], s.registered[1], s.refused, s.busy, s.errors, s.audited,
        s.unaudited, hub_trust_enabled(r->trust));
}
