/* One PostgreSQL connection per node that LISTENs on several channels and dispatches their
 * NOTIFYs on the loop (the revocation feed, the device CA feed, the cluster's node channel).
 * A thread-pool job connects, LISTENs on every listener's channel and then runs every
 * listener's load (LISTEN first, so nothing changed in between is missed); the loop then polls
 * the socket and hands each notification to the listener of its channel. A listener may ask
 * for its load to run again (on the same connection, polling paused meanwhile); other modules
 * may run short jobs on the connection (hub_pgfeed_run: it holds session state such as the
 * node's advisory lock). A lost connection is retried with a back-off (0.5 s doubling to 5 s);
 * listeners keep what they loaded last. Everything but the jobs runs on the loop thread. */
#ifndef HUB_SERVER_PGFEED_H
#define HUB_SERVER_PGFEED_H

#include <libpq-fe.h>
#include <uv.h>

struct hub_pgfeed;

struct hub_pgfeed_listener {
    const char *channel; /* LISTENed on every connection; copied */
    /* Thread pool, with the feed's connection: loads the listener's state after every
     * (re)connect and after notify asked for it. 0, or a HUB_E* code (the connection is
     * dropped and retried). NULL: nothing to load. */
    int (*load)(PGconn *c, void *ctx);
    /* Loop: load succeeded (the first time and after each reload). May be NULL. */
    void (*loaded)(void *ctx);
    /* Loop: one NOTIFY on channel (payload never NULL). Returns 1 to have load run again
     * before the next notifications are read, else 0. May be NULL. */
    int (*notify)(const char *payload, void *ctx);
    /* Loop: the connection was lost after it was up (the feed reconnects). May be NULL. */
    void (*lost)(const char *why, void *ctx);
    /* Loop: the feed has stopped and no job uses ctx any more: free it. May be NULL. */
    void (*release)(void *ctx);
    void *ctx;
};

/* Creates a feed on loop (not connected before hub_pgfeed_start). label names it in logs.
 * Returns 0 or HUB_ENOMEM. */
int hub_pgfeed_new(uv_loop_t *loop, const char *db_url, const char *label, struct hub_pgfeed **out);
/* Adds a listener (copied) before hub_pgfeed_start. Returns 0 or HUB_ENOMEM. */
int hub_pgfeed_add(struct hub_pgfeed *f, const struct hub_pgfeed_listener *l);
/* Starts connecting (loop thread). */
void hub_pgfeed_start(struct hub_pgfeed *f);
/* A job on the feed's connection: work runs on the thread pool (c never NULL) and returns 0 or
 * a HUB_E* code; done(rc, arg) then runs on the loop. When the feed is not connected, or
 * stops before the job ran, done gets HUB_EDBDOWN without work running. Jobs run one at a
 * time, in order, between notification reads. Returns 0 or HUB_ENOMEM (done not called). */
int hub_pgfeed_run(struct hub_pgfeed *f, int (*work)(PGconn *c, void *arg),
                   void (*done)(int rc, void *arg), void *arg);
/* 1 while connected and past the first load. Loop thread. */
int hub_pgfeed_up(const struct hub_pgfeed *f);
/* Connection attempts (connect + LISTEN + loads), the first included. Loop thread. */
unsigned long long hub_pgfeed_attempts(const struct hub_pgfeed *f);
/* Stops the feed: no listener callback but release runs after this; memory (and every
 * listener's release) goes once the running job and the handles are done (keep the loop
 * running). NULL accepted. */
void hub_pgfeed_stop(struct hub_pgfeed *f);

#endif
