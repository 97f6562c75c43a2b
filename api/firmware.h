/* /v1/firmware: the manifests of signed images (list, show, delete). Uploads are streamed
 * (api/firmware_upload.h), downloads too (api/firmware_download.h). */
#ifndef HUB_API_FIRMWARE_H
#define HUB_API_FIRMWARE_H

#include "api/request.h"

/* GET /v1/firmware[?product_key=]: ready images, newest version first. */
void hub_api_firmware_list(struct hub_req *r);
/* GET /v1/firmware/{id}: one manifest. */
void hub_api_firmware_show(struct hub_req *r);
/* DELETE /v1/firmware/{id}: 204, 404, or 409 while a rollout references the image. */
void hub_api_firmware_delete(struct hub_req *r);

#endif
