/* The audit log: the row each state-changing request writes, and GET /v1/audit. */
#ifndef HUB_API_AUDIT_H
#define HUB_API_AUDIT_H

#include "api/request.h"

/* Writes the audit row of this request (actor, role, action of the route, target, source,
 * result from the reply so far) in the current transaction. Returns 0 or a HUB_E* code
 * (no reply set). */
int hub_api_audit_write(struct hub_req *r, const char *target, const char *details_json);
/* After the handler: audits a failed state-changing request that wrote no row, outside its
 * failed transaction (rolled back first). Logs when no connection is to be had. */
void hub_api_audit_failure(struct hub_req *r);
/* GET /v1/audit?before=&limit=: newest first. */
void hub_api_audit_list(struct hub_req *r);

#endif
