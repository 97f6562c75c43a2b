/* A claim lives from hooks.claim to hub_broker_claim_done and goes through at most three
 * feed jobs, one at a time: lookup (owner, alive?), ask (the NOTIFY), load (rows → memory,
 * owner = this node); the loop then restores the rows into the broker. While a job runs the
 * claim is not freed; a claim waiting for an answer (no job) may time out. Payloads from
 * other nodes are checked like any input: fields bounded, unknown shapes ignored (logged). */
#include "server/takeover.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/mqtt_state.h"
#include "db/nodes.h"
#include "util/error.h"
#include "util/log.h"

#define CHANNEL "iothub_session"
#define KEY_MAX 320
#define NAME_MAX_ 65
#define MAX_CLAIMS 10000 /* claims in progress; past it a CONNECT starts a new session */
#define TICK_MS 100

enum rec_kind { REC_SESSION, REC_SUB, REC_DELIVERY, REC_INCOMING };

/* One loaded row; its strings follow the struct in the same block. */
struct rec {
    enum rec_kind kind;
    uint32_t expiry_s, offline_s;
    uint8_t qos;
    int state;
    uint16_t pid;
    uint64_t id;
    const char *text; /* filter or topic */
    size_t tlen;
    const uint8_t *payload;
    size_t len;
    struct rec *next;
};

enum claim_state { C_LOOKUP, C_ASK, C_ASKED, C_LOAD };

struct claim {
    struct hub_takeover *t;
    char key[KEY_MAX + 1];
    char owner[NAME_MAX_];
    enum claim_state state;
    int in_job;   /* a feed job holds the claim */
    int ask;      /* lookup's verdict: a live owner must release it first */
    int released; /* the owner's answer came */
    int found;    /* the session exists in PostgreSQL */
    int stored;   /* lookup's verdict: a row exists (0: none; the owner column then empty) */
    int dead;     /* lookup's verdict: its owner is another node, not alive */
    uint64_t deadline;
    struct rec *recs, **tail;
    int load_rc; /* a loader callback's failure */
    struct claim *prev, *next;
};

/* An answer to send as the owner: "released:<requester>:<node>:<key>". */
struct answer {
    struct hub_takeover *t;
    char payload[16 + 2 * NAME_MAX_ + KEY_MAX];
};

struct stats {
    unsigned long long claims, asked, answered, timeouts, failed, loaded, dead_owner, stale;
};

/* A check after each (re)connection of the feed (outage): which of the offline sessions in
 * memory another node took over while this one was cut from PostgreSQL. */
struct stale {
    struct hub_takeover *t;
    hub_buf_t keys;  /* a text[] literal */
    hub_buf_t found; /* keys held elsewhere, each followed by NUL, its owner, NUL */
    size_t n;
};

struct hub_takeover {
    uv_loop_t *loop;
    struct hub_pgfeed *pg;
    struct hub_broker *broker;
    char node[NAME_MAX_];
    int (*flush)(void *flush_ctx, void (*done)(int rc, void *arg), void *arg);
    void *flush_ctx;
    struct claim *claims;
    size_t nclaims;
    uv_timer_t tick;
    int stopping, released, timer_closed, answers, checking; /* checking: a struct stale */
    pthread_mutex_t stats_lock;
    struct stats st;
};

#define COUNT(t, field)                                                                            \
    do {                                                                                           \
        pthread_mutex_lock(&(t)->stats_lock);                                                      \
        (t)->st.field++;                                                                           \
        pthread_mutex_unlock(&(t)->stats_lock);                                                    \
    } while (0)

static void free_recs(struct rec *r)
{
    while (r != NULL) {
        struct rec *next = r->next;
        free(r);
        r = next;
    }
}

static void free_if_done(struct hub_takeover *t)
{
    if (!t->released || !t->timer_closed || t->nclaims > 0 || t->answers > 0 || t->checking)
        return;
    pthread_mutex_destroy(&t->stats_lock);
    free(t);
}

/* Ends a claim: the parked CONNECTs go on (ok) or are refused; the claim is freed. */
static void finish(struct claim *c, int ok)
{
    struct hub_takeover *t = c->t;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        t->claims = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    t->nclaims--;
    if (!t->stopping)
        hub_broker_claim_done(t->broker, c->key, ok);
    if (!ok && !t->stopping)
        COUNT(t, failed);
    free_recs(c->recs);
    free(c);
    free_if_done(t);
}

