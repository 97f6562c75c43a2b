/* The backbone's outbound path (server/backbone_internal.h): forwards go from the loop to
 * libmosquitto in batches, and come back as acknowledgements in batches.
 *
 * - Loop: a forward is one record (struct fwd, topic and its NUL, payload) appended to out_loop, a
 *   buffer that keeps its capacity: no allocation once warm, no lock, no system call. Once
 *   per loop iteration (a check handle after the I/O callbacks, an idle handle when the
 *   forwards came from a timer before the poll) the batch is appended to the shared `out`
 *   under the lock and the network thread is woken once (eventfd).
 * - Network thread: it takes `out` into out_net and hands forwards to libmosquitto only
 *   while connected (after a CONNACK 0), so that libmosquitto never holds a message it has
 *   not sent on the current connection (2.0.11: a QoS 1 message queued between its
 *   reconnect reset and the new socket is marked in flight, never sent, and not resent by
 *   the CONNACK; its acknowledgement would be held forever). While the backbone is down,
 *   QoS >= 1 forwards wait in out_net in order (the loop bounds them with
 *   backbone_max_queued); QoS 0 ones are dropped and counted. What libmosquitto holds when
 *   the connection drops it sends again after the next CONNACK (the ids de-duplicate).
 * - Every forward ends as one struct ack (PUBACK, QoS 0 sent, refused, dropped) collected
 *   per network iteration and handed to the loop with one wake-up: the loop returns its
 *   bytes to backbone_max_queued and releases the publisher's held acknowledgement. */
#include "server/backbone_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/error.h"
#include "util/log.h"

/* ---- loop thread -------------------------------------------------------------------------- */

void bb_wake_net(struct hub_backbone *bb)
{
    uint64_t one = 1;
    if (write(bb->efd, &one, sizeof one) < 0) { /* EAGAIN: the counter is already set */
    }
}

static void flush_cb(uv_check_t *h);
static void flush_idle_cb(uv_idle_t *h);

static void flush(struct hub_backbone *bb)
{
    uv_check_stop(&bb->flush);
    uv_idle_stop(&bb->flush_idle);
    if (bb->out_loop.len == 0 || bb->stopped)
        return;
    pthread_mutex_lock(&bb->lock);
    int rc = 0;
    if (bb->out.len == 0) { /* the usual case: swap, both keep their capacity */
        hub_buf_t t = bb->out;
        bb->out = bb->out_loop;
        bb->out_loop = t;
    } else {
        rc = hub_buf_append(&bb->out, bb->out_loop.data, bb->out_loop.len);
    }
    pthread_mutex_unlock(&bb->lock);
    if (rc != 0) { /* out of memory: again at the next iteration */
        uv_check_start(&bb->flush, flush_cb);
        return;
    }
    bb->out_loop.len = 0;
    bb_wake_net(bb);
}

static void flush_cb(uv_check_t *h)
{
    flush(h->data);
}

static void flush_idle_cb(uv_idle_t *h)
{
    flush(h->data);
}

void bb_out_init(struct hub_backbone *bb)
{
    uv_check_init(bb->loop, &bb->flush);
    bb->flush.data = bb;
    uv_idle_init(bb->loop, &bb->flush_idle);
    bb->flush_idle.data = bb;
}

int bb_out_enqueue(struct hub_backbone *bb, const char *topic, size_t tlen, const void *payload,
                   size_t plen, uint8_t qos, int retain, uint64_t id, int hold)
{
    size_t bytes = bb_cost(tlen, plen);
    if (qos == 0 && !atomic_load_explicit(&bb->connected, memory_order_relaxed))
        return HUB_EIO;
    if (bb->loop_queued + bytes > bb->max_queued ||
        (qos == 0 && bb->loop_queued + bytes > QOS0_MAX_BACKLOG))
        return HUB_ERANGE;
    struct fwd f = {
        .id = id,
        .tlen = (uint32_t)tlen,
        .plen = (uint32_t)plen,
        .qos = qos,
        .retain = retain != 0,
        .hold = hold != 0,
    };
    size_t len = sizeof f + tlen + 1 + plen, pad = (8 - len % 8) % 8;
    if (hub_buf_reserve(&bb->out_loop, len + pad) != 0)
        return HUB_ENOMEM;
    uint8_t *w = bb->out_loop.data + bb->out_loop.len;
    memcpy(w, &f, sizeof f);
    memcpy(w + sizeof f, topic, tlen);
    w[sizeof f + tlen] = 0; /* libmosquitto wants a C string */
    if (plen > 0)
        memcpy(w + sizeof f + tlen + 1, payload, plen);
    memset(w + len, 0, pad);
    if (bb->out_loop.len == 0) {
        uv_check_start(&bb->flush, flush_cb);
        uv_idle_start(&bb->flush_idle, flush_idle_cb);
    }
    bb->out_loop.len += len + pad;
    bb->loop_queued += bytes;
    atomic_store_explicit(&bb->queued_now, bb->loop_queued, memory_order_relaxed);
    bb_count(&bb->forwarded[qos > 2 ? 2 : qos], 1);
    return 0;
}

