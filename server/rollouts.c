/* The rollout engine (see server/rollouts.h). One thread, one PostgreSQL connection, a
 * round every second. What other threads hand it (state reports from the MQTT loop, device
 * connections) waits in bounded queues under one mutex; everything else is the thread's
 * own. PostgreSQL is the source of truth: a wave started by one node is noticed by every
 * node on its next round (current_wave moved), and each node sends the notices to the
 * devices connected to it; a device connected nowhere keeps its row pending until it
 * connects. */
#include "server/rollouts.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/audit.h"
#include "db/db.h"
#include "db/devices.h"
#include "db/rollouts.h"
#include "util/error.h"
#include "util/log.h"

#define ROUND_MS 1000
#define CONNECT_DELAY_MS 2000  /* a device subscribes after CONNACK: wait before re-sending */
#define REPORTS_MAX 20000      /* state reports waiting for the next round */
#define CONNECTS_MAX 65536     /* connections waiting for their re-send lookup */
#define LOOKUP_BATCH 1000      /* device ids per lookup / rows per page */
#define SEEN_MAX 256           /* active rollouts a node tracks for wave dispatch */
#define METRICS_ROLLOUTS 20    /* rollouts with per-state gauges in /metrics */
#define METRICS_EVERY 5        /* rounds between two per-rollout snapshots */
#define REFUSALS_LOGGED 5      /* refused reports logged per round (the rest counted) */

struct report {
    char device_id[37];
    size_t len;
    struct report *next;
    char data[];
};

struct connect {
    char device_id[37];
    uint64_t at_ms;
};

/* What this node has dispatched of an active rollout. */
struct seen {
    char id[37];
    int wave, generation, live;
};

struct hub_rollouts {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    int stop, stopped;
    struct hub_rollouts_options o;
    char *db_url, *base_url; /* base_url: "https://host:port" of the REST API */
    /* Under lock. */
    struct report *reports, **reports_tail;
    size_t nreports;
    struct connect *connects; /* ring of CONNECTS_MAX */
    size_t chead, ccount;
    unsigned long long notices, applied, rejected, dropped, halts, completed;
    hub_buf_t info, devices; /* Prometheus lines of the per-rollout gauges */
    /* Engine thread only. */
    PGconn *db;
    struct seen seen[SEEN_MAX];
    size_t nseen;
    json_t *notices_cache; /* rollout id -> notice (one round) */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void count(struct hub_rollouts *e, unsigned long long *counter, unsigned long long n)
{
    pthread_mutex_lock(&e->lock);
    *counter += n;
    pthread_mutex_unlock(&e->lock);
}

/* ---- state reports ------------------------------------------------------------------------ */

static int uuid_valid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        char ch = s[i];
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? ch != '-'
                 : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
            return 0;
    }
    return 1;
}

/* Dotted numeric, 1 to 4 parts of 0..2^31-1 (docs: firmware contract). */
static int version_valid(const char *s)
{
    int parts = 0;
    while (1) {
        size_t digits = strspn(s, "0123456789");
        if (digits == 0 || digits > 10 || strtoll(s, NULL, 10) > 2147483647LL)
            return 0;
        parts++;
        s += digits;
        if (*s == 0)
            return parts <= 4;
        if (*s != '.' || parts == 4)
            return 0;
        s++;
    }
}

