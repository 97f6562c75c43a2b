/* The backbone client (server/backbone.h). Design:
 *
 * - libmosquitto runs on our own thread (not mosquitto_loop_start: its loop gives up for
 *   good after a TLS, DNS or authentication error, and we want to retry those too): connect,
 *   its own poll over the socket and an eventfd (server/backbone_client.c), and on any
 *   failure a back-off of 0.25 s doubling to 5 s, then reconnect. The client is "threaded",
 *   so the loop thread may subscribe on it directly (then wakes the network thread).
 * - Outgoing (server/backbone_out.c): the loop appends forwards to a reused buffer and hands
 *   it over once per loop iteration; the network thread publishes them while connected.
 *   One slot per libmosquitto message id (mid, 16 bits, network thread only) records the
 *   message id, its bytes and whether an acknowledgement is held; on_publish frees the slot
 *   and queues an ack for the loop (its bytes, hub_broker_release). At most MAX_PENDING
 *   forwards are in libmosquitto, so a mid is never reused while its slot is taken.
 * - Incoming: on_message appends one record (id, sizes, flags, origin, topic, payload) to a
 *   buffer; the loop swaps it with its own (both keep their capacity: no allocation per
 *   message once warm) and injects. Past backbone_max_inbound bytes the network thread waits
 *   for the loop, so the backbone broker holds the rest (TCP flow control), nothing dropped.
 * - One mutex (lock) guards what both threads touch: the forwards handed over, the acks,
 *   the inbound buffer and the connect event; the subscription table, the waiting forwards
 *   and the hook calls are the loop's alone; libmosquitto takes its own mutexes when the
 *   loop subscribes (then wakes the network thread through the eventfd). */
#include "server/backbone_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "mqtt/broker.h"
#include "mqtt/msg.h"
#include "mqtt/topic.h"
#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

/* ---- loop thread: forwarding ---------------------------------------------------------------- */

static void log_drop(struct hub_backbone *bb, const char *why)
{
    uint64_t now = bb_now_ms();
    if (bb->drop_logged_ms != 0 && now - bb->drop_logged_ms < LOG_EVERY_MS)
        return;
    bb->drop_logged_ms = now;
    hub_warn("backbone: forwards dropped (%s); totals: %llu while down, %llu over the limits",
             why, bb_get(&bb->dropped_disconnected), bb_get(&bb->dropped_full));
}

/* Queues m behind the forwards waiting for room, its acknowledgement held. 0 or
 * HUB_ERANGE (the waiting forwards are at their limit too). */
static int fifo_push(struct hub_backbone *bb, struct hub_msg *m)
{
    size_t bytes = bb_cost(m->topic_len, m->payload_len);
    if (bb->fifo_bytes + bytes > bb->max_queued)
        return HUB_ERANGE;
    if (bb->fifo_len == bb->fifo_cap) {
        size_t cap = bb->fifo_cap ? bb->fifo_cap * 2 : 64;
        struct hub_msg **f = malloc(cap * sizeof *f);
        if (f == NULL)
            return HUB_ERANGE;
        for (size_t i = 0; i < bb->fifo_len; i++)
            f[i] = bb->fifo[(bb->fifo_head + i) % bb->fifo_cap];
        free(bb->fifo);
        bb->fifo = f;
        bb->fifo_cap = cap;
        bb->fifo_head = 0;
    }
    bb->fifo[(bb->fifo_head + bb->fifo_len++) % bb->fifo_cap] = hub_msg_ref(m);
    bb->fifo_bytes += bytes;
    bb_count(&bb->waiting, 1);
    return 0;
}

/* Moves waiting forwards to libmosquitto while there is room, oldest first. */
static void fifo_drain(struct hub_backbone *bb)
{
    while (bb->fifo_len > 0) {
        struct hub_msg *m = bb->fifo[bb->fifo_head];
        int rc = bb_out_enqueue(bb, m->topic, m->topic_len, m->payload, m->payload_len, m->qos,
                                m->retain, m->id, 1);
        if (rc == HUB_ERANGE)
            return;
        bb->fifo_head = (bb->fifo_head + 1) % bb->fifo_cap;
        bb->fifo_len--;
        bb->fifo_bytes -= bb_cost(m->topic_len, m->payload_len);
        bb_count(&bb->waiting, -1);
        if (rc != 0) { /* out of memory: nothing will acknowledge it */
            bb_count(&bb->dropped_full, 1);
            bb_count(&bb->held, -1);
            hub_broker_release(bb->broker, m->id);
        }
        hub_msg_unref(m);
    }
}

