/* Activation and renewal of devices and services (CSR -> certificate):
 * POST /v1/{devices,services}/{id}/activate with the principal's Basic credentials, and
 * POST /v1/{devices,services}/{id}/renew with its current client certificate. */
#ifndef HUB_API_ACTIVATION_H
#define HUB_API_ACTIVATION_H

#include <jansson.h>
#include <mbedtls/x509_csr.h>

#include "api/request.h"

/* {"csr": PEM}: loads and checks the CSR into csr (initialised and freed by the caller);
 * also run by tests/fuzz/fuzz_json.c. Returns 0, or HUB_REPLIED after a 400. */
int hub_api_activation_parse(struct hub_req *r, json_t *body, mbedtls_x509_csr *csr);
/* The path activation, renewal and EST enrollment share: in a new transaction, locks the
 * principal of r->params[0] (a device, or a service when service = 1), checks a renewal's
 * client certificate (r->who.cert_serial), revokes its valid certificates as superseded and
 * issues one for csr's key. On success the transaction is committed, *answer is the JSON
 * answer {certificate, ca_chain, serial, not_before, not_after, superseded} (the caller
 * json_decref()s it) and *status 201, or 200 for a retried renewal answered with the same
 * certificate. protocol ("est"), when not NULL, goes into the audit details. Otherwise
 * replies (403, 503, 500) and returns HUB_REPLIED. */
int hub_api_activation_issue(struct hub_req *r, int service, mbedtls_x509_csr *csr,
                             const char *protocol, json_t **answer, unsigned *status);
/* Activates or renews the device of the path: revokes its valid certificates as
 * superseded, issues a new one (201), or answers a retried renewal with the same one (200). */
void hub_api_activation_device(struct hub_req *r);
/* The same for the service of the path. */
void hub_api_activation_service(struct hub_req *r);

#endif
