/* libFuzzer target for the broker state machine (mqtt/broker, mqtt/session, mqtt/msg): up
 * to four connections driven through the broker's public interface over an in-memory
 * transport, as server/mqtt_server.c drives it over TLS. The input is a list of operations:
 *   op byte: slot = op & 3, command = op >> 2
 *     0 OPEN (identity byte)    1 DATA (2-byte length, bytes)   2 CLOSED by the transport
 *     3 TICK (seconds byte; also completes every close the broker asked for)
 *     4 kick the slot's principal   5 kick the slot's serial   6 command (QoS/retain byte)
 *     7 stats   8 the slot's writes fail from now on   9 close all (shutdown)
 *     10..55 DATA (1-byte length, bytes)
 *   the durability and cluster calls (hooks.c, restore.c), argument byte a:
 *     56 hub_broker_release of the (a)th held id   57 inject (a: topic, QoS, retain, id; then
 *     a >> 5 payload bytes)   58 restore (a: what, which key, state)   59 claim_done (a: key,
 *     ok)   60 release_session (a: key)   61 hook answers (a: accepted holds, claim parks)
 * The hooks record what they see: every unsubscribed(key, filter) must follow a subscribed
 * of the same pair, accepted never sees an injected id. Sessions expire after 30 s offline.
 * Checks: the broker writes only whole server packets, CONNACK first, nothing after asking
 * to close; a refusing CONNACK is followed by a close; every PUBLISH a principal receives
 * is inside its subscribe ACL; presence stays 0/1 per device and agrees with
 * hub_broker_connected; the broker's running totals (queued, in flight, throttled
 * publishers) agree with a walk after every operation (hub_broker_check); everything is
 * freed each iteration (leaks are findings). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/broker.h"
#include "mqtt/codec.h"
#include "mqtt/msg.h"
#include <stdio.h>
#include "mqtt/acl.h"
#include "mqtt/topic.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/log.h"

#define NSLOTS 4

static const char *const dev_a = "0b8e3b8a-1111-4c1e-8a6e-00000000000a";
static const char *const dev_b = "0b8e3b8a-2222-4c1e-8a6e-00000000000b";
static const char *const svc_pub[] = {"devices/+/commands/#",
                                      "!devices/0b8e3b8a-2222-4c1e-8a6e-00000000000b/#", NULL};
/* The deny pattern must not overlap the allowed wildcards, or they could never be used. */
static const char *const svc_sub[] = {"devices/+/telemetry", "devices/+/status/#", "$SYS/x/#",
                                      "!devices/+/secret/#", NULL};

/* Identities a slot may open with: device A over mTLS and with a password, device B,
 * the service. */
static const struct hub_mqtt_identity idents[] = {
    {HUB_MQTT_DEVICE, "0b8e3b8a-1111-4c1e-8a6e-00000000000a", "4F00AA", NULL, NULL},
    {HUB_MQTT_DEVICE, "0b8e3b8a-1111-4c1e-8a6e-00000000000a", "", NULL, NULL},
    {HUB_MQTT_DEVICE, "0b8e3b8a-2222-4c1e-8a6e-00000000000b", "4F00BB", NULL, NULL},
    {HUB_MQTT_SERVICE, "5e7c0000-3333-4c1e-8a6e-000000000005", "4F00CC", svc_pub, svc_sub},
};
#define NIDENTS (sizeof idents / sizeof idents[0])

struct slot {
    struct hub_mqtt_conn *c;
    int open;         /* between hub_mqtt_conn_open and hub_mqtt_conn_closed */
    int close_asked;  /* the broker called transport close */
    int refused;      /* a CONNACK with a non-zero code was written */
    int broken;       /* writes fail (the peer is gone): output no longer checked */
    unsigned packets; /* packets written so far */
    const struct hub_mqtt_identity *who;
    hub_buf_t out; /* written bytes not yet checked */
};

static struct slot slots[NSLOTS];
static int presence[2]; /* device A, device B */

/* ---- the hooks' side ---------------------------------------------------------------------- */

static int hold_mode, claim_mode; /* what accepted and claim answer (command 61) */
static uint64_t held[64];         /* ids accepted with a hold */
static size_t nheld_ids;
static uint64_t id_counter;
#define NPAIRS 64
static char pairs[NPAIRS][160]; /* "key filter" subscribed and not unsubscribed */
static size_t npairs;
static int pairs_full; /* too many to track: the pairing check stops */
static const char *const keys[] = {"d:0b8e3b8a-1111-4c1e-8a6e-00000000000a",
                                   "d:0b8e3b8a-2222-4c1e-8a6e-00000000000b",
                                   "s:5e7c0000-3333-4c1e-8a6e-000000000005/svc",
                                   "s:5e7c0000-3333-4c1e-8a6e-000000000005/backend-1"};