unsigned hub_backbone_accepted(struct hub_backbone *bb, const struct hub_msg *cm)
{
    if (bb == NULL || bb->stopped || bb_is_control(cm->topic, cm->topic_len))
        return 0; /* clients never speak for the nodes */
    struct hub_msg *m = (struct hub_msg *)cm; /* a reference is taken only to wait */
    int hold = m->qos > 0 && m->id != 0;
    int rc = bb->fifo_len > 0 ? HUB_ERANGE
                              : bb_out_enqueue(bb, m->topic, m->topic_len, m->payload,
                                               m->payload_len, m->qos, m->retain, m->id, hold);
    if (rc == HUB_ERANGE && hold && fifo_push(bb, m) == 0)
        rc = 0;
    if (rc == 0) {
        if (hold)
            bb_count(&bb->held, 1);
        return (unsigned)hold;
    }
    if (rc == HUB_EIO) {
        bb_count(&bb->dropped_disconnected, 1);
        log_drop(bb, "QoS 0 while the backbone is down");
    } else {
        bb_count(&bb->dropped_full, 1);
        log_drop(bb, rc == HUB_ERANGE ? "backbone_max_queued reached" : "out of memory");
    }
    return 0;
}

/* ---- loop thread: subscriptions ------------------------------------------------------------- */

/* The filter to ask the backbone for: a shared subscription's underlying filter (sharing
 * happens among this node's sessions). Sets *len. */
static const char *backbone_filter(const char *filter, size_t *len)
{
    if (*len > 7 && memcmp(filter, "$share/", 7) == 0) {
        const char *slash = memchr(filter + 7, '/', *len - 7);
        if (slash != NULL) {
            *len -= (size_t)(slash + 1 - filter);
            return slash + 1;
        }
    }
    return filter;
}

/* NUL-terminated copy of filter in the scratch buffer (NULL on ENOMEM). */
static const char *cstr(struct hub_backbone *bb, const char *s, size_t len)
{
    bb->scratch.len = 0;
    if (hub_buf_reserve(&bb->scratch, len + 1) != 0)
        return NULL;
    memcpy(bb->scratch.data, s, len);
    bb->scratch.data[len] = 0;
    return (const char *)bb->scratch.data;
}

static void send_subscribe(struct hub_backbone *bb, const char *filter, size_t len, int qos)
{
    const char *f = cstr(bb, filter, len);
    if (f == NULL)
        return;
    if (qos == HUB_BSUBS_GONE) {
        if (mosquitto_unsubscribe_v5(bb->mosq, NULL, f, NULL) != MOSQ_ERR_SUCCESS)
            hub_buf_append(&bb->unsub_later, f, len + 1); /* the backbone keeps our session */
    } else {
        /* Not connected: sent with every filter on the next CONNACK. */
        mosquitto_subscribe_v5(bb->mosq, NULL, f, qos, SUB_OPTIONS, NULL);
    }
    bb_wake_net(bb); /* the network thread writes what libmosquitto queued */
    atomic_store_explicit(&bb->filters, hub_bsubs_filters(bb->subs), memory_order_relaxed);
}

void hub_backbone_subscribed(struct hub_backbone *bb, const char *key, const char *filter,
                             size_t flen, uint8_t qos)
{
    if (bb == NULL || bb->stopped)
        return;
    filter = backbone_filter(filter, &flen);
    int rc = hub_bsubs_add(bb->subs, key, filter, flen, qos);
    if (rc == HUB_ENOMEM)
        hub_error("backbone: out of memory: filter \"%.*s\" not subscribed", (int)flen, filter);
    else if (rc >= 0)
        send_subscribe(bb, filter, flen, rc);
}

