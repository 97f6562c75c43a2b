/* Internals of the broker shared by its modules, as libuv's internal.h: the connection and
 * broker structures, and the functions one module calls in another. Nothing outside mqtt/
 * includes it (the public API is mqtt/broker.h). Everything here runs on the broker's loop
 * thread.
 *
 *   broker.c     the broker object, session removal, tick, kicks, server publish, stats
 *   conn.c       a connection: bytes in, framing, packet dispatch, writes, close, keepalive
 *   connect.c    CONNECT: refusals, session lookup, takeover, resume
 *   publish.c    PUBLISH from a client and the QoS 1/2 acknowledgements
 *   subscribe.c  SUBSCRIBE (retained messages for new subscriptions), UNSUBSCRIBE
 *   route.c      routing: match, one copy per session, delivery, the in-flight window
 *   flow.c       flow control: withheld acknowledgements, waits on full queues, drops
 *   will.c       wills: kept at CONNECT, published when the peer vanishes
 *   hooks.c      durability and several nodes: hooks, message ids, acknowledgement holds,
 *                injected messages (de-duplicated), session expiry
 *   restore.c    state restored from elsewhere, parked CONNECTs ended, sessions released
 *   quota_check.c  quotas per principal: subscriptions, retained, PUBLISH rate, CONNECTs
 *                (its table and token bucket: mqtt/quota.h) */
#ifndef HUB_MQTT_BROKER_INTERNAL_H
#define HUB_MQTT_BROKER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/broker.h"
#include "mqtt/codec.h"
#include "mqtt/idmap.h"
#include "mqtt/msg.h"
#include "mqtt/quota.h"
#include "mqtt/retained.h"
#include "mqtt/session.h"
#include "mqtt/subtree.h"
#include "util/buf.h"
#include "util/error.h"

/* A PUBACK/PUBREC withheld (flow.c): it goes out when it is first in line, its holds were
 * released and flow control no longer withholds it. */
struct hub_held_ack {
    uint64_t id;   /* the message the hooks' holds are on (0: none) */
    uint32_t ack;  /* type << 16 | packet id */
    uint8_t holds; /* holds not released yet (hub_broker_release) */
    uint8_t flow;  /* withheld by flow control: appended while the publisher waited */
};

struct hub_mqtt_conn {
    struct hub_broker *b;
    const struct hub_mqtt_transport *t;
    void *tconn;
    struct hub_mqtt_identity who;
    char **pub_patterns, **sub_patterns; /* services: owned copies */
    size_t acl_id_len; /* devices: strlen(who.id), 0 when the id may own no topic */
    hub_buf_t in;      /* the start of a packet not complete yet */
    int connected;     /* CONNECT accepted */
    int closing;       /* close requested: ignore further input */
    int keep_will;     /* publish the will when the transport closes */
    enum hub_close_reason close_reason; /* why the broker closed it (NONE: it did not) */
    uint8_t level;
    uint16_t keepalive;
    uint64_t last_rx_ms, opened_ms;
    struct hub_msg *will;
    struct hub_session *s;
    /* A CONNECT parked for hooks.claim: its session key, the next parked connection, and
     * the CONNECT's clean flag (also when not parked). */
    char *park_key;
    struct hub_mqtt_conn *parked_next;
    int clean_start;
    /* Acknowledgements withheld, in packet order: held[held_off .. held_off + nheld), by
     * flow control or by holds of the hooks (flow.c); since when the publisher waits, and the
     * full sessions it waits on. */
    struct hub_held_ack *held;
    size_t held_off, nheld, held_cap;
    uint64_t held_ms;
    int reading_paused; /* transport asked to stop reading (max_inflight withheld) */
    struct hub_session **waits;
    size_t nwaits, waits_cap;
    /* Quotas (quota.c): a device's PUBLISH rate buckets (primed at its first PUBLISH), and
     * reading stopped while one is in debt (the transport is paused while this or
     * reading_paused is set). */
    struct hub_tbucket rate_msgs, rate_bytes;
    int rate_primed, rate_paused;
    struct hub_mqtt_conn *prev, *next; /* all connections */
};