/* ---- loading (thread pool) ---------------------------------------------------------------- */

static struct rec *rec_new(struct claim *c, enum rec_kind kind, size_t extra)
{
    struct rec *r = calloc(1, sizeof *r + extra + 1);
    if (r == NULL) {
        c->load_rc = HUB_ENOMEM;
        return NULL;
    }
    r->kind = kind;
    *c->tail = r;
    c->tail = &r->next;
    return r;
}

static int on_session(void *ctx, const char *key, uint32_t expiry_s, uint32_t offline_s)
{
    (void)key;
    struct claim *c = ctx;
    struct rec *r = rec_new(c, REC_SESSION, 0);
    if (r == NULL)
        return HUB_ENOMEM;
    r->expiry_s = expiry_s;
    r->offline_s = offline_s;
    c->found = 1;
    return 0;
}

static int on_sub(void *ctx, const char *key, const char *filter, int qos)
{
    (void)key;
    struct claim *c = ctx;
    size_t n = strlen(filter);
    struct rec *r = rec_new(c, REC_SUB, n);
    if (r == NULL)
        return HUB_ENOMEM;
    char *p = (char *)(r + 1);
    memcpy(p, filter, n);
    r->text = p;
    r->tlen = n;
    r->qos = (uint8_t)qos;
    return 0;
}

static int on_delivery(void *ctx, const char *key, uint64_t id, const char *topic, size_t tlen,
                       const uint8_t *payload, size_t len, int qos, int state, uint16_t pid)
{
    (void)key;
    struct claim *c = ctx;
    struct rec *r = rec_new(c, REC_DELIVERY, tlen + len);
    if (r == NULL)
        return HUB_ENOMEM;
    char *p = (char *)(r + 1);
    memcpy(p, topic, tlen);
    memcpy(p + tlen, payload, len);
    r->text = p;
    r->tlen = tlen;
    r->payload = (const uint8_t *)p + tlen;
    r->len = len;
    r->id = id;
    r->qos = (uint8_t)qos;
    r->state = state;
    r->pid = pid;
    return 0;
}

static int on_incoming(void *ctx, const char *key, uint16_t pid)
{
    (void)key;
    struct claim *c = ctx;
    struct rec *r = rec_new(c, REC_INCOMING, 0);
    if (r == NULL)
        return HUB_ENOMEM;
    r->pid = pid;
    return 0;
}

/* Owner and liveness: ask when a live other node holds the session. */
static int lookup_work(PGconn *db, void *arg)
{
    struct claim *c = arg;
    int found = 0;
    c->ask = c->dead = 0;
    int rc = hub_db_mqtt_session_owner(db, c->key, c->owner, sizeof c->owner, &found);
    c->stored = found;
    if (rc != 0 || !found || c->owner[0] == 0 || strcmp(c->owner, c->t->node) == 0)
        return rc;
    int alive = hub_db_nodes_alive_name(db, c->owner);
    if (alive < 0)
        return alive;
    c->ask = alive;
    c->dead = !alive;
    if (!alive)
        COUNT(c->t, dead_owner);
    return 0;
}

static int ask_work(PGconn *db, void *arg)
{
    struct claim *c = arg;
    char payload[16 + 2 * NAME_MAX_ + KEY_MAX];
    snprintf(payload, sizeof payload, "takeover:%s:%s:%s", c->owner, c->t->node, c->key);
    return hub_db_notify(db, CHANNEL, payload);
}

static int load_work(PGconn *db, void *arg)
{
    struct claim *c = arg;
    c->found = 0;
    c->load_rc = 0;
    free_recs(c->recs);
    c->recs = NULL;
    c->tail = &c->recs;
    struct hub_db_mqtt_loader l = {
        .ctx = c,
        .session = on_session,
        .sub = on_sub,
        .delivery = on_delivery,
        .incoming = on_incoming,
    };
    int rc = hub_db_mqtt_load_session(db, c->key, &l);
    if (rc == 0)
        rc = c->load_rc;
    if (rc == 0 && c->found)
        rc = hub_db_mqtt_set_owner(db, c->key, c->t->node);
    return rc;
}

