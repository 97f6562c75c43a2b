/* Session takeover across nodes (issue 18). A persistent session whose key is not in this
 * node's memory (hooks.claim) may be held by another node: the CONNECT stays parked while a
 * job on the node's LISTEN connection (server/pgfeed.h) reads its owner (mqtt_sessions.owner)
 * and whether that node lives (its advisory lock, server/cluster.h). A live owner is asked
 * over NOTIFY iothub_session ("takeover:<owner>:<requester>:<key>"): it releases the session
 * (hub_broker_release_session closes its connection), waits until its store has written the
 * session's pending records, and answers "released:<requester>:<owner>:<key>". The
 * requester then loads the session from PostgreSQL (db/mqtt_state.h) into its broker
 * (hub_broker_restore_*), records itself as the owner and resumes the CONNECT
 * (hub_broker_claim_done). A dead or absent owner: loaded at once. No answer within 2 s: the
 * CONNECT is refused with "server unavailable" (the client retries), counted. Loop thread. */
#ifndef HUB_SERVER_TAKEOVER_H
#define HUB_SERVER_TAKEOVER_H

#include <uv.h>

#include "mqtt/broker.h"
#include "server/pgfeed.h"
#include "util/buf.h"

#define HUB_TAKEOVER_WAIT_MS 2000

struct hub_takeover;

struct hub_takeover_options {
    uv_loop_t *loop;
    struct hub_pgfeed *pg;     /* before hub_pgfeed_start */
    struct hub_broker *broker;
    const char *node;          /* this node's name (copied) */
    /* The store's barrier: done(rc, arg) on the loop once every record queued so far is
     * written (server/mqtt_store.h). NULL: answered at once. */
    int (*flush)(void *flush_ctx, void (*done)(int rc, void *arg), void *arg);
    void *flush_ctx;
};

/* Adds the listener of iothub_session to o->pg and the wait timer. Returns 0 or HUB_ENOMEM. */
int hub_takeover_start(const struct hub_takeover_options *o, struct hub_takeover **out);
/* hooks.claim: 1 when the CONNECT of key is parked until this module calls
 * hub_broker_claim_done (always, unless out of memory or too many claims: 0). */
int hub_takeover_claim(struct hub_takeover *t, const char *key);
/* Appends the takeover metrics (Prometheus text). Loop thread's snapshot; any thread. */
int hub_takeover_metrics(struct hub_takeover *t, hub_buf_t *out);
/* Stops: parked CONNECTs are refused; memory goes with the feed and the timer. */
void hub_takeover_stop(struct hub_takeover *t);

#endif