int hub_rollouts_parse_state(const char *device_id, const void *payload, size_t len,
                             json_t *reports, json_t *versions, const char **why)
{
    static const char *const states[] = {"downloading", "verifying",   "installing", "installed",
                                         "failed",      "rolled_back", "running"};
    json_error_t err;
    json_t *j = NULL;
    int rc = HUB_EINVAL;
    *why = "larger than " "2048" " bytes";
    if (len > HUB_ROLLOUTS_STATE_MAX)
        goto out;
    *why = "not a JSON object";
    j = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(j))
        goto out;
    const char *state = json_string_value(json_object_get(j, "state"));
    json_t *rid = json_object_get(j, "rollout_id"), *ver = json_object_get(j, "version");
    json_t *reason = json_object_get(j, "reason"), *progress = json_object_get(j, "progress");
    size_t k = 0;
    while (state != NULL && k < sizeof states / sizeof *states && strcmp(state, states[k]) != 0)
        k++;
    *why = "unknown state";
    if (state == NULL || k == sizeof states / sizeof *states)
        goto out;
    int running = strcmp(state, "running") == 0;
    *why = "rollout_id is not a rollout id";
    if (!running && !(json_is_string(rid) && uuid_valid(json_string_value(rid))))
        goto out;
    *why = "version is not a dotted numeric version";
    if (ver != NULL && !json_is_null(ver) &&
        !(json_is_string(ver) && version_valid(json_string_value(ver))))
        goto out;
    *why = "reason is not a string of at most 256 bytes without control characters";
    if (reason != NULL && !json_is_null(reason)) {
        const char *t = json_string_value(reason);
        if (t == NULL || json_string_length(reason) > 256)
            goto out;
        for (const char *p = t; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                goto out;
    }
    *why = "progress is not a byte count";
    if (progress != NULL && !json_is_null(progress) &&
        !(json_is_integer(progress) && json_integer_value(progress) >= 0))
        goto out;
    /* One row per (rollout, device) and per device in a batch: the latest report wins. */
    char key[80];
    if (json_is_string(ver)) {
        json_object_set_new(versions, device_id,
                            json_pack("{s:s,s:O}", "device_id", device_id, "version", ver));
    }
    if (!running) {
        snprintf(key, sizeof key, "%s/%s", json_string_value(rid), device_id);
        json_object_set_new(reports, key,
                            json_pack("{s:O,s:s,s:s,s:O?,s:O?}", "rollout_id", rid, "device_id",
                                      device_id, "state", state, "reason", reason, "progress",
                                      progress));
    }
    rc = 0;
    *why = NULL;
out:
    json_decref(j);
    return rc;
}

/* The values of an object as a JSON array text (NULL when empty). */
static char *values_text(json_t *obj)
{
    if (json_object_size(obj) == 0)
        return NULL;
    json_t *a = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        json_array_append(a, v);
    }
    char *text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return text;
}

static void apply_reports(struct hub_rollouts *e, struct report *list)
{
    json_t *reports = json_object(), *versions = json_object();
    unsigned long long rejected = 0;
    while (list != NULL) {
        struct report *r = list;
        const char *why;
        list = r->next;
        if (hub_rollouts_parse_state(r->device_id, r->data, r->len, reports, versions, &why) != 0 &&
            ++rejected <= REFUSALS_LOGGED)
            hub_warn("rollouts: device %s: firmware/state refused: %s", r->device_id, why);
        free(r);
    }
    if (rejected > REFUSALS_LOGGED)
        hub_warn("rollouts: %llu more firmware/state reports refused", rejected - REFUSALS_LOGGED);
    char *rt = values_text(reports), *vt = values_text(versions);
    long long n = 0;
    int rc = 0;
    if (rt != NULL && (rc = hub_db_rollouts_report(e->db, rt, &n)) != 0)
        hub_warn("rollouts: %zu state report(s) not stored", json_object_size(reports));
    if (vt != NULL && hub_db_devices_set_firmware_versions(e->db, vt) != 0)
        hub_warn("rollouts: %zu firmware version(s) not stored", json_object_size(versions));
    pthread_mutex_lock(&e->lock);
    e->rejected += rejected;
    e->applied += (unsigned long long)n;
    if (rc != 0)
        e->dropped += json_object_size(reports);
    pthread_mutex_unlock(&e->lock);
    free(rt);
    free(vt);
    json_decref(reports);
    json_decref(versions);
}

void hub_rollouts_report(struct hub_rollouts *e, const char *device_id, const void *payload,
                         size_t len)
{
    struct report *r = NULL;
    if (len <= HUB_ROLLOUTS_STATE_MAX && strlen(device_id) < sizeof r->device_id)
        r = malloc(sizeof *r + len);
    pthread_mutex_lock(&e->lock);
    if (r == NULL || e->nreports >= REPORTS_MAX) {
        e->dropped++;
        pthread_mutex_unlock(&e->lock);
        if (r == NULL)
            hub_warn("rollouts: device %s: firmware/state of %zu bytes dropped", device_id, len);
        free(r);
        return;
    }
    strcpy(r->device_id, device_id);
    memcpy(r->data, payload, len);
    r->len = len;
    r->next = NULL;
    *e->reports_tail = r;
    e->reports_tail = &r->next;
    e->nreports++;
    pthread_mutex_unlock(&e->lock);
}