/* ---- loop --------------------------------------------------------------------------------- */

static void start_load(struct claim *c);

/* The rows into the broker, then the CONNECT goes on. */
static void restore(struct claim *c)
{
    struct hub_broker *b = c->t->broker;
    int rc = 0;
    size_t subs = 0, deliveries = 0;
    for (struct rec *r = c->recs; r != NULL && rc >= 0; r = r->next) {
        switch (r->kind) {
        case REC_SESSION: /* expired while stored (1): dropped, the CONNECT starts anew */
            rc = hub_broker_restore_session_since(b, c->key, r->expiry_s, r->offline_s);
            if (rc == 1) {
                c->found = 0;
                finish(c, 1);
                return;
            }
            break;
        case REC_SUB:
            rc = hub_broker_restore_sub(b, c->key, r->text, r->qos);
            subs++;
            break;
        case REC_DELIVERY:
            rc = hub_broker_restore_delivery(b, c->key, r->text, r->tlen, r->payload, r->len,
                                             r->qos, r->id, r->state, r->pid);
            deliveries++;
            break;
        case REC_INCOMING:
            rc = hub_broker_restore_incoming(b, c->key, r->pid);
            break;
        }
    }
    if (rc < 0) {
        hub_warn("takeover: restoring session %s failed: %s", c->key, hub_strerror(rc));
        finish(c, 0);
        return;
    }
    if (c->found) {
        hub_info("takeover: session %s continues here (%zu subscriptions, %zu queued)", c->key,
                 subs, deliveries);
        COUNT(c->t, loaded);
    } else {
        hub_info("takeover: session %s is not stored in PostgreSQL (%s): a new session "
                 "starts here",
                 c->key, c->stored ? "its row went while it was loaded" : "no row");
    }
    finish(c, 1);
}

static void load_done(int rc, void *arg)
{
    struct claim *c = arg;
    c->in_job = 0;
    if (c->t->stopping || rc != 0) {
        if (rc != 0 && !c->t->stopping)
            hub_warn("takeover: loading session %s failed: %s", c->key, hub_strerror(rc));
        finish(c, 0);
        return;
    }
    restore(c);
}

static void start_load(struct claim *c)
{
    c->state = C_LOAD;
    c->in_job = 1;
    hub_pgfeed_run(c->t->pg, load_work, load_done, c);
}

static void ask_done(int rc, void *arg)
{
    struct claim *c = arg;
    c->in_job = 0;
    if (c->t->stopping || rc != 0) {
        finish(c, 0);
        return;
    }
    c->state = C_ASKED;
    if (c->released) /* answered while the job ended */
        start_load(c);
}

static void lookup_done(int rc, void *arg)
{
    struct claim *c = arg;
    c->in_job = 0;
    if (c->t->stopping || rc != 0) {
        finish(c, 0);
        return;
    }
    if (!c->ask) {
        if (c->dead)
            hub_info("takeover: session %s was held by node %s, which is not alive: loading "
                     "what it stored",
                     c->key, c->owner);
        else if (c->stored)
            hub_info("takeover: session %s is stored as %s's: loading it", c->key,
                     c->owner[0] ? c->owner : "no node");
        start_load(c);
        return;
    }
    hub_info("takeover: session %s is held by node %s: asking it to release it", c->key,
             c->owner);
    COUNT(c->t, asked);
    c->state = C_ASK;
    c->deadline = uv_now(c->t->loop) + HUB_TAKEOVER_WAIT_MS;
    c->in_job = 1;
    hub_pgfeed_run(c->t->pg, ask_work, ask_done, c);
}

int hub_takeover_claim(struct hub_takeover *t, const char *key)
{
    if (t->stopping || strlen(key) > KEY_MAX)
        return 0;
    for (struct claim *c = t->claims; c != NULL; c = c->next)
        if (strcmp(c->key, key) == 0)
            return 1; /* the same claim ends both parked CONNECTs */
    if (t->nclaims >= MAX_CLAIMS) {
        hub_warn("takeover: %d claims in progress: session %s starts here", MAX_CLAIMS, key);
        return 0;
    }
    struct claim *c = calloc(1, sizeof *c);
    if (c == NULL)
        return 0;
    c->t = t;
    strcpy(c->key, key);
    c->tail = &c->recs;
    c->next = t->claims;
    if (t->claims != NULL)
        t->claims->prev = c;
    t->claims = c;
    t->nclaims++;
    COUNT(t, claims);
    c->state = C_LOOKUP;
    c->in_job = 1;
    hub_pgfeed_run(t->pg, lookup_work, lookup_done, c);
    return 1;
}

