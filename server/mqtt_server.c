/* Glue between the TLS listeners (net/workers), the broker (mqtt/broker) and PostgreSQL
 * (revocation feed, presence). Commands from the REST API threads are queued under a mutex
 * and run on the loop through a uv_async_t; the caller waits on a condition variable. */
#include "server/mqtt_server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "api/throttle.h"
#include "db/db.h"
#include "db/devices.h"
#include "db/services.h"
#include "mqtt/broker.h"
#include "mqtt/codec.h"
#include "mqtt/topic.h"
#include "server/backbone.h"
#include "server/mqtt_metrics.h"
#include "server/mqtt_quota.h"
#include "server/mqtt_server_internal.h"
#include "server/cluster.h"
#include "server/directory.h"
#include "server/takeover.h"
#include "server/pgfeed.h"
#include "server/mqtt_store.h"
#include "server/presence.h"
#include "server/registration.h"
#include "server/revfeed.h"
#include "server/rollouts.h"
#include "net/revset.h"
#include "net/tls_listener.h"
#include "net/workers.h"
#include "util/error.h"
#include "util/log.h"
#include "util/passhash.h"
#include "util/secure.h"

#define MAX_INFLIGHT 32
#define EARLY_MAX (64 * 1024) /* bytes a service may send while its ACL loads */
#define SERVICES_O "services" /* organizationName of service certificates */
/* Verified against when the id is unknown, so timing does not tell which ids exist. */
#define DUMMY_HASH                                                                                 \
    "pbkdf2-sha256$10000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

/* Per TLS connection: the broker's connection, or a service waiting for its topic patterns
 * (loaded from PostgreSQL on the thread pool, so the loop never waits). */
