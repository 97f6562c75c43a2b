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

/* Quotas per principal (mqtt/quota.c). Each is refused, counted in
 * hub_broker_stats.quota_refusals[] and logged at most once a minute per principal and quota.
 * The names are the configuration keys (hub_quota_key). */
enum hub_quota {
    HUB_QUOTA_SUBSCRIPTIONS,        /* filters per session: SUBACK 0x80 */
    HUB_QUOTA_RETAINED,             /* retained messages per principal: not stored */
    HUB_QUOTA_RETAINED_BYTES,       /* retained bytes (topic + payload) per principal */
    HUB_QUOTA_RETAINED_TOTAL,       /* retained messages in the broker */
    HUB_QUOTA_RETAINED_BYTES_TOTAL, /* retained bytes in the broker */
    HUB_QUOTA_RATE_MSGS,            /* PUBLISHes per second per device connection: not read */
    HUB_QUOTA_RATE_BYTES,           /* PUBLISH bytes per second per device connection */
    HUB_QUOTA_CONNECTS,             /* CONNECTs per device id per minute: CONNACK 3 */
    HUB_QUOTA_COUNT
};
/* The configuration key of quota q ("mqtt_max_subscriptions", ...), its label in /metrics. */
const char *hub_quota_key(enum hub_quota q);

/* The limits (0: none). Retained: per principal, the publisher (device or service id; the
 * device of the topic "devices/<id>/..." when there is no publishing connection: wills,
 * server publishes, restored and injected messages, which are counted but never refused).
 * Rates: devices only, a token bucket holding burst_s seconds of the rate. */
struct hub_broker_quotas {
    size_t max_subscriptions;
    size_t retained_per_principal, retained_bytes_per_principal;
    size_t retained, retained_bytes;
    uint64_t rate_msgs, rate_bytes; /* per second */
    unsigned burst_s;               /* 0: 1 */
    unsigned connects_per_min;
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
    /* The id of each message the broker accepts (client PUBLISH of any QoS, server publish,
     * will): fleet-unique and non-zero (the server makes boot number << 32 | counter).
     * Called with next_id_ctx; NULL: a local counter from 1. Loop thread. */
    uint64_t (*next_id)(void *ctx);
    void *next_id_ctx;
    /* Persistent sessions offline longer than this are dropped (hooks.session_gone), checked
     * by hub_broker_tick; 0: kept until a clean start (MQTT 3.1.1). */
    uint32_t session_expiry_s;
    struct hub_broker_quotas quota; /* zeroed: no quotas */
};

/* Plain counters written on the loop thread only: copy them there (hub_broker_stats). */
struct hub_broker_stats {
    size_t connections, sessions, subscriptions, retained;
    size_t queued, inflight; /* QoS 1/2 deliveries kept, of which sent and unacknowledged */
    size_t throttled;        /* publishers waiting on a full subscriber (flow control) */
    unsigned long long msgs_in, msgs_out, dropped_acl, dropped_queue;
    unsigned long long in_by_qos[3], out_by_qos[3]; /* PUBLISH packets by QoS */
    /* Durability and several nodes (hooks): acknowledgements the hooks hold now, parked
     * CONNECTs now, messages injected and injected duplicates ignored, sessions expired. */
    size_t held_acks, parked;
    unsigned long long injected, inject_dupes, sessions_expired;
    /* Quotas (mqtt/quota.c): refusals by enum hub_quota, retained bytes held, device
     * connections not read now because they are over their rate, principals tracked. */
    unsigned long long quota_refusals[HUB_QUOTA_COUNT];
    size_t retained_bytes, rate_paused, quota_principals;
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
 * as HUB_CLOSE_REVOKED; the principal was revoked or reset) and drops its sessions
 * (hooks.session_gone for persistent ones). Returns how many connections. */
size_t hub_broker_kick_principal(struct hub_broker *b, const char *id, const char *why);
/* Publishes as the server (commands): routed like a client PUBLISH, no ACL. Returns 1 if a
 * connected session of device_id (may be NULL) subscribed to it received it, else 0;
 * negative on error. */
/* As hub_broker_publish, and *id is the message's id when the hooks took holds on it (0:
 * none, nothing to wait for): hooks.durable(id) says when the last one was released. For a
 * server that must not acknowledge (a command's 202) what a crash could still lose. */
int hub_broker_publish_durable(struct hub_broker *b, const char *topic, const uint8_t *payload,
                               size_t len, int qos, int retain, const char *device_id,
                               uint64_t *id);
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

