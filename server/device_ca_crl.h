/* The fetcher of device CAs' CRLs (issue 15): a thread of its own (never an event loop)
 * that, for every enabled device CA with a crl_url, downloads the CRL with libcurl at least
 * every refresh_s seconds and before its nextUpdate, and stores it through
 * hub_api_device_cas_store_crl (verified, NOTIFY iothub_device_cas). Failures are logged
 * and counted (iothub_device_ca_crl_fetch_failures_total). Several nodes share the work:
 * a CA's row is claimed with FOR UPDATE SKIP LOCKED and stamped crl_checked_at. */
#ifndef HUB_SERVER_DEVICE_CA_CRL_H
#define HUB_SERVER_DEVICE_CA_CRL_H

struct hub_device_ca_crl;

/* Starts the thread on db_url. Call from the main thread (curl_global_init is not
 * thread-safe). NULL on failure (logged). */
struct hub_device_ca_crl *hub_device_ca_crl_start(const char *db_url, int refresh_s);
/* Stops the thread (a fetch in progress ends within its timeout) and frees f. NULL is
 * ignored. */
void hub_device_ca_crl_stop(struct hub_device_ca_crl *f);

#endif