void hub_backbone_unsubscribed(struct hub_backbone *bb, const char *key, const char *filter,
                               size_t flen)
{
    if (bb == NULL || bb->stopped)
        return;
    filter = backbone_filter(filter, &flen);
    int rc = hub_bsubs_remove(bb->subs, key, filter, flen);
    if (rc != HUB_BSUBS_SAME)
        send_subscribe(bb, filter, flen, rc);
}

struct batch {
    struct hub_backbone *bb;
    char *f[3][SUB_BATCH];
    int n[3];
};

static void batch_flush(struct batch *b, int qos)
{
    if (b->n[qos] > 0)
        mosquitto_subscribe_multiple(b->bb->mosq, NULL, b->n[qos], b->f[qos], qos, SUB_OPTIONS,
                                     NULL);
    b->n[qos] = 0;
}

static void batch_add(void *ctx, const char *filter, uint8_t qos)
{
    struct batch *b = ctx;
    b->f[qos][b->n[qos]++] = (char *)filter;
    if (b->n[qos] == SUB_BATCH)
        batch_flush(b, qos);
}

/* After a CONNACK: the filters dropped while down are unsubscribed (unless needed again),
 * every needed one subscribed again (the backbone may have lost our session), and the
 * waiting forwards go out. */
static void connected_again(struct hub_backbone *bb)
{
    size_t off = 0;
    while (off < bb->unsub_later.len) {
        const char *f = (const char *)bb->unsub_later.data + off;
        size_t len = strlen(f);
        if (hub_bsubs_qos(bb->subs, f, len) == HUB_BSUBS_GONE)
            mosquitto_unsubscribe_v5(bb->mosq, NULL, f, NULL);
        off += len + 1;
    }
    bb->unsub_later.len = 0;
    struct batch b = {.bb = bb};
    hub_bsubs_each(bb->subs, batch_add, &b);
    for (int q = 0; q < 3; q++)
        batch_flush(&b, q);
    bb_wake_net(bb);
}

/* ---- loop thread: what the network thread handed over ------------------------------------- */

static void deliver(struct hub_backbone *bb, const struct rec *r, const char *origin)
{
    const char *topic = origin + r->olen;
    const uint8_t *payload = (const uint8_t *)topic + r->tlen;
    if (r->control) {
        char node[HUB_NODE_NAME_MAX + 1];
        memcpy(node, origin, r->olen);
        node[r->olen] = 0;
        if (bb->control_cb != NULL)
            bb->control_cb(bb->control_ctx, topic, r->tlen, payload, r->plen, node);
        return;
    }
    uint64_t id = r->id;
    if (id == 0 && r->qos > 0 && bb->next_id != NULL) /* a backend's message */
        id = bb->next_id(bb->next_id_ctx);
    if (hub_broker_inject(bb->broker, topic, r->tlen, payload, r->plen, r->qos, r->retain, id) <
        0)
        bb_count(&bb->dropped_inbound, 1);
    else
        bb_count(&bb->received[r->qos], 1);
}

static void wake_cb(uv_async_t *a)
{
    struct hub_backbone *bb = a->data;
    if (bb->stopped)
        return;
    pthread_mutex_lock(&bb->lock);
    hub_buf_t t = bb->in;
    bb->in = bb->in_loop;
    bb->in_loop = t;
    t = bb->rel;
    bb->rel = bb->rel_loop;
    bb->rel_loop = t;
    int connect_event = bb->connect_event;
    bb->connect_event = 0;
    pthread_cond_broadcast(&bb->cond);
    pthread_mutex_unlock(&bb->lock);
    if (connect_event)
        connected_again(bb);
    for (size_t off = 0; off + sizeof(struct ack) <= bb->rel_loop.len; off += sizeof(struct ack)) {
        struct ack k;
        memcpy(&k, bb->rel_loop.data + off, sizeof k);
        bb->loop_queued -= k.bytes <= bb->loop_queued ? k.bytes : bb->loop_queued;
        if (k.hold) {
            bb_count(&bb->held, -1);
            hub_broker_release(bb->broker, k.id);
        }
    }
    atomic_store_explicit(&bb->queued_now, bb->loop_queued, memory_order_relaxed);
    bb->rel_loop.len = 0;
    fifo_drain(bb);
    for (size_t off = 0; off + sizeof(struct rec) <= bb->in_loop.len;) {
        struct rec r;
        memcpy(&r, bb->in_loop.data + off, sizeof r);
        size_t len = sizeof r + r.olen + r.tlen + r.plen;
        deliver(bb, &r, (const char *)bb->in_loop.data + off + sizeof r);
        off += len + (8 - len % 8) % 8;
    }
    bb->in_loop.len = 0;
}

