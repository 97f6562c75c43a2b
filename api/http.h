/* The REST API server as server/ sees it: libmicrohttpd over HTTPS (GnuTLS) with a thread
 * per connection, so SQL, password hashing and CA signing in handlers never touch the MQTT
 * event loops. What the API needs from the MQTT side is struct hub_api_mqtt (api/request.h). */
#ifndef HUB_API_HTTP_H
#define HUB_API_HTTP_H

#include <stddef.h>

#include "ca/authority.h"
#include "db/pool.h"
#include "util/proxyproto.h"

struct hub_api;

/* One more server certificate presented beside the first (PEM, NUL-terminated; copied). */
struct hub_api_cert {
    const char *cert_pem; /* certificate followed by the issuing CA */
    const char *key_pem;
};

struct hub_api_options {
    const char *host; /* listen address ("0.0.0.0", "::", "127.0.0.1", ...) */
    int port;
    const char *cert_pem;            /* server certificate followed by the issuing CA */
    const char *key_pem;             /* server private key (PEM); copied by MHD */
    const struct hub_api_cert *more_certs; /* server_key_types beyond the first: GnuTLS picks
                                              the certificate the negotiated suite can use */
    size_t n_more_certs;
    const char *ciphers;             /* tls_ciphers (api/priorities.h), or NULL */
    struct hub_authority *authority; /* borrowed; outlives the API */
    hub_db_pool_t *pool;             /* borrowed */
    int device_cert_days;
    size_t body_limit;               /* largest accepted request body */
    unsigned max_connections;        /* total concurrent connections */
    unsigned max_per_ip;             /* concurrent connections from one address */
    unsigned timeout_s;              /* idle connection timeout */
    unsigned header_timeout_s;       /* a request's line and headers must arrive within this,
                                        counted from the connection's accept or the previous
                                        answer; 0: no limit */
    const struct hub_api_mqtt *mqtt; /* the MQTT side (commands, presence), or NULL */
    int metrics_token;               /* GET /metrics needs a bearer token (auditor+) */
    unsigned long long firmware_max_size; /* largest firmware image (bytes) */
    unsigned firmware_max_downloads;      /* concurrent firmware downloads */
    size_t firmware_cache_size;           /* bytes of firmware chunks cached (process-wide) */
    /* api_proxy_protocol: non-NULL, connections come from these proxies and start with a
     * PROXY header (api/proxy_listen.h); borrowed, outlives the API. */
    const struct hub_proxy_trust *proxy_trust;
    unsigned proxy_timeout_ms;
};

/* Starts listening. Returns 0 or a HUB_E* code (the reason is logged). */
int hub_api_start(const struct hub_api_options *o, struct hub_api **out);
/* The node is going away (SIGTERM): /healthz answers 503 from now on, so that a load
 * balancer stops sending new connections. Any thread; NULL is ignored. */
void hub_api_drain(struct hub_api *api);
/* The MQTT listeners accept (after the durable state was restored): /healthz may answer 200.
 * Until then it answers 503 "starting", so that neither a load balancer nor a script waiting
 * for /healthz sends devices to a node whose MQTT side is not up yet. Any thread. */
void hub_api_mqtt_ready(struct hub_api *api);
/* Stops accepting, waits for requests in progress, frees the server. NULL is ignored. */
void hub_api_stop(struct hub_api *api);

#endif
