/* Daemon configuration: `key = value` file plus IOTHUB_<KEY> environment overrides
 * (SPEC §2). Every error names the key and where it came from (file:line or variable). */
#ifndef HUB_SERVER_CONFIG_H
#define HUB_SERVER_CONFIG_H

#include <stddef.h>

#include "ca/key.h"
#include "util/log.h"

struct hub_listen {
    char host[256]; /* "0.0.0.0", "::", "127.0.0.1", a name... (no brackets) */
    int port;
};

#define HUB_SERVER_KEY_TYPES_MAX 4 /* ec-p256, ec-p384, rsa-2048, rsa-3072 */

/* Who may read GET /metrics. */
enum hub_metrics_access { HUB_METRICS_PUBLIC, HUB_METRICS_TOKEN };

struct hub_config {
    char *db_url;
    struct hub_listen api_listen;
    struct hub_listen mqtt_mtls_listen; /* port 0 = off */
    struct hub_listen mqtt_tls_listen;
    struct hub_listen mqtt_plain_listen;
    char *hostname;        /* comma-separated, validated */
    char *master_key_file; /* NULL: take IOTHUB_MASTER_KEY */
    enum hub_key_type ca_key_type;
    int device_cert_days;
    int crl_validity_hours;
    int crl_base_hours; /* a new complete CRL at least this often (deltas in between) */
    int crl_history;    /* CRL rows kept per CA besides the current base and delta */
    int crl_rebuild_max_entries; /* a base at each publication while it holds this few */
    char *tls_ciphers;     /* MQTT listeners; NULL: ECDHE AEAD suites only */
    int tls_ticket_lifetime_s; /* session tickets open for this long; 0: no tickets */
    int tls_ticket_rotation_s; /* a new ticket key this often (kept in PostgreSQL) */
    int workers;
    /* Limits against floods and slow clients (docs/configuration.md#limits). */
    int mqtt_handshake_timeout_ms;  /* accept to TLS handshake done */
    int mqtt_max_handshakes;        /* concurrent handshakes per listener */
    int mqtt_max_handshakes_per_ip; /* concurrent handshakes per listener and peer address */
    int mqtt_max_unauthenticated;   /* per listener: accepted, CONNECT not yet accepted */
    int mqtt_max_connections;       /* per listener; 0: unlimited */
    int mqtt_connect_timeout_s;     /* handshake done (or accept) to CONNECT */
    int mqtt_max_packet;            /* bytes */
    int mqtt_max_registrations;     /* device-CA lookups/JIT registrations queued at once */
    /* Durable MQTT state (issue 18, server/mqtt_store.h). */
    int mqtt_session_expiry;    /* seconds a persistent session is kept offline; 0: never */
    int mqtt_store_max_pending; /* bytes of records kept while PostgreSQL is unreachable */
    int mqtt_max_queued;        /* QoS 1/2 messages kept per session (offline or in flight) */
    int api_max_connections;
    int api_max_connections_per_ip;
    int api_idle_timeout_s;   /* no byte received for this long: closed */
    int api_header_timeout_s; /* request line + headers must arrive within this */
    int api_max_body;         /* bytes; larger: 413 */
    int firmware_max_size;      /* bytes of one firmware image; larger: 413 */
    int firmware_max_downloads; /* concurrent firmware downloads; more: 503 */
    int firmware_cache_size;    /* bytes of firmware chunks cached for downloads */
    enum hub_log_level log_level;
    enum hub_log_format log_format;
    enum hub_metrics_access metrics_access; /* public (default) or token (auditor+) */
    /* Where the issuing CA key lives (docs/ca.md#issuing-ca-key-in-an-hsm). */
    char *ca_key_store;    /* NULL: sealed in PostgreSQL; else a "pkcs11:" URI (RFC 7512) */
    char *pkcs11_module;   /* PKCS#11 module path unless the URI has module-path */
    char *pkcs11_pin_file; /* the token's user PIN unless the URI has pin-source/pin-value */
    /* Factory device CAs (issue 15): enabled CAs per product, registration code lifetime,
     * CRL fetch interval (seconds). */
    int device_ca_max_per_product;
    int device_ca_code_ttl_s;
    int device_ca_crl_refresh;
    char *path;            /* the file read, or NULL */
    /* Server certificates presented side by side (SPEC §2): distinct types, in the order
     * given; none set: the ca_key_type alone (ec-p256 by default). */
    enum hub_key_type server_key_types[HUB_SERVER_KEY_TYPES_MAX];
    int n_server_key_types;
    /* Behind a load balancer (server/config_lb.h): the PROXY protocol per listener (0/1),
     * the proxies allowed to send it (NULL: none), the header timeout, the SIGTERM drain. */
    int mqtt_mtls_proxy_protocol, mqtt_tls_proxy_protocol, mqtt_plain_proxy_protocol;
    int api_proxy_protocol;
    char *proxy_trusted;
    int proxy_header_timeout_ms;
    int shutdown_drain_s; /* /healthz answers 503 this long after SIGTERM before stopping */
    /* Several nodes (docs/configuration.md#several-nodes): the message backbone, an MQTT
     * broker (NULL or "": one node, no backbone), its TLS files and credentials, limits. */
    char *backbone;
    char *backbone_cafile, *backbone_certfile, *backbone_keyfile;
    char *backbone_username, *backbone_password_file;
    int backbone_max_queued;       /* bytes of forwards not yet acknowledged by the backbone */
    int backbone_max_inbound;      /* bytes received from the backbone not yet routed */
    int backbone_session_expiry_s; /* the backbone keeps this node's session this long */
    char *node_name;               /* NULL: the host name (server/backbone_conf.h) */
    /* Limits and quotas (server/config_limits.c: key, range, default in its table). */
    long long mqtt_max_subscriptions; /* filters per session */
    /* nodes: the node registry (server/cluster.c) */
    long long cluster_fence_s; /* without its registry lock this long: MQTT closed (0: never) */
    /* quotas (mqtt/quota.c) */
    long long mqtt_max_retained_per_principal, mqtt_max_retained_bytes_per_principal;
    long long mqtt_max_retained, mqtt_max_retained_bytes;
    long long mqtt_rate_msgs_per_s, mqtt_rate_bytes_per_s, mqtt_rate_burst_s;
    long long mqtt_max_connects_per_min;
    /* throttle: credential guessing per source address (api/throttle.h) */
    long long auth_fail_free;        /* failed authentications per source before delays */
    long long auth_fail_window_s;    /* failures forgotten after this long without one */
    long long auth_fail_max_delay_s; /* longest delay (doubling from 1 s) */
    long long auth_throttle_sources; /* sources remembered (least recent evicted) */
};

