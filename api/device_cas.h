/* /v1/device-cas: factory device CAs (issue 15). An admin gets a one-time registration code,
 * the maker signs a verification certificate with CN = code using the CA's key, and the CA
 * is registered under a product (proof of possession). Also the CA's CRL (uploaded here or
 * fetched by server/device_ca_crl.c), and the approval of devices it registered as pending.
 * Every change NOTIFYs iothub_device_cas with the CA's id (db/device_cas.h). */
#ifndef HUB_API_DEVICE_CAS_H
#define HUB_API_DEVICE_CAS_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "api/request.h"
#include "ca/device_ca.h"
#include "util/buf.h"

/* Limits, set once by server/ before the API starts: enabled device CAs per product
 * (device_ca_max_per_product) and the lifetime of a registration code. */
void hub_api_device_cas_configure(int max_per_product, int code_ttl_s);

/* POST /v1/device-cas/registration-codes (admin): 201 {code, expires_at}. */
void hub_api_device_cas_code(struct hub_req *r);
/* POST /v1/device-cas (admin): registers a CA with proof of possession; 201. */
void hub_api_device_cas_create(struct hub_req *r);
/* GET /v1/device-cas (auditor+): every device CA with its certificate (and CRL) as PEM. */
void hub_api_device_cas_list(struct hub_req *r);
/* GET /v1/device-cas/{id} (auditor+). */
void hub_api_device_cas_show(struct hub_req *r);
/* PATCH /v1/device-cas/{id} (admin) {status?, registration?}. */
void hub_api_device_cas_update(struct hub_req *r);
/* PUT /v1/device-cas/{id}/crl (admin): a CRL of the CA, DER or PEM body. */
void hub_api_device_cas_crl(struct hub_req *r);
/* POST /v1/devices/{id}/approve (operator+): pending -> active. */
void hub_api_device_cas_approve(struct hub_req *r);

/* Verifies a CRL (data, len) of device CA id against its certificate and stores it if its
 * cRLNumber is greater than the stored one, with the NOTIFY, in c's open transaction.
 * Returns 0, HUB_ENOTFOUND (no such CA), HUB_EINVAL (refused: why filled, "crl_not_newer"
 * included) or another HUB_E* code. Any thread (API, CRL fetcher). */
int hub_api_device_cas_store_crl(PGconn *c, const char *id, const uint8_t *data, size_t len,
                                 struct hub_devca_crl *info, struct hub_devca_why *why);

/* What the CRL fetcher counts (lock-free). */
enum hub_devca_metric {
    HUB_DEVCA_M_REGISTERED,     /* device CAs registered */
    HUB_DEVCA_M_REFUSED,        /* registrations refused (any 4xx) */
    HUB_DEVCA_M_LIMIT,          /* refused by device_ca_max_per_product */
    HUB_DEVCA_M_CRLS,           /* CRLs stored (upload or fetch) */
    HUB_DEVCA_M_CRL_REFUSED,    /* CRLs refused (upload or fetch) */
    HUB_DEVCA_M_FETCHES,        /* CRL fetches attempted */
    HUB_DEVCA_M_FETCH_FAILURES, /* fetches that failed (transport, HTTP status, size) */
    HUB_DEVCA_M_COUNT
};
void hub_api_device_cas_count(enum hub_devca_metric m);
/* Appends the device-CA counters (Prometheus text). */
int hub_api_device_cas_metrics(hub_buf_t *out);

#endif