/* ---- durability and several nodes (issue 18; the contract is mqtt-hooks-contract.md) ----
 * Sessions are keyed "d:<device id>" or "s:<service id>/<client id>". Everything below runs
 * on the broker's loop thread; the hooks are called there, and may call back into the broker
 * only where said. Strings and messages given to a hook are valid during the call only (copy
 * what is kept; m may be a borrowed QoS 0 message, m->id is its id). */
struct hub_msg;

struct hub_broker_hooks {
    void *ctx;
    /* A persistent session (clean 0) was created or resumed by a CONNECT; expiry_s: seconds
     * it is kept offline (options.session_expiry_s, or UINT32_MAX for never). Not called by
     * hub_broker_restore_session. */
    void (*session_open)(void *ctx, const char *key, uint32_t expiry_s);
    /* A persistent session was dropped: clean start, expiry, its principal kicked (revoked
     * or reset). Not called by hub_broker_release_session nor at hub_broker_free. */
    void (*session_gone)(void *ctx, const char *key);
    /* A subscription entered (subscribed) or left (unsubscribed) the broker's trie, for every
     * session. persistent is 1 only when a client's (UN)SUBSCRIBE changed a persistent
     * session's stored state (the store writes it); 0 for clean sessions and for changes of
     * the trie alone: hub_broker_restore_sub, a session dropped or released (each of its
     * filters is reported unsubscribed, then session_gone when it applies). So every
     * subscribed(key, filter) is paired with one unsubscribed(key, filter), whatever
     * persistent says (the backbone counts filters with them). A repeated SUBSCRIBE of the same
     * filter reports subscribed again (QoS change) without a second unsubscribed. */
    void (*subscribed)(void *ctx, const char *key, int persistent, const char *filter,
                       size_t flen, uint8_t qos);
    void (*unsubscribed)(void *ctx, const char *key, int persistent, const char *filter,
                         size_t flen);
    /* A QoS >= 1 delivery of m at qos was queued on a persistent session (not for retained
     * copies sent at SUBSCRIBE, nor restored deliveries). remote: m came from
     * hub_broker_inject. */
    void (*queued)(void *ctx, const char *key, const struct hub_msg *m, uint8_t qos, int remote);
    /* A persistent session's delivery of message msg_id ended (PUBACK, PUBCOMP) or was dropped
     * by a limit (hub_broker_restore_delivery over max_queued). */
    void (*delivered)(void *ctx, const char *key, uint64_t msg_id);
    /* QoS 2 inbound state of a persistent session: packet id pid awaiting PUBREL was added
     * (1) or released (0). */
    void (*incoming)(void *ctx, const char *key, uint16_t pid, int added);
    /* The retained store changed: m set on its topic, or (m NULL) the topic cleared. remote:
     * from hub_broker_inject. Not called by hub_broker_restore_retained. */
    void (*retained)(void *ctx, const char *topic, size_t tlen, const struct hub_msg *m,
                     int remote);
    /* A message accepted from a local client, hub_broker_publish or a will (NOT from
     * hub_broker_inject), after routing (queued/retained were called before). origin_device_id:
     * the publishing device, NULL for services and the server. Returns the holds it takes on
     * the publisher's acknowledgement (0 or 1; ignored for QoS 0, the server and wills): the
     * PUBACK/PUBREC goes out, in packet order, once every hold was released with
     * hub_broker_release(b, m->id), which may be called from this or an earlier hook of m
     * (queued, retained) too. */
    unsigned (*accepted)(void *ctx, const struct hub_msg *m, const char *origin_device_id);
    /* CONNECT of a persistent session whose key is not in memory. Return 0: go on (a new
     * session). Return 1: the connection is parked (no CONNACK; input buffered; the CONNECT
     * timeout still applies) until hub_broker_claim_done(b, key, ok), which must not be called
     * from inside claim. */
    int (*claim)(void *ctx, const char *key);
    /* A message of hub_broker_publish_durable whose holds (taken by accepted) were all
     * released: it is stored for every persistent session it was queued on and on its way
     * to the other nodes. Not called for a message no hold was taken on. */
    void (*durable)(void *ctx, uint64_t msg_id);
    /* A persistent session's connection closed: its expiry counts from now (the store keeps
     * the time, so a restart does not restart the clock). Not called by
     * hub_broker_release_session. */
    void (*session_offline)(void *ctx, const char *key);
    /* A persistent session's QoS 2 delivery of message msg_id changed state (enum
     * hub_delivery_state; today HUB_DELIVERY_RELEASED: PUBREC received, PUBREL pid due), so
     * that a restart resends PUBREL pid rather than the PUBLISH (MQTT 3.1.1 4.4). Returns 0:
     * the broker sends the PUBREL now; 1: once the state is stored, the server calls
     * hub_broker_pubrel (which sends it if the delivery still waits for it). */
    int (*delivery_state)(void *ctx, const char *key, uint64_t msg_id, int state,
                          uint16_t pid);
};
/* Sets the hooks (copied; NULL: none). Before any connection. */
void hub_broker_set_hooks(struct hub_broker *b, const struct hub_broker_hooks *h);

