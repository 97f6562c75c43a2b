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
    uv_async_t wake;
    /* Shared with the network thread, under lock. */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* inbound room, stop */
    struct slot *slots;  /* [65536], by mid */
    size_t pending, queued_bytes;
    hub_buf_t in, rel;   /* received records; released ids (uint64_t) */
    int connect_event;   /* a CONNACK came: subscribe again */
    int stopping;
    /* Network thread only. */
    unsigned backoff_ms;
    uint64_t fail_logged_ms;
    /* Loop thread only. */
    int stopped;
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
        dropped_inbound, held, filters, waiting, queued_now;
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

/* The libmosquitto client: copies the settings of cfg (reads backbone_password_file), sets
 * protocol, TLS, credentials and callbacks on bb->mosq. 0 or a HUB_E* code (logged). */
int hub_backbone_client_setup(struct hub_backbone *bb, const struct hub_config *cfg);
/* The network thread (pthread_create): connects, loops, reconnects until bb->stopping. */
void *hub_backbone_thread(void *arg);

#endif
