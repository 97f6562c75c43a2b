/* The OCSP responder (RFC 6960) at /ocsp on the API listener, public like /v1/crl: POST
 * with an application/ocsp-request body, GET /ocsp/<base64 of the DER request>. Answers are
 * application/ocsp-response with HTTP 200 whatever the OCSP status (malformedRequest,
 * unauthorized, tryLater ...); only a POST of another media type gets 415 (JSON error). */
#ifndef HUB_API_OCSP_H
#define HUB_API_OCSP_H

#include "api/request.h"
#include "util/buf.h"

/* GET /ocsp/{*}: the request is the path after /ocsp/, base64 (percent-decoded by MHD). */
void hub_api_ocsp_get(struct hub_req *r);
/* POST /ocsp: the request is the body. */
void hub_api_ocsp_post(struct hub_req *r);
/* Appends the responder's counters (docs/metrics.md) in the text exposition format. */
int hub_api_ocsp_metrics(hub_buf_t *out);

#endif
