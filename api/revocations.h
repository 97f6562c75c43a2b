/* /v1/revocations: bulk revocation jobs (issue 14). The API validates and queues a job; a
 * node's engine (server/revjobs.c) runs it in the background. */
#ifndef HUB_API_REVOCATIONS_H
#define HUB_API_REVOCATIONS_H

#include "api/request.h"

#define HUB_REVOCATIONS_LIST_MAX 1000 /* entries of device_ids / serials per job */

/* POST /v1/revocations {device_ids | serials | product_key | ca, [issued_after],
 * [issued_before], [reason]}: 202 with the job and Location: /v1/revocations/{id}. */
void hub_api_revocations_create(struct hub_req *r);
/* GET /v1/revocations/{id}: the job with its progress (total, done, skipped, failed). */
void hub_api_revocations_show(struct hub_req *r);

#endif
