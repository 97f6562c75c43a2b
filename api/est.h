/* EST, Enrollment over Secure Transport (RFC 7030), under /.well-known/est/: the CA
 * certificates, enrollment with the device's Basic credentials (activation's path),
 * re-enrollment with its current client certificate (renewal's path), and the CSR
 * attributes. Bodies are base64 DER both ways; errors are the API's JSON errors. */
#ifndef HUB_API_EST_H
#define HUB_API_EST_H

#include "api/request.h"

/* GET /.well-known/est/cacerts: the issuing CA and the root, base64 PKCS#7 certs-only. */
void hub_api_est_cacerts(struct hub_req *r);
/* POST /.well-known/est/simpleenroll (Basic device_id:device_secret), body base64 PKCS#10
 * (application/pkcs10): 200 base64 PKCS#7 certs-only holding the issued certificate. */
void hub_api_est_simpleenroll(struct hub_req *r);
/* POST /.well-known/est/simplereenroll, authenticated by the device's current client
 * certificate over TLS: as simpleenroll, the presented certificate superseded. */
void hub_api_est_simplereenroll(struct hub_req *r);
/* GET /.well-known/est/csrattrs: the accepted key types, base64 DER (application/csrattrs). */
void hub_api_est_csrattrs(struct hub_req *r);

#endif
