/* Quotas per principal (issue 19), as the broker enforces them (declared in
 * mqtt/broker_internal.h; the token bucket and the table: mqtt/quota.h). Four kinds, all from options.quota (0: none):
 *
 *   subscriptions   filters per session: a new filter over it gets SUBACK 0x80;
 *   retained        messages and bytes (topic + payload) per principal and in the broker: a
 *                   retained message over one of them is not stored (it is still routed and
 *                   acknowledged); a replacement counts its new size; an empty payload
 *                   clears the topic and frees its quota;
 *   PUBLISH rate    messages and bytes per second per device connection, token buckets
 *                   holding burst_s seconds: over it, the connection is not read until the
 *                   debt is paid (checked by the tick, once a second), as flow control does;
 *                   never a disconnect (MQTT 3.1.1 has no reason code for it);
 *   CONNECTs        per device id per minute (a bucket of connects_per_min refilled over a
 *                   minute): over it, CONNACK 3 (server unavailable: try later) before any
 *                   takeover, so a takeover loop cannot kick the device's live connection.
 *
 * A retained message is charged to its principal: the publishing connection's device or
 * service id, else (wills, server publishes, restored and injected messages) the device of
 * its topic "devices/<id>/...", else "" (the server: totals only). The entry's index is kept
 * in the message (quota_owner), so replacing or clearing refunds whoever was charged, in
 * O(1). Restored and injected messages are counted but never refused (they were accepted
 * before, here or on another node).
 *
 * Every refusal is counted (stats.quota_refusals) and logged at most once a minute per
 * principal and quota, with the number refused since the last line. */
#include <stdlib.h>
#include <string.h>

#include "mqtt/broker_internal.h"
#include "mqtt/quota.h"
#include "util/error.h"
#include "util/log.h"

_Static_assert(HUB_QUOTA_COUNT == HUB_QUOTA_KINDS, "mqtt/quota.h sizes its arrays by the quotas");

#define LOG_MS 60000    /* a principal's refusals of one quota are logged this often */
#define IDLE_MS 60000   /* an entry holding nothing is pruned after this */
#define SWEEP 1024      /* entries looked at per tick */

static const char *const KEYS[HUB_QUOTA_COUNT] = {
    "mqtt_max_subscriptions",
    "mqtt_max_retained_per_principal",
    "mqtt_max_retained_bytes_per_principal",
    "mqtt_max_retained",
    "mqtt_max_retained_bytes",
    "mqtt_rate_msgs_per_s",
    "mqtt_rate_bytes_per_s",
    "mqtt_max_connects_per_min",
};

const char *hub_quota_key(enum hub_quota q)
{
    return (unsigned)q < HUB_QUOTA_COUNT ? KEYS[q] : "?";
}

/* ---- refusals -------------------------------------------------------------------------- */

static uint64_t now_of(const struct hub_broker *b)
{
    return b->now_ms ? b->now_ms : 1; /* 0 means "never" in the entries */
}

static const char *kind_of(const struct hub_mqtt_conn *c)
{
    return c->who.kind == HUB_MQTT_DEVICE ? "device" : "service";
}

void hub_quota_refused(struct hub_broker *b, enum hub_quota q, const char *kind, const char *id,
                       const char *what, unsigned long long value, unsigned long long limit)
{
    b->st.quota_refusals[q]++;
    uint32_t i = hub_quota_lookup(&b->quota, id, 1);
    if (i == 0)
        return;
    struct hub_quota_entry *e = &b->quota.e[i - 1];
    uint64_t now = now_of(b);
    if (e->logged_ms[q] != 0 && now - e->logged_ms[q] < LOG_MS) {
        e->unlogged[q]++;
        return;
    }
    hub_warn("mqtt: %s %s over quota %s (%llu, limit %llu): %s; %u more refused since the "
             "last report",
             kind, id[0] ? id : "(server)", KEYS[q], value, limit, what, e->unlogged[q]);
    e->logged_ms[q] = now;
    e->unlogged[q] = 0;
}

/* ---- retained -------------------------------------------------------------------------- */

/* The principal of a retained message with no publishing connection: the device of its topic
 * "devices/<id>/...", else "". */
static void topic_principal(const struct hub_msg *m, char id[40])
{
    static const char prefix[] = "devices/";
    const size_t plen = sizeof prefix - 1;
    id[0] = 0;
    if (m->topic_len <= plen || memcmp(m->topic, prefix, plen) != 0)
        return;
    size_t n = 0;
    while (plen + n < m->topic_len && m->topic[plen + n] != '/' && n < 39) {
        char ch = m->topic[plen + n++];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              ch == '-'))
            return; /* not an id (and never a control character in a log line) */
    }
    if (plen + n < m->topic_len && m->topic[plen + n] != '/')
        return; /* longer than an id */
    memcpy(id, m->topic + plen, n);
    id[n] = 0;
}

