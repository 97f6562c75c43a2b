/* /v1/rollouts: staged firmware rollouts (creation with its device selection, listing, one
 * rollout with its per-state and per-wave counts and a page of its devices, pause, resume,
 * cancel). The waves themselves are driven by server/rollouts.c. */
#ifndef HUB_API_ROLLOUTS_H
#define HUB_API_ROLLOUTS_H

#include <jansson.h>

#include "api/request.h"

#define HUB_ROLLOUT_MAX_WAVES 100
#define HUB_ROLLOUT_MAX_DEVICE_IDS 1000

/* A rollout request after the body check. Strings point into the body. */
struct hub_rollout_spec {
    const char *firmware_id;
    int kind;                /* enum hub_rollout_target (db/rollouts.h) */
    const char *product_key; /* kind product */
    const char *value;       /* the tag; or (device_ids) the ids as JSON text, owned */
    char *value_owned;
    int wave_count;
    json_int_t wave_value[HUB_ROLLOUT_MAX_WAVES]; /* count, or percentage when wave_pct */
    int wave_pct[HUB_ROLLOUT_MAX_WAVES];
    int wave_pause_s, wave_timeout_s;
    int failure_count, failure_percent; /* one of them set */
};

/* The body check of POST /v1/rollouts without the database: fills spec.
 * Returns 0, or HUB_REPLIED after a 400. Free spec->value_owned after. */
int hub_api_rollouts_parse(struct hub_req *r, json_t *body, struct hub_rollout_spec *spec);
/* The cumulative end of each wave but the last for n devices, as a PostgreSQL array text
 * ("{3,25}") into buf. */
void hub_api_rollouts_bounds(const struct hub_rollout_spec *spec, long long n, char *buf,
                             size_t cap);
/* POST /v1/rollouts: 201 with the rollout; 404 unknown image or product, 422 image not
 * ready or not of the target's product, unknown devices, empty target; 409 a device of the
 * target is already in an active rollout. */
void hub_api_rollouts_create(struct hub_req *r);
/* GET /v1/rollouts?limit=&before= */
void hub_api_rollouts_list(struct hub_req *r);
/* GET /v1/rollouts/{id}?limit=&after=&state=: the rollout, counts, a page of devices. */
void hub_api_rollouts_show(struct hub_req *r);
/* POST /v1/rollouts/{id}/pause|resume|cancel: 409 from a state that does not allow it. */
void hub_api_rollouts_pause(struct hub_req *r);
void hub_api_rollouts_resume(struct hub_req *r);
void hub_api_rollouts_cancel(struct hub_req *r);

#endif