static const char *const fuzz_topics[] = {
    "devices/0b8e3b8a-1111-4c1e-8a6e-00000000000a/telemetry",
    "devices/0b8e3b8a-1111-4c1e-8a6e-00000000000a/commands/x",
    "devices/0b8e3b8a-2222-4c1e-8a6e-00000000000b/status/online", "devices/+/bad"};

static uint64_t next_id_cb(void *ctx)
{
    (void)ctx;
    return (1ull << 32) | ++id_counter;
}

static void pair(const char *key, const char *f, size_t flen, char *out, size_t n)
{
    snprintf(out, n, "%s %.*s", key, (int)(flen > 120 ? 120 : flen), f);
}

static void h_sub(void *ctx, const char *key, int persistent, const char *f, size_t flen,
                  uint8_t qos)
{
    char p[160];
    (void)ctx, (void)persistent, (void)qos;
    pair(key, f, flen, p, sizeof p);
    for (size_t i = 0; i < npairs; i++)
        if (strcmp(pairs[i], p) == 0)
            return; /* a repeated SUBSCRIBE */
    if (npairs == NPAIRS) {
        pairs_full = 1;
        return;
    }
    memcpy(pairs[npairs++], p, sizeof p);
}

static void h_unsub(void *ctx, const char *key, int persistent, const char *f, size_t flen)
{
    char p[160];
    (void)ctx, (void)persistent;
    pair(key, f, flen, p, sizeof p);
    for (size_t i = 0; i < npairs; i++) {
        if (strcmp(pairs[i], p) == 0) {
            memcpy(pairs[i], pairs[--npairs], sizeof pairs[i]);
            return;
        }
    }
    if (!pairs_full)
        abort(); /* unsubscribed without subscribed */
}

static unsigned h_accepted(void *ctx, const struct hub_msg *m, const char *origin)
{
    (void)ctx, (void)origin;
    if (m->id == 0 || (m->id >> 32) != 1)
        abort(); /* not an id of ours: an injected one, or none */
    if (!hold_mode || m->qos == 0)
        return 0;
    held[nheld_ids++ % 64] = m->id;
    return 1;
}

static int h_claim(void *ctx, const char *key)
{
    (void)ctx, (void)key;
    return claim_mode;
}

static const struct hub_broker_hooks fuzz_hooks = {
    .subscribed = h_sub, .unsubscribed = h_unsub, .accepted = h_accepted, .claim = h_claim};

/* Commands 56..61. */
static void cluster_op(struct hub_broker *b, unsigned cmd, unsigned slot, uint8_t a,
                       const uint8_t *rest, size_t nrest, size_t *used)
{
    const char *key = keys[(a >> 1) & 3];
    *used = 0;
    switch (cmd) {
    case 56:
        if (nheld_ids > 0)
            hub_broker_release(b, held[a % (nheld_ids < 64 ? nheld_ids : 64)]);
        break;
    case 57: {
        const char *t = fuzz_topics[a & 3];
        size_t plen = (size_t)(a >> 5) < nrest ? (size_t)(a >> 5) : nrest;
        int rc = hub_broker_inject(b, t, strlen(t), rest, plen, (uint8_t)(slot % 3), (a >> 2) & 1,
                                   (a >> 3) & 3);
        if (rc < 0 && !(rc == HUB_EINVAL && (a & 3) == 3))
            abort();
        *used = plen;
        break;
    }
    case 58: {
        const char *t = fuzz_topics[a & 1];
        switch (slot) {
        case 0: hub_broker_restore_session(b, key, (a & 1) ? 20 : UINT32_MAX); break;
        case 1:
            hub_broker_restore_sub(b, key, (a & 1) ? "devices/+/telemetry" : "devices/#",
                                   a >> 6 & 3);
            break;
        case 2:
            hub_broker_restore_delivery(b, key, t, strlen(t), rest, nrest > 3 ? 3 : nrest,
                                        (uint8_t)(1 + (a >> 7)), 100 + (a >> 3 & 7), a >> 4 & 3,
                                        (uint16_t)(a >> 5 & 3));
            break;
        default:
            if (a & 1)
                hub_broker_restore_incoming(b, key, (uint16_t)(a >> 3));
            else
                hub_broker_restore_retained(b, t, strlen(t), rest, nrest > 2 ? 2 : nrest,
                                            (uint8_t)(a >> 6 & 3), 200 + (a >> 3 & 7));
        }
        break;
    }
    case 59: hub_broker_claim_done(b, key, a & 1); break;
    case 60: hub_broker_release_session(b, key); break;
    case 61:
        hold_mode = a & 1;
        claim_mode = (a >> 1) & 1;
        break;
    }
}

static size_t count(const char *const *p)
{
    size_t n = 0;
    while (p[n] != NULL)
        n++;
    return n;
}

