/* The node registry runs on the feed's connection: the listener's load registers the node
 * (and takes its lock) after every (re)connect; the heartbeat is a feed job every 2 s that
 * retries the registration when the lock was not ours yet, or writes the heartbeat and sweeps
 * dead peers. The REST API's question (which node holds a device) uses a connection of its
 * own under a mutex, so API threads never touch the feed's. */
#include "server/cluster.h"

#include <config.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/devices.h"
#include "db/nodes.h"
#include "mqtt/broker.h"
#include "server/backbone_conf.h"
#include "util/error.h"
#include "util/log.h"

#define HEARTBEAT_MS 2000

struct hub_cluster {
    uv_loop_t *loop;
    struct hub_pgfeed *pg;
    struct hub_presence *presence;
    char name[HUB_CLUSTER_NAME_MAX];
    char api_address[300], mqtt_address[300];
    char *db_url;
    uv_timer_t beat;
    struct hub_broker *broker; /* counts for the heartbeat; closed when fenced */
    /* Fencing (docs/operations.md): ok_ms is when the last heartbeat or registration that
     * succeeded with the lock held was started; past fence_ms without one, and with peers
     * that could take over, the node closes its MQTT connections and admits none. */
    uint64_t ok_ms, fence_ms, job_started;
    int peers, fenced;
    /* Written by feed jobs, read on the loop after them. */
    int job_id, job_locked, job_reaped, job_peers;
    long long job_conns, job_sessions;
    char reaped[512];
    int id;        /* registered and locked: nodes.id; else 0 */
    int ever;      /* registered once (later registrations are not fresh starts) */
    int beating;   /* a heartbeat job is queued or running */
    int stopping, released, timer_closed;
    /* API threads */
    pthread_mutex_t api_lock;
    PGconn *api_db;
    pthread_mutex_t stats_lock;
    unsigned long long heartbeats, heartbeat_failures, reaped_total;
    unsigned long long fences, fence_closed, fence_refused;
    int up, fenced_now;
};

void hub_cluster_node_name(const struct hub_config *cfg, char out[HUB_CLUSTER_NAME_MAX])
{
    hub_node_name(cfg->node_name, out, HUB_CLUSTER_NAME_MAX); /* server/backbone_conf.h */
}

static void free_if_done(struct hub_cluster *c)
{
    if (!c->released || !c->timer_closed || c->beating)
        return;
    PQfinish(c->api_db);
    pthread_mutex_destroy(&c->api_lock);
    pthread_mutex_destroy(&c->stats_lock);
    free(c->db_url);
    free(c);
}

/* ---- registration (feed listener) -------------------------------------------------------- */

static int register_now(PGconn *db, struct hub_cluster *c)
{
    c->job_id = 0;
    c->job_locked = 0;
    return hub_db_nodes_register(db, c->name, c->api_address, c->mqtt_address, PACKAGE_VERSION,
                                 !c->ever, &c->job_id, &c->job_locked);
}

static int load_cb(PGconn *db, void *ctx)
{
    return register_now(db, ctx);
}

/* ---- fencing ------------------------------------------------------------------------------ */

static void set_fenced(struct hub_cluster *c, int on, size_t closed)
{
    c->fenced = on;
    pthread_mutex_lock(&c->stats_lock);
    c->fenced_now = on;
    c->fences += (unsigned)on;
    c->fence_closed += closed;
    pthread_mutex_unlock(&c->stats_lock);
}

/* Loop: the lock or the heartbeat was renewed at `started`. */
static void renewed(struct hub_cluster *c, uint64_t started)
{
    c->ok_ms = started;
    if (!c->fenced)
        return;
    set_fenced(c, 0, 0);
    hub_warn("cluster: node \"%s\" registered again: admitting MQTT connections", c->name);
}

/* Loop, every heartbeat tick: fences the node when peers may have found it dead. */
static void fence_check(struct hub_cluster *c)
{
    uint64_t now = uv_now(c->loop);
    if (c->fenced || c->fence_ms == 0 || !c->ever || c->peers == 0 || now - c->ok_ms <= c->fence_ms)
        return;
    struct hub_broker_stats st;
    hub_broker_stats(c->broker, &st);
    set_fenced(c, 1, st.connections);
    hub_error("cluster: node \"%s\" could not renew its registration for %llu s (PostgreSQL "
              "unreachable): its peers may take over its sessions; closing %zu MQTT "
              "connection(s) and refusing new ones until PostgreSQL is back (cluster_fence_s)",
              c->name, (unsigned long long)((now - c->ok_ms) / 1000), st.connections);
    hub_broker_close_all(c->broker);
}

