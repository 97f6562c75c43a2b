/* POST /v1/devices/{id}/commands: cloud-to-device commands through the MQTT side. */
#ifndef HUB_API_COMMANDS_H
#define HUB_API_COMMANDS_H

#include <stddef.h>

#include <jansson.h>

#include "api/request.h"

/* The body check of a command without the database (also run by tests/fuzz/fuzz_json.c):
 * *name and *payload point into body, or *payload into *payload_text (a JSON payload as
 * text, the caller's to free, also on failure). Returns 0, or HUB_REPLIED after a 400. */
int hub_api_commands_parse(struct hub_req *r, json_t *body, const char **name, const char **payload,
                           size_t *len, char **payload_text);
/* POST /v1/devices/{id}/commands {"name", "payload"}: 202, "delivered" when the device is
 * connected and subscribed; 409 for a revoked device, 503 without MQTT. */
void hub_api_commands_create(struct hub_req *r);

#endif
