/* A request's database connection and transaction: one pooled connection per request,
 * acquired on first use and returned by api/http.c when MHD reports the request complete. */
#ifndef HUB_API_TRANSACTION_H
#define HUB_API_TRANSACTION_H

#include <libpq-fe.h>

#include "api/request.h"

/* Gets the request's database connection (acquired once, waiting at most 5 s; it stays in
 * r->db). On failure replies 503 and returns NULL. */
PGconn *hub_transaction_db(struct hub_req *r);
/* Commits the request's transaction and counts its revocations and CRLs into /metrics.
 * Returns 0, or HUB_REPLIED after replying 503/500. */
int hub_transaction_commit(struct hub_req *r);

#endif
