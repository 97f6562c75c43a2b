/* The device CA feed: keeps the MQTT listeners' device CAs (net/trust.h) in step with the
 * device_cas table. A listener of the node's LISTEN connection (server/pgfeed.h): after each
 * (re)connect and LISTEN on iothub_device_cas it loads every device CA (with its status and
 * CRL); on any NOTIFY the load runs again on the same connection and the new set is swapped
 * in, then the owner is told (re-check live sessions: a disabled CA's devices are closed).
 * While the connection is lost the set loaded last is kept. Loop thread, like revfeed. */
#ifndef HUB_SERVER_TRUSTFEED_H
#define HUB_SERVER_TRUSTFEED_H

#include <uv.h>

#include "net/trust.h"
#include "server/pgfeed.h"

struct hub_trustfeed;

/* Adds the feed to pg (before hub_pgfeed_start); trust is borrowed and must outlive the
 * feed's callbacks. changed(NULL, ctx) runs on the loop after each load. Returns 0 or
 * HUB_ENOMEM. */
int hub_trustfeed_start(struct hub_pgfeed *pg, hub_trust_t *trust,
                        void (*changed)(const char *, void *), void *ctx,
                        struct hub_trustfeed **out);
/* Stops the feed's callbacks; its memory goes when pg has stopped. NULL accepted. */
void hub_trustfeed_stop(struct hub_trustfeed *f);

#endif
