/* Rows of services (backend principals with topic patterns). Blocking calls on a
 * caller-owned connection, from a worker thread. */
#ifndef HUB_DB_SERVICES_H
#define HUB_DB_SERVICES_H

#include <jansson.h>
#include <libpq-fe.h>

#include "db/db.h"

/* A service's secret hash and status, its name in extra (password checks). HUB_ENOTFOUND
 * when there is no such service. */
int hub_db_services_secret(PGconn *c, const char *service_id, struct hub_db_secret *out);
/* Creates a service with topic patterns (JSON arrays of strings): service_id (36 chars +
 * NUL) filled. */
int hub_db_services_insert(PGconn *c, const char *name, const char *publish_json,
                           const char *subscribe_json, const char *secret_hash,
                           char service_id[37]);
/* A service's status and topic patterns: {"status", "publish": [...], "subscribe": [...]}
 * (the caller json_decref()s it). HUB_ENOTFOUND. */
int hub_db_services_acl(PGconn *c, const char *service_id, json_t **out);
/* Sets a service's status; HUB_ENOTFOUND. */
int hub_db_services_set_status(PGconn *c, const char *service_id, const char *status);
/* Locks the service row for the transaction (activation, renewal) and copies its status.
 * HUB_ENOTFOUND when there is no such service. */
int hub_db_services_lock(PGconn *c, const char *service_id, char status[16]);

#endif