struct link {
    struct hub_mqtt_server *m;
    hub_wconn_t *conn;
    struct hub_mqtt_conn *c;
    struct hub_mqtt_identity who;
    hub_buf_t early;
    int loading, closed;
    int password;              /* password listener: CONNECT carries id + secret */
    int authed;                /* the secret matched */
    int throttle;              /* hub_throttle_check of the source (OVER: no dummy hash) */
    int checked;               /* throttle: the secret was checked (the database answered) */
    uint8_t refuse_code;       /* device CA certificates: CONNACK code of a refusal, or 0 */
    enum hub_close_reason why; /* set when this file closes the connection */
    char user[64], pass[160];
    uint64_t opened_ms;
    struct link *prev, *next; /* m->waiting */
    json_t *acl;
    uv_work_t work;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- transport --------------------------------------------------------------------------- */

static int transport_write(void *tconn, const void *data, size_t len)
{
    struct link *k = hub_wconn_user(tconn);
    if (k != NULL)
        k->m->bytes_out += len;
    return hub_wconn_write(tconn, data, len);
}

/* A packet whose shared pieces stay in a refcounted message: the worker gets a reference. */
static int transport_write_shared(void *tconn, struct hub_rcbuf *buf,
                                  const struct hub_rcbuf_piece *v, size_t n)
{
    struct link *k = hub_wconn_user(tconn);
    if (k != NULL)
        for (size_t i = 0; i < n; i++)
            k->m->bytes_out += v[i].len;
    return hub_wconn_write_shared(tconn, buf, v, n);
}

/* An accepted CONNECT takes the connection out of the listener's unauthenticated count
 * (mqtt_max_unauthenticated). */
static void transport_accepted(void *tconn)
{
    hub_wconn_authenticated(tconn);
}

static void transport_close(void *tconn)
{
    hub_wconn_close(tconn);
}

/* Broker flow control: a publisher waiting for a full subscriber is not read. */
static void transport_pause(void *tconn, int paused)
{
    hub_wconn_pause(tconn, paused);
}

static const struct hub_mqtt_transport tls_transport = {
    .write = transport_write,
    .write_shared = transport_write_shared,
    .close = transport_close,
    .accepted = transport_accepted,
    .pause = transport_pause,
};

/* Password connections wait in a list until their CONNECT is checked, so the tick can
 * close the ones that never send it. */
static void link_unlink(struct link *k)
{
    if (k->prev != NULL)
        k->prev->next = k->next;
    else if (k->m->waiting == k)
        k->m->waiting = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    k->prev = k->next = NULL;
}

static int uuid_like(const char *s)
{
    return strlen(s) == 36 && strspn(s, "0123456789abcdefABCDEF-") == 36;
}

static void refuse(struct link *k, uint8_t code);

static void open_broker_conn(struct link *k)
{
    if (k->password)
        link_unlink(k);
    if (!hub_cluster_admit(k->m->cluster)) { /* fenced: cut from PostgreSQL (cluster.h) */
        refuse(k, HUB_MQTT_CONNACK_UNAVAILABLE);
        return;
    }
    k->c = hub_mqtt_conn_open(k->m->broker, &tls_transport, k->conn, &k->who, now_ms());
    if (k->c == NULL) {
        k->why = HUB_CLOSE_ERROR;
        hub_wconn_close(k->conn);
    }
}

/* The lookup connection, reset or reopened when broken or closed while idle (after an
 * outage); NULL when the database is unreachable. Call with lookup_lock held. */
static PGconn *lookup_conn(struct hub_mqtt_server *m)
{
    if (m->lookup_db != NULL && !hub_db_idle_ok(m->lookup_db) &&
        hub_db_reset(m->lookup_db) != 0) {
        PQfinish(m->lookup_db);
        m->lookup_db = NULL;
    }
    if (m->lookup_db == NULL)
        hub_db_connect(m->db_url, &m->lookup_db);
    return m->lookup_db;
}

/* Thread pool: checks a password CONNECT's secret (device first, then service) and loads a
 * service's topic patterns. The one lookup connection is held only for the queries: the
 * secret's hash is verified (PBKDF2, constant time, a dummy hash for unknown ids) after the
 * lock is released, so other connections' lookups do not queue behind it. */
static void acl_work(uv_work_t *w)
{
    struct link *k = w->data;
    struct hub_mqtt_server *m = k->m;
    struct hub_db_secret sec;
    int found = 0, reachable;
    pthread_mutex_lock(&m->lookup_lock);
    PGconn *c = lookup_conn(m);
    if (c != NULL && k->password) {
        if (hub_db_devices_secret(c, k->user, &sec) == 0) {
            k->who.kind = HUB_MQTT_DEVICE;
            found = 1;
        } else if (hub_db_services_secret(c, k->user, &sec) == 0) {
            k->who.kind = HUB_MQTT_SERVICE;
            found = 1;
        }
    } else if (c != NULL && k->who.kind == HUB_MQTT_SERVICE &&
               hub_db_services_acl(c, k->who.id, &k->acl) != 0) {
        k->acl = NULL;
    }
    reachable = c != NULL && PQstatus(c) == CONNECTION_OK; /* lost mid-lookup: not a failure */
    pthread_mutex_unlock(&m->lookup_lock);
    if (!k->password)
        return;
    if (found)
        k->authed = hub_passhash_verify(k->pass, sec.hash) && strcmp(sec.status, "revoked");
    else if (reachable && k->throttle != HUB_THROTTLE_OVER)
        hub_passhash_verify(k->pass, DUMMY_HASH); /* same time for unknown ids */
    hub_wipe(k->pass, sizeof k->pass);
    k->checked = reachable;
    if (k->who.kind != HUB_MQTT_SERVICE || !k->authed)
        return;
    pthread_mutex_lock(&m->lookup_lock);
    if ((c = lookup_conn(m)) != NULL && hub_db_services_acl(c, k->who.id, &k->acl) != 0)
        k->acl = NULL;
    pthread_mutex_unlock(&m->lookup_lock);
}

/* Copies a JSON array of strings into a NULL-terminated array (one block). */
static const char **patterns(json_t *a)
{
    size_t n = json_array_size(a), bytes = (n + 1) * sizeof(char *);
    for (size_t i = 0; i < n; i++)
        bytes += json_string_length(json_array_get(a, i)) + 1;
    const char **out = malloc(bytes);
    char *p = out ? (char *)(out + n + 1) : NULL;
    for (size_t i = 0; out != NULL && i < n; i++) {
        const char *v = json_string_value(json_array_get(a, i));
        if (v == NULL)
            v = "";
        out[i] = strcpy(p, v);
        p += strlen(v) + 1;
    }
    if (out != NULL)
        out[n] = NULL;
    return out;
}

static void finish(struct hub_mqtt_server *m);

/* Answers a CONNECT with a refusal code and closes. */
static void refuse(struct link *k, uint8_t code)
{
    uint8_t ack[4];
    size_t n = hub_mqtt_connack(ack, 0, code);
    k->m->bytes_out += n;
    k->why = HUB_CLOSE_REFUSED;
    hub_wconn_write(k->conn, ack, n);
    hub_wconn_close(k->conn);
}

static void acl_done(uv_work_t *w, int status)
{
    struct link *k = w->data;
    struct hub_mqtt_server *m = k->m;
    k->loading = 0;
    const char *st = json_string_value(json_object_get(k->acl, "status"));
    const char **pub = NULL, **sub = NULL;
    if (!k->closed && k->password && k->authed) /* throttle: forgives the source's failures */
        hub_throttle_succeeded(hub_wconn_peer(k->conn));
    if (k->closed) {
        /* the transport went away meanwhile */
    } else if (k->password && !k->authed) { /* throttle: counted (the database answered) */
        if (k->checked)
            hub_throttle_failed(hub_wconn_peer(k->conn), HUB_THROTTLE_MQTT, k->user);
        refuse(k, HUB_MQTT_CONNACK_BAD_CREDENTIALS);
    } else if (k->refuse_code != 0) {
        refuse(k, k->refuse_code);
    } else if (k->who.kind == HUB_MQTT_DEVICE) {
        open_broker_conn(k);
        if (k->c != NULL)
            hub_mqtt_conn_data(k->c, k->early.data, k->early.len, now_ms());
    } else if (k->acl == NULL || st == NULL) {
        hub_warn("mqtt: service %s unknown or the database is unreachable: refused", k->who.id);
        k->why = HUB_CLOSE_REFUSED;
        hub_wconn_close(k->conn);
    } else if (strcmp(st, "revoked") == 0) {
        hub_warn("mqtt: service %s is revoked: refused", k->who.id);
        k->why = HUB_CLOSE_REVOKED;
        hub_wconn_close(k->conn);
    } else if ((pub = patterns(json_object_get(k->acl, "publish"))) == NULL ||
               (sub = patterns(json_object_get(k->acl, "subscribe"))) == NULL) {
        k->why = HUB_CLOSE_ERROR;
        hub_wconn_close(k->conn);
    } else {
        k->who.publish = pub;
        k->who.subscribe = sub;
        open_broker_conn(k); /* copies the patterns */
        if (k->c != NULL && k->early.len > 0)
            hub_mqtt_conn_data(k->c, k->early.data, k->early.len, now_ms());
    }
    free(pub);
    free(sub);
    json_decref(k->acl);
    k->acl = NULL;
    hub_buf_free(&k->early);
    if (k->closed)
        free(k);
    finish(m); /* the job held a reference */
}

/* A device CA's certificate looked up (server/registration.h): go on as that id, or refuse. */
static void registered(void *arg, enum hub_registration_result r, const char *device_id)
{
    struct link *k = arg;
    snprintf(k->who.id, sizeof k->who.id, "%s", device_id);
    k->refuse_code = r == HUB_REG_ACTIVE ? 0
                     : r >= HUB_REG_BUSY ? HUB_MQTT_CONNACK_UNAVAILABLE
                                         : HUB_MQTT_CONNACK_NOT_AUTHORIZED;
    k->work.data = k;
    acl_done(&k->work, 0);
}

static void *on_open(hub_wconn_t *conn, const struct hub_tls_identity *id, void *user)
{
    struct hub_mqtt_server *m = user;
    struct link *k = calloc(1, sizeof *k);
    if (k != NULL && id == NULL) { /* password listener: identity comes with CONNECT */
        k->m = m;
        k->conn = conn;
        k->password = 1;
        k->opened_ms = now_ms();
        k->next = m->waiting;
        if (m->waiting != NULL)
            m->waiting->prev = k;
        m->waiting = k;
        return k;
    }
    if (k != NULL && id != NULL && id->device_ca != NULL) { /* CN: the maker's serial */
        k->m = m;
        k->conn = conn;
        k->loading = 1;
        k->who.kind = HUB_MQTT_DEVICE;
        snprintf(k->who.serial, sizeof k->who.serial, "%s", id->serial_hex);
        m->handles_open++;
        if (hub_registration_start(m->reg, id, hub_wconn_peer(conn), registered, k) != 0)
            registered(k, HUB_REG_BUSY, "");
        return k;
    }
    /* Identities are UUIDs: they become topic levels, so nothing else gets through. */
    if (k == NULL || id == NULL || id->cn == NULL || !uuid_like(id->cn)) {
        if (id != NULL && id->cn != NULL)
            hub_warn("mqtt: certificate CN \"%s\" is not a device or service id: refused", id->cn);
        free(k);
        m->closed[HUB_CLOSE_REFUSED]++; /* on_close will not see it (no link) */
        hub_wconn_close(conn);
        return NULL;
    }
    k->m = m;
    k->conn = conn;
    int service = id->o != NULL && strcmp(id->o, SERVICES_O) == 0;
    k->who.kind = service ? HUB_MQTT_SERVICE : HUB_MQTT_DEVICE;
    for (size_t i = 0; i < 36; i++) /* canonical lower case, as the database prints ids */
        k->who.id[i] = (char)(id->cn[i] >= 'A' && id->cn[i] <= 'F' ? id->cn[i] + 32 : id->cn[i]);
    snprintf(k->who.serial, sizeof k->who.serial, "%s", id->serial_hex);
    if (!service) {
        open_broker_conn(k);
        return k;
    }
    k->loading = 1;
    k->work.data = k;
    m->handles_open++;
    uv_queue_work(m->loop, &k->work, acl_work, acl_done);
    return k;
}

/* Password listeners: once the CONNECT is complete, checks its id and secret off the loop;
 * the buffered bytes (CONNECT included) go to the broker when they match. */
static void password_connect(struct link *k)
{
    size_t plen;
    hub_mqtt_packet_t p;
    const char *why = NULL;
    int rc = hub_mqtt_frame(k->early.data, k->early.len, k->m->max_packet, &plen);
    if (rc == 0)
        return;
    memset(&p, 0, sizeof p);
    if (rc < 0 || hub_mqtt_decode(k->early.data, plen, 0, &p, &why) != 0) {
        if (rc > 0 && (k->early.data[0] >> 4) == HUB_MQTT_CONNECT && p.u.connect.refuse) {
            refuse(k, p.u.connect.refuse);
        } else {
            k->why = rc == HUB_ERANGE ? HUB_CLOSE_LIMIT : HUB_CLOSE_PROTOCOL;
            hub_wconn_close(k->conn);
        }
        k->password = 0;
        return;
    }
    const hub_mqtt_connect_t *cp = &p.u.connect;
    if (p.type != HUB_MQTT_CONNECT) {
        k->why = HUB_CLOSE_PROTOCOL;
        hub_wconn_close(k->conn);
        k->password = 0;
        return;
    }
    if (!cp->has_username || !cp->has_password || cp->username.len != 36 ||
        cp->password.len >= sizeof k->pass) {
        refuse(k, HUB_MQTT_CONNACK_BAD_CREDENTIALS);
        k->password = 0;
        return;
    }
    for (size_t i = 0; i < 36; i++) {
        char ch = cp->username.ptr[i];
        k->user[i] = (char)(ch >= 'A' && ch <= 'F' ? ch + 32 : ch);
    }
    k->user[36] = 0;
    if (!uuid_like(k->user)) {
        refuse(k, HUB_MQTT_CONNACK_BAD_CREDENTIALS);
        k->password = 0;
        return;
    }
    unsigned retry; /* throttle: refused unchecked (CONNACK 5) while the source's delay runs */
    k->throttle = hub_throttle_check(hub_wconn_peer(k->conn), HUB_THROTTLE_MQTT, &retry);
    if (k->throttle == HUB_THROTTLE_BLOCKED) {
        refuse(k, HUB_MQTT_CONNACK_NOT_AUTHORIZED);
        k->password = 0;
        return;
    }
    memcpy(k->pass, cp->password.ptr, cp->password.len);
    k->pass[cp->password.len] = 0;
    snprintf(k->who.id, sizeof k->who.id, "%s", k->user);
    k->loading = 1;
    k->work.data = k;
    k->m->handles_open++;
    uv_queue_work(k->m->loop, &k->work, acl_work, acl_done);
}

static void on_data(hub_wconn_t *conn, const uint8_t *plain, size_t len)
{
    struct link *k = hub_wconn_user(conn);
    if (k == NULL)
        return;
    k->m->bytes_in += len;
    if (k->c != NULL) {
        hub_mqtt_conn_data(k->c, plain, len, now_ms());
        return;
    }
    if (!k->loading && !k->password)
        return; /* being refused */
    if (k->early.len + len > EARLY_MAX || hub_buf_append(&k->early, plain, len) != 0) {
        k->why = HUB_CLOSE_LIMIT;
        hub_wconn_close(conn);
        return;
    }
    if (k->password && !k->loading)
        password_connect(k);
}

/* The reason label of a closing connection: a revocation first, then whoever decided to
 * close (the broker, this file), then what the transport saw. */
static enum hub_close_reason closed_reason(const struct link *k, enum hub_close_reason reason)
{
    enum hub_close_reason r = k->c ? hub_mqtt_conn_close_reason(k->c) : HUB_CLOSE_NONE;
    if (reason == HUB_CLOSE_REVOKED)
        return HUB_CLOSE_REVOKED;
    if (r == HUB_CLOSE_NONE)
        r = k->why;
    if (r != HUB_CLOSE_NONE)
        return r;
    if (reason == HUB_CLOSE_SHUTDOWN || k->m->stopping)
        return HUB_CLOSE_SHUTDOWN;
    return reason == HUB_CLOSE_PEER ? HUB_CLOSE_PEER : HUB_CLOSE_ERROR;
}

static void on_close(hub_wconn_t *conn, enum hub_close_reason reason)
{
    struct link *k = hub_wconn_user(conn);
    if (k == NULL)
        return;
    k->m->closed[closed_reason(k, reason)]++;
    if (k->c != NULL)
        hub_mqtt_conn_closed(k->c, reason == HUB_CLOSE_REVOKED);
    link_unlink(k); /* no-op unless it still waits for its CONNECT */
    if (k->loading) {
        k->closed = 1; /* acl_done frees it */
        return;
    }
    hub_buf_free(&k->early);
    free(k);
}

static const struct hub_workers_callbacks conn_callbacks = {on_open, on_data, on_close};

/* ---- loop-side work ---------------------------------------------------------------------- */

static void presence_cb(const char *device_id, int connected, void *ctx)
{
    struct hub_mqtt_server *m = ctx;
    hub_presence_set(m->presence, device_id, connected);
    if (connected && m->rollouts != NULL)
        hub_rollouts_connected(m->rollouts, device_id);
}


/* Publishes the counters for API threads (see server/mqtt_metrics.h). Loop thread. */
static void metrics_publish(struct hub_mqtt_server *m)
{
    struct hub_mqtt_metrics s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < HUB_LISTENER_COUNT; i++) {
        s.listening[i] = m->listening[i];
        if (m->listening[i])
            hub_workers_stats(m->workers, (size_t)i, &s.tls[i]);
    }
    hub_broker_stats(m->broker, &s.broker);
    memcpy(s.closed, m->closed, sizeof s.closed);
    s.bytes_in = m->bytes_in;
    s.bytes_out = m->bytes_out;
    s.queued_bytes = m->workers != NULL ? hub_workers_queued_bytes(m->workers) : 0;
    s.revoked_serials = hub_revset_count(m->revset);
    if (m->feed != NULL) {
        s.feed_ready = hub_revfeed_ready(m->feed);
        hub_revfeed_stats(m->feed, &s.feed);
    }
    pthread_mutex_lock(&m->metrics_lock);
    m->snap = s;
    pthread_mutex_unlock(&m->metrics_lock);
}

