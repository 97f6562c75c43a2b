/* Quotas per principal (issue 19): the token bucket, the table of principals (device or
 * service id -> retained count and bytes, CONNECT bucket, refusal log state), and the checks
 * the broker's modules call. Limits are options.quota (mqtt/broker.h), 0 meaning none.
 * Nothing here allocates per message: a principal's entry is made when it first retains,
 * connects (devices) or is refused, and entries holding nothing are pruned by the tick.
 * Loop thread of the broker only. */
#ifndef HUB_MQTT_QUOTA_H
#define HUB_MQTT_QUOTA_H

#include <stddef.h>
#include <stdint.h>

#include "mqtt/broker.h"

/* A token bucket counted in units: a token is `per` units (1000 for a rate per second,
 * 60000 per minute), so a rate of r tokens per period refills r units per millisecond and
 * whole-token arithmetic stays exact. level may go below 0 (debt) when a cost is taken that
 * was not there: the caller stops until it is back to 0. */
struct hub_tbucket {
    int64_t level;
    uint64_t last_ms;
};

/* Full (cap units) at now_ms. */
void hub_tbucket_init(struct hub_tbucket *t, int64_t cap, uint64_t now_ms);
/* Adds rate units per millisecond elapsed since the last refill, up to cap. */
void hub_tbucket_refill(struct hub_tbucket *t, uint64_t rate, int64_t cap, uint64_t now_ms);
/* Takes cost units even into debt; returns 1 when in debt afterwards, else 0. */
int hub_tbucket_take(struct hub_tbucket *t, int64_t cost);
/* Takes cost units only when they are there: 1 taken, 0 refused (unchanged). */
int hub_tbucket_try(struct hub_tbucket *t, int64_t cost);
/* Milliseconds until a bucket in debt is back to 0 at rate (0 when not in debt). */
uint64_t hub_tbucket_wait_ms(const struct hub_tbucket *t, uint64_t rate);

/* One principal. Chained in the table by index + 1 (0: none): entries move when the array
 * grows, so messages refer to their principal by that index (hub_msg.quota_owner). */
struct hub_quota_entry {
    char id[40];             /* "" : the server and topics of no device */
    uint32_t next;           /* hash chain, or the free list */
    uint32_t retained;       /* retained messages charged to it */
    uint64_t retained_bytes; /* and their bytes */
    struct hub_tbucket connects;
    uint64_t connect_ms;     /* last CONNECT (0: none) */
    uint64_t logged_ms[HUB_QUOTA_COUNT]; /* last refusal logged per quota (0: never) */
    uint32_t unlogged[HUB_QUOTA_COUNT];  /* refusals since then */
    uint8_t used;
};

struct hub_quota_table {
    struct hub_quota_entry *e;
    uint32_t n, cap;     /* entries used or freed below n; allocated */
    uint32_t free_head;  /* freed entries (index + 1) */
    uint32_t *buckets;   /* index + 1 of the first entry of each chain */
    uint32_t nbuckets, count;
    uint32_t sweep;      /* where the tick's pruning goes on */
    size_t retained, retained_bytes; /* totals charged */
    size_t paused;       /* connections not read because of their rate */
};

struct hub_broker;
struct hub_mqtt_conn;
struct hub_msg;
struct hub_session;

/* The entry of id (index + 1), made when create is set and it is absent; 0 when absent or
 * out of memory. */
uint32_t hub_quota_lookup(struct hub_quota_table *t, const char *id, int create);
void hub_quota_table_free(struct hub_quota_table *t);

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

#endif