/* ---- control messages ------------------------------------------------------------------------ */

int hub_backbone_control_subscribe(struct hub_backbone *bb, const char *filter, uint8_t qos,
                                   hub_backbone_control_cb cb, void *ctx)
{
    size_t len = strlen(filter);
    if (bb == NULL || !bb_is_control(filter, len) || !hub_topic_filter_valid(filter, len))
        return HUB_EINVAL;
    bb->control_cb = cb;
    bb->control_ctx = ctx;
    int rc = hub_bsubs_add(bb->subs, CONTROL_KEY, filter, len, qos);
    if (rc == HUB_ENOMEM)
        return rc;
    if (rc >= 0)
        send_subscribe(bb, filter, len, rc);
    return 0;
}

int hub_backbone_control_publish(struct hub_backbone *bb, const char *topic,
                                 const void *payload, size_t len, uint8_t qos)
{
    size_t tlen = strlen(topic);
    if (bb == NULL || !bb_is_control(topic, tlen) || !hub_topic_name_valid(topic, tlen) || qos > 2)
        return HUB_EINVAL;
    int rc = bb_out_enqueue(bb, topic, tlen, payload, len, qos, 0, 0, 0);
    return rc == HUB_EIO || rc == HUB_ERANGE ? HUB_ERANGE : rc;
}

/* ---- start / stop ----------------------------------------------------------------------------- */

const char *hub_backbone_node(const struct hub_backbone *bb)
{
    return bb != NULL ? bb->node : "";
}

static void free_bb(struct hub_backbone *bb)
{
    if (bb->mosq != NULL)
        mosquitto_destroy(bb->mosq);
    mosquitto_lib_cleanup();
    pthread_mutex_destroy(&bb->lock);
    pthread_cond_destroy(&bb->cond);
    hub_bsubs_free(bb->subs);
    free(bb->slots);
    if (bb->efd >= 0)
        close(bb->efd);
    mosquitto_property_free_all(&bb->node_props);
    hub_buf_free(&bb->out);
    hub_buf_free(&bb->out_net);
    hub_buf_free(&bb->out_loop);
    hub_buf_free(&bb->acks_net);
    free(bb->fifo);
    hub_buf_free(&bb->in);
    hub_buf_free(&bb->in_loop);
    hub_buf_free(&bb->rel);
    hub_buf_free(&bb->rel_loop);
    hub_buf_free(&bb->scratch);
    hub_buf_free(&bb->unsub_later);
    free(bb->cafile);
    free(bb->certfile);
    free(bb->keyfile);
    free(bb->username);
    if (bb->password != NULL)
        hub_wipe(bb->password, strlen(bb->password));
    free(bb->password);
    free(bb);
}

static void closed_cb(uv_handle_t *h)
{
    struct hub_backbone *bb = h->data;
    if (--bb->handles_open == 0)
        free_bb(bb);
}

static void close_handles(struct hub_backbone *bb)
{
    bb->handles_open = 3;
    uv_close((uv_handle_t *)&bb->wake, closed_cb);
    uv_close((uv_handle_t *)&bb->flush, closed_cb);
    uv_close((uv_handle_t *)&bb->flush_idle, closed_cb);
}

/* Protocol, TLS and credentials of a client (the node's, or the one that clears a session
 * left by a previous run). 0 or HUB_ECONFIG (logged). */

