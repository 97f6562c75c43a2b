/* The CRL publisher of `serve`: a thread with its own PostgreSQL connection that LISTENs on
 * iothub_revocation (every node gets every revocation's NOTIFY) and, within a second of a
 * revocation, publishes the CAs' delta CRLs through ca/crlpub (at most one publication per
 * second per CA; coalesced). The CA's advisory lock makes one node publish at a time: a node
 * that finds it taken tries again 250 ms later, then finds the work done. On (re)connection
 * and every minute it also runs a round, so a NOTIFY missed while away is caught up. The
 * periodic base refresh stays in `serve`'s maintenance job (the same ca/crlpub calls). */
#ifndef HUB_SERVER_CRL_PUBLISHER_H
#define HUB_SERVER_CRL_PUBLISHER_H

#include "ca/authority.h"

struct hub_crl_publisher;

/* Starts the thread. a must outlive the publisher (it signs with a's keys under its
 * sign_lock). Returns NULL on allocation or thread failure (logged). */
struct hub_crl_publisher *hub_crl_publisher_start(const char *db_url, struct hub_authority *a);
/* Wakes the thread, waits for its round in progress to end, frees everything. NULL is
 * accepted. */
void hub_crl_publisher_stop(struct hub_crl_publisher *p);

#endif
