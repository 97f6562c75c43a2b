/* POST /v1/firmware: a streamed image upload. The body is never held whole: api/http.c hands
 * each piece MHD reads to hub_api_firmware_upload_data, which fills one 256 KiB buffer,
 * hashes it and stores it as a firmware_chunks row, all in the request's one transaction.
 * At the end of the body the route's handler checks the size, the signature over the
 * SHA-256 and that the version is newer than every other of the product, then commits; any
 * failure rolls back, so nothing of a refused image is stored.
 *
 * The manifest travels in the query (product_key, version, signer, hardware, min_version,
 * release_notes, size) and the signature in the header X-Firmware-Signature (base64 DER).
 * An upload holds one of the API's pooled database connections for its whole duration:
 * at most HUB_FW_MAX_UPLOADS run at once (503 busy beyond). All on the connection's thread. */
#ifndef HUB_API_FIRMWARE_UPLOAD_H
#define HUB_API_FIRMWARE_UPLOAD_H

#include <stddef.h>

#include "api/request.h"

#define HUB_FW_MAX_UPLOADS 2

/* 1 when r (request line and headers known) is a firmware upload. */
int hub_api_firmware_upload_wanted(const struct hub_req *r);
/* Called once the headers are in: authenticates (admin), checks the manifest, opens the
 * transaction and inserts the manifest row. On failure leaves an error reply in r. */
void hub_api_firmware_upload_begin(struct hub_req *r);
/* A piece of the body. Stores full chunks as they fill. After a failure (reply set) the
 * rest of the body is read and dropped. Returns 0, or -1 when the connection should be
 * closed (a client that goes on sending far beyond the limit). */
int hub_api_firmware_upload_data(struct hub_req *r, const char *data, size_t len);
/* The route's handler, at the end of the body: verifies and commits (201 with the manifest)
 * or refuses (400, 413, 422). */
void hub_api_firmware_upload(struct hub_req *r);
/* Frees the upload state of r (api/http.c, when the request ends). */
void hub_api_firmware_upload_free(struct hub_req *r);

#endif
