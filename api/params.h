/* Reading what a request carries: its JSON body, string fields, ?limit=, ?format=, ids, and
 * revocation reasons. A check that fails sets the 4xx reply itself and returns HUB_REPLIED
 * (or NULL), so handlers just return. */
#ifndef HUB_API_PARAMS_H
#define HUB_API_PARAMS_H

#include <stddef.h>

#include <jansson.h>

#include "api/request.h"

/* Parses the body as a JSON object after checking Content-Type. On failure replies 400/415
 * and returns NULL. The caller json_decref()s the result. */
json_t *hub_params_json(struct hub_req *r);
/* The body half of hub_params_json, whatever the Content-Type (fuzzed in tests/fuzz). */
json_t *hub_params_json_body(struct hub_req *r);
/* Gets a string member: required ones missing, wrong types, empty, longer than maxlen or
 * with control characters get a 400 reply and NULL. Optional missing ones return NULL
 * without a reply (check r->status). The string belongs to obj. */
const char *hub_params_string(struct hub_req *r, json_t *obj, const char *key, int required,
                              size_t maxlen);
/* Parses ?limit= (default def, 1..max) into *limit: 0, or HUB_REPLIED (400) when invalid. */
int hub_params_limit(struct hub_req *r, int def, int max, int *limit);
/* Validates ?format= against two names: *second = 1 for the second, 0 for the first or
 * none. Returns 0, or HUB_REPLIED (400) for another name. */
int hub_params_format(struct hub_req *r, const char *first, const char *second, int *is_second);
/* {"reason": name} of body (optional, def when absent) into *reason (RFC 5280 code).
 * Returns 0 or HUB_REPLIED (400). */
int hub_params_reason_parse(struct hub_req *r, json_t *body, int def, int *reason);
/* Like hub_params_reason_parse on the request's body, which may be empty (def). */
int hub_params_reason(struct hub_req *r, int def, int *reason);
/* Returns 1 if s is a canonical lower/upper-case UUID. */
int hub_params_uuid_valid(const char *s);
/* Lower-cases s in place (ids are compared and stored in lower case). */
void hub_params_lower(char *s);

#endif
