#include "server/mqtt_metrics.h"

#include <stdio.h>

#include <uv.h>

#include "server/mqtt_quota.h"

static const char *const LISTENER[HUB_LISTENER_COUNT] = {"mtls", "tls", "plain"};
/* "# HELP" and "# TYPE" lines of one metric. */
static int head(hub_buf_t *out, const char *name, const char *type, const char *help)
{
    return hub_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int tls_listener(const struct hub_mqtt_metrics *s, int i)
{
    return s->listening[i] && i != HUB_LISTENER_PLAIN;
}

static int render_connections(const struct hub_mqtt_metrics *s, hub_buf_t *out)
{
    int rc = head(out, "iothub_mqtt_connections", "gauge",
                  "Open MQTT TCP connections by listener, TLS handshakes included.");
    for (int i = 0; rc == 0 && i < HUB_LISTENER_COUNT; i++)
        if (s->listening[i])
            rc = hub_buf_printf(out, "iothub_mqtt_connections{listener=\"%s\"} %u\n", LISTENER[i],
                                s->tls[i].conns);
    if (rc == 0)
        rc = head(out, "iothub_mqtt_unauthenticated_connections", "gauge",
                  "Open MQTT connections whose CONNECT has not been accepted yet "
                  "(handshakes included).");
    for (int i = 0; rc == 0 && i < HUB_LISTENER_COUNT; i++)
        if (s->listening[i])
            rc =
                hub_buf_printf(out, "iothub_mqtt_unauthenticated_connections{listener=\"%s\"} %u\n",
                               LISTENER[i], s->tls[i].unauth);
    if (rc == 0)
        rc = head(out, "iothub_mqtt_connections_accepted_total", "counter",
                  "MQTT connections handed to the broker (TLS handshake done).");
    for (int i = 0; rc == 0 && i < HUB_LISTENER_COUNT; i++)
        if (s->listening[i])
            rc = hub_buf_printf(out,
                                "iothub_mqtt_connections_accepted_total{listener=\"%s\"} %llu\n",
                                LISTENER[i], (unsigned long long)s->tls[i].opened);
    if (rc == 0)
        rc = head(out, "iothub_mqtt_connections_refused_total", "counter",
                  "Connections closed at accept because a listener limit was reached.");
    for (int i = 0; rc == 0 && i < HUB_LISTENER_COUNT; i++)
        if (s->listening[i])
            rc = hub_buf_printf(
                out, "iothub_mqtt_connections_refused_total{listener=\"%s\"} %llu\n", LISTENER[i],
                (unsigned long long)s->tls[i].failed[HUB_TLS_FAIL_LIMIT]);
    if (rc == 0)
        rc = head(out, "iothub_mqtt_proxy_refused_total", "counter",
                  "Connections closed before TLS at the PROXY header stage (listeners with "
                  "*_proxy_protocol on), by reason.");
    for (int i = 0; rc == 0 && i < HUB_LISTENER_COUNT; i++)
        for (int f = 0; rc == 0 && s->listening[i] && f < HUB_PROXY_REFUSAL_COUNT; f++)
            rc = hub_buf_printf(out,
                                "iothub_mqtt_proxy_refused_total{listener=\"%s\",reason=\"%s\"} "
                                "%llu\n",
                                LISTENER[i], hub_proxy_refusal_name((enum hub_proxy_refusal)f),
                                (unsigned long long)s->tls[i].proxy_refused[f]);
    if (rc == 0)
        rc = head(out, "iothub_mqtt_connections_closed_total", "counter",
                  "MQTT connections closed, by reason.");
    for (int r = HUB_CLOSE_NORMAL; rc == 0 && r <= HUB_CLOSE_ERROR; r++)
        rc = hub_buf_printf(out, "iothub_mqtt_connections_closed_total{reason=\"%s\"} %llu\n",
                            hub_close_reason_name((enum hub_close_reason)r), s->closed[r]);
    return rc;
}

static int render_tls(const struct hub_mqtt_metrics *s, hub_buf_t *out)
{
    int rc = head(out, "iothub_tls_handshakes_total", "counter",
                  "TLS handshakes on the MQTT listeners by result (full, resumed from a "
                  "session ticket, failed).");
    for (int i = 0; rc == 0 && i < HUB_LISTENER_COUNT; i++) {
        if (!tls_listener(s, i))
            continue;
        const struct hub_tls_stats *t = &s->tls[i];
        unsigned long long failed = 0;
        for (int f = 0; f < HUB_TLS_FAIL_COUNT; f++)
            failed += t->failed[f];
        rc = hub_buf_printf(out,
                            "iothub_tls_handshakes_total{listener=\"%s\",result=\"full\"} %llu\n"
                            "iothub_tls_handshakes_total{listener=\"%s\",result=\"resumed\"} "
                            "%llu\n"
                            "iothub_tls_handshakes_total{listener=\"%s\",result=\"failed\"} "
                            "%llu\n",
                            LISTENER[i], (unsigned long long)t->full, LISTENER[i],
                            (unsigned long long)t->resumed, LISTENER[i], failed);
    }
    if (rc == 0)
        rc = head(out, "iothub_tls_handshake_failures_total", "counter",
                  "TLS handshakes that did not open a connection, by reason.");
    for (int i = 0; rc == 0 && i < HUB_LISTENER_COUNT; i++)
        for (int f = 0; rc == 0 && tls_listener(s, i) && f < HUB_TLS_FAIL_COUNT; f++)
            rc = hub_buf_printf(out,
                                "iothub_tls_handshake_failures_total{listener=\"%s\",reason=\"%s\"}"
                                " %llu\n",
                                LISTENER[i], hub_tls_peer_fail_name((enum hub_tls_fail)f),
                                (unsigned long long)s->tls[i].failed[f]);
    if (rc == 0)
        rc = head(out, "iothub_tls_handshake_duration_seconds", "histogram",
                  "Time from accept to a successful TLS handshake.");
    for (int i = 0; rc == 0 && i < HUB_LISTENER_COUNT; i++) {
        if (!tls_listener(s, i))
            continue;
        char labels[32];
        snprintf(labels, sizeof labels, "listener=\"%s\"", LISTENER[i]);
        rc = hub_histogram_render(out, "iothub_tls_handshake_duration_seconds", labels,
                                  &hub_tls_hs_bounds, &s->tls[i].handshakes);
    }
    return rc;
}

/* The broker's durability and cluster side (mqtt/hooks.c). */
static int render_hooks(const struct hub_broker_stats *b, hub_buf_t *out)
{
    return hub_buf_printf(
        out,
        "# HELP iothub_mqtt_acks_held PUBACK/PUBREC held until the message is stored or "
        "forwarded (released by the store or the backbone).\n"
        "# TYPE iothub_mqtt_acks_held gauge\n"
        "iothub_mqtt_acks_held %zu\n"
        "# HELP iothub_mqtt_connects_parked CONNECTs waiting while their persistent session is "
        "claimed from PostgreSQL or another node.\n"
        "# TYPE iothub_mqtt_connects_parked gauge\n"
        "iothub_mqtt_connects_parked %zu\n"
        "# HELP iothub_mqtt_injected_total Messages received from other nodes and routed "
        "here.\n"
        "# TYPE iothub_mqtt_injected_total counter\n"
        "iothub_mqtt_injected_total %llu\n"
        "# HELP iothub_mqtt_injected_duplicates_total Messages from other nodes ignored: their "
        "id was injected lately.\n"
        "# TYPE iothub_mqtt_injected_duplicates_total counter\n"
        "iothub_mqtt_injected_duplicates_total %llu\n"
        "# HELP iothub_mqtt_sessions_expired_total Persistent sessions dropped after "
        "mqtt_session_expiry offline.\n"
        "# TYPE iothub_mqtt_sessions_expired_total counter\n"
        "iothub_mqtt_sessions_expired_total %llu\n",
        b->held_acks, b->parked, b->injected, b->inject_dupes, b->sessions_expired);
}

static int render_messages(const struct hub_mqtt_metrics *s, hub_buf_t *out)
{
    const struct hub_broker_stats *b = &s->broker;
    int rc = head(out, "iothub_mqtt_publish_received_total", "counter",
                  "PUBLISH packets received from clients, by QoS.");
    for (int q = 0; rc == 0 && q < 3; q++)
        rc = hub_buf_printf(out, "iothub_mqtt_publish_received_total{qos=\"%d\"} %llu\n", q,
                            b->in_by_qos[q]);
    if (rc == 0)
        rc = head(out, "iothub_mqtt_publish_sent_total", "counter",
                  "PUBLISH packets sent to clients (retransmissions included), by QoS.");
    for (int q = 0; rc == 0 && q < 3; q++)
        rc = hub_buf_printf(out, "iothub_mqtt_publish_sent_total{qos=\"%d\"} %llu\n", q,
                            b->out_by_qos[q]);
    if (rc == 0)
        rc = hub_buf_printf(
            out,
            "# HELP iothub_mqtt_received_bytes_total MQTT bytes received (after TLS).\n"
            "# TYPE iothub_mqtt_received_bytes_total counter\n"
            "iothub_mqtt_received_bytes_total %llu\n"
            "# HELP iothub_mqtt_sent_bytes_total MQTT bytes sent (before TLS).\n"
            "# TYPE iothub_mqtt_sent_bytes_total counter\n"
            "iothub_mqtt_sent_bytes_total %llu\n"
            "# HELP iothub_mqtt_worker_queued_bytes_total Bytes of writes copied into the "
            "worker queues (a shared message is queued by reference, its bytes not counted).\n"
            "# TYPE iothub_mqtt_worker_queued_bytes_total counter\n"
            "iothub_mqtt_worker_queued_bytes_total %llu\n"
            "# HELP iothub_mqtt_messages_dropped_total Messages not delivered: a session's "
            "queue was full, or the sender's ACL denied the topic.\n"
            "# TYPE iothub_mqtt_messages_dropped_total counter\n"
            "iothub_mqtt_messages_dropped_total{reason=\"queue_full\"} %llu\n"
            "iothub_mqtt_messages_dropped_total{reason=\"acl_denied\"} %llu\n"
            "# HELP iothub_mqtt_retained_messages Retained messages stored.\n"
            "# TYPE iothub_mqtt_retained_messages gauge\n"
            "iothub_mqtt_retained_messages %zu\n"
            "# HELP iothub_mqtt_sessions MQTT sessions, connected or persistent offline.\n"
            "# TYPE iothub_mqtt_sessions gauge\n"
            "iothub_mqtt_sessions %zu\n"
            "# HELP iothub_mqtt_subscriptions Subscriptions over all sessions.\n"
            "# TYPE iothub_mqtt_subscriptions gauge\n"
            "iothub_mqtt_subscriptions %zu\n"
            "# HELP iothub_mqtt_queued_messages QoS 1/2 deliveries kept in sessions (in flight "
            "included).\n"
            "# TYPE iothub_mqtt_queued_messages gauge\n"
            "iothub_mqtt_queued_messages %zu\n"
            "# HELP iothub_mqtt_inflight_messages QoS 1/2 deliveries sent and not yet "
            "acknowledged.\n"
            "# TYPE iothub_mqtt_inflight_messages gauge\n"
            "iothub_mqtt_inflight_messages %zu\n"
            "# HELP iothub_mqtt_publishers_throttled Connections whose QoS 1/2 acknowledgements "
            "are withheld because a subscriber's queue is full.\n"
            "# TYPE iothub_mqtt_publishers_throttled gauge\n"
            "iothub_mqtt_publishers_throttled %zu\n",
            s->bytes_in, s->bytes_out, s->queued_bytes, b->dropped_queue, b->dropped_acl,
            b->retained, b->sessions, b->subscriptions, b->queued, b->inflight, b->throttled);
    if (rc == 0)
        rc = render_hooks(b, out);
    return rc;
}

static int render_revocation(const struct hub_mqtt_metrics *s, hub_buf_t *out)
{
    unsigned long long reconnects = s->feed.attempts > 0 ? s->feed.attempts - 1 : 0;
    int rc = hub_buf_printf(
        out,
        "# HELP iothub_revocation_sessions_closed_total MQTT connections closed because their "
        "certificate, device or service was revoked.\n"
        "# TYPE iothub_revocation_sessions_closed_total counter\n"
        "iothub_revocation_sessions_closed_total %llu\n"
        "# HELP iothub_revocation_serials Revoked certificate serials in the set checked on "
        "every handshake.\n"
        "# TYPE iothub_revocation_serials gauge\n"
        "iothub_revocation_serials %zu\n"
        "# HELP iothub_revocation_feed_reconnects_total Connection attempts of the revocation "
        "feed after its first one.\n"
        "# TYPE iothub_revocation_feed_reconnects_total counter\n"
        "iothub_revocation_feed_reconnects_total %llu\n"
        "# HELP iothub_revocation_feed_up 1 once the revocation set has been loaded from the "
        "database.\n"
        "# TYPE iothub_revocation_feed_up gauge\n"
        "iothub_revocation_feed_up %d\n"
        "# HELP iothub_revocation_feed_last_load_age_seconds Seconds since the revocation set "
        "was last (re)loaded from the database (absent before the first load).\n"
        "# TYPE iothub_revocation_feed_last_load_age_seconds gauge\n",
        s->closed[HUB_CLOSE_REVOKED], s->revoked_serials, reconnects, s->feed_ready);
    if (rc == 0 && s->feed.loads > 0) {
        /* uv_now() and uv_hrtime() both count from CLOCK_MONOTONIC. */
        uint64_t now_ms = uv_hrtime() / 1000000;
        uint64_t age = now_ms > s->feed.last_load_ms ? now_ms - s->feed.last_load_ms : 0;
        rc = hub_buf_printf(out, "iothub_revocation_feed_last_load_age_seconds %.3f\n",
                            (double)age / 1000);
    }
    return rc;
}

int hub_mqtt_metrics_render(const struct hub_mqtt_metrics *s, hub_buf_t *out)
{
    int rc = render_connections(s, out);
    if (rc == 0)
        rc = render_tls(s, out);
    if (rc == 0)
        rc = render_messages(s, out);
    if (rc == 0)
        rc = render_revocation(s, out);
    if (rc == 0)
        rc = hub_mqtt_quota_metrics_render(&s->broker, out); /* quotas (server/mqtt_quota.c) */
    return rc;
}

int hub_mqtt_metrics_render_suites(const hub_tls_ctx_t *mtls, const hub_tls_ctx_t *tls,
                                   hub_buf_t *out)
{
    const hub_tls_ctx_t *ctx[] = {mtls, tls};
    const char *name;
    uint64_t n;
    int rc = head(out, "iothub_tls_handshakes_by_suite_total", "counter",
                  "Successful TLS handshakes on the MQTT listeners by negotiated cipher suite "
                  "(mbedTLS name; _RSA_ suites used the RSA server certificate).");
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; rc == 0 && hub_tls_ctx_suite_stats(ctx[l], i, &name, &n) == 0; i++)
            rc = hub_buf_printf(out,
                                "iothub_tls_handshakes_by_suite_total{listener=\"%s\",suite=\"%s\"}"
                                " %llu\n",
                                LISTENER[l], name, (unsigned long long)n);
    return rc;
}
