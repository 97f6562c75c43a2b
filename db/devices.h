/* Rows of devices as the REST API and the MQTT side read and write them. Read functions
 * return JSON built by PostgreSQL (json_build_object), parsed with jansson, in the shape the
 * API answers with (the caller json_decref()s it). Blocking calls on a caller-owned
 * connection, from a worker thread or a command. */
#ifndef HUB_DB_DEVICES_H
#define HUB_DB_DEVICES_H

#include <jansson.h>
#include <libpq-fe.h>

#include "db/db.h"

/* A device's secret hash and status, its product's key in extra (password checks, claims).
 * HUB_ENOTFOUND when there is no such device. */
int hub_db_devices_secret(PGconn *c, const char *device_id, struct hub_db_secret *out);
/* Creates a device of a product: device_id (36 chars + NUL) filled. HUB_EEXIST when the
 * serial is taken in that product. */
int hub_db_devices_insert(PGconn *c, long long product_id, const char *serial,
                          const char *secret_hash, char device_id[37]);
/* One device with its certificates, tags, reported firmware version and latest rollout
 * row; HUB_ENOTFOUND. */
int hub_db_devices_get(PGconn *c, const char *device_id, json_t **out);
/* Devices ordered by id after `after` (NULL: from the start), at most limit. */
int hub_db_devices_list(PGconn *c, const char *after, int limit, json_t **out);
/* Sets status (and activated_at when "active"); HUB_ENOTFOUND. */
int hub_db_devices_set_status(PGconn *c, const char *device_id, const char *status);
/* Replaces the secret hash and sets status provisioned; HUB_ENOTFOUND. */
int hub_db_devices_set_secret(PGconn *c, const char *device_id, const char *secret_hash);
/* Locks the device row for the transaction (activation, revocation) and copies its status.
 * HUB_ENOTFOUND when there is no such device. */
int hub_db_devices_lock(PGconn *c, const char *device_id, char status[16]);
/* Sets last_seen = now() for the devices in ids_json (a JSON array of UUID strings). */
int hub_db_devices_mark_seen(PGconn *c, const char *ids_json);
/* Several nodes: sets last_seen = now() for the devices of on_json and off_json (JSON arrays
 * of UUIDs); those of on_json are now held by node (0: unknown, left as is), those of
 * off_json are held by nobody unless another node took them since. */
int hub_db_devices_mark_presence(PGconn *c, int node, const char *on_json, const char *off_json);
/* The name of the node holding device_id's connection: HUB_ENOTFOUND when none. */
int hub_db_devices_connected_node(PGconn *c, const char *device_id, char *name, size_t cap);
/* Replaces the device's tags with those of tags_json (a JSON array of strings, checked by
 * the caller); *previous gets the tags it had. HUB_ENOTFOUND. */
int hub_db_devices_set_tags(PGconn *c, const char *device_id, const char *tags_json,
                            json_t **previous);
/* Records the versions devices report running: versions_json is [{device_id, version}]
 * (one per device). */
int hub_db_devices_set_firmware_versions(PGconn *c, const char *versions_json);

#endif
