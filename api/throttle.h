/* Credential guessing, throttled per source address (issue 19): failed authentications (bearer
 * tokens, device / product / service secrets on the REST API and the MQTT password listeners)
 * are counted per source (an IPv4 address, an IPv6 /64). After auth_fail_free failures the
 * source is refused without any credential check for 1 s, then 2, 4 ... up to
 * auth_fail_max_delay_s, one doubling per further failure; failures are forgotten after
 * auth_fail_window_s without one (counted from the end of the last delay); a success forgives
 * them (at most once per window, so that one valid credential cannot reset the count between
 * guesses). The table holds at most auth_throttle_sources sources, the least recently seen is
 * evicted (counted). It also keeps, per source and minute, the counts of refused anonymous
 * REST calls for their one aggregated audit row (api/audit_aggregate.h) and lets one log line
 * per source per minute through. Process-wide, one mutex: any thread may call. */
#ifndef HUB_API_THROTTLE_H
#define HUB_API_THROTTLE_H

#include <stdint.h>

#include "util/buf.h"

/* What was guessed (metrics label "kind"). */
enum hub_throttle_kind {
    HUB_THROTTLE_TOKEN,   /* REST bearer token */
    HUB_THROTTLE_DEVICE,  /* REST Basic device_id:device_secret */
    HUB_THROTTLE_PRODUCT, /* REST Basic product_key:product_secret */
    HUB_THROTTLE_SERVICE, /* REST Basic service_id:service_secret */
    HUB_THROTTLE_MQTT,    /* MQTT password listener: device or service id + secret */
    HUB_THROTTLE_KIND_COUNT
};

struct hub_throttle_limits {
    long long fail_free;   /* failures allowed per source before the first delay */
    long long window_s;    /* failures are forgotten after this long without one */
    long long max_delay_s; /* the longest delay */
    long long sources;     /* table size (sources remembered) */
};

enum hub_throttle_state {
    HUB_THROTTLE_FREE,    /* below the limit: check the credential as usual */
    HUB_THROTTLE_OVER,    /* past the free failures, no delay running: check, but an unknown
                             id gets no dummy hash (no constant time above the limit) */
    HUB_THROTTLE_BLOCKED, /* refuse at once, without checking the credential */
};

/* The aggregated audit counts of one source and minute (api/audit_aggregate.h). */
struct hub_throttle_audit {
    char source[48];                                    /* "192.0.2.1" or "2001:db8:1:2::/64" */
    int64_t minute;                                     /* Unix time / 60 */
    uint32_t unauthorized, forbidden, throttled, other; /* by status: 401, 403, 429, else */
};

/* Sets the limits and allocates the table (before the listeners start; again replaces it).
 * Returns 0 or HUB_ENOMEM. Without it nothing is throttled. */
int hub_throttle_configure(const struct hub_throttle_limits *l);
/* Frees the table (after the listeners stopped). */
void hub_throttle_free(void);
/* Before checking a credential of kind from source ("ip", "ip:port" or "[v6]:port"; the
 * client's address as the PROXY header gave it, when there is one). BLOCKED sets *retry_s
 * (≥ 1) and counts a throttled attempt of kind. */
enum hub_throttle_state hub_throttle_check(const char *source, enum hub_throttle_kind kind,
                                           unsigned *retry_s);
/* A credential of kind from source was wrong: counts it, may start or double its delay. Logs
 * one line per source per minute (who: the id the credential named, escaped and cut; NULL or ""
 * for none), with the count of the others since. */
void hub_throttle_failed(const char *source, enum hub_throttle_kind kind, const char *who);
/* A credential from source was right: forgives its failures (once per window). */
void hub_throttle_succeeded(const char *source);
/* A refused anonymous REST call (status ≥ 400) from source: counted into the aggregated audit
 * row of the source and the current minute instead of a row of its own. */
void hub_throttle_audit_count(const char *source, unsigned status);
/* 1 when audit aggregates wait to be taken. */
int hub_throttle_audit_pending(void);
/* Moves up to max pending audit aggregates into out (rows to add to) and returns how many. */
size_t hub_throttle_audit_take(struct hub_throttle_audit *out, size_t max);
/* Appends iothub_auth_* metrics (Prometheus text). Returns 0 or HUB_ENOMEM. */
int hub_throttle_metrics(hub_buf_t *out);

#endif
