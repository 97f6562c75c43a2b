/* Private to the backbone's files (server/backbone.c: forwarding, subscriptions, the loop
 * side, start and stop; server/backbone_client.c: the libmosquitto thread and its
 * callbacks): the state they share and the helpers of both. See server/backbone.h for the
 * design and the top of server/backbone.c for how the threads meet. */
#ifndef HUB_SERVER_BACKBONE_INTERNAL_H
#define HUB_SERVER_BACKBONE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <uv.h>

#include "server/backbone.h"
#include "server/backbone_conf.h"
#include "server/backbone_subs.h"
#include "util/buf.h"

#define KEEPALIVE_S 30
#define MAX_PENDING 30000   /* forwards not yet acknowledged; < 65535 mids */
/* QoS 0 forwards are dropped (counted) while more than this many bytes of forwards are not
 * done with (or backbone_max_queued when smaller): a flood of QoS 0 must not build seconds of
 * backlog on the network thread, nor make QoS 1/2 forwards wait behind it. */
#define QOS0_MAX_BACKLOG (4u << 20)
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000
#define SUB_BATCH 64        /* filters per SUBSCRIBE when subscribing again */
#define LOG_EVERY_MS 10000  /* drops and refusals are logged at most this often */
#define PROP_ID "iothub-id"
#define PROP_NODE "iothub-node"
#define CONTROL_KEY ""      /* the subscription table's key for control filters */
#define SUB_OPTIONS (MQTT_SUB_OPT_NO_LOCAL | MQTT_SUB_OPT_RETAIN_AS_PUBLISHED |                    \
                     MQTT_SUB_OPT_SEND_RETAIN_NEW)

struct slot {
    uint64_t id;
    uint32_t bytes;
    uint8_t used, hold;
};

/* A forward in the outbound buffers (loop -> network thread), followed by its topic, a NUL
 * and its payload, padded to 8 bytes. */
struct fwd {
    uint64_t id;
    uint32_t tlen, plen;
    uint8_t qos, retain, hold, pad_;
};

/* A forward done with (network thread -> loop): acknowledged by the backbone, sent at QoS 0,
 * refused or dropped. bytes go back to backbone_max_queued; hold: release id. */
struct ack {
    uint64_t id;
    uint32_t bytes;
    uint32_t hold;
};

/* A received message in the inbound buffer, followed by origin, topic and payload, padded to
 * 8 bytes. */
struct rec {
    uint64_t id;
    uint32_t tlen, plen;
    uint8_t qos, retain, control, olen;
};

typedef atomic_ullong counter_t;

struct hub_backbone {
    uv_loop_t *loop;
    struct hub_broker *broker;
    uint64_t (*next_id)(void *ctx);
    void *next_id_ctx;
    struct mosquitto *mosq;
    pthread_t thread;
    int thread_started;
    struct hub_backbone_url url;
    char node[HUB_NODE_NAME_MAX + 1];
    char client_id[HUB_NODE_NAME_MAX + 16];
    size_t max_queued, max_inbound, max_packet;
    uint32_t expiry_s;
    char *cafile, *certfile, *keyfile, *username, *password; /* copies; password wiped */
    uv_async_t wake;     /* network thread -> loop */
    uv_check_t flush;    /* hands this loop iteration's forwards over (after I/O) */
    uv_idle_t flush_idle; /* the same when forwards came before the poll (timers) */
    int handles_open;
    int efd;             /* eventfd: loop -> network thread (forwards, subscriptions, stop) */
    /* Shared with the network thread, under lock. */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* inbound room, stop */
    hub_buf_t out;       /* forwards handed over, not yet taken by the network thread */
    hub_buf_t in, rel;   /* received records; struct ack records */
    int connect_event;   /* a CONNACK came: subscribe again */
    atomic_int stopping;
    /* Network thread only. */
    unsigned backoff_ms;
    uint64_t fail_logged_ms;
    int net_connected;   /* CONNACK 0 seen, no disconnect since: forwards go to libmosquitto */
    int ever_connected;
    struct slot *slots;  /* [65536], by mid */
    size_t pending;      /* forwards in libmosquitto not acknowledged yet */
    hub_buf_t out_net;   /* forwards taken, from out_off on not given to libmosquitto yet */
    size_t out_off;
    hub_buf_t acks_net;  /* struct ack records of this iteration, handed over once */
    mosquitto_property *node_props; /* iothub-node, built once (control messages) */
    /* Loop thread only. */
    int stopped;
    hub_buf_t out_loop;  /* this loop iteration's forwards */
    size_t loop_queued;  /* bytes of forwards handed over and not done with */
    hub_buf_t in_loop, rel_loop, scratch, unsub_later;
    struct hub_bsubs *subs;
    struct hub_msg **fifo; /* forwards waiting for room (a reference each) */
    size_t fifo_head, fifo_len, fifo_cap, fifo_bytes;
    hub_backbone_control_cb control_cb;
    void *control_ctx;
    uint64_t drop_logged_ms;
    /* Counters, any thread. */
    atomic_int connected;
    counter_t connects, forwarded[3], received[3], dropped_disconnected, dropped_full, refused,
        dropped_inbound, held, filters, waiting, queued_now, sessions_lost;
};

static inline uint64_t bb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void bb_count(counter_t *c, long long n)
{
    atomic_fetch_add_explicit(c, (unsigned long long)n, memory_order_relaxed);
}

static inline unsigned long long bb_get(counter_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static inline int bb_is_control(const char *topic, size_t len)
{
    size_t n = sizeof HUB_BACKBONE_CONTROL_PREFIX - 1;
    return len >= n && memcmp(topic, HUB_BACKBONE_CONTROL_PREFIX, n) == 0;
}

/* What a pending forward costs against backbone_max_queued: its bytes and an estimate of
 * libmosquitto's own (packet, properties, bookkeeping). */
static inline size_t bb_cost(size_t tlen, size_t plen)
{
    return tlen + plen + 128;
}

/* ---- the outbound path (server/backbone_out.c) ---- */
/* Loop thread: appends one forward to this iteration's batch (no allocation once the buffers
 * are warm, no lock). Returns 0, HUB_ERANGE (over backbone_max_queued), HUB_EIO (QoS 0 while
 * the backbone is down) or HUB_ENOMEM. */
int bb_out_enqueue(struct hub_backbone *bb, const char *topic, size_t tlen, const void *payload,
                   size_t plen, uint8_t qos, int retain, uint64_t id, int hold);
/* Loop thread: the handles that hand the batch over once per loop iteration. */
void bb_out_init(struct hub_backbone *bb);
/* Any thread: wakes the network thread. */
void bb_wake_net(struct hub_backbone *bb);
/* Network thread: takes what the loop handed over and gives libmosquitto what it may take now
 * (connected, under MAX_PENDING); QoS 0 forwards while down are dropped (counted). */
void bb_out_publish(struct hub_backbone *bb);
/* Network thread: a forward is done with (see struct ack). */
void bb_out_done(struct hub_backbone *bb, uint64_t id, uint32_t bytes, int hold);
/* Network thread: hands the acks of this iteration to the loop (one wake-up). */
void bb_out_hand_acks(struct hub_backbone *bb);

/* The libmosquitto client: copies the settings of cfg (reads backbone_password_file), sets
 * protocol, TLS, credentials and callbacks on bb->mosq. 0 or a HUB_E* code (logged). */
int hub_backbone_client_setup(struct hub_backbone *bb, const struct hub_config *cfg);
/* The network thread (pthread_create): connects, loops, reconnects until bb->stopping. */
void *hub_backbone_thread(void *arg);

#endif