/* ---- as the owner ------------------------------------------------------------------------- */

static int answer_work(PGconn *db, void *arg)
{
    struct answer *a = arg;
    return hub_db_notify(db, CHANNEL, a->payload);
}

static void answer_done(int rc, void *arg)
{
    struct answer *a = arg;
    struct hub_takeover *t = a->t;
    if (rc == 0)
        COUNT(t, answered);
    t->answers--;
    free(a);
    free_if_done(t);
}

static void flushed(int rc, void *arg)
{
    struct answer *a = arg;
    if (rc != 0) /* not written: the new owner would miss records; it times out and retries */
        hub_warn("takeover: the store could not write the released session's records");
    if (rc != 0 || a->t->stopping) {
        a->t->answers--;
        struct hub_takeover *t = a->t;
        free(a);
        free_if_done(t);
        return;
    }
    hub_pgfeed_run(a->t->pg, answer_work, answer_done, a);
}

/* Splits "<a>:<b>:<key>" (names without ':'); 0 when the shape holds. */
static int fields(const char *s, char a[NAME_MAX_], char b[NAME_MAX_], const char **key)
{
    const char *p = strchr(s, ':'), *q = p ? strchr(p + 1, ':') : NULL;
    if (p == NULL || q == NULL || p - s >= NAME_MAX_ || q - p - 1 >= NAME_MAX_ ||
        strlen(q + 1) == 0 || strlen(q + 1) > KEY_MAX)
        return -1;
    memcpy(a, s, (size_t)(p - s));
    a[p - s] = 0;
    memcpy(b, p + 1, (size_t)(q - p - 1));
    b[q - p - 1] = 0;
    *key = q + 1;
    return 0;
}

static void release_for(struct hub_takeover *t, const char *requester, const char *key)
{
    int had = hub_broker_release_session(t->broker, key);
    hub_info("takeover: node %s takes session %s%s", requester, key,
             had ? "" : " (not held here any more)");
    struct answer *a = calloc(1, sizeof *a);
    if (a == NULL)
        return; /* the requester times out */
    a->t = t;
    snprintf(a->payload, sizeof a->payload, "released:%s:%s:%s", requester, t->node, key);
    t->answers++;
    if (t->flush != NULL && t->flush(t->flush_ctx, flushed, a) == 0)
        return;
    flushed(0, a);
}

static int notify_cb(const char *payload, void *ctx)
{
    struct hub_takeover *t = ctx;
    char to[NAME_MAX_], from[NAME_MAX_];
    const char *key;
    if (t->stopping)
        return 0;
    if (strncmp(payload, "takeover:", 9) == 0 && fields(payload + 9, to, from, &key) == 0) {
        if (strcmp(to, t->node) == 0)
            release_for(t, from, key);
    } else if (strncmp(payload, "released:", 9) == 0 &&
               fields(payload + 9, to, from, &key) == 0) {
        if (strcmp(to, t->node) != 0)
            return 0;
        for (struct claim *c = t->claims; c != NULL; c = c->next) {
            if (strcmp(c->key, key) != 0)
                continue;
            c->released = 1;
            if (c->state == C_ASKED && !c->in_job)
                start_load(c);
        }
    } else {
        hub_warn("takeover: ignoring a malformed %s notification \"%.80s\"", CHANNEL, payload);
    }
    return 0;
}

/* ---- sessions taken over while this node was cut (outage) -------------------------------- */

/* While this node could not reach PostgreSQL its peers found it dead and loaded the sessions
 * of the clients that reconnected to them; this node still held them in memory, offline. A
 * client coming back here would have resumed that stale copy (no claim: it is in memory):
 * subscriptions made since on the other node missing, its queue partly delivered there, the
 * stored state moving back and forth. So once the feed is up again, and once this node's
 * own pending records are committed (the flush barrier: a session this node resumed while
 * cut is then recorded as its own), every offline session the database says another node
 * holds is released here (dropped from memory, the stored state untouched); a client coming
 * back claims it from that node like any takeover. */
