/* POST /v1/services: backend applications with explicit MQTT topic patterns. Their
 * activation and renewal are in api/activation.h. */
#ifndef HUB_API_SERVICES_H
#define HUB_API_SERVICES_H

#include <jansson.h>

#include "api/request.h"

/* The body check of POST /v1/services without the database (also run by
 * tests/fuzz/fuzz_json.c): *name points into body; *pub and *sub (validated pattern arrays)
 * are the caller's to json_decref, also on failure. Returns 0, or HUB_REPLIED after a 400. */
int hub_api_services_parse(struct hub_req *r, json_t *body, const char **name, json_t **pub,
                           json_t **sub);
/* POST /v1/services {"name", "publish", "subscribe"}: 201 with the id and secret. */
void hub_api_services_create(struct hub_req *r);

#endif
