/* /v1/devices: provisioning, listing, revocation and reset of devices. */
#ifndef HUB_API_DEVICES_H
#define HUB_API_DEVICES_H

#include <jansson.h>
#include <libpq-fe.h>

#include "api/request.h"

/* The body check of POST /v1/devices without the database (also run by
 * tests/fuzz/fuzz_json.c): *serial and *product_key point into body (*product_key is NULL
 * for a product claim that omits it). Returns 0, or HUB_REPLIED after a 400. */
int hub_api_devices_create_parse(struct hub_req *r, json_t *body, const char **serial,
                                 const char **product_key);
/* POST /v1/devices {"product_key", "serial_number"} (provisioner+ token or product
 * credentials): 201 with the device id and secret. */
void hub_api_devices_create(struct hub_req *r);
/* GET /v1/devices?after=&limit=. */
void hub_api_devices_list(struct hub_req *r);
/* GET /v1/devices/{id}. */
void hub_api_devices_show(struct hub_req *r);
/* POST /v1/devices/{id}/revoke {"reason"}: revokes its certificates, closes its sessions. */
void hub_api_devices_revoke(struct hub_req *r);
/* POST /v1/devices/{id}/reset: revokes its certificates, a new secret, back to provisioned. */
void hub_api_devices_reset(struct hub_req *r);
/* Begins a transaction and locks the device of the path (r->params[0]), copying its
 * status. Returns r->db, or NULL after replying (404, 503, 500). */
PGconn *hub_api_devices_lock(struct hub_req *r, char status[16]);
/* Sets "connected" in a device object (or each of an array) from the MQTT side. */
void hub_api_devices_mark_connected(struct hub_req *r, json_t *devices);

#endif
