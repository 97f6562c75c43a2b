/* Identity of devices whose certificate a maker's device CA signed (issue 15): their CN is
 * the maker's serial, not our id, so each such connection is looked up in PostgreSQL off the
 * loop (certificate serial -> device), and a first contact is registered just in time: a
 * device under the CA's product with id uuid5(NAMESPACE_URL, "<CA fingerprint>/<CN>"),
 * status active (policy auto) or pending (policy approve), its certificate, an audit row.
 * The CONNECT waits; at most max_pending lookups are queued or running, more are answered
 * "server unavailable" at once (counted). Also drains the handshake refusals noted by the
 * listeners (net/trust.h) into the audit log, at most AUDIT_PER_S rows a second.
 * Loop thread, except hub_registration_metrics. */
#ifndef HUB_SERVER_REGISTRATION_H
#define HUB_SERVER_REGISTRATION_H

#include <uv.h>

#include "net/tls_conn.h"
#include "net/trust.h"
#include "server/pgfeed.h"
#include "util/buf.h"

struct hub_registration;

enum hub_registration_result {
    HUB_REG_ACTIVE,  /* accept: device_id is its id */
    HUB_REG_PENDING, /* registered or known, waiting for approval: CONNACK not authorized */
    HUB_REG_REFUSED, /* revoked, disabled CA, serial or id already taken: not authorized */
    HUB_REG_BUSY,    /* over max_pending: server unavailable */
    HUB_REG_ERROR,   /* database unreachable: server unavailable */
};

typedef void (*hub_registration_cb)(void *arg, enum hub_registration_result r,
                                    const char *device_id);

/* Creates the registrations and the device CA set they own (hub_registration_trust, empty
 * until hub_registration_feed has loaded it). Returns 0 or HUB_ENOMEM. */
int hub_registration_new(uv_loop_t *loop, const char *db_url, unsigned max_pending,
                         struct hub_registration **out);
hub_trust_t *hub_registration_trust(struct hub_registration *r);
/* Follows device_cas on the node's LISTEN connection pg (server/trustfeed.h; before
 * hub_pgfeed_start); changed(NULL, ctx) runs after each load (a revocation feed callback:
 * NULL means "re-check every live connection"). */
int hub_registration_feed(struct hub_registration *r, struct hub_pgfeed *pg,
                          void (*changed)(const char *, void *), void *ctx);
/* Looks up (registers on first contact) the device of id (a device CA's certificate: id->
 * device_ca and id->der set); cb(arg, ...) runs later on the loop, exactly once, unless this
 * returns non-zero: HUB_ERANGE over the limit (counted), HUB_ENOMEM. */
int hub_registration_start(struct hub_registration *r, const struct hub_tls_identity *id,
                           const char *peer, hub_registration_cb cb, void *arg);
/* Once a second: audits the refusals noted since (rate-limited). */
void hub_registration_tick(struct hub_registration *r);
/* Stops the feed and the audit (the set stays as loaded). NULL accepted. */
void hub_registration_stop(struct hub_registration *r);
/* Frees r and its device CA set once running jobs are done (their callbacks still run); no
 * TLS context may use the set any more. NULL accepted. */
void hub_registration_free(struct hub_registration *r);
/* Appends the Prometheus lines of JIT registration and refusal audit (any thread). */
int hub_registration_metrics(struct hub_registration *r, hub_buf_t *out);
/* uuid5(NAMESPACE_URL, "<fingerprint>/<cn>") in canonical lower case (out: 37 bytes). */
void hub_registration_device_id(const char *fingerprint, const char *cn, char out[37]);

#endif