int hub_mqtt_server_metrics(struct hub_mqtt_server *m, hub_buf_t *out)
{
    struct hub_mqtt_metrics s;
    pthread_mutex_lock(&m->metrics_lock);
    s = m->snap;
    pthread_mutex_unlock(&m->metrics_lock);
    int rc = hub_mqtt_metrics_render(&s, out);
    if (rc == 0)
        rc = hub_mqtt_metrics_render_suites(m->listening[HUB_LISTENER_MTLS] ? m->ctx : NULL,
                                            m->pw_ctx, out);
    if (rc == 0 && m->reg != NULL)
        rc = hub_registration_metrics(m->reg, out);
    if (rc == 0 && m->store != NULL)
        rc = hub_mqtt_store_metrics(m->store, out);
    if (rc == 0 && m->cluster != NULL)
        rc = hub_cluster_metrics(m->cluster, out);
    if (rc == 0 && m->takeover != NULL)
        rc = hub_takeover_metrics(m->takeover, out);
    if (rc == 0 && m->directory != NULL)
        rc = hub_directory_metrics(m->directory, out);
    if (rc == 0)
        rc = hub_backbone_metrics(m->backbone, out);
    return rc == 0 && m->rollouts != NULL ? hub_rollouts_metrics(m->rollouts, out) : rc;
}

