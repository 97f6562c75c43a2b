/* Counters of firmware uploads and downloads, rendered into GET /metrics (docs/metrics.md).
 * Lock-free: any thread may count. */
#ifndef HUB_API_FIRMWARE_METRICS_H
#define HUB_API_FIRMWARE_METRICS_H

#include "util/buf.h"

/* An upload stored (ok) or refused with error code code (counted by reason; codes outside
 * the documented list count as "other"). */
void hub_fw_metrics_upload(const char *code);
/* A download refused: "busy" (firmware_max_downloads reached) or "device_busy" (the device
 * downloads already). */
void hub_fw_metrics_refused(const char *reason);
/* A download started (+1) or ended (-1). */
void hub_fw_metrics_active(int delta);
/* Image bytes handed to the TLS layer. */
void hub_fw_metrics_bytes(unsigned long long n);
/* Appends the firmware metrics in the text exposition format. */
int hub_fw_metrics_render(hub_buf_t *out);

#endif