/* Releases one hold on the acknowledgement of message msg_id (see accepted); unknown ids
 * are ignored (the publisher may be gone). */
void hub_broker_release(struct hub_broker *b, uint64_t msg_id);
/* A message from another node (id != 0 its origin id; 0: no de-duplication): routed to local
 * sessions only; hooks.accepted not called, hooks.queued/retained with remote = 1. An id seen
 * in the last 16384 injected QoS >= 1 messages is ignored. Returns the local sessions that
 * matched (0 also for a duplicate), or HUB_EINVAL (topic name, qos), HUB_ENOMEM. */
int hub_broker_inject(struct hub_broker *b, const char *topic, size_t tlen,
                      const uint8_t *payload, size_t len, uint8_t qos, int retain, uint64_t id);

/* Restore (at start, or while a CONNECT is parked for claim). Hooks are not called (except
 * subscribed with persistent 0). 0 on success, HUB_ENOTFOUND (no such session: restore it
 * first), HUB_EINVAL (bad filter, topic or qos; the session is connected), HUB_ENOMEM. */
/* Creates the persistent session key if absent, offline; expiry_s: seconds kept offline from
 * now (UINT32_MAX: never; capped by options.session_expiry_s when that is set). */
int hub_broker_restore_session(struct hub_broker *b, const char *key, uint32_t expiry_s);
/* As hub_broker_restore_session for a session offline for offline_s seconds already
 * (UINT32_MAX: not known, counted from now): kept for what is left of its expiry (capped by
 * options.session_expiry_s). Returns 1 when that is nothing: not restored, hooks.session_gone
 * called (its stored state goes), counted in sessions_expired, logged; its other rows then
 * get HUB_ENOTFOUND. */
int hub_broker_restore_session_since(struct hub_broker *b, const char *key, uint32_t expiry_s,
                                     uint32_t offline_s);
int hub_broker_restore_sub(struct hub_broker *b, const char *key, const char *filter,
                           uint8_t qos);
/* Appends a delivery (state: enum hub_delivery_state, 0 queued, 1 sent: resent with DUP and
 * packet id pid, 2 PUBREL sent: PUBREL pid resent); restore in-flight ones with distinct
 * non-zero pids (otherwise they are restored as queued). Returns 1 when dropped because the
 * session holds max_queued (counted, logged, hooks.delivered called). */
int hub_broker_restore_delivery(struct hub_broker *b, const char *key, const char *topic,
                                size_t tlen, const uint8_t *payload, size_t len, uint8_t qos,
                                uint64_t id, int state, uint16_t pid);
int hub_broker_restore_incoming(struct hub_broker *b, const char *key, uint16_t pid);
/* An empty payload clears the topic. */
int hub_broker_restore_retained(struct hub_broker *b, const char *topic, size_t tlen,
                                const uint8_t *payload, size_t len, uint8_t qos, uint64_t id);
/* Sends PUBREL pid to session key's connection when its QoS 2 delivery of message msg_id
 * still waits for it (hooks.delivery_state returned 1 and its state is now stored);
 * otherwise nothing (gone, completed, or resent by a reconnection). */
void hub_broker_pubrel(struct hub_broker *b, const char *key, uint64_t msg_id, uint16_t pid);
/* Ends the parked CONNECTs of key (see claim): ok → CONNACK (session present when it exists
 * now) and the buffered input is handled; else CONNACK 3 (server unavailable) and close. */
void hub_broker_claim_done(struct hub_broker *b, const char *key, int ok);
/* Takeover by another node: closes the session's live connection (HUB_CLOSE_TAKEOVER, no
 * will) and forgets the session (only unsubscribed is called, persistent 0: the stored state
 * stays for the new owner). Returns 1 if the session existed, else 0. */
int hub_broker_release_session(struct hub_broker *b, const char *key);
/* outage: calls fn for each persistent session in memory without a connection (offline). */
void hub_broker_each_offline(struct hub_broker *b, void (*fn)(const char *key, void *ctx),
                             void *ctx);
/* outage: hub_broker_release_session for a persistent session still offline; else nothing
 * (a client connected to it meanwhile). Returns 1 if it was released. */
int hub_broker_release_offline(struct hub_broker *b, const char *key);

#endif