/* ---- network thread ------------------------------------------------------------------------ */

void bb_out_done(struct hub_backbone *bb, uint64_t id, uint32_t bytes, int hold)
{
    struct ack a = {.id = id, .bytes = bytes, .hold = hold != 0};
    if (hub_buf_append(&bb->acks_net, &a, sizeof a) != 0)
        hub_error("backbone: out of memory: an acknowledgement stays held");
}

void bb_out_hand_acks(struct hub_backbone *bb)
{
    if (bb->acks_net.len == 0)
        return;
    pthread_mutex_lock(&bb->lock);
    int rc = 0;
    if (bb->rel.len == 0) {
        hub_buf_t t = bb->rel;
        bb->rel = bb->acks_net;
        bb->acks_net = t;
    } else {
        rc = hub_buf_append(&bb->rel, bb->acks_net.data, bb->acks_net.len);
    }
    pthread_mutex_unlock(&bb->lock);
    if (rc == 0)
        bb->acks_net.len = 0;
    uv_async_send(&bb->wake);
}

/* Moves what the loop handed over behind the forwards not given to libmosquitto yet. */
static void take(struct hub_backbone *bb)
{
    pthread_mutex_lock(&bb->lock);
    if (bb->out.len > 0) {
        if (bb->out_off == bb->out_net.len) { /* all given: swap */
            hub_buf_t t = bb->out_net;
            bb->out_net = bb->out;
            bb->out = t;
            bb->out.len = 0;
            bb->out_off = 0;
        } else if (hub_buf_append(&bb->out_net, bb->out.data, bb->out.len) == 0) {
            bb->out.len = 0;
        }
    }
    pthread_mutex_unlock(&bb->lock);
}

/* Gives one forward to libmosquitto. Returns 0 (given or done with) or 1 (not now). */
static int give(struct hub_backbone *bb, const struct fwd *f, const char *topic,
                const uint8_t *payload)
{
    uint32_t bytes = (uint32_t)bb_cost(f->tlen, f->plen);
    if (!bb->net_connected && f->qos == 0) {
        bb_count(&bb->dropped_disconnected, 1);
        bb_out_done(bb, f->id, bytes, 0);
        return 0;
    }
    if (!bb->net_connected || bb->pending >= MAX_PENDING)
        return 1;
    char hex[17];
    mosquitto_property *props = bb->node_props, *idp = NULL;
    if (f->id != 0) { /* data: the id only (No Local keeps a node's own forwards away) */
        snprintf(hex, sizeof hex, "%016" PRIx64, f->id);
        if (mosquitto_property_add_string_pair(&idp, MQTT_PROP_USER_PROPERTY, PROP_ID, hex) != 0)
            return 1;
        props = idp;
    }
    int mid = 0;
    int rc = mosquitto_publish_v5(bb->mosq, &mid, topic, (int)f->plen, payload, f->qos,
                                  f->retain != 0, props);
    mosquitto_property_free_all(&idp);
    if (rc == MOSQ_ERR_SUCCESS || (f->qos > 0 && rc == MOSQ_ERR_NO_CONN)) {
        /* QoS 0: done once written (on_publish), so a backbone that reads slowly fills
         * backbone_max_queued instead of libmosquitto's packet queue. QoS >= 1 NO_CONN: the
         * socket just failed; libmosquitto keeps the message and sends it again after the
         * reconnect (which runs on this thread, after this call). */
        struct slot *s = &bb->slots[(uint16_t)mid];
        if (s->used) /* cannot happen below MAX_PENDING; never lose a hold anyway */
            bb_out_done(bb, s->id, s->bytes, s->hold);
        else
            bb->pending++;
        *s = (struct slot){.id = f->id, .bytes = bytes, .used = 1, .hold = f->hold};
        return 0;
    }
    if (rc == MOSQ_ERR_NO_CONN) {
        bb_count(&bb->dropped_disconnected, 1);
    } else {
        bb_count(&bb->refused, 1);
        hub_warn("backbone: libmosquitto refused a forward on \"%s\": %s", topic,
                 mosquitto_strerror(rc));
    }
    bb_out_done(bb, f->id, bytes, f->hold);
    return 0;
}

void bb_out_publish(struct hub_backbone *bb)
{
    take(bb);
    while (bb->out_off + sizeof(struct fwd) <= bb->out_net.len) {
        struct fwd f;
        const uint8_t *p = bb->out_net.data + bb->out_off;
        memcpy(&f, p, sizeof f);
        if (give(bb, &f, (const char *)p + sizeof f, p + sizeof f + f.tlen + 1) != 0)
            break;
        size_t len = sizeof f + f.tlen + 1 + f.plen;
        bb->out_off += len + (8 - len % 8) % 8;
    }
    if (bb->out_off == bb->out_net.len) {
        bb->out_net.len = bb->out_off = 0;
    } else if (bb->out_off > 1 << 20 && bb->out_off > bb->out_net.len / 2) {
        memmove(bb->out_net.data, bb->out_net.data + bb->out_off, bb->out_net.len - bb->out_off);
        bb->out_net.len -= bb->out_off;
        bb->out_off = 0;
    }
}
