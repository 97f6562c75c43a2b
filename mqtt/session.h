/* MQTT sessions: the subscriptions, the FIFO of QoS 1/2 deliveries and the QoS 2 packet ids
 * received but not yet released, kept across connections for persistent sessions. The table
 * keeps the totals of queued and in-flight deliveries over all its sessions, and recycles
 * delivery records, so queueing a delivery allocates nothing in the steady state. */
#ifndef HUB_MQTT_SESSION_H
#define HUB_MQTT_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "mqtt/filterset.h"
#include "mqtt/msg.h"

struct hub_mqtt_conn;

enum hub_delivery_state {
    HUB_DELIVERY_QUEUED,   /* not sent yet */
    HUB_DELIVERY_SENT,     /* PUBLISH sent, awaiting PUBACK (QoS 1) or PUBREC (QoS 2) */
    HUB_DELIVERY_RELEASED, /* QoS 2: PUBREL sent, awaiting PUBCOMP */
};

struct hub_delivery {
    struct hub_msg *msg; /* one reference held */
    uint8_t qos;
    uint8_t retain;      /* a retained copy sent for a new subscription */
    uint8_t state;
    uint16_t pid;
    struct hub_delivery *next;
};

struct hub_session_table;

struct hub_session {
    struct hub_session_table *table;
    char *key;
    int clean;
    struct hub_mqtt_conn *conn; /* NULL while offline */
    char **filters;             /* subscriptions (the trie holds their QoS), in no order */
    size_t nsubs, subs_cap;
    struct hub_filterset fset;  /* filters[] by name: adding or removing one is O(1) */
    struct hub_delivery *head, *tail, *unsent; /* unsent: first QUEUED delivery */
    size_t queued;               /* deliveries in the FIFO */
    unsigned inflight;
    uint16_t last_pid;
    uint16_t *incoming;          /* QoS 2 ids awaiting PUBREL */
    size_t nincoming, incoming_cap;
    uint64_t stamp;              /* routing de-duplication */
    uint8_t stamp_qos;
    /* Connections whose acknowledgements wait until this session's queue drains (broker). */
    struct hub_mqtt_conn **waiters;
    size_t nwaiters, waiters_cap;
    uint32_t expiry_s;           /* persistent: seconds kept offline (UINT32_MAX: never) */
    uint64_t offline_ms;         /* since when it is offline (0: not known yet) */
    unsigned long long dropped;  /* messages dropped for a full queue, not yet logged */
    uint64_t drop_logged_ms;     /* when the last drop report was logged */
    struct hub_session *hnext;   /* hash chain */
};

struct hub_session_table {
    struct hub_session **buckets;
    size_t nbuckets, count;
    size_t queued, inflight;    /* sums of the sessions' queued and inflight */
    struct hub_delivery *spare; /* freed delivery records kept for reuse */
    size_t nspare;
};

int hub_session_table_init(struct hub_session_table *t);
/* Frees every session and its deliveries. */
void hub_session_table_free(struct hub_session_table *t);
struct hub_session *hub_session_find(const struct hub_session_table *t, const char *key);
/* Creates an empty session under key. NULL on ENOMEM. */
struct hub_session *hub_session_create(struct hub_session_table *t, const char *key);
/* Removes and frees a session (its trie entries must be removed by the caller first). */
void hub_session_destroy(struct hub_session_table *t, struct hub_session *s);

/* Appends a delivery of m (a reference is taken). 0 or HUB_ENOMEM. */
int hub_session_enqueue(struct hub_session *s, struct hub_msg *m, uint8_t qos);
/* Same, for a retained copy (sent with RETAIN set). */
int hub_session_enqueue_retained(struct hub_session *s, struct hub_msg *m, uint8_t qos);
/* Restores an in-flight delivery of m (state SENT or RELEASED, packet id pid, not used by
 * another one): placed after the other in-flight ones, before the queued ones. 0 or
 * HUB_ENOMEM. */
int hub_session_enqueue_inflight(struct hub_session *s, struct hub_msg *m, uint8_t qos,
                                 uint8_t state, uint16_t pid);
size_t hub_session_queued(const struct hub_session *s);
/* The first delivery not sent yet (advances past it), or NULL. */
struct hub_delivery *hub_session_next_unsent(struct hub_session *s);
/* A packet id not used by any delivery of the session. */
uint16_t hub_session_next_pid(struct hub_session *s);
struct hub_delivery *hub_session_find_pid(struct hub_session *s, uint16_t pid);
/* Unlinks and frees a delivery. */
void hub_session_remove(struct hub_session *s, struct hub_delivery *d);
/* Sets the session's in-flight count (the table's total follows). */
void hub_session_set_inflight(struct hub_session *s, unsigned n);

/* Adds filter f to s->filters unless it is there (O(1) on average, whatever nsubs). 0 or
 * HUB_ENOMEM. */
int hub_session_add_filter(struct hub_session *s, const char *f, size_t len);
/* Removes and frees filter f if s has it; the last filter of s->filters moves into its
 * place (a loop over s->filters that removes filters[i] looks at i again). */
void hub_session_remove_filter(struct hub_session *s, const char *f, size_t len);
/* 1 when s holds filter f (quotas: a repeated SUBSCRIBE is not one more filter). */
int hub_session_has_filter(const struct hub_session *s, const char *f, size_t len);

int hub_session_has_incoming(const struct hub_session *s, uint16_t pid);
void hub_session_add_incoming(struct hub_session *s, uint16_t pid);
void hub_session_remove_incoming(struct hub_session *s, uint16_t pid);

#endif