void hub_rollouts_publish_seen(const char *device_id, const char *topic, size_t tlen,
                               const uint8_t *payload, size_t len, void *ctx)
{
    static const char suffix[] = "/firmware/state";
    size_t idlen = strlen(device_id);
    /* The broker checked the ACL: the topic starts with "devices/<device_id>". */
    if (tlen == 8 + idlen + sizeof suffix - 1 &&
        memcmp(topic + 8 + idlen, suffix, sizeof suffix - 1) == 0)
        hub_rollouts_report(ctx, device_id, payload, len);
}

/* ---- notices ------------------------------------------------------------------------------ */

/* Publishes the rollout's notice to one device. 0, HUB_ERANGE (loop queue full) or HUB_E*. */
static int send_notice(struct hub_rollouts *e, const char *rollout_id, const char *device_id)
{
    json_t *n = json_object_get(e->notices_cache, rollout_id);
    if (n == NULL) {
        int rc = hub_db_rollouts_notice(e->db, rollout_id, &n);
        if (rc != 0)
            return rc;
        json_object_set_new(e->notices_cache, rollout_id, n);
    }
    char url[512], topic[128];
    snprintf(url, sizeof url, "%s/v1/devices/%s/firmware/%s", e->base_url, device_id,
             json_string_value(json_object_get(n, "firmware_id")));
    snprintf(topic, sizeof topic, "devices/%s/firmware/notice", device_id);
    json_object_set_new(n, "url", json_string(url));
    char *text = json_dumps(n, JSON_COMPACT);
    if (text == NULL)
        return HUB_ENOMEM;
    int rc = e->o.publish(e->o.ctx, device_id, topic, text, strlen(text));
    free(text);
    if (rc == 0)
        count(e, &e->notices, 1);
    return rc;
}

/* Sends notices to the devices of pairs (a JSON array of {rollout_id, device_id}) connected
 * here and marks their rows notified. Returns 0 or the first failure. */
static int notify_pairs(struct hub_rollouts *e, json_t *pairs)
{
    json_t *sent = json_array(), *p;
    size_t i;
    int rc = 0;
    json_array_foreach(pairs, i, p)
    {
        const char *rid = json_string_value(json_object_get(p, "rollout_id"));
        const char *did = json_string_value(json_object_get(p, "device_id"));
        if (rid == NULL || did == NULL || !hub_presence_connected(e->o.presence, did))
            continue;
        if ((rc = send_notice(e, rid, did)) != 0)
            break;
        json_array_append(sent, p);
    }
    char *text = json_array_size(sent) ? json_dumps(sent, JSON_COMPACT) : NULL;
    if (text != NULL) {
        int mrc = hub_db_rollouts_mark_notified(e->db, text);
        rc = rc ? rc : mrc;
    }
    free(text);
    json_decref(sent);
    return rc;
}

/* Re-sends the notices of pending/notified rows to devices that connected. */
static void resend(struct hub_rollouts *e, json_t *ids)
{
    json_t *pairs;
    char *text = json_dumps(ids, JSON_COMPACT);
    if (text != NULL && hub_db_rollouts_for_devices(e->db, text, &pairs) == 0) {
        if (json_array_size(pairs) > 0)
            notify_pairs(e, pairs);
        json_decref(pairs);
    }
    free(text);
}

/* Sends the notices of waves from..to of a rollout to the devices connected here, a page
 * at a time. Returns 0 when every page was handled. */
static int dispatch(struct hub_rollouts *e, const char *id, int from, int to, int with_notified)
{
    char after[37] = "";
    for (;;) {
        json_t *ids, *pairs = json_array(), *v;
        size_t i;
        int rc = hub_db_rollouts_to_notify(e->db, id, from, to, with_notified,
                                           after[0] ? after : NULL, LOOKUP_BATCH, &ids);
        if (rc != 0) {
            json_decref(pairs);
            return rc;
        }
        json_array_foreach(ids, i, v)
        {
            json_array_append_new(pairs, json_pack("{s:s,s:O}", "rollout_id", id, "device_id", v));
        }
        size_t n = json_array_size(ids);
        if (n > 0)
            snprintf(after, sizeof after, "%s", json_string_value(json_array_get(ids, n - 1)));
        rc = notify_pairs(e, pairs);
        json_decref(pairs);
        json_decref(ids);
        if (rc != 0)
            return rc;
        if (n < LOOKUP_BATCH)
            return 0;
    }
}