/* Checks one whole server packet written to s. */
static void check_packet(struct slot *s, const uint8_t *p, size_t n)
{
    int type = p[0] >> 4;
    size_t h = 1;
    while (p[h] & 0x80)
        h++;
    h++; /* fixed header: type byte and remaining length */
    if (s->packets++ == 0 && type != HUB_MQTT_CONNACK)
        abort();
    switch (type) {
    case HUB_MQTT_CONNACK:
        if (n != 4 || s->packets != 1 || p[3] > 5)
            abort();
        if (p[3] != 0)
            s->refused = 1;
        break;
    case HUB_MQTT_PUBLISH: {
        int qos = (p[0] >> 1) & 3;
        if (qos > 2 || n < h + 2)
            abort();
        size_t tlen = (size_t)p[h] << 8 | p[h + 1];
        const char *topic = (const char *)p + h + 2;
        if (n < h + 2 + tlen + (qos ? 2u : 0u))
            abort();
        if (qos > 0 && p[h + 2 + tlen] == 0 && p[h + 3 + tlen] == 0)
            abort(); /* packet id 0 */
        if (!hub_topic_name_valid(topic, tlen))
            abort();
        int allowed = s->who->kind == HUB_MQTT_DEVICE
                          ? hub_acl_device(s->who->id, topic, tlen, 0)
                          : hub_acl_allows(svc_sub, count(svc_sub), topic, tlen, 0);
        if (!allowed)
            abort(); /* a principal got a message outside its ACL */
        break;
    }
    case HUB_MQTT_PUBACK:
    case HUB_MQTT_PUBREC:
    case HUB_MQTT_PUBCOMP:
    case HUB_MQTT_UNSUBACK:
        if (n != 4 || p[0] & 0x0f)
            abort();
        break;
    case HUB_MQTT_PUBREL:
        if (n != 4 || (p[0] & 0x0f) != 2)
            abort();
        break;
    case HUB_MQTT_SUBACK:
        if (n < 5)
            abort();
        for (size_t i = 4; i < n; i++)
            if (p[i] > 2 && p[i] != HUB_MQTT_SUBACK_FAILURE)
                abort();
        break;
    case HUB_MQTT_PINGRESP:
        if (n != 2)
            abort();
        break;
    default: abort(); /* not a server-to-client packet */
    }
}

static int t_write(void *tconn, const void *data, size_t len)
{
    struct slot *s = tconn;
    size_t off = 0, n;
    if (!s->open || s->close_asked)
        abort(); /* written after the broker asked to close, or after closed */
    if (s->broken)
        return -1;
    if (hub_buf_append(&s->out, data, len) != 0)
        abort();
    while (hub_mqtt_frame(s->out.data + off, s->out.len - off, SIZE_MAX, &n) == 1) {
        check_packet(s, s->out.data + off, n);
        off += n;
    }
    memmove(s->out.data, s->out.data + off, s->out.len - off);
    s->out.len -= off;
    return 0;
}

static void t_close(void *tconn)
{
    struct slot *s = tconn;
    if (!s->open || s->close_asked)
        abort(); /* the broker closes a connection once */
    s->close_asked = 1;
}

static const struct hub_mqtt_transport transport = {.write = t_write, .close = t_close};

static void presence_cb(const char *device_id, int connected, void *ctx)
{
    int i = strcmp(device_id, dev_a) == 0 ? 0 : strcmp(device_id, dev_b) == 0 ? 1 : -1;
    (void)ctx;
    if (i < 0)
        abort();
    presence[i] += connected ? 1 : -1;
    if (presence[i] < 0 || presence[i] > 1)
        abort();
}

static void slot_closed(struct slot *s, int revoked)
{
    hub_mqtt_conn_closed(s->c, revoked);
    if (s->out.len != 0 && !s->broken)
        abort(); /* a partial packet was left on the wire */
    hub_buf_free(&s->out);
    memset(s, 0, sizeof *s);
}

static int odd_serial(const char *serial_hex, void *ctx)
{
    (void)ctx;
    return (serial_hex[strlen(serial_hex) - 1] & 1) != 0;
}