/* Loop: the result of a registration (feed load or heartbeat). */
static void registered(struct hub_cluster *c)
{
    if (c->job_locked) {
        if (!c->ever)
            hub_info("cluster: node \"%s\" registered (id %d)", c->name, c->job_id);
        c->ever = 1;
        c->id = c->job_id;
        hub_presence_set_node(c->presence, c->id);
        renewed(c, c->job_started);
    } else {
        c->id = 0;
        hub_error("cluster: node name \"%s\" is held by another live iothubd: give each node "
                  "its own node_name; retrying",
                  c->name);
    }
    pthread_mutex_lock(&c->stats_lock);
    c->up = c->id != 0;
    pthread_mutex_unlock(&c->stats_lock);
}

static void loaded_cb(void *ctx)
{
    struct hub_cluster *c = ctx;
    c->job_started = uv_now(c->loop); /* renewed now (the load's start is not known here) */
    if (!c->stopping)
        registered(c);
}

static void lost_cb(const char *why, void *ctx)
{
    (void)why;
    struct hub_cluster *c = ctx;
    c->id = 0; /* the lock went with the connection */
    pthread_mutex_lock(&c->stats_lock);
    c->up = 0;
    pthread_mutex_unlock(&c->stats_lock);
}

static void release_cb(void *ctx)
{
    struct hub_cluster *c = ctx;
    c->released = 1;
    free_if_done(c);
}

/* ---- heartbeat ---------------------------------------------------------------------------- */

static int beat_work(PGconn *db, void *arg)
{
    struct hub_cluster *c = arg;
    c->job_reaped = 0;
    c->reaped[0] = 0;
    if (c->id == 0) /* read: the loop does not change it while the job runs */
        return register_now(db, c);
    int rc = hub_db_nodes_heartbeat(db, c->id, c->job_conns, c->job_sessions, &c->job_peers);
    if (rc == 0)
        rc = hub_db_nodes_reap(db, c->id, c->reaped, sizeof c->reaped, &c->job_reaped);
    return rc;
}

static void beat_done(int rc, void *arg)
{
    struct hub_cluster *c = arg;
    c->beating = 0;
    if (c->stopping) {
        free_if_done(c);
        return;
    }
    pthread_mutex_lock(&c->stats_lock);
    c->heartbeats++;
    c->heartbeat_failures += rc != 0;
    c->reaped_total += (unsigned)c->job_reaped;
    pthread_mutex_unlock(&c->stats_lock);
    if (rc != 0)
        return; /* the feed reconnects and registers again */
    if (c->id == 0) {
        registered(c);
        return;
    }
    c->peers = c->job_peers;
    renewed(c, c->job_started);
    if (c->job_reaped > 0)
        hub_warn("cluster: node(s) %s found dead: their devices are no longer shown connected",
                 c->reaped);
}

static void beat_cb(uv_timer_t *t)
{
    struct hub_cluster *c = t->data;
    if (c->stopping)
        return;
    fence_check(c);
    if (c->beating || !hub_pgfeed_up(c->pg))
        return;
    struct hub_broker_stats st;
    hub_broker_stats(c->broker, &st);
    c->job_conns = (long long)st.connections;
    c->job_sessions = (long long)st.sessions;
    c->job_started = uv_now(c->loop);
    c->beating = 1;
    hub_pgfeed_run(c->pg, beat_work, beat_done, c);
}

static void timer_closed(uv_handle_t *h)
{
    struct hub_cluster *c = h->data;
    c->timer_closed = 1;
    free_if_done(c);
}

/* ---- public ------------------------------------------------------------------------------- */

static void address(char *out, size_t cap, const struct hub_listen *l)
{
    if (l->port == 0)
        out[0] = 0;
    else
        snprintf(out, cap, strchr(l->host, ':') ? "[%s]:%d" : "%s:%d", l->host, l->port);
}

int hub_cluster_start(const struct hub_cluster_options *o, struct hub_cluster **out)
{
    struct hub_cluster *c = calloc(1, sizeof *c);
    if (c == NULL || (c->db_url = strdup(o->cfg->db_url)) == NULL) {
        free(c);
        return HUB_ENOMEM;
    }
    c->loop = o->loop;
    c->pg = o->pg;
    c->presence = o->presence;
    c->broker = o->broker;
    c->fence_ms = (uint64_t)o->cfg->cluster_fence_s * 1000;
    c->ok_ms = uv_now(o->loop);
    hub_cluster_node_name(o->cfg, c->name);
    address(c->api_address, sizeof c->api_address, &o->cfg->api_listen);
    address(c->mqtt_address, sizeof c->mqtt_address, &o->cfg->mqtt_mtls_listen);
    pthread_mutex_init(&c->api_lock, NULL);
    pthread_mutex_init(&c->stats_lock, NULL);
    struct hub_pgfeed_listener l = {
        .channel = "iothub_cluster",
        .load = load_cb,
        .loaded = loaded_cb,
        .lost = lost_cb,
        .release = release_cb,
        .ctx = c,
    };
    int rc = hub_pgfeed_add(o->pg, &l);
    if (rc != 0) {
        pthread_mutex_destroy(&c->api_lock);
        pthread_mutex_destroy(&c->stats_lock);
        free(c->db_url);
        free(c);
        return rc;
    }
    uv_timer_init(c->loop, &c->beat);
    c->beat.data = c;
    uv_timer_start(&c->beat, beat_cb, HEARTBEAT_MS, HEARTBEAT_MS);
    *out = c;
    return 0;
}

