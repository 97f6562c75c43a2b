/* The MQTT broker core: sessions, subscriptions, QoS 1/2 state, retained messages, wills,
 * keepalive, ACLs, routing. It knows MQTT but neither sockets nor TLS: a transport (TLS or
 * TCP, in server/) feeds it bytes and gives it a way to write and close. All calls for one
 * broker happen on one loop thread; cross-thread work (commands from the REST API,
 * revocations) is queued to that thread by the caller.
 *
 * This header is the broker's public interface; its implementation is split by noun, the
 * modules listed at the top of mqtt/broker_internal.h.
 *
 * Memory: a published message is one refcounted block (topic + payload) shared by every
 * session it is queued on; a connection is owned by the broker from hub_mqtt_conn_open to
 * hub_mqtt_conn_closed; sessions by the broker. */
#ifndef HUB_MQTT_BROKER_H
#define HUB_MQTT_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "util/close.h"
#include "util/rcbuf.h"

struct hub_broker;
struct hub_mqtt_conn;

/* How the broker reaches a connection's transport. */
struct hub_mqtt_transport {
    /* Queues bytes for the peer (copies them or is done with them on return: the broker
     * reuses the buffer); returns 0 or a negative code (the connection is closing). */
    int (*write)(void *tconn, const void *data, size_t len);
    /* Queues the n pieces of one packet in order: the shared ones lie inside buf, and the
     * transport takes its own reference to buf (hub_rcbuf_ref) to keep them until written,
     * dropping it on every path, on any thread; the others are copied. Returns as write.
     * May be NULL: every packet then goes through write. */
    int (*write_shared)(void *tconn, struct hub_rcbuf *buf, const struct hub_rcbuf_piece *v,
                        size_t n);
    /* Starts closing; the transport later calls hub_mqtt_conn_closed. */
    void (*close)(void *tconn);
    /* The CONNECT was accepted (CONNACK 0 queued): the peer is authenticated. May be NULL. */
    void (*accepted)(void *tconn);
    /* Stops (1) or restarts (0) reading from the peer: a publisher with max_inflight
     * acknowledgements withheld is not read until they are released. May be NULL. */
    void (*pause)(void *tconn, int paused);
};

enum hub_mqtt_principal { HUB_MQTT_DEVICE, HUB_MQTT_SERVICE };

/* Who is on a connection, established by the transport (certificate or password). */
struct hub_mqtt_identity {
    enum hub_mqtt_principal kind;
    char id[40];        /* device or service id (UUID) */
    char serial[41];    /* certificate serial (hex) for mTLS, "" otherwise */
    /* Services: topic patterns ('!' denies), NULL-terminated arrays owned by the identity
     * holder for the connection's lifetime (copied by hub_mqtt_conn_open). */
    const char *const *publish;
    const char *const *subscribe;
};

struct hub_broker_options {
    size_t max_packet;        /* largest accepted packet, bytes */
    /* QoS 1/2 messages kept per session (offline or in flight). A client publishing QoS 1/2
     * to a connected session that holds this many gets its PUBACK/PUBREC withheld until the
     * queue drains (its message is kept while it has fewer than max_inflight withheld);
     * other messages are dropped. */
    size_t max_queued;
    unsigned max_inflight;    /* unacknowledged QoS 1/2 PUBLISHes per connection */
    unsigned connect_timeout; /* seconds a connection may take to send CONNECT */
    /* Presence of devices (connected or not) for last_seen; may be NULL. */
    void (*presence)(const char *device_id, int connected, void *ctx);
    /* A device's PUBLISH that its ACL allows, before it is routed (firmware state reports,
     * server/rollouts.h); the callee copies what it keeps. Loop thread; may be NULL. */
    void (*device_publish)(const char *device_id, const char *topic, size_t tlen,
                           const uint8_t *payload, size_t len, void *ctx);
    void *device_publish_ctx;
    void *ctx;
};

/* Plain counters written on the loop thread only: copy them there (hub_broker_stats). */
struct hub_broker_stats {
    size_t connections, sessions, subscriptions, retained;
    size_t queued, inflight; /* QoS 1/2 deliveries kept, of which sent and unacknowledged */
    size_t throttled;        /* connections whose acknowledgements are withheld */
    unsigned long long msgs_in, msgs_out, dropped_acl, dropped_queue;
    unsigned long long in_by_qos[3], out_by_qos[3]; /* PUBLISH packets by QoS */
};

/* Creates a broker. NULL on ENOMEM. */
struct hub_broker *hub_broker_new(const struct hub_broker_options *o);
/* Frees sessions and messages; every connection must have been closed first. */
void hub_broker_free(struct hub_broker *b);

/* A transport connection is established (handshake done). Returns the broker's handle. */
struct hub_mqtt_conn *hub_mqtt_conn_open(struct hub_broker *b,
                                         const struct hub_mqtt_transport *t, void *tconn,
                                         const struct hub_mqtt_identity *who, uint64_t now_ms);
/* Why the broker closed c (HUB_CLOSE_NONE if it did not; else one of NORMAL, PROTOCOL,
 * TIMEOUT, TAKEOVER, REFUSED, LIMIT, REVOKED, SHUTDOWN, ERROR); valid until
 * hub_mqtt_conn_closed. */
enum hub_close_reason hub_mqtt_conn_close_reason(const struct hub_mqtt_conn *c);
/* Bytes arrived from the peer. */
void hub_mqtt_conn_data(struct hub_mqtt_conn *c, const uint8_t *data, size_t len,
                        uint64_t now_ms);
/* The transport is closed (peer gone, error, or our close); frees c. A will is published
 * unless the client sent DISCONNECT, the connection was kicked, or revoked is set (the
 * transport closed it because its certificate was revoked). */
void hub_mqtt_conn_closed(struct hub_mqtt_conn *c, int revoked);

/* Once a second: keepalive (1.5 x the client's value) and CONNECT timeouts. */
void hub_broker_tick(struct hub_broker *b, uint64_t now_ms);
/* Closes, without publishing wills, every connection whose certificate serial is serial_hex
 * (or, with serial_hex NULL, whose serial is_revoked() says is revoked). Returns how many. */
size_t hub_broker_kick_serial(struct hub_broker *b, const char *serial_hex,
                              int (*is_revoked)(const char *serial_hex, void *ctx), void *ctx);
/* Closes, without publishing wills, every connection of the device or service id (counted
 * as HUB_CLOSE_REVOKED). Returns how many. */
size_t hub_broker_kick_principal(struct hub_broker *b, const char *id, const char *why);
/* Publishes as the server (commands): routed like a client PUBLISH, no ACL. Returns 1 if a
 * connected session of device_id (may be NULL) subscribed to it received it, else 0;
 * negative on error. */
int hub_broker_publish(struct hub_broker *b, const char *topic, const uint8_t *payload,
                       size_t len, int qos, int retain, const char *device_id);
/* Returns 1 when device_id has a live connection. */
int hub_broker_connected(struct hub_broker *b, const char *device_id);
/* Closes every connection (shutdown); wills are not published. */
void hub_broker_close_all(struct hub_broker *b);
/* Copies the counters; O(1), the totals are kept as they change. */
void hub_broker_stats(const struct hub_broker *b, struct hub_broker_stats *out);
/* Recounts the totals by walking every session and connection (tests, fuzzing): 0 when they
 * agree with what hub_broker_stats reports, HUB_EINVAL otherwise. */
int hub_broker_check(const struct hub_broker *b);

#endif
