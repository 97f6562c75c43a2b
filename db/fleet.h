/* Products, devices, services, tokens and audit rows as the REST API reads and writes them.
 * Read functions return JSON built by PostgreSQL (json_build_object), parsed with jansson,
 * in the shape the API answers with. Blocking calls on a caller-owned connection. */
#ifndef HUB_DB_FLEET_H
#define HUB_DB_FLEET_H

#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "db/ca_store.h"
#include "util/passhash.h"

/* A principal's stored credentials. */
struct hub_db_secret {
    long long id;                  /* products.id (products only) */
    char hash[HUB_PASSHASH_MAX];
    char status[16];               /* devices/services: provisioned, active, revoked */
    char extra[64];                /* devices: product_key */
};

/* Looks up an API token by its public id: *role and *name copied, hash[32] filled.
 * HUB_ENOTFOUND for unknown or revoked tokens. */
int hub_db_token_lookup(PGconn *c, const char *token_id, char role[16], char name[128],
                        uint8_t hash[32]);
int hub_db_product_secret(PGconn *c, const char *product_key, struct hub_db_secret *out);
int hub_db_device_secret(PGconn *c, const char *device_id, struct hub_db_secret *out);
int hub_db_service_secret(PGconn *c, const char *service_id, struct hub_db_secret *out);

/* Creates a product; HUB_EEXIST on a taken key. */
int hub_db_product_insert(PGconn *c, const char *product_key, const char *name,
                          const char *secret_hash);
/* All products as a JSON array. */
int hub_db_product_list(PGconn *c, json_t **out);

/* Creates a device of a product: device_id (36 chars + NUL) filled. HUB_EEXIST when the
 * serial is taken in that product. */
int hub_db_device_insert(PGconn *c, long long product_id, const char *serial,
                         const char *secret_hash, char device_id[37]);
/* One device with its certificates; HUB_ENOTFOUND. */
int hub_db_device_get(PGconn *c, const char *device_id, json_t **out);
/* Devices ordered by id after `after` (NULL: from the start), at most limit. */
int hub_db_device_list(PGconn *c, const char *after, int limit, json_t **out);
/* Sets status (and activated_at when "active"); HUB_ENOTFOUND. */
int hub_db_device_set_status(PGconn *c, const char *device_id, const char *status);
/* Replaces the secret hash and sets status provisioned. */
int hub_db_device_set_secret(PGconn *c, const char *device_id, const char *secret_hash);
/* Locks the device row for the transaction (activation, revocation) and copies its status.
 * HUB_ENOTFOUND when there is no such device. */
int hub_db_device_lock(PGconn *c, const char *device_id, char status[16]);
/* The same for a service (activation, renewal). */
int hub_db_service_lock(PGconn *c, const char *service_id, char status[16]);

/* Sets last_seen = now() for the devices in ids_json (a JSON array of UUID strings). */
int hub_db_devices_seen(PGconn *c, const char *ids_json);

/* Creates a service with topic patterns (JSON arrays of strings). */
int hub_db_service_insert(PGconn *c, const char *name, const char *publish_json,
                          const char *subscribe_json, const char *secret_hash,
                          char service_id[37]);
/* A service's status and topic patterns: {"status", "publish": [...], "subscribe": [...]}.
 * HUB_ENOTFOUND. */
int hub_db_service_acl(PGconn *c, const char *service_id, json_t **out);
int hub_db_service_set_status(PGconn *c, const char *service_id, const char *status);

/* One certificate as JSON (with PEM); HUB_ENOTFOUND. */
int hub_db_cert_get(PGconn *c, const char *serial, json_t **out);
/* Certificates of a device (or all when device_id is NULL), newest first, at most limit. */
int hub_db_cert_list(PGconn *c, const char *device_id, int limit, json_t **out);

/* Audit rows newest first, with id < before (0: from the newest), at most limit. */
/* Lists the API tokens (never their secrets), oldest first, as a JSON array. */
int hub_db_token_list(PGconn *c, json_t **out);
int hub_db_audit_list(PGconn *c, long long before, int limit, json_t **out);
/* NOTIFY channel, payload (delivered at commit). */
int hub_db_notify(PGconn *c, const char *channel, const char *payload);

#endif