/* ---- driving ------------------------------------------------------------------------------ */

static long long num(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static int audit(struct hub_rollouts *e, const char *action, const char *id, json_t *details)
{
    char *text = json_dumps(details, JSON_COMPACT);
    int rc = hub_db_audit_insert(e->db, "iothubd:rollouts", "system", action, id, NULL, "ok", text);
    free(text);
    return rc;
}

/* One step of a running rollout this node can lock, in one transaction. */
static void drive(struct hub_rollouts *e, const char *id)
{
    json_t *p = NULL;
    int rc = hub_db_begin(e->db);
    if (rc == 0)
        rc = hub_db_rollouts_progress(e->db, id, &p);
    if (rc != 0) {
        hub_db_rollback(e->db);
        return;
    }
    long long failures = num(p, "failures"), started = num(p, "started");
    long long fc = num(p, "failure_count"), fp = num(p, "failure_percent");
    int wave = (int)num(p, "current_wave"), waves = (int)num(p, "wave_count");
    int settled = json_is_true(json_object_get(p, "settled"));
    int halted = 0, completed = 0;
    if (fc ? failures >= fc : (started > 0 && failures * 100 >= fp * started)) {
        char reason[160];
        if (fc)
            snprintf(reason, sizeof reason, "%lld devices failed (threshold %lld)", failures, fc);
        else
            snprintf(reason, sizeof reason, "%lld of %lld devices failed (threshold %lld%%)",
                     failures, started, fp);
        rc = hub_db_rollouts_finish(e->db, id, "halted", reason);
        json_t *d = json_pack("{s:s,s:I,s:I,s:i}", "reason", reason, "failures",
                              (json_int_t)failures, "started", (json_int_t)started, "wave", wave);
        if (rc == 0)
            rc = audit(e, "rollout.halt", id, d);
        json_decref(d);
        halted = rc == 0;
        if (halted)
            hub_warn("rollouts: %s halted: %s", id, reason);
    } else if (!settled) {
        if (num(p, "open") == 0 || json_is_true(json_object_get(p, "timed_out")))
            rc = hub_db_rollouts_settle(e->db, id);
        if (rc == 0 && (num(p, "open") == 0 || json_is_true(json_object_get(p, "timed_out"))) &&
            wave + 1 >= waves) {
            rc = hub_db_rollouts_finish(e->db, id, "completed", NULL);
            json_t *d = json_pack("{s:i}", "waves", waves);
            if (rc == 0)
                rc = audit(e, "rollout.complete", id, d);
            json_decref(d);
            completed = rc == 0;
        }
    } else if (json_is_true(json_object_get(p, "pause_over")) && wave + 1 < waves) {
        rc = hub_db_rollouts_next_wave(e->db, id);
        if (rc == 0)
            hub_info("rollouts: %s: wave %d of %d started", id, wave + 2, waves);
    }
    json_decref(p);
    if (rc != 0 || hub_db_commit(e->db) != 0) {
        hub_db_rollback(e->db);
        return;
    }
    if (halted)
        count(e, &e->halts, 1);
    if (completed) {
        count(e, &e->completed, 1);
        hub_info("rollouts: %s completed", id);
    }
}

static struct seen *seen_find(struct hub_rollouts *e, const char *id)
{
    for (size_t i = 0; i < e->nseen; i++)
        if (strcmp(e->seen[i].id, id) == 0)
            return &e->seen[i];
    if (e->nseen == SEEN_MAX)
        return NULL;
    struct seen *s = &e->seen[e->nseen++];
    snprintf(s->id, sizeof s->id, "%s", id);
    s->wave = -1;
    s->generation = -1;
    return s;
}

/* Drives the running rollouts and sends the notices of the waves started since the last
 * round (every started wave after a resume, or the first time this node sees it). */
static void drive_all(struct hub_rollouts *e)
{
    json_t *list, *r;
    size_t i;
    if (hub_db_rollouts_active(e->db, &list) != 0)
        return;
    for (size_t k = 0; k < e->nseen; k++)
        e->seen[k].live = 0;
    json_array_foreach(list, i, r)
    {
        const char *id = json_string_value(json_object_get(r, "rollout_id"));
        if (id == NULL)
            continue;
        struct seen *s = seen_find(e, id);
        if (s != NULL)
            s->live = 1;
        if (strcmp(json_string_value(json_object_get(r, "state")), "running") != 0)
            continue;
        drive(e, id);
        int wave = (int)num(r, "current_wave"), gen = (int)num(r, "generation");
        if (s == NULL || (s->wave == wave && s->generation == gen))
            continue;
        int fresh = s->generation != gen;
        if (dispatch(e, id, fresh ? 0 : s->wave + 1, wave, fresh) == 0) {
            s->wave = wave;
            s->generation = gen;
        }
    }
    json_decref(list);
    for (size_t k = 0; k < e->nseen;) /* forget the rollouts no longer active */
        if (!e->seen[k].live)
            e->seen[k] = e->seen[--e->nseen];
        else
            k++;
}

static void snapshot_metrics(struct hub_rollouts *e)
{
    json_t *list, *r, *v;
    size_t i;
    const char *state;
    if (hub_db_rollouts_metrics(e->db, METRICS_ROLLOUTS, &list) != 0)
        return;
    hub_buf_t info = HUB_BUF_INIT, devices = HUB_BUF_INIT;
    json_array_foreach(list, i, r)
    {
        const char *id = json_string_value(json_object_get(r, "rollout_id"));
        hub_buf_printf(&info, "iothub_rollout_info{rollout=\"%s\",state=\"%s\"} 1\n", id,
                       json_string_value(json_object_get(r, "state")));
        json_object_foreach(json_object_get(r, "counts"), state, v)
        {
            hub_buf_printf(&devices, "iothub_rollout_devices{rollout=\"%s\",state=\"%s\"} %lld\n",
                           id, state, (long long)json_integer_value(v));
        }
    }
    json_decref(list);
    pthread_mutex_lock(&e->lock);
    hub_buf_free(&e->info);
    hub_buf_free(&e->devices);
    e->info = info;
    e->devices = devices;
    pthread_mutex_unlock(&e->lock);
}

/* ---- the thread --------------------------------------------------------------------------- */

/* Takes the connections at least CONNECT_DELAY_MS old (under lock) as a JSON array. */
static json_t *take_connects(struct hub_rollouts *e, uint64_t now)
{
    json_t *ids = NULL;
    while (e->ccount > 0 && (ids == NULL || json_array_size(ids) < LOOKUP_BATCH)) {
        struct connect *c = &e->connects[e->chead];
        if (c->at_ms + CONNECT_DELAY_MS > now)
            break;
        if (ids == NULL)
            ids = json_array();
        json_array_append_new(ids, json_string(c->device_id));
        e->chead = (e->chead + 1) % CONNECTS_MAX;
        e->ccount--;
    }
    return ids;
}

static void *run(void *arg)
{
    struct hub_rollouts *e = arg;
    unsigned round = 0;
    pthread_mutex_lock(&e->lock);
    while (!e->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += ROUND_MS / 1000;
        pthread_cond_timedwait(&e->wake, &e->lock, &until);
        if (e->stop)
            break;
        struct report *reports = e->reports;
        size_t nreports = e->nreports;
        e->reports = NULL;
        e->reports_tail = &e->reports;
        e->nreports = 0;
        json_t *ids = take_connects(e, now_ms());
        pthread_mutex_unlock(&e->lock);

        if (e->db != NULL && PQstatus(e->db) != CONNECTION_OK && hub_db_reset(e->db) != 0) {
            PQfinish(e->db);
            e->db = NULL;
        }
        if (e->db == NULL)
            hub_db_connect(e->db_url, &e->db);
        if (e->db == NULL) {
            while (reports != NULL) { /* the database is unreachable: reports are lost */
                struct report *r = reports;
                reports = r->next;
                free(r);
            }
            count(e, &e->dropped, nreports);
        } else {
            e->notices_cache = json_object();
            apply_reports(e, reports);
            if (ids != NULL)
                resend(e, ids);
            drive_all(e);
            if (round++ % METRICS_EVERY == 0)
                snapshot_metrics(e);
            json_decref(e->notices_cache);
            e->notices_cache = NULL;
        }
        json_decref(ids);
        pthread_mutex_lock(&e->lock);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

struct hub_rollouts *hub_rollouts_new(const struct hub_rollouts_options *o)
{
    struct hub_rollouts *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->o = *o;
    const struct hub_config *cfg = o->cfg;
    size_t host = strcspn(cfg->hostname, ",");
    e->db_url = strdup(cfg->db_url);
    e->base_url = malloc(host + 32);
    if (e->base_url != NULL)
        snprintf(e->base_url, host + 32, "https://%.*s:%d", (int)host, cfg->hostname,
                 cfg->api_listen.port);
    e->connects = calloc(CONNECTS_MAX, sizeof *e->connects);
    e->reports_tail = &e->reports;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, NULL);
    if (e->db_url == NULL || e->base_url == NULL || e->connects == NULL ||
        pthread_create(&e->thread, NULL, run, e) != 0) {
        hub_error("rollouts: cannot start the engine thread");
        e->stopped = 1;
        hub_rollouts_free(e);
        return NULL;
    }
    return e;
}

void hub_rollouts_stop(struct hub_rollouts *e)
{
    if (e == NULL || e->stopped)
        return;
    pthread_mutex_lock(&e->lock);
    e->stop = 1;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->thread, NULL);
    e->stopped = 1;
}

void hub_rollouts_free(struct hub_rollouts *e)
{
    if (e == NULL)
        return;
    hub_rollouts_stop(e);
    while (e->reports != NULL) {
        struct report *r = e->reports;
        e->reports = r->next;
        free(r);
    }
    PQfinish(e->db);
    hub_buf_free(&e->info);
    hub_buf_free(&e->devices);
    free(e->connects);
    free(e->db_url);
    free(e->base_url);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->wake);
    free(e);
}

