/* The MQTT side's counters as GET /metrics shows them. The loop owns the live counters
 * (plain integers in the listeners, the broker, the revocation feed and the MQTT server,
 * written by the loop thread only); once a second its tick copies them into a
 * struct hub_mqtt_metrics under a mutex, and API threads copy that snapshot out under the
 * same mutex to render it. So the hot path takes no lock and makes no atomic operation,
 * an API thread never reads a loop-owned structure, and a scrape sees values at most 1 s
 * old (a few hundred bytes copied once a second is the only cost to the loop). */
#ifndef HUB_SERVER_MQTT_METRICS_H
#define HUB_SERVER_MQTT_METRICS_H

#include <stdint.h>

#include "mqtt/broker.h"
#include "server/revfeed.h"
#include "net/tls_ctx.h"
#include "net/tls_listener.h"
#include "util/buf.h"
#include "util/close.h"

enum hub_mqtt_listener_kind {
    HUB_LISTENER_MTLS,
    HUB_LISTENER_TLS,
    HUB_LISTENER_PLAIN,
    HUB_LISTENER_COUNT
};

struct hub_mqtt_metrics {
    int listening[HUB_LISTENER_COUNT];
    struct hub_tls_stats tls[HUB_LISTENER_COUNT];
    struct hub_broker_stats broker;
    unsigned long long closed[HUB_CLOSE_COUNT]; /* by reason (util/close.h) */
    unsigned long long bytes_in, bytes_out;     /* MQTT bytes (TLS plaintext) */
    unsigned long long queued_bytes;            /* bytes copied into the worker queues */
    size_t revoked_serials;
    int feed_ready;
    struct hub_revfeed_stats feed;
};

/* Appends the snapshot in the Prometheus text format (0.0.4). */
int hub_mqtt_metrics_render(const struct hub_mqtt_metrics *s, hub_buf_t *out);
/* Appends iothub_tls_handshakes_by_suite_total for the TLS contexts of the mTLS and the
 * password listeners (NULL: not listening), one line per configured suite. */
int hub_mqtt_metrics_render_suites(const hub_tls_ctx_t *mtls, const hub_tls_ctx_t *tls,
                                   hub_buf_t *out);

#endif
