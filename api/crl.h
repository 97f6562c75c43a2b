/* GET /v1/crl: certificate revocation lists, public. */
#ifndef HUB_API_CRL_H
#define HUB_API_CRL_H

#include "api/request.h"

/* GET /v1/crl?format=der|pem&ca=SERIAL: 304 when If-None-Match names the current one. */
void hub_api_crl_show(struct hub_req *r);

#endif