static void uncharge(struct hub_quota_table *t, uint32_t owner, size_t bytes)
{
    t->retained--;
    t->retained_bytes -= bytes;
    if (owner != 0 && owner <= t->n && t->e[owner - 1].used) {
        struct hub_quota_entry *e = &t->e[owner - 1];
        e->retained--;
        e->retained_bytes -= bytes;
    }
}

int hub_quota_retain(struct hub_broker *b, struct hub_msg *m, const struct hub_mqtt_conn *pub,
                     int force)
{
    struct hub_quota_table *t = &b->quota;
    const struct hub_broker_quotas *q = &b->o.quota;
    const struct hub_msg *old = hub_retained_get(&b->retained, m->topic, m->topic_len);
    uint32_t old_owner = old != NULL ? old->quota_owner : 0;
    size_t old_bytes = old != NULL ? old->topic_len + old->payload_len : 0;
    if (m->payload_len == 0) {
        int rc = hub_retained_set(&b->retained, m);
        if (rc == 0 && old != NULL)
            uncharge(t, old_owner, old_bytes);
        return rc;
    }
    char id[40];
    const char *kind = "device";
    if (pub != NULL) {
        memcpy(id, pub->who.id, sizeof id);
        id[sizeof id - 1] = 0;
        kind = kind_of(pub);
    } else {
        topic_principal(m, id);
    }
    uint32_t owner = hub_quota_lookup(t, id, 1);
    if (owner == 0)
        return HUB_ENOMEM;
    struct hub_quota_entry *e = &t->e[owner - 1];
    size_t bytes = m->topic_len + m->payload_len;
    int same = old != NULL && old_owner == owner;
    unsigned long long n_after = e->retained - (same ? 1 : 0) + 1;
    unsigned long long b_after = e->retained_bytes - (same ? old_bytes : 0) + bytes;
    unsigned long long tn_after = t->retained - (old != NULL ? 1 : 0) + 1;
    unsigned long long tb_after = t->retained_bytes - old_bytes + bytes;
    if (!force) {
        enum hub_quota over = HUB_QUOTA_COUNT;
        unsigned long long v = 0, lim = 0;
        if (id[0] && q->retained_per_principal && n_after > q->retained_per_principal)
            over = HUB_QUOTA_RETAINED, v = n_after, lim = q->retained_per_principal;
        else if (id[0] && q->retained_bytes_per_principal &&
                 b_after > q->retained_bytes_per_principal)
            over = HUB_QUOTA_RETAINED_BYTES, v = b_after, lim = q->retained_bytes_per_principal;
        else if (q->retained && tn_after > q->retained)
            over = HUB_QUOTA_RETAINED_TOTAL, v = tn_after, lim = q->retained;
        else if (q->retained_bytes && tb_after > q->retained_bytes)
            over = HUB_QUOTA_RETAINED_BYTES_TOTAL, v = tb_after, lim = q->retained_bytes;
        if (over != HUB_QUOTA_COUNT) {
            hub_quota_refused(b, over, kind, id, "retained message not stored (still routed)", v,
                              lim);
            return 1;
        }
    }
    int rc = hub_retained_set(&b->retained, m);
    if (rc != 0)
        return rc;
    if (old != NULL)
        uncharge(t, old_owner, old_bytes); /* old may be freed: only its numbers are used */
    e = &t->e[owner - 1];
    e->retained++;
    e->retained_bytes += bytes;
    t->retained++;
    t->retained_bytes += bytes;
    m->quota_owner = owner;
    return 0;
}

/* ---- subscriptions and CONNECTs -------------------------------------------------------- */

int hub_quota_subscribe(struct hub_mqtt_conn *c, const char *f, size_t len)
{
    size_t max = c->b->o.quota.max_subscriptions;
    if (max == 0 || c->s->nsubs < max || hub_session_has_filter(c->s, f, len))
        return 1;
    hub_quota_refused(c->b, HUB_QUOTA_SUBSCRIPTIONS, kind_of(c), c->who.id,
                      "SUBSCRIBE refused (0x80)", c->s->nsubs, max);
    return 0;
}

int hub_quota_connect(struct hub_mqtt_conn *c)
{
    struct hub_broker *b = c->b;
    uint64_t n = b->o.quota.connects_per_min;
    if (n == 0 || c->who.kind != HUB_MQTT_DEVICE)
        return 1;
    uint32_t i = hub_quota_lookup(&b->quota, c->who.id, 1);
    if (i == 0)
        return 1; /* out of memory: not a reason to refuse a device */
    struct hub_quota_entry *e = &b->quota.e[i - 1];
    int64_t cap = (int64_t)n * 60000;
    uint64_t now = now_of(b);
    if (e->connect_ms == 0)
        hub_tbucket_init(&e->connects, cap, now);
    else
        hub_tbucket_refill(&e->connects, n, cap, now);
    e->connect_ms = now;
    if (hub_tbucket_try(&e->connects, 60000))
        return 1;
    hub_quota_refused(b, HUB_QUOTA_CONNECTS, "device", c->who.id,
                      "CONNECT refused (CONNACK 3, server unavailable)", n + 1, n);
    return 0;
}