int hub_backbone_start(const struct hub_backbone_options *o, struct hub_backbone **out)
{
    const struct hub_config *cfg = o->cfg;
    char why[256];
    *out = NULL;
    if (cfg->backbone == NULL || cfg->backbone[0] == 0)
        return 0;
    struct hub_backbone *bb = calloc(1, sizeof *bb);
    if (bb == NULL)
        return HUB_ENOMEM;
    bb->efd = -1;
    bb->loop = o->loop;
    bb->broker = o->broker;
    bb->next_id = o->next_id;
    bb->next_id_ctx = o->next_id_ctx;
    bb->max_queued = (size_t)cfg->backbone_max_queued;
    bb->max_inbound = (size_t)cfg->backbone_max_inbound;
    bb->max_packet = (size_t)cfg->mqtt_max_packet;
    bb->expiry_s = (uint32_t)cfg->backbone_session_expiry_s;
    hub_node_name(cfg->node_name, bb->node, sizeof bb->node);
    snprintf(bb->client_id, sizeof bb->client_id, "iothub-%s", bb->node);
    pthread_mutex_init(&bb->lock, NULL);
    pthread_cond_init(&bb->cond, NULL);
    mosquitto_lib_init();
    int rc = hub_backbone_url_parse(cfg->backbone, &bb->url, why, sizeof why);
    if (rc != 0) {
        hub_error("backbone: %s", why);
        free_bb(bb);
        return HUB_ECONFIG;
    }
    bb->slots = calloc(65536, sizeof *bb->slots);
    bb->subs = hub_bsubs_new();
    bb->mosq = mosquitto_new(bb->client_id, false, bb);
    bb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (bb->slots == NULL || bb->subs == NULL || bb->mosq == NULL || bb->efd < 0 ||
        mosquitto_property_add_string_pair(&bb->node_props, MQTT_PROP_USER_PROPERTY, PROP_NODE,
                                           bb->node) != 0) {
        free_bb(bb);
        return HUB_ENOMEM;
    }
    if ((rc = hub_backbone_client_setup(bb, cfg)) != 0) {
        free_bb(bb);
        return rc;
    }
    uv_async_init(bb->loop, &bb->wake, wake_cb);
    bb->wake.data = bb;
    bb_out_init(bb);
    if (pthread_create(&bb->thread, NULL, hub_backbone_thread, bb) != 0) {
        hub_error("backbone: pthread_create: %s", strerror(errno));
        bb->stopped = 1;
        close_handles(bb);
        return HUB_ENOMEM;
    }
    bb->thread_started = 1;
    hub_info("backbone: node %s, broker %s (session kept %d s by the broker)", bb->node,
             cfg->backbone, cfg->backbone_session_expiry_s);
    *out = bb;
    return 0;
}

void hub_backbone_stop(struct hub_backbone *bb)
{
    if (bb == NULL || bb->stopped)
        return;
    bb->stopped = 1;
    mosquitto_disconnect(bb->mosq); /* its thread sends DISCONNECT, then sees `stopping` */
    pthread_mutex_lock(&bb->lock);
    atomic_store(&bb->stopping, 1);
    pthread_cond_broadcast(&bb->cond);
    pthread_mutex_unlock(&bb->lock);
    bb_wake_net(bb);
    if (bb->thread_started)
        pthread_join(bb->thread, NULL);
    while (bb->fifo_len > 0) { /* their connections close with the broker */
        hub_msg_unref(bb->fifo[bb->fifo_head]);
        bb->fifo_head = (bb->fifo_head + 1) % bb->fifo_cap;
        bb->fifo_len--;
    }
    close_handles(bb);
}

/* ---- metrics ---------------------------------------------------------------------------------- */

void hub_backbone_stats(struct hub_backbone *bb, struct hub_backbone_stats *s)
{
    memset(s, 0, sizeof *s);
    if (bb == NULL)
        return;
    s->connected = atomic_load(&bb->connected);
    s->connects = bb_get(&bb->connects);
    for (int q = 0; q < 3; q++) {
        s->forwarded[q] = bb_get(&bb->forwarded[q]);
        s->received[q] = bb_get(&bb->received[q]);
    }
    s->dropped_disconnected = bb_get(&bb->dropped_disconnected);
    s->dropped_full = bb_get(&bb->dropped_full);
    s->refused = bb_get(&bb->refused);
    s->dropped_inbound = bb_get(&bb->dropped_inbound);
    s->held = bb_get(&bb->held);
    s->queued_bytes = bb_get(&bb->queued_now);
    s->waiting = bb_get(&bb->waiting);
    s->filters = bb_get(&bb->filters);
    s->sessions_lost = bb_get(&bb->sessions_lost);
}

