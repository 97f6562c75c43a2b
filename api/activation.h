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
/* Activates or renews the device of the path: revokes its valid certificates as
 * superseded, issues a new one (201), or answers a retried renewal with the same one (200). */
void hub_api_activation_device(struct hub_req *r);
/* The same for the service of the path. */
void hub_api_activation_service(struct hub_req *r);

#endif
