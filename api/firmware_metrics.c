#include "api/firmware_metrics.h"

#include "api/firmware_cache.h"

#include <stdatomic.h>
#include <string.h>

static const char *const upload_results[] = {
    "ok",           "malformed",          "payload_too_large", "signature_invalid",
    "signer_unknown", "version_not_newer", "product_unknown",   "busy",
    "unauthorized", "forbidden",          "other"};
#define NRESULTS (sizeof upload_results / sizeof upload_results[0])

static _Atomic unsigned long long uploads[NRESULTS];
static _Atomic unsigned long long refused[2];
static _Atomic long long active;
static _Atomic unsigned long long downloads;
static _Atomic unsigned long long bytes;

void hub_fw_metrics_upload(const char *code)
{
    size_t i = 0;
    if (code == NULL)
        code = "ok";
    else if (strcmp(code, "invalid_parameter") == 0 || strcmp(code, "unsupported_media_type") == 0 ||
             strcmp(code, "size_mismatch") == 0 || strcmp(code, "empty_image") == 0)
        code = "malformed";
    while (i < NRESULTS - 1 && strcmp(upload_results[i], code) != 0)
        i++;
    atomic_fetch_add(&uploads[i], 1);
}

void hub_fw_metrics_refused(const char *reason)
{
    atomic_fetch_add(&refused[strcmp(reason, "busy") == 0 ? 0 : 1], 1);
}

void hub_fw_metrics_active(int delta)
{
    atomic_fetch_add(&active, delta);
    if (delta > 0)
        atomic_fetch_add(&downloads, 1);
}

void hub_fw_metrics_bytes(unsigned long long n)
{
    atomic_fetch_add(&bytes, n);
}

int hub_fw_metrics_render(hub_buf_t *out)
{
    int rc = hub_buf_puts(out, "# HELP iothub_firmware_uploads_total Firmware uploads by result "
                               "(ok, or the reason of the refusal).\n"
                               "# TYPE iothub_firmware_uploads_total counter\n");
    for (size_t i = 0; rc == 0 && i < NRESULTS; i++)
        rc = hub_buf_printf(out, "iothub_firmware_uploads_total{result=\"%s\"} %llu\n",
                            upload_results[i], atomic_load(&uploads[i]));
    if (rc == 0)
        rc = hub_buf_printf(
            out,
            "# HELP iothub_firmware_downloads_total Firmware downloads started (200 or 206).\n"
            "# TYPE iothub_firmware_downloads_total counter\n"
            "iothub_firmware_downloads_total %llu\n"
            "# HELP iothub_firmware_downloads_active Firmware downloads in progress.\n"
            "# TYPE iothub_firmware_downloads_active gauge\n"
            "iothub_firmware_downloads_active %lld\n"
            "# HELP iothub_firmware_downloads_refused_total Firmware downloads refused (busy: "
            "firmware_max_downloads reached, 503; device_busy: the device downloads already, "
            "429).\n"
            "# TYPE iothub_firmware_downloads_refused_total counter\n"
            "iothub_firmware_downloads_refused_total{reason=\"busy\"} %llu\n"
            "iothub_firmware_downloads_refused_total{reason=\"device_busy\"} %llu\n"
            "# HELP iothub_firmware_bytes_served_total Firmware image bytes sent to devices.\n"
            "# TYPE iothub_firmware_bytes_served_total counter\n"
            "iothub_firmware_bytes_served_total %llu\n",
            atomic_load(&downloads), atomic_load(&active), atomic_load(&refused[0]),
            atomic_load(&refused[1]), atomic_load(&bytes));
    unsigned long long hits, misses;
    size_t held;
    hub_fw_cache_stats(&hits, &misses, &held);
    if (rc == 0)
        rc = hub_buf_printf(
            out,
            "# HELP iothub_firmware_cache_reads_total Firmware chunks read by downloads, by "
            "where from (hit: the node's chunk cache; miss: PostgreSQL).\n"
            "# TYPE iothub_firmware_cache_reads_total counter\n"
            "iothub_firmware_cache_reads_total{result=\"hit\"} %llu\n"
            "iothub_firmware_cache_reads_total{result=\"miss\"} %llu\n"
            "# HELP iothub_firmware_cache_bytes Bytes of firmware chunks the cache holds.\n"
            "# TYPE iothub_firmware_cache_bytes gauge\n"
            "iothub_firmware_cache_bytes %zu\n",
            hits, misses, held);
    return rc;
}