static int family(hub_buf_t *out, const char *name, const char *type, const char *help)
{
    return hub_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int hub_backbone_metrics(struct hub_backbone *bb, hub_buf_t *out)
{
    struct hub_backbone_stats s;
    if (bb == NULL)
        return 0;
    hub_backbone_stats(bb, &s);
    int rc = family(out, "iothub_backbone_connected", "gauge",
                    "1 while this node is connected to the message backbone.");
    rc = rc ? rc : hub_buf_printf(out, "iothub_backbone_connected %d\n", s.connected);
    rc = rc ? rc : family(out, "iothub_backbone_connects_total", "counter",
                          "Connections to the backbone accepted (CONNACK), reconnects included.");
    rc = rc ? rc : hub_buf_printf(out, "iothub_backbone_connects_total %llu\n", s.connects);
    rc = rc ? rc : family(out, "iothub_backbone_forwarded_total", "counter",
                          "Messages accepted on this node and handed to the backbone, by QoS.");
    for (int q = 0; q < 3 && rc == 0; q++)
        rc = hub_buf_printf(out, "iothub_backbone_forwarded_total{qos=\"%d\"} %llu\n", q,
                            s.forwarded[q]);
    rc = rc ? rc : family(out, "iothub_backbone_received_total", "counter",
                          "Messages received from the backbone and routed here, by QoS.");
    for (int q = 0; q < 3 && rc == 0; q++)
        rc = hub_buf_printf(out, "iothub_backbone_received_total{qos=\"%d\"} %llu\n", q,
                            s.received[q]);
    rc = rc ? rc : family(out, "iothub_backbone_dropped_total", "counter",
                          "Messages not forwarded or not routed, by reason.");
    rc = rc ? rc
            : hub_buf_printf(out,
                             "iothub_backbone_dropped_total{reason=\"disconnected\"} %llu\n"
                             "iothub_backbone_dropped_total{reason=\"queue_full\"} %llu\n"
                             "iothub_backbone_dropped_total{reason=\"refused\"} %llu\n"
                             "iothub_backbone_dropped_total{reason=\"inbound_invalid\"} %llu\n",
                             s.dropped_disconnected, s.dropped_full, s.refused,
                             s.dropped_inbound);
    rc = rc ? rc : family(out, "iothub_backbone_held", "gauge",
                          "Publishers' acknowledgements held until the backbone acknowledges.");
    rc = rc ? rc : hub_buf_printf(out, "iothub_backbone_held %llu\n", s.held);
    rc = rc ? rc : family(out, "iothub_backbone_queued_bytes", "gauge",
                          "Bytes of forwards the backbone has not acknowledged yet.");
    rc = rc ? rc : hub_buf_printf(out, "iothub_backbone_queued_bytes %llu\n", s.queued_bytes);
    rc = rc ? rc : family(out, "iothub_backbone_waiting", "gauge",
                          "QoS 1/2 forwards waiting for room (over backbone_max_queued).");
    rc = rc ? rc : hub_buf_printf(out, "iothub_backbone_waiting %llu\n", s.waiting);
    rc = rc ? rc : family(out, "iothub_backbone_filters", "gauge",
                          "Topic filters this node subscribes to on the backbone.");
    rc = rc ? rc : hub_buf_printf(out, "iothub_backbone_filters %llu\n", s.filters);
    rc = rc ? rc : family(out, "iothub_backbone_sessions_lost_total", "counter",
                          "Reconnects where the backbone no longer had this node's session.");
    rc = rc ? rc : hub_buf_printf(out, "iothub_backbone_sessions_lost_total %llu\n",
                                  s.sessions_lost);
    return rc;
}
