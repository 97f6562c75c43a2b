/* /v1/certificates: the certificates the CA issued, and their revocation. */
#ifndef HUB_API_CERTIFICATES_H
#define HUB_API_CERTIFICATES_H

#include <stddef.h>

#include "api/request.h"

/* POST /v1/certificates/{serial}/revoke {"reason"}: 409 for the gateway's own server
 * certificate or one already revoked. */
void hub_api_certificates_revoke(struct hub_req *r);
/* GET /v1/certificates?device_id=&limit=: newest first. */
void hub_api_certificates_list(struct hub_req *r);
/* GET /v1/certificates/{serial}: with its PEM. */
void hub_api_certificates_show(struct hub_req *r);
/* Revokes serials (reason code) in the request's open transaction and queues a NOTIFY
 * iothub_revocation per serial; no CRL is built here (server/crl_publisher.c publishes the
 * delta CRL within a second of the commit). Cost per serial: one UPDATE by primary key and
 * one NOTIFY. Returns 0, or HUB_REPLIED after replying (404 unknown serial, 409 already
 * revoked, 503/500). */
int hub_api_certificates_revoke_serials(struct hub_req *r, char (*serials)[HUB_SERIAL_HEX],
                                        size_t n, int reason);

#endif