int hub_cluster_node_id(const struct hub_cluster *c)
{
    return c->id;
}

int hub_cluster_held_elsewhere(struct hub_cluster *c, const char *device_id)
{
    char node[HUB_CLUSTER_NAME_MAX];
    int rc;
    pthread_mutex_lock(&c->api_lock);
    if (c->api_db != NULL && PQstatus(c->api_db) != CONNECTION_OK) {
        PQfinish(c->api_db);
        c->api_db = NULL;
    }
    if (c->api_db == NULL)
        hub_db_connect(c->db_url, &c->api_db);
    rc = c->api_db != NULL ? hub_db_devices_connected_node(c->api_db, device_id, node, sizeof node)
                           : HUB_EDBDOWN;
    pthread_mutex_unlock(&c->api_lock);
    return rc == 0 && strcmp(node, c->name) != 0;
}

int hub_cluster_admit(struct hub_cluster *c)
{
    if (c == NULL || !c->fenced)
        return 1;
    pthread_mutex_lock(&c->stats_lock);
    c->fence_refused++;
    pthread_mutex_unlock(&c->stats_lock);
    return 0;
}

int hub_cluster_metrics(struct hub_cluster *c, hub_buf_t *out)
{
    pthread_mutex_lock(&c->stats_lock);
    int up = c->up, fenced = c->fenced_now;
    unsigned long long hb = c->heartbeats, hbf = c->heartbeat_failures, reaped = c->reaped_total;
    unsigned long long fences = c->fences, fclosed = c->fence_closed, frefused = c->fence_refused;
    pthread_mutex_unlock(&c->stats_lock);
    int rc = hub_buf_printf(
        out,
        "# HELP iothub_cluster_node_registered 1 while this node is registered in the nodes "
        "table and holds its liveness lock.\n"
        "# TYPE iothub_cluster_node_registered gauge\n"
        "iothub_cluster_node_registered %d\n"
        "# HELP iothub_cluster_heartbeats_total Heartbeats (with the sweep of dead nodes) run.\n"
        "# TYPE iothub_cluster_heartbeats_total counter\n"
        "iothub_cluster_heartbeats_total %llu\n"
        "# HELP iothub_cluster_heartbeat_failures_total Heartbeats that failed (database "
        "unreachable).\n"
        "# TYPE iothub_cluster_heartbeat_failures_total counter\n"
        "iothub_cluster_heartbeat_failures_total %llu\n"
        "# HELP iothub_cluster_nodes_found_dead_total Peer nodes this node found dead (their "
        "liveness lock free).\n"
        "# TYPE iothub_cluster_nodes_found_dead_total counter\n"
        "iothub_cluster_nodes_found_dead_total %llu\n",
        up, hb, hbf, reaped);
    if (rc != 0)
        return rc;
    return hub_buf_printf(
        out,
        "# HELP iothub_cluster_fenced 1 while this node is fenced: cut from PostgreSQL longer "
        "than cluster_fence_s, it holds no MQTT connection and admits none.\n"
        "# TYPE iothub_cluster_fenced gauge\n"
        "iothub_cluster_fenced %d\n"
        "# HELP iothub_cluster_fences_total Times this node fenced itself.\n"
        "# TYPE iothub_cluster_fences_total counter\n"
        "iothub_cluster_fences_total %llu\n"
        "# HELP iothub_cluster_fence_closed_total MQTT connections closed by fencing.\n"
        "# TYPE iothub_cluster_fence_closed_total counter\n"
        "iothub_cluster_fence_closed_total %llu\n"
        "# HELP iothub_cluster_fence_refused_total MQTT connections refused while fenced.\n"
        "# TYPE iothub_cluster_fence_refused_total counter\n"
        "iothub_cluster_fence_refused_total %llu\n",
        fenced, fences, fclosed, frefused);
}

void hub_cluster_stop(struct hub_cluster *c)
{
    if (c == NULL || c->stopping)
        return;
    c->stopping = 1;
    uv_timer_stop(&c->beat);
    uv_close((uv_handle_t *)&c->beat, timer_closed);
}
