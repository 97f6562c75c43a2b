#include "api/metrics.h"

#include <stdatomic.h>

#include "ca/pkcs11.h"
#include "api/firmware_metrics.h"
#include "api/ocsp.h"
#include "api/throttle.h"
#include "api/strict.h"
#include "db/db.h"

static _Atomic unsigned long long http_by_class[6];
static _Atomic unsigned long long counters[HUB_M_COUNT];

static const struct {
    const char *name, *help;
} info[HUB_M_COUNT] = {
    {"iothub_devices_provisioned_total", "Devices provisioned through the API."},
    {"iothub_certificates_issued_total", "Certificates issued to devices and services."},
    {"iothub_certificates_revoked_total", "Certificates revoked."},
    {"iothub_crls_published_total", "CRLs (base and delta) published by this node after revocations."},
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

static int render_db(hub_buf_t *out, hub_db_pool_t *pool)
{
    struct hub_db_pool_stats ps;
    struct hub_db_stats ds;
    hub_db_pool_stats(pool, &ps);
    hub_db_stats(&ds);
    int rc = hub_buf_printf(
        out,
        "# HELP iothub_db_pool_connections Connections of the REST API's database pool, by "
        "state (in_use: checked out by a request; open: opened, idle or in use; max: pool "
        "size).\n"
        "# TYPE iothub_db_pool_connections gauge\n"
        "iothub_db_pool_connections{state=\"in_use\"} %d\n"
        "iothub_db_pool_connections{state=\"open\"} %d\n"
        "iothub_db_pool_connections{state=\"max\"} %d\n"
        "# HELP iothub_db_pool_acquire_failures_total Requests that got no database "
        "connection (busy: every connection taken for the whole wait; unavailable: database "
        "unreachable).\n"
        "# TYPE iothub_db_pool_acquire_failures_total counter\n"
        "iothub_db_pool_acquire_failures_total{reason=\"busy\"} %llu\n"
        "iothub_db_pool_acquire_failures_total{reason=\"unavailable\"} %llu\n"
        "# HELP iothub_db_query_failures_total Failed database queries (error: refused by the "
        "server; unavailable: connection lost). Unique violations are not counted.\n"
        "# TYPE iothub_db_query_failures_total counter\n"
        "iothub_db_query_failures_total{reason=\"error\"} %llu\n"
        "iothub_db_query_failures_total{reason=\"unavailable\"} %llu\n"
        "# HELP iothub_db_query_duration_seconds Duration of database queries (every "
        "connection of the process; most are the REST API's).\n"
        "# TYPE iothub_db_query_duration_seconds histogram\n",
        ps.in_use, ps.open, ps.size, ps.busy, ps.down, ds.errors, ds.unavailable);
    if (rc == 0)
        rc = hub_histogram_render(out, "iothub_db_query_duration_seconds", "",
                                  &hub_db_latency_bounds, &ds.latency);
    return rc;
}

/* Signatures by CA keys in a PKCS#11 token (ca_key_store = pkcs11:...). */
static int render_token(hub_buf_t *out)
{
    struct hub_p11_stats st;
    hub_p11_stats(&st);
    int rc = hub_buf_printf(
        out,
        "# HELP iothub_ca_token_signatures_total Signatures asked of a CA key in a PKCS#11 "
        "token (certificates, CRLs), by result.\n"
        "# TYPE iothub_ca_token_signatures_total counter\n"
        "iothub_ca_token_signatures_total{result=\"ok\"} %llu\n"
        "iothub_ca_token_signatures_total{result=\"failed\"} %llu\n"
        "# HELP iothub_ca_token_sessions_reopened_total Token sessions reopened after the token "
        "forgot the session or the login.\n"
        "# TYPE iothub_ca_token_sessions_reopened_total counter\n"
        "iothub_ca_token_sessions_reopened_total %llu\n"
        "# HELP iothub_ca_token_sign_duration_seconds Time of each C_Sign through the token, "
        "waiting for its session included.\n"
        "# TYPE iothub_ca_token_sign_duration_seconds histogram\n",
        (unsigned long long)st.signed_ok, (unsigned long long)st.failed,
        (unsigned long long)st.reopened);
    if (rc == 0)
        rc = hub_histogram_render(out, "iothub_ca_token_sign_duration_seconds", "",
                                  &hub_p11_latency_bounds, &st.latency);
    return rc;
}

int hub_metrics_render(hub_buf_t *out, hub_db_pool_t *pool)
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
    if (rc == 0)
        rc = hub_fw_metrics_render(out);
    if (rc == 0)
        rc = hub_api_strict_metrics(out);
    if (rc == 0)
        rc = hub_api_ocsp_metrics(out);
    if (rc == 0)
        rc = hub_throttle_metrics(out); /* throttle: credential guessing */
    if (rc == 0 && pool != NULL)
        rc = render_db(out, pool);
    if (rc == 0)
        rc = render_token(out);
    return rc;
}
