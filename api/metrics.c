#include "api/metrics.h"

#include <stdatomic.h>

static _Atomic unsigned long long http_by_class[6];
static _Atomic unsigned long long counters[HUB_M_COUNT];

static const struct {
    const char *name, *help;
} info[HUB_M_COUNT] = {
    {"iothub_devices_provisioned_total", "Devices provisioned through the API."},
    {"iothub_certificates_issued_total", "Certificates issued to devices and services."},
    {"iothub_certificates_revoked_total", "Certificates revoked."},
    {"iothub_crls_published_total", "CRLs published after revocations."},
    {"iothub_api_auth_failures_total", "API requests refused for missing or bad credentials."},
};

void hub_metrics_http(unsigned status)
{
    unsigned cls = status / 100;
    atomic_fetch_add(&http_by_class[cls <= 5 ? cls : 0], 1);
    if (status == 401)
        hub_metrics_inc(HUB_M_AUTH_FAILURES);
}

void hub_metrics_inc(enum hub_metric m)
{
    atomic_fetch_add(&counters[m], 1);
}

int hub_metrics_render(hub_buf_t *out)
{
    int rc = hub_buf_puts(out, "# HELP iothub_http_responses_total HTTP answers of the REST "
                               "API by status class.\n"
                               "# TYPE iothub_http_responses_total counter\n");
    for (unsigned c = 1; rc == 0 && c <= 5; c++)
        rc = hub_buf_printf(out, "iothub_http_responses_total{code=\"%uxx\"} %llu\n", c,
                            atomic_load(&http_by_class[c]));
    for (int m = 0; rc == 0 && m < HUB_M_COUNT; m++)
        rc = hub_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", info[m].name,
                            info[m].help, info[m].name, info[m].name,
                            atomic_load(&counters[m]));
    return rc;
}