static void tick_cb(uv_timer_t *t)
{
    struct hub_mqtt_server *m = t->data;
    uint64_t now = now_ms();
    metrics_publish(m);
    hub_broker_tick(m->broker, now);
    hub_registration_tick(m->reg);
    for (struct link *k = m->waiting; k != NULL; k = k->next) {
        if (!k->loading && now - k->opened_ms > m->connect_timeout_s * 1000ull) {
            hub_info("mqtt: %s sent no CONNECT in time: closing", hub_wconn_peer(k->conn));
            k->opened_ms = UINT64_MAX / 2; /* close once */
            k->why = HUB_CLOSE_TIMEOUT;
            hub_wconn_close(k->conn);
        }
    }
}

static void revoked_cb(const char *serial_hex, void *ctx)
{
    struct hub_mqtt_server *m = ctx;
    if (serial_hex != NULL && strncmp(serial_hex, "device:", 7) == 0) {
        size_t n = hub_broker_kick_principal(m->broker, serial_hex + 7, "device revoked or reset");
        if (n > 0)
            hub_info("mqtt: closed %zu session(s) of %s", n, serial_hex);
        return;
    }
    /* A serial, or NULL after the set was reloaded: every worker re-checks its live
     * connections (each closing is logged there). */
    if (m->workers != NULL)
        hub_workers_recheck(m->workers);
}

