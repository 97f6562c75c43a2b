/* The device CA feed: keeps the MQTT listeners' device CAs (net/trust.h) in step with the
 * device_cas table. A thread-pool job connects, LISTENs on iothub_device_cas, then loads
 * every device CA (with its status and CRL); the loop polls the connection and, on any
 * NOTIFY, runs the load again on the same connection and swaps the new set in, then tells the
 * owner (re-check live sessions: a disabled CA's devices are closed). A lost connection is
 * retried with a back-off, keeping the set loaded last. Loop thread, like revfeed. */
#ifndef HUB_SERVER_TRUSTFEED_H
#define HUB_SERVER_TRUSTFEED_H

#include <uv.h>

#include "net/trust.h"

struct hub_trustfeed;

/* Starts the feed on loop; trust is borrowed and must outlive it. changed(NULL, ctx) runs on
 * the loop after each load. Returns 0 or HUB_ENOMEM. */
int hub_trustfeed_start(uv_loop_t *loop, const char *db_url, hub_trust_t *trust,
                        void (*changed)(const char *, void *), void *ctx,
                        struct hub_trustfeed **out);
/* Stops the feed; memory is released once its job and handles are done (keep the loop
 * running). NULL accepted. */
void hub_trustfeed_stop(struct hub_trustfeed *f);

#endif