/* Fills cfg with defaults, then the file at path (NULL: none), then IOTHUB_* variables.
 * On error writes "where: message" into err and returns HUB_ECONFIG. The caller frees cfg
 * with hub_config_free in both cases. */
int hub_config_load(struct hub_config *cfg, const char *path, char *err, size_t errlen);
/* Parses text as a configuration file named name (for tests and the loader). */
int hub_config_parse_text(struct hub_config *cfg, const char *name, const char *text, char *err,
                          size_t errlen);
/* Frees the strings a configuration holds. */
void hub_config_free(struct hub_config *cfg);
/* Parses "host:port", "[v6]:port" or "off"/"" (port 0). Returns 0 or HUB_EINVAL. */
int hub_listen_parse(const char *s, struct hub_listen *out);
/* Reads the master passphrase from master_key_file, else IOTHUB_MASTER_KEY. Returns a
 * malloc'ed string the caller wipes and frees, or NULL with the reason in err. */
char *hub_config_master_key(const struct hub_config *cfg, char *err, size_t errlen);
/* The server key types to present: server_key_types, or the ca_key_type when unset.
 * Fills types (HUB_SERVER_KEY_TYPES_MAX entries) and returns how many. */
int hub_config_server_key_types(const struct hub_config *cfg, enum hub_key_type *types);
/* Splits cfg->hostname into a NULL-terminated array (one allocation; free() it). */
char **hub_config_hostnames(const struct hub_config *cfg);

#endif