static void stale_free(struct stale *st)
{
    struct hub_takeover *t = st->t;
    hub_buf_free(&st->keys);
    hub_buf_free(&st->found);
    free(st);
    t->checking = 0;
    free_if_done(t);
}

static void stale_key(const char *key, void *ctx)
{
    struct stale *st = ctx;
    hub_buf_puts(&st->keys, st->n++ == 0 ? "{\"" : ",\"");
    for (const char *p = key; *p != 0; p++) {
        if (*p == '"' || *p == '\\')
            hub_buf_append(&st->keys, "\\", 1);
        hub_buf_append(&st->keys, p, 1);
    }
    hub_buf_puts(&st->keys, "\"");
}

static int stale_row(void *ctx, const char *key, const char *owner)
{
    struct stale *st = ctx;
    int rc = hub_buf_append(&st->found, key, strlen(key) + 1);
    return rc != 0 ? rc : hub_buf_append(&st->found, owner, strlen(owner) + 1);
}

static int stale_work(PGconn *db, void *arg)
{
    struct stale *st = arg;
    return hub_db_mqtt_owned_elsewhere(db, (const char *)st->keys.data, st->t->node, stale_row,
                                       st);
}

static void stale_done(int rc, void *arg)
{
    struct stale *st = arg;
    struct hub_takeover *t = st->t;
    size_t released = 0;
    for (size_t off = 0; rc == 0 && !t->stopping && off < st->found.len;) {
        const char *key = (const char *)st->found.data + off;
        const char *owner = key + strlen(key) + 1;
        off = (size_t)(owner - (const char *)st->found.data) + strlen(owner) + 1;
        if (hub_broker_release_offline(t->broker, key) != 1)
            continue; /* connected here meanwhile: its CONNECT recorded it as this node's */
        hub_info("takeover: session %s was taken over by node %s while this node was cut from "
                 "PostgreSQL: its stale copy here is dropped (a client coming back claims it)",
                 key, owner);
        released++;
    }
    if (rc != 0 && !t->stopping)
        hub_warn("takeover: checking %zu offline session(s) against PostgreSQL failed: %s "
                 "(checked again at the next reconnection)",
                 st->n, hub_strerror(rc));
    pthread_mutex_lock(&t->stats_lock);
    t->st.stale += released;
    pthread_mutex_unlock(&t->stats_lock);
    stale_free(st);
}

static void stale_flushed(int rc, void *arg)
{
    struct stale *st = arg;
    if (rc != 0 || st->t->stopping || hub_pgfeed_run(st->t->pg, stale_work, stale_done, st) != 0)
        stale_free(st);
}

/* pgfeed loaded: the feed connected (at start too: then nothing is held elsewhere). */
static void reconnected(void *ctx)
{
    struct hub_takeover *t = ctx;
    if (t->stopping || t->checking)
        return;
    struct stale *st = calloc(1, sizeof *st);
    if (st == NULL)
        return;
    st->t = t;
    t->checking = 1;
    hub_broker_each_offline(t->broker, stale_key, st);
    if (st->n == 0 || hub_buf_puts(&st->keys, "}") != 0) {
        stale_free(st);
        return;
    }
    if (t->flush == NULL || t->flush(t->flush_ctx, stale_flushed, st) != 0)
        stale_flushed(0, st);
}

static void tick_cb(uv_timer_t *h)
{
    struct hub_takeover *t = h->data;
    uint64_t now = uv_now(t->loop);
    struct claim *c = t->claims;
    while (c != NULL) {
        struct claim *next = c->next;
        if (c->state == C_ASKED && !c->in_job && now >= c->deadline) {
            hub_warn("takeover: node %s did not release session %s within %d ms: refused "
                     "(the client retries)",
                     c->owner, c->key, HUB_TAKEOVER_WAIT_MS);
            COUNT(t, timeouts);
            finish(c, 0);
        }
        c = next;
    }
}

