/* Quotas per principal (issue 19): the token bucket and the table of principals (device or
 * service id -> retained count and bytes, CONNECT bucket, refusal log state). The broker's
 * checks that use them are in mqtt/quota_check.c (declared in mqtt/broker_internal.h);
 * limits are options.quota (mqtt/broker.h), 0 meaning none. Nothing here allocates per
 * message: a principal's entry is made when it first retains, connects (devices) or is
 * refused, and the tick prunes entries holding nothing. One thread (the broker's loop). */
#ifndef HUB_MQTT_QUOTA_H
#define HUB_MQTT_QUOTA_H

#include <stddef.h>
#include <stdint.h>

/* The number of quotas (enum hub_quota in mqtt/broker.h, checked where both are known). */
#define HUB_QUOTA_KINDS 8


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
    uint64_t logged_ms[HUB_QUOTA_KINDS]; /* last refusal logged per quota (0: never) */
    uint32_t unlogged[HUB_QUOTA_KINDS];  /* refusals since then */
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

/* The entry of id (index + 1), made when create is set and it is absent; 0 when absent or
 * out of memory. */
uint32_t hub_quota_lookup(struct hub_quota_table *t, const char *id, int create);
/* Removes entry i (index + 1); nothing may refer to it any more. */
void hub_quota_remove(struct hub_quota_table *t, uint32_t i);
void hub_quota_table_free(struct hub_quota_table *t);

#endif
