/* /v1/firmware-signers: the certificates whose keys sign firmware images (admin registers,
 * auditors read), and the PEM bundle of the active ones that devices trust. */
#ifndef HUB_API_FIRMWARE_SIGNERS_H
#define HUB_API_FIRMWARE_SIGNERS_H

#include "api/request.h"

/* POST /v1/firmware-signers {"name", "certificate": PEM}: 201, 400, 409, 422. */
void hub_api_firmware_signers_create(struct hub_req *r);
/* GET /v1/firmware-signers. */
void hub_api_firmware_signers_list(struct hub_req *r);
/* GET /v1/firmware-signers/{id}: with the certificate PEM. */
void hub_api_firmware_signers_show(struct hub_req *r);
/* PATCH /v1/firmware-signers/{id} {"status": "active"|"disabled"}. */
void hub_api_firmware_signers_update(struct hub_req *r);
/* GET /v1/devices/{id}/firmware-signers: PEM bundle of the active signers (device auth). */
void hub_api_firmware_signers_bundle(struct hub_req *r);

#endif
