/* The writer of aggregated audit rows (issue 19): a thread that every two seconds takes the
 * counts of refused anonymous REST calls the throttle table gathered per source and minute
 * (api/throttle.h) and adds them to their one audit row (db/audit.h hub_db_audit_aggregate),
 * with a connection of the API's pool held only for those statements. */
#ifndef HUB_API_AUDIT_AGGREGATE_H
#define HUB_API_AUDIT_AGGREGATE_H

#include "db/pool.h"

typedef struct hub_audit_aggregate hub_audit_aggregate_t;

/* Starts the writer on pool (borrowed; it outlives the writer). NULL on ENOMEM. */
hub_audit_aggregate_t *hub_audit_aggregate_start(hub_db_pool_t *pool);
/* Writes what is pending, stops and frees the writer. NULL is ignored. */
void hub_audit_aggregate_stop(hub_audit_aggregate_t *w);

#endif
