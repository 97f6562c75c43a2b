/* /v1/tokens: bearer tokens of the API, each with a role (admin only). */
#ifndef HUB_API_TOKENS_H
#define HUB_API_TOKENS_H

#include "api/request.h"

/* POST /v1/tokens {"name", "role"}: 201 with the token (shown once). */
void hub_api_tokens_create(struct hub_req *r);
/* GET /v1/tokens: every token, without secrets. */
void hub_api_tokens_list(struct hub_req *r);
/* POST /v1/tokens/{token_id}/revoke: 409 for the last active admin token. */
void hub_api_tokens_revoke(struct hub_req *r);

#endif