/* ---- PUBLISH rate ---------------------------------------------------------------------- */

/* Refills c's buckets to now; 1 when both are out of debt. */
static int rate_paid(struct hub_mqtt_conn *c, uint64_t now)
{
    const struct hub_broker_quotas *q = &c->b->o.quota;
    int64_t burst = q->burst_s ? q->burst_s : 1;
    int ok = 1;
    if (q->rate_msgs) {
        hub_tbucket_refill(&c->rate_msgs, q->rate_msgs, (int64_t)q->rate_msgs * burst * 1000, now);
        ok &= c->rate_msgs.level >= 0;
    }
    if (q->rate_bytes) {
        hub_tbucket_refill(&c->rate_bytes, q->rate_bytes, (int64_t)q->rate_bytes * burst * 1000,
                           now);
        ok &= c->rate_bytes.level >= 0;
    }
    return ok;
}

void hub_quota_publish(struct hub_mqtt_conn *c, size_t len)
{
    struct hub_broker *b = c->b;
    const struct hub_broker_quotas *q = &b->o.quota;
    if (c->who.kind != HUB_MQTT_DEVICE || (q->rate_msgs == 0 && q->rate_bytes == 0))
        return;
    int64_t burst = q->burst_s ? q->burst_s : 1;
    uint64_t now = b->now_ms;
    if (!c->rate_primed) {
        hub_tbucket_init(&c->rate_msgs, (int64_t)q->rate_msgs * burst * 1000, now);
        hub_tbucket_init(&c->rate_bytes, (int64_t)q->rate_bytes * burst * 1000, now);
        c->rate_primed = 1;
    }
    rate_paid(c, now);
    int over_msgs = q->rate_msgs && hub_tbucket_take(&c->rate_msgs, 1000);
    int over_bytes = q->rate_bytes && hub_tbucket_take(&c->rate_bytes, (int64_t)len * 1000);
    if ((!over_msgs && !over_bytes) || c->rate_paused)
        return;
    if (c->t->pause != NULL) { /* a transport that cannot pause: counted, logged only */
        c->rate_paused = 1;
        b->quota.paused++;
        if (!c->reading_paused)
            c->t->pause(c->tconn, 1);
    }
    if (over_msgs)
        hub_quota_refused(b, HUB_QUOTA_RATE_MSGS, "device", c->who.id,
                          "PUBLISH rate: not read until it is back under",
                          (unsigned long long)q->rate_msgs, (unsigned long long)q->rate_msgs);
    else
        hub_quota_refused(b, HUB_QUOTA_RATE_BYTES, "device", c->who.id,
                          "PUBLISH bytes rate: not read until it is back under",
                          (unsigned long long)q->rate_bytes, (unsigned long long)q->rate_bytes);
}

static void rate_resume(struct hub_mqtt_conn *c, uint64_t now)
{
    c->rate_paused = 0;
    c->b->quota.paused--;
    if (c->reading_paused || c->closing)
        return; /* flow control still holds it; flow.c restarts reading */
    c->last_rx_ms = now; /* its keepalive was not its to keep while paused */
    c->t->pause(c->tconn, 0);
}

void hub_quota_conn_closed(struct hub_mqtt_conn *c)
{
    if (c->rate_paused) {
        c->rate_paused = 0;
        c->b->quota.paused--;
    }
}

/* ---- tick ------------------------------------------------------------------------------ */

/* An entry that holds nothing and saw nothing for IDLE_MS goes (its CONNECT bucket is full
 * again by then); refusals not reported yet are reported first. */
static void prune(struct hub_broker *b, uint64_t now)
{
    struct hub_quota_table *t = &b->quota;
    for (uint32_t k = 0; k < SWEEP && k < t->n; k++) {
        uint32_t i = t->sweep++ % t->n + 1;
        struct hub_quota_entry *e = &t->e[i - 1];
        if (!e->used || e->retained > 0)
            continue;
        uint64_t last = e->connect_ms;
        for (int q = 0; q < HUB_QUOTA_COUNT; q++)
            if (e->logged_ms[q] > last)
                last = e->logged_ms[q];
        if (now - last < IDLE_MS)
            continue;
        for (int q = 0; q < HUB_QUOTA_COUNT; q++)
            if (e->unlogged[q] > 0)
                hub_warn("mqtt: %s over quota %s: %u more refused since the last report",
                         e->id[0] ? e->id : "(server)", KEYS[q], e->unlogged[q]);
        hub_quota_remove(t, i);
    }
}

void hub_quota_tick(struct hub_broker *b, uint64_t now_ms)
{
    if (b->quota.paused > 0)
        for (struct hub_mqtt_conn *c = b->conns; c != NULL; c = c->next)
            if (c->rate_paused && rate_paid(c, now_ms))
                rate_resume(c, now_ms);
    prune(b, now_ms);
}