int hub_mqtt_server_connected(struct hub_mqtt_server *m, const char *device_id)
{
    return hub_presence_connected(m->presence, device_id);
}

/* ---- start / stop ------------------------------------------------------------------------ */

int hub_mqtt_server_start(const struct hub_mqtt_server_options *o, struct hub_mqtt_server **out)
{
    const struct hub_config *cfg = o->cfg;
    *out = NULL;
    struct hub_mqtt_server *m = calloc(1, sizeof *m);
    if (m == NULL)
        return HUB_ENOMEM;
    /* Every field first, so that the one cleanup below (hub_mqtt_server_stop) holds. */
    m->loop = o->loop;
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->lookup_lock, NULL);
    pthread_mutex_init(&m->metrics_lock, NULL);
    pthread_cond_init(&m->done, NULL);
    uv_timer_init(m->loop, &m->tick);
    m->tick.data = m;
    uv_async_init(m->loop, &m->wakeup, hub_mqtt_commands_wakeup);
    m->wakeup.data = m;
    m->handles_open = 2;
    m->max_packet = (size_t)cfg->mqtt_max_packet;
    m->connect_timeout_s = (unsigned)cfg->mqtt_connect_timeout_s;
    struct hub_broker_options bo = {
        .max_packet = m->max_packet,
        .max_queued = (size_t)cfg->mqtt_max_queued,
        .max_inflight = MAX_INFLIGHT,
        .connect_timeout = m->connect_timeout_s,
        .presence = presence_cb,
        .device_publish = hub_rollouts_publish_seen,
        .ctx = m,
    };
    int rc = HUB_ENOMEM;
    m->db_url = strdup(cfg->db_url);
    m->presence = hub_presence_new(cfg->db_url);
    struct hub_rollouts_options ro = {cfg, m->presence, hub_mqtt_commands_publish_async, m};
    bo.device_publish_ctx = m->rollouts = m->presence ? hub_rollouts_new(&ro) : NULL;
    /* Durable state: the store gives the message ids, so it comes before the broker. */
    char node[HUB_CLUSTER_NAME_MAX]; /* sessions' owner: this node's name */
    hub_cluster_node_name(cfg, node);
    struct hub_mqtt_store_options so = {m->loop, cfg->db_url, node,
                                        (size_t)cfg->mqtt_store_max_pending};
    int src = hub_mqtt_store_new(&so, &m->store);
    m->handles_open += m->store != NULL; /* its uv_async_t */
    if (src != 0) {
        rc = src;
        goto out;
    }
    bo.next_id = hub_mqtt_store_next_id;
    bo.next_id_ctx = m->store;
    bo.session_expiry_s = (uint32_t)cfg->mqtt_session_expiry;
    hub_mqtt_quotas_from_config(cfg, &bo.quota);
    m->broker = hub_broker_new(&bo);
    m->revset = hub_revset_new();
    if (m->db_url == NULL || m->broker == NULL || m->revset == NULL || m->presence == NULL ||
        m->rollouts == NULL ||
        hub_registration_new(m->loop, cfg->db_url, (unsigned)cfg->mqtt_max_registrations,
                             &m->reg) != 0)
        goto out;
    struct hub_tls_ctx_options to = {
        .cert_chain_pem = o->cert_chain_pem,
        .key_pem = o->key_pem,
        .ca_pem = o->ca_pem,
        .client_auth = HUB_TLS_CLIENT_REQUIRED,
        .ciphers = cfg->tls_ciphers,
        .more_certs = o->more_certs,
        .n_more_certs = o->n_more_certs,
        .revset = m->revset,
        .tickets = o->tickets,
        .trust = hub_registration_trust(m->reg),
    };
    /* Several nodes: the backbone client, fed by the broker's hooks (server/mqtt_hooks.c). */
    struct hub_backbone_options bbo = {m->loop, cfg, m->broker, hub_mqtt_store_next_id,
                                       m->store};
    if ((rc = hub_backbone_start(&bbo, &m->backbone)) != 0)
        goto out;
    if ((rc = hub_tls_ctx_new(&to, &m->ctx)) != 0)
        goto out;
    if (cfg->mqtt_tls_listen.port != 0) {
        struct hub_tls_ctx_options po = to;
        po.client_auth = HUB_TLS_CLIENT_NONE;
        po.revset = NULL;
        po.trust = NULL;
        if ((rc = hub_tls_ctx_new(&po, &m->pw_ctx)) != 0)
            goto out;
    }
    /* Restored before the listeners accept (server/mqtt_store.h). */
    m->hooks.store = m->store;
    m->hooks.durable = hub_mqtt_commands_durable; /* a command's 202 once it is stored */
    m->hooks.durable_arg = m;
    m->hooks.broker = m->broker; /* QoS 2 PUBREL once stored */
    m->hooks.backbone = m->backbone; /* before the restore: its filters go to the backbone */
    struct hub_broker_hooks hooks;
    hub_mqtt_hooks_fill(&m->hooks, &hooks);
    hub_broker_set_hooks(m->broker, &hooks);
    if ((rc = hub_mqtt_store_start(m->store, m->broker)) != 0)
        goto out;
    /* One LISTEN connection for the node: revocations, device CAs (server/pgfeed.h). */
    if ((rc = hub_pgfeed_new(m->loop, cfg->db_url, "LISTEN feed", &m->pgfeed)) != 0 ||
        (rc = hub_revfeed_start(m->loop, m->pgfeed, m->revset, revoked_cb, m, &m->feed)) != 0 ||
        (rc = hub_registration_feed(m->reg, m->pgfeed, revoked_cb, m)) != 0) /* NULL: all */
        goto out;
    /* Several nodes: this node's registration and liveness (server/cluster.h). */
    struct hub_cluster_options co = {m->loop, cfg, m->pgfeed, m->presence, m->broker};
    struct hub_takeover_options tko = {m->loop, m->pgfeed, m->broker, node,
                                       hub_mqtt_store_flush, m->store}; /* barrier */
    if ((rc = hub_cluster_start(&co, &m->cluster)) != 0 ||
        (rc = hub_takeover_start(&tko, &m->takeover)) != 0 ||
        (rc = hub_directory_start(m->pgfeed, node, m->store, &m->directory)) != 0)
        goto out;
    m->hooks.takeover = m->takeover;
    m->hooks.directory = m->directory;
    hub_pgfeed_start(m->pgfeed);
    struct hub_tls_limits lim = {
        .handshake_timeout_ms = (unsigned)cfg->mqtt_handshake_timeout_ms,
        .max_handshakes = (unsigned)cfg->mqtt_max_handshakes,
        .max_handshakes_per_ip = (unsigned)cfg->mqtt_max_handshakes_per_ip,
        .max_unauthenticated = (unsigned)cfg->mqtt_max_unauthenticated,
        .max_connections = (unsigned)cfg->mqtt_max_connections,
    };
    struct hub_workers_listen ls[HUB_LISTENER_COUNT] = {
        [HUB_LISTENER_MTLS] = {cfg->mqtt_mtls_listen.host, cfg->mqtt_mtls_listen.port, m->ctx, lim},
        [HUB_LISTENER_TLS] = {cfg->mqtt_tls_listen.host, cfg->mqtt_tls_listen.port, m->pw_ctx, lim},
        [HUB_LISTENER_PLAIN] = {cfg->mqtt_plain_listen.host, cfg->mqtt_plain_listen.port, NULL,
                                lim},
    };
    const int proxy_on[HUB_LISTENER_COUNT] = {cfg->mqtt_mtls_proxy_protocol,
                                              cfg->mqtt_tls_proxy_protocol,
                                              cfg->mqtt_plain_proxy_protocol};
    for (int i = 0; i < HUB_LISTENER_COUNT; i++) {
        ls[i].limits.proxy = proxy_on[i] ? o->proxy_trust : NULL;
        ls[i].limits.proxy_timeout_ms = (unsigned)cfg->proxy_header_timeout_ms;
        m->listening[i] = ls[i].port != 0;
        if (!m->listening[i])
            ls[i].host = NULL;
    }
    unsigned n = cfg->workers > 0 ? (unsigned)cfg->workers : uv_available_parallelism();
    if ((rc = hub_workers_start(m->loop, n ? n : 1, ls, HUB_LISTENER_COUNT, &conn_callbacks, m,
                                &m->workers)) != 0) {
        hub_error("cannot listen for MQTT: see the errors above");
        memset(m->listening, 0, sizeof m->listening);
        goto out;
    }
    uv_timer_start(&m->tick, tick_cb, 1000, 1000);
    static const char *const kinds[HUB_LISTENER_COUNT] = {
        "MQTT (mutual TLS)", "MQTT (TLS, device id + secret)",
        "MQTT over plain TCP (no encryption, labs only)"};
    for (int i = 0; i < HUB_LISTENER_COUNT; i++) {
        if (m->listening[i])
            hub_log(i == HUB_LISTENER_PLAIN ? HUB_LOG_WARN : HUB_LOG_INFO, "%s listening on %s:%d",
                    kinds[i], ls[i].host, hub_workers_port(m->workers, (size_t)i));
    }
    hub_info("MQTT served by %u worker loop(s)", hub_workers_count(m->workers));
    metrics_publish(m);
    *out = m;
    return 0;
