/* Rows of audit_log: who did what to which target, from where, with which result. Blocking
 * calls on a caller-owned connection, from a worker thread or a command. */
#ifndef HUB_DB_AUDIT_H
#define HUB_DB_AUDIT_H

#include <jansson.h>
#include <libpq-fe.h>

/* Appends an audit row; details is JSON text or NULL. Call inside the transaction of the
 * change it records. */
int hub_db_audit_insert(PGconn *c, const char *actor, const char *role, const char *action,
                        const char *target, const char *source, const char *result,
                        const char *details);
/* Adds count refused anonymous calls from source in minute (Unix time / 60) to its aggregated
 * row (action "auth.refused", one per source and minute, every node adding to the same row);
 * by status: unauthorized (401), forbidden (403), throttled (429), other. Autocommit. */
int hub_db_audit_aggregate(PGconn *c, const char *source, long long minute, unsigned unauthorized,
                           unsigned forbidden, unsigned throttled, unsigned other);
/* Audit rows newest first, with id < before (0: from the newest), at most limit, as a JSON
 * array (the caller json_decref()s it). */
int hub_db_audit_list(PGconn *c, long long before, int limit, json_t **out);

#endif