struct hub_broker {
    struct hub_broker_options o;
    struct hub_session_table sessions;
    hub_subtree_t *subs;
    struct hub_retained retained;
    struct hub_mqtt_conn *conns;
    size_t nconns;
    uint64_t stamp;               /* routing stamp */
    struct hub_session **targets; /* reused by hub_route_message() */
    size_t ntargets, targets_cap;
    hub_buf_t out;                /* reused for encoded packets */
    hub_buf_t q0;                 /* the QoS 0 copy of q0_msg, retain flag q0_retain */
    const struct hub_msg *q0_msg; /* valid during one routing only */
    int q0_retain;
    /* Durability and several nodes (hooks.c). */
    struct hub_broker_hooks h;  /* zeroed: none */
    uint64_t last_id;           /* the local id counter when o.next_id is NULL */
    struct hub_idmap holds;     /* held message id -> its publisher's connection */
    struct hub_idmap server_holds; /* hub_broker_publish_durable: id -> holds left (uintptr_t) */
    uint64_t accepting;         /* the id being routed and shown to hooks.accepted, and */
    unsigned early;             /* the holds released on it meanwhile */
    struct hub_idmap recent;    /* injected ids seen lately (values unused), and */
    uint64_t *ring;             /* the same ids in arrival order (RECENT of them) */
    size_t ring_pos;
    struct hub_mqtt_conn *parked; /* CONNECTs parked for claim (parked_next) */
    size_t nparked;
    int expiring;               /* some session has a finite expiry (tick walks them) */
    uint64_t now_ms;  /* latest time given by the transport */
    size_t throttled; /* connections waiting on full sessions (c->nwaits > 0) */
    struct hub_quota_table quota; /* principals and their counters (quota.c) */
    struct hub_broker_stats st;
};

/* ---- broker.c -------------------------------------------------------------------------- */

/* Makes room for one more element in the array *arr of *cap elements of size elem, n of
 * them used: doubles it (from first) when full. 0 or HUB_ENOMEM (the array unchanged).
 * Inline: routing calls it once per matched session. */
static inline int hub_broker_grow(void *arr, size_t n, size_t *cap, size_t elem, size_t first)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : first;
    void *old, *p;
    memcpy(&old, arr, sizeof old); /* arr points to a T *: no aliasing through void ** */
    if ((p = realloc(old, c * elem)) == NULL)
        return HUB_ENOMEM;
    memcpy(arr, &p, sizeof p);
    *cap = c;
    return 0;
}
/* Destroys session s and what the broker keeps about it (its waiters are released, its
 * subscriptions leave the trie: hooks.unsubscribed, persistent 0); gone: the session ends
 * for good (hooks.session_gone when it was persistent), else it lives on elsewhere. */
void hub_broker_drop_session(struct hub_broker *b, struct hub_session *s, int gone);

/* ---- hooks.c --------------------------------------------------------------------------- */

/* The id of a message accepted now (options.next_id, or the local counter). */
uint64_t hub_hooks_next_id(struct hub_broker *b);
/* Calls hooks.accepted for m (from a local client when origin says so, the server or a
 * will); returns the holds it took on m's acknowledgement, less those already released
 * (0 for QoS 0). */
unsigned hub_hooks_accepted(struct hub_broker *b, const struct hub_msg *m, const char *origin);
/* Once a second: drops the persistent sessions offline longer than their expiry. */
void hub_hooks_expire(struct hub_broker *b, uint64_t now_ms);

/* ---- conn.c ---------------------------------------------------------------------------- */

/* Starts closing c (once): records reason, logs why (may be NULL), keeps the will when
 * keep_will is set, and asks the transport to close. */
void hub_conn_close(struct hub_mqtt_conn *c, int keep_will, enum hub_close_reason reason,
                    const char *why);
/* Writes n bytes to c's transport unless it is closing; closes it on failure. Inline: once
 * per delivery. */
static inline void hub_conn_write(struct hub_mqtt_conn *c, const void *p, size_t n)
{
    if (!c->closing && c->t->write(c->tconn, p, n) != 0)
        hub_conn_close(c, 1, HUB_CLOSE_ERROR, "write failed");
}
/* Writes one packet of n pieces, shared ones inside buf, through the transport's
 * write_shared (which must be set) unless c is closing; closes c on failure. */
static inline void hub_conn_write_shared(struct hub_mqtt_conn *c, struct hub_rcbuf *buf,
                                         const struct hub_rcbuf_piece *v, size_t n)
{
    if (!c->closing && c->t->write_shared(c->tconn, buf, v, n) != 0)
        hub_conn_close(c, 1, HUB_CLOSE_ERROR, "write failed");
}
/* Writes a PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK with packet id pid. */
static inline void hub_conn_send_ack(struct hub_mqtt_conn *c, int type, uint16_t pid)
{
    uint8_t buf[4];
    hub_conn_write(c, buf, hub_mqtt_ack(buf, type, pid));
}
/* The ACL of c's principal for a topic name the codec has validated (PUBLISH or will
 * topic), or for a SUBSCRIBE filter. Returns 1 (allowed) or 0. */