static void check_state(struct hub_broker *b)
{
    if (hub_broker_connected(b, dev_a) != presence[0] ||
        hub_broker_connected(b, dev_b) != presence[1])
        abort();
    if (hub_broker_check(b) != 0)
        abort(); /* the O(1) totals drifted from a walk of the sessions */
    for (size_t i = 0; i < NSLOTS; i++)
        if (slots[i].open && slots[i].refused && !slots[i].close_asked)
            abort(); /* refused by CONNACK but left open */
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Every log line is formatted (fuzzed topics go through the JSON escaping) and written
     * to stderr, which the runner closes (-close_fd_mask=2). */
    hub_log_setup(HUB_LOG_DEBUG, HUB_LOG_JSON);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hub_broker_options o = {
        .max_packet = 4096,
        .max_queued = 8,
        .max_inflight = 3,
        .connect_timeout = 10,
        .presence = presence_cb,
        .next_id = next_id_cb,
        .session_expiry_s = 30,
        /* Small quotas (mqtt/quota_check.c), so refusals and their accounting are reached;
         * hub_broker_check compares the retained counts with the store. */
        .quota = {.max_subscriptions = 6, .retained_per_principal = 3,
                  .retained_bytes_per_principal = 300, .retained = 5, .retained_bytes = 600,
                  .rate_msgs = 30, .rate_bytes = 3000, .burst_s = 1, .connects_per_min = 12},
    };
    struct hub_broker *b = hub_broker_new(&o);
    hold_mode = claim_mode = 0;
    nheld_ids = npairs = 0;
    pairs_full = 0;
    id_counter = 0;
    uint64_t now = 1000000;
    size_t i = 0;
    if (b == NULL)
        return 0;
    hub_broker_set_hooks(b, &fuzz_hooks);
    memset(slots, 0, sizeof slots);
    memset(presence, 0, sizeof presence);
    while (i < size) {
        uint8_t op = data[i++];
        struct slot *s = &slots[op & 3];
        unsigned cmd = op >> 2;
        size_t len = 0;
        if (cmd >= 56 && cmd <= 61) {
            if (i < size) {
                uint8_t a = data[i++];
                size_t used;
                cluster_op(b, cmd, op & 3, a, data + i, size - i, &used);
                i += used;
            }
        } else if (cmd == 1 || cmd >= 10) {
            if (cmd == 1 && i + 2 <= size) {
                len = (size_t)data[i] << 8 | data[i + 1];
                i += 2;
            } else if (cmd >= 10 && i < size) {
                len = data[i++];
            }
            if (len > size - i)
                len = size - i;
            if (s->open && !s->close_asked)
                hub_mqtt_conn_data(s->c, data + i, len, now);
            i += len;
        } else if (cmd == 0 && i < size) {
            const struct hub_mqtt_identity *who = &idents[data[i++] % NIDENTS];
            if (!s->open) {
                s->who = who;
                s->open = 1;
                s->c = hub_mqtt_conn_open(b, &transport, s, who, now);
                if (s->c == NULL)
                    abort();
            }
        } else if (cmd == 2 && i < size) {
            int revoked = data[i++] & 1;
            if (s->open)
                slot_closed(s, revoked);
        } else if (cmd == 3 && i < size) {
            now += (uint64_t)data[i++] * 1000;
            for (size_t k = 0; k < NSLOTS; k++)
                if (slots[k].open && slots[k].close_asked)
                    slot_closed(&slots[k], 0);
            hub_broker_tick(b, now);
        } else if (cmd == 4) {
            if (s->open)
                hub_broker_kick_principal(b, s->who->id, "fuzz");
        } else if (cmd == 5) {
            if (s->open && s->who->serial[0])
                hub_broker_kick_serial(b, s->who->serial, NULL, NULL);
            else
                hub_broker_kick_serial(b, NULL, odd_serial, NULL);
        } else if (cmd == 6 && i < size) {
            uint8_t f = data[i++];
            const char *topic = (f & 8) ? "devices/0b8e3b8a-2222-4c1e-8a6e-00000000000b/commands/x"
                                        : "devices/0b8e3b8a-1111-4c1e-8a6e-00000000000a/commands/x";
            size_t plen = (size_t)(f >> 4) < size - i ? (size_t)(f >> 4) : size - i;
            int rc = hub_broker_publish(b, topic, data + i, plen, f % 3, (f >> 2) & 1,
                                        (f & 8) ? dev_b : dev_a);
            if (rc < 0)
                abort();
            i += plen;
        } else if (cmd == 7) {
            struct hub_broker_stats st;
            hub_broker_stats(b, &st);
            size_t open = 0;
            for (size_t k = 0; k < NSLOTS; k++)
                open += slots[k].open;
            if (st.connections != open)
                abort();
        } else if (cmd == 8) {
            s->broken = 1;
        } else if (cmd == 9) {
            hub_broker_close_all(b);
            for (size_t k = 0; k < NSLOTS; k++)
                if (slots[k].open && !slots[k].close_asked)
                    abort(); /* a connection survived the shutdown */
        }
        check_state(b);
    }
    for (size_t k = 0; k < NSLOTS; k++)
        if (slots[k].open)
            slot_closed(&slots[k], 0);
    struct hub_broker_stats st;
    hub_broker_stats(b, &st);
    if (st.connections != 0 || presence[0] != 0 || presence[1] != 0)
        abort();
    hub_broker_free(b);
    return 0;
}