void hub_rollouts_connected(struct hub_rollouts *e, const char *device_id)
{
    if (strlen(device_id) >= sizeof e->connects->device_id)
        return;
    pthread_mutex_lock(&e->lock);
    if (e->ccount < CONNECTS_MAX) {
        struct connect *c = &e->connects[(e->chead + e->ccount) % CONNECTS_MAX];
        strcpy(c->device_id, device_id);
        c->at_ms = now_ms();
        e->ccount++;
    }
    pthread_mutex_unlock(&e->lock);
}

int hub_rollouts_metrics(struct hub_rollouts *e, hub_buf_t *out)
{
    pthread_mutex_lock(&e->lock);
    int rc = hub_buf_printf(
        out,
        "# HELP iothub_rollout_notices_total Firmware notices published to devices by this node.\n"
        "# TYPE iothub_rollout_notices_total counter\n"
        "iothub_rollout_notices_total %llu\n"
        "# HELP iothub_rollout_state_reports_total Device firmware/state reports: applied to a"
        " rollout row, rejected (malformed, unknown state) or dropped (too large, queue full,"
        " database unreachable).\n"
        "# TYPE iothub_rollout_state_reports_total counter\n"
        "iothub_rollout_state_reports_total{result=\"applied\"} %llu\n"
        "iothub_rollout_state_reports_total{result=\"rejected\"} %llu\n"
        "iothub_rollout_state_reports_total{result=\"dropped\"} %llu\n"
        "# HELP iothub_rollout_halts_total Rollouts this node halted on their failure threshold.\n"
        "# TYPE iothub_rollout_halts_total counter\n"
        "iothub_rollout_halts_total %llu\n"
        "# HELP iothub_rollout_completions_total Rollouts this node completed.\n"
        "# TYPE iothub_rollout_completions_total counter\n"
        "iothub_rollout_completions_total %llu\n"
        "# HELP iothub_rollout_info State of the 20 most relevant rollouts (1 per rollout).\n"
        "# TYPE iothub_rollout_info gauge\n",
        e->notices, e->applied, e->rejected, e->dropped, e->halts, e->completed);
    if (rc == 0 && e->info.len > 0)
        rc = hub_buf_append(out, e->info.data, e->info.len);
    if (rc == 0)
        rc = hub_buf_puts(out, "# HELP iothub_rollout_devices Devices of those rollouts by device"
                               " state.\n# TYPE iothub_rollout_devices gauge\n");
    if (rc == 0 && e->devices.len > 0)
        rc = hub_buf_append(out, e->devices.data, e->devices.len);
    pthread_mutex_unlock(&e->lock);
    return rc;
}