int hub_conn_may_publish(const struct hub_mqtt_conn *c, const char *topic, size_t len);
int hub_conn_may_subscribe(const struct hub_mqtt_conn *c, const char *filter, size_t len);
/* Whether c's principal may receive a PUBLISH on topic (a session resumed with restored
 * state, which no SUBSCRIBE of this connection checked). Returns 1 or 0. */
int hub_conn_may_receive(const struct hub_mqtt_conn *c, const char *topic, size_t len);
/* Handles the packets buffered in c->in (while its CONNECT was parked). */
void hub_conn_input(struct hub_mqtt_conn *c, uint64_t now_ms);
/* Once a second: closes c when its CONNECT or keepalive (1.5 x the client's value) is due. */
void hub_conn_tick(struct hub_mqtt_conn *c, uint64_t now_ms);

/* ---- connect.c ------------------------------------------------------------------------- */

/* Handles a CONNECT (p->refuse set: answers with that code and closes): CONNACK, session
 * found or created, an older connection of the same session taken over, the will kept,
 * deliveries resumed. */
void hub_connect_handle(struct hub_mqtt_conn *c, const hub_mqtt_connect_t *p, uint64_t now_ms);
/* c's CONNECT is parked no more (claim done, or c closed). */
void hub_connect_unpark(struct hub_mqtt_conn *c);

/* ---- publish.c ------------------------------------------------------------------------- */

/* A PUBLISH from the client: pkt (len bytes) is the whole packet, p its decoding. Checks the
 * ACL, routes it, and acknowledges QoS 1/2 (through flow control). */
void hub_publish_handle(struct hub_mqtt_conn *c, const hub_mqtt_publish_t *p, const uint8_t *pkt,
                        size_t len);
/* A PUBACK, PUBREC, PUBREL or PUBCOMP (type) from the client for packet id pid. */
void hub_publish_ack(struct hub_mqtt_conn *c, int type, uint16_t pid);

/* ---- subscribe.c ----------------------------------------------------------------------- */

/* A SUBSCRIBE: ACL, trie and session, the SUBACK, then the matching retained messages. */
void hub_subscribe_add(struct hub_mqtt_conn *c, const hub_mqtt_subscribe_t *p);
/* An UNSUBSCRIBE: trie and session, then the UNSUBACK. */
void hub_subscribe_remove(struct hub_mqtt_conn *c, const hub_mqtt_subscribe_t *p);

/* ---- route.c --------------------------------------------------------------------------- */

/* Routes m to every matching subscription (and stores it when retained); returns how many
 * sessions got it, and sets *to_device (may be NULL) when the connected session device
 * got it. pub: the publishing client connection, NULL for the server. m keeps its
 * references: queues take their own. remote: injected from another node (the hooks
 * queued and retained are told). */
size_t hub_route_message(struct hub_broker *b, struct hub_msg *m, const struct hub_session *device,
                         int *to_device, struct hub_mqtt_conn *pub, int remote);
/* Sends a PUBLISH of m at qos with packet id pid to c, in one write (a QoS 0 copy of a QoS
 * 1/2 message is encoded once per routing, in b->q0). */
void hub_route_send(struct hub_mqtt_conn *c, const struct hub_msg *m, int qos, int dup,
                    uint16_t pid, int retain);
/* Sends queued deliveries of s to its connection while the in-flight window allows. */
void hub_route_pump(struct hub_session *s);

/* ---- flow.c ---------------------------------------------------------------------------- */
/* The checks that pass on every message are inline here; what they call runs when flow
 * control has something to do. */

/* Withholds a PUBACK/PUBREC (type) in order, because c waits on full sessions or has
 * acknowledgements withheld already, or because the hooks took holds on message id; pausing
 * reading at max_inflight withheld (see hub_flow_ack). */
void hub_flow_withhold(struct hub_mqtt_conn *c, int type, uint16_t pid, uint64_t id,
                       unsigned holds);
/* Releases one hold on message id withheld by c, sending what may go out. Returns 1 when no
 * hold on id remains (the caller forgets id), else 0. */
