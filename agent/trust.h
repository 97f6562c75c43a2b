/* The agent's trust bundle (state dir chain.pem: the CAs the hub's server certificate
 * chains to) kept current from GET /v1/ca, so a device follows an issuing CA rotation or a
 * new root before the old bundle expires. The bundle is fetched over TLS verified with the
 * bundle in place (and the pin, when set): only the hub it already trusts can replace it. */
#ifndef HUB_AGENT_TRUST_H
#define HUB_AGENT_TRUST_H

#include <time.h>

#include "agent/pin.h"
#include "agent/state.h"

#define HUB_TRUST_REFRESH_DAYS 30 /* warn, and always fetch, this close to the earliest expiry */

/* The earliest notAfter of the certificates of dir/chain.pem into *out. Returns 0 or a
 * HUB_E* code (logged). */
int hub_trust_earliest_expiry(const struct hub_state *st, time_t *out);
/* Fetches GET <api_url>/v1/ca and, when it differs from chain.pem and is a sound bundle (at
 * most 16 certificates, each a CA, each valid now), replaces chain.pem atomically; *changed
 * says whether it did. Returns 0 (also when unchanged) or a HUB_E* code (logged as a
 * warning: the old bundle stays). */
int hub_trust_refresh(const struct hub_state *st, struct hub_pin *pin, int *changed);
/* Called by `run` before each connection attempt: refreshes on the first call, then when an
 * hour has passed since the last fetch, or every 5 minutes once the earliest notAfter of the
 * bundle is less than HUB_TRUST_REFRESH_DAYS away (warning then that it expires). */
void hub_trust_on_connect(const struct hub_state *st, struct hub_pin *pin);

#endif
