/* GET /v1/ca: the CA chain devices trust, public. */
#ifndef HUB_API_CHAIN_H
#define HUB_API_CHAIN_H

#include "api/request.h"

/* GET /v1/ca?format=pem|p7b: the issuing CA then the root. */
void hub_api_chain_show(struct hub_req *r);

#endif