int hub_flow_release(struct hub_mqtt_conn *c, uint64_t id);
/* Session s holds max_queued messages: makes the client publisher pub (may be NULL) wait on
 * it when it can, returning 0 (queue the message), else counts a drop and returns 1. */
int hub_flow_at_limit(struct hub_broker *b, struct hub_session *s, struct hub_mqtt_conn *pub);
/* Session s, which has waiting publishers, shrank: they are released once it is 3/4 full. */
void hub_flow_drained(struct hub_broker *b, struct hub_session *s);
/* Session s no longer holds its publishers back (offline or gone). */
void hub_flow_wake(struct hub_session *s);
/* Releases c's acknowledgements when they have been withheld longer than the limit. */
void hub_flow_expire(struct hub_mqtt_conn *c, uint64_t now_ms);
/* c is going away: it waits on nothing, its withheld acknowledgements are dropped. */
void hub_flow_conn_closed(struct hub_mqtt_conn *c);

/* Sends a PUBACK/PUBREC (type) for a client's PUBLISH of message id, or withholds it while
 * the hooks hold it (holds > 0), the client waits on a full session or has acknowledgements
 * withheld already. */
static inline void hub_flow_ack(struct hub_mqtt_conn *c, int type, uint16_t pid, uint64_t id,
                                unsigned holds)
{
    if (holds == 0 && c->nwaits == 0 && c->nheld == 0)
        hub_conn_send_ack(c, type, pid);
    else
        hub_flow_withhold(c, type, pid, id, holds);
}
/* 1 when session s may not take one more message (it is dropped and counted); a client
 * publisher pub (may be NULL) is made to wait instead when it can. 0: queue it. */
static inline int hub_flow_queue_full(struct hub_broker *b, struct hub_session *s,
                                      struct hub_mqtt_conn *pub)
{
    return s->queued >= b->o.max_queued && hub_flow_at_limit(b, s, pub);
}
/* Session s's queue shrank. */
static inline void hub_flow_queue_shrunk(struct hub_broker *b, struct hub_session *s)
{
    if (s->nwaiters > 0)
        hub_flow_drained(b, s);
}

/* ---- quota_check.c -------------------------------------------------------------------- */
/* Quotas per principal (the table and the token bucket: mqtt/quota.h). */

/* A refusal of quota q to principal id (kind "device", "service"; id may be ""): counted,
 * logged at most once a minute per principal and quota with what was refused (what, value
 * and limit may be NULL/0). */
void hub_quota_refused(struct hub_broker *b, enum hub_quota q, const char *kind, const char *id,
                       const char *what, unsigned long long value, unsigned long long limit);

/* Stores m as retained (or clears its topic when its payload is empty) within the retained
 * quotas of its principal: pub's when pub is set, else the device of its topic. force: count
 * it whatever the limits (restored or injected: already accepted elsewhere). Returns 0 when
 * the store changed, 1 when m was refused (counted, logged; the store unchanged), or
 * HUB_ENOMEM. */
int hub_quota_retain(struct hub_broker *b, struct hub_msg *m, const struct hub_mqtt_conn *pub,
                     int force);
/* Whether session s (of c) may hold one more filter f: 1, or 0 (counted, logged). Called
 * before adding a filter; a filter the session holds already is always allowed. */
int hub_quota_subscribe(struct hub_mqtt_conn *c, const char *f, size_t len);
/* A CONNECT of device c: 1 allowed, 0 over mqtt_max_connects_per_min (counted, logged). */
int hub_quota_connect(struct hub_mqtt_conn *c);
/* A PUBLISH of len bytes read from device c: charged to its buckets; reading stops when
 * one is in debt (until hub_quota_tick finds it paid). */
void hub_quota_publish(struct hub_mqtt_conn *c, size_t len);
/* Once a second: connections whose rate debt is paid are read again; a slice of the table
 * is pruned of principals holding nothing. */
void hub_quota_tick(struct hub_broker *b, uint64_t now_ms);
/* c is going away (its rate pause ends with it). */
void hub_quota_conn_closed(struct hub_mqtt_conn *c);


/* ---- will.c ---------------------------------------------------------------------------- */

/* Keeps the will of an accepted CONNECT p (if it has one) as a message owned by c. */
void hub_will_set(struct hub_mqtt_conn *c, const hub_mqtt_connect_t *p);
/* c's transport closed: publishes its will when due (see broker.h), then frees it. */
void hub_will_close(struct hub_mqtt_conn *c, int revoked);

#endif