out:
    hub_mqtt_server_stop(m); /* m is freed once the loop has run the close callbacks */
    return rc;
}

static void finish(struct hub_mqtt_server *m)
{
    if (--m->handles_open > 0)
        return;
    hub_broker_free(m->broker);
    hub_mqtt_store_free(m->store); /* writes what is still queued */
    hub_tls_ctx_free(m->ctx);
    hub_tls_ctx_free(m->pw_ctx);
    hub_presence_free(m->presence);
    hub_registration_free(m->reg); /* after the TLS contexts, which use its device CAs */
    hub_rollouts_free(m->rollouts);
    hub_revset_free(m->revset);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->lookup_lock);
    pthread_mutex_destroy(&m->metrics_lock);
    pthread_cond_destroy(&m->done);
    PQfinish(m->lookup_db);
    free(m->db_url);
    free(m);
}

static void handle_closed(uv_handle_t *h)
{
    finish(h->data);
}

static void listener_closed(void *arg)
{
    finish(arg);
}

void hub_mqtt_server_stop(struct hub_mqtt_server *m)
{
    if (m == NULL || m->stopping)
        return;
    m->stopping = 1;
    hub_rollouts_stop(m->rollouts); /* no notice is queued after this */
    /* A shutdown is not a client vanishing: no wills. */
    if (m->broker != NULL) /* NULL: a start that failed early */
        hub_broker_close_all(m->broker);
    hub_mqtt_commands_stop(m);
    /* Connections still closing call the hooks: they see no backbone from now on. */
    hub_backbone_stop(m->backbone);
    m->backbone = m->hooks.backbone = NULL;
    /* Commands still queued are answered "not delivered" by their waiters' timeouts. */
    if (m->workers != NULL) {
        m->handles_open++;
        hub_workers_stop(m->workers, listener_closed, m);
        m->workers = NULL;
    }
    if (m->store != NULL)
        hub_mqtt_store_stop(m->store, listener_closed, m);
    hub_revfeed_stop(m->feed);
    hub_registration_stop(m->reg);
    hub_cluster_stop(m->cluster);
    hub_takeover_stop(m->takeover);
    hub_directory_stop(m->directory);
    hub_pgfeed_stop(m->pgfeed); /* after its listeners: they are released with it */
    uv_timer_stop(&m->tick);
    uv_close((uv_handle_t *)&m->tick, handle_closed);
    uv_close((uv_handle_t *)&m->wakeup, handle_closed);
}