static void release_cb(void *ctx)
{
    struct hub_takeover *t = ctx;
    t->released = 1;
    free_if_done(t);
}

static void timer_closed(uv_handle_t *h)
{
    struct hub_takeover *t = h->data;
    t->timer_closed = 1;
    free_if_done(t);
}

int hub_takeover_start(const struct hub_takeover_options *o, struct hub_takeover **out)
{
    struct hub_takeover *t = calloc(1, sizeof *t);
    if (t == NULL)
        return HUB_ENOMEM;
    t->loop = o->loop;
    t->pg = o->pg;
    t->broker = o->broker;
    t->flush = o->flush;
    t->flush_ctx = o->flush_ctx;
    snprintf(t->node, sizeof t->node, "%s", o->node);
    pthread_mutex_init(&t->stats_lock, NULL);
    struct hub_pgfeed_listener l = {
        .channel = CHANNEL,
        .loaded = reconnected, /* outage */
        .notify = notify_cb,
        .release = release_cb,
        .ctx = t,
    };
    int rc = hub_pgfeed_add(o->pg, &l);
    if (rc != 0) {
        pthread_mutex_destroy(&t->stats_lock);
        free(t);
        return rc;
    }
    uv_timer_init(t->loop, &t->tick);
    t->tick.data = t;
    uv_timer_start(&t->tick, tick_cb, TICK_MS, TICK_MS);
    *out = t;
    return 0;
}

int hub_takeover_metrics(struct hub_takeover *t, hub_buf_t *out)
{
    pthread_mutex_lock(&t->stats_lock);
    struct stats s = t->st;
    pthread_mutex_unlock(&t->stats_lock);
    return hub_buf_printf(
        out,
        "# HELP iothub_takeover_claims_total CONNECTs of persistent sessions not in this node's "
        "memory, parked while their owner was looked up.\n"
        "# TYPE iothub_takeover_claims_total counter\n"
        "iothub_takeover_claims_total %llu\n"
        "# HELP iothub_takeover_requests_total Sessions another live node held: asked to "
        "release them.\n"
        "# TYPE iothub_takeover_requests_total counter\n"
        "iothub_takeover_requests_total %llu\n"
        "# HELP iothub_takeover_released_total Sessions this node released to another node.\n"
        "# TYPE iothub_takeover_released_total counter\n"
        "iothub_takeover_released_total %llu\n"
        "# HELP iothub_takeover_timeouts_total Takeovers refused: the owner did not answer "
        "within 2 s.\n"
        "# TYPE iothub_takeover_timeouts_total counter\n"
        "iothub_takeover_timeouts_total %llu\n"
        "# HELP iothub_takeover_failures_total Claims that ended refused (timeouts, database "
        "unreachable, restore failures).\n"
        "# TYPE iothub_takeover_failures_total counter\n"
        "iothub_takeover_failures_total %llu\n"
        "# HELP iothub_takeover_sessions_loaded_total Sessions loaded from PostgreSQL on a "
        "claim (taken over, or left by a dead node).\n"
        "# TYPE iothub_takeover_sessions_loaded_total counter\n"
        "iothub_takeover_sessions_loaded_total %llu\n"
        "# HELP iothub_takeover_dead_owner_total Claims whose owner node was dead (taken at "
        "once).\n"
        "# TYPE iothub_takeover_dead_owner_total counter\n"
        "iothub_takeover_dead_owner_total %llu\n"
        "# HELP iothub_takeover_stale_released_total Offline sessions dropped from memory "
        "after a reconnection to PostgreSQL: another node took them over meanwhile.\n"
        "# TYPE iothub_takeover_stale_released_total counter\n"
        "iothub_takeover_stale_released_total %llu\n",
        s.claims, s.asked, s.answered, s.timeouts, s.failed, s.loaded, s.dead_owner, s.stale);
}

void hub_takeover_stop(struct hub_takeover *t)
{
    if (t == NULL || t->stopping)
        return;
    t->stopping = 1;
    struct claim *c = t->claims;
    while (c != NULL) {
        struct claim *next = c->next;
        if (!c->in_job)
            finish(c, 0);
        c = next;
    }
    uv_timer_stop(&t->tick);
    uv_close((uv_handle_t *)&t->tick, timer_closed);
}
