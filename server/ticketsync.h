/* Keeps the session-ticket keys (net/tickets) in step with PostgreSQL, so that every
 * iothubd of a database opens every other's tickets, also after a restart. The ticket keys
 * are wrapped (AES-256-GCM) by one wrapping key, itself sealed with the master passphrase like
 * the CA keys: serve unseals it once at start, and rekey re-seals that one row. A new key is
 * made every rotation period (under an advisory lock, so two nodes never both make one); keys
 * no ticket can use any more are deleted. After the blocking start, a thread-pool job refreshes
 * the set on a timer; the loop never waits for the database. */
#ifndef HUB_SERVER_TICKETSYNC_H
#define HUB_SERVER_TICKETSYNC_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <uv.h>

#include "net/tickets.h"

struct hub_ticketsync;

/* At startup, blocking on c: creates the wrapping key if the database has none, unseals it
 * with pass, makes a ticket key if one is due, loads the keys into a new set (*tickets: the
 * caller frees it with hub_tickets_free once the loop has stopped and no TLS context uses it),
 * then refreshes every few seconds (rotation / 16, 1 to 60 s) from loop on its own connection
 * to db_url. Returns 0, HUB_EBADPASS (logged) or another HUB_E* code. */
int hub_ticketsync_start(uv_loop_t *loop, PGconn *c, const char *pass, const char *db_url,
                         uint32_t lifetime_s, uint32_t rotation_s, hub_tickets_t **tickets,
                         struct hub_ticketsync **out);
/* Stops the timer; memory is released once a running job has finished (keep the loop
 * running). NULL is ignored. */
void hub_ticketsync_stop(struct hub_ticketsync *s);
/* rekey: re-seals the wrapping key (if any) from old_pass to new_pass inside the caller's
 * transaction; *count is incremented when it did. HUB_EBADPASS (logged) if old_pass does not
 * open it. */
int hub_ticketsync_reseal(PGconn *c, const char *old_pass, const char *new_pass, size_t *count);

#endif
