/* GET /v1/devices/{device_id}/firmware/{firmware_id}: a device downloads an image of its
 * product (firmware-contract.md). The answer is streamed: MHD pulls it through a reader
 * that holds a reference to one 256 KiB chunk of the node's chunk cache
 * (api/firmware_cache.h), which reads a missing chunk from PostgreSQL with a pooled
 * connection taken for that one query: memory per download is flat, concurrent downloads of
 * one image share its chunks, and a slow device holds no database connection. Range (one range), If-Range, ETag (the SHA-256)
 * and If-None-Match are honoured. At most firmware_max_downloads run at once (503 beyond)
 * and one per device (429). */
#ifndef HUB_API_FIRMWARE_DOWNLOAD_H
#define HUB_API_FIRMWARE_DOWNLOAD_H

#include <stdint.h>

#include "api/request.h"

/* The route's handler (device client certificate or Basic device credentials). */
void hub_api_firmware_download(struct hub_req *r);

/* Parses a Range header value for an entity of size bytes: one range "bytes=N-",
 * "bytes=N-M" or "bytes=-N". Returns 1 with [*start, *start + *len) when satisfiable, 0 when
 * it is not (416), -1 when the header is to be ignored (malformed or several ranges: the
 * whole entity is sent, RFC 9110 §14.2). */
int hub_api_firmware_range(const char *value, uint64_t size, uint64_t *start, uint64_t *len);

#endif
