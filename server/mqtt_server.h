/* The MQTT side of iothubd: the mTLS listener, the broker, the revocation feed that closes
 * revoked devices' sessions, device presence, and commands handed over from the REST API.
 * It runs on one libuv loop; hub_mqtt_server_command and _connected may be called from any
 * thread. */
#ifndef HUB_SERVER_MQTT_SERVER_H
#define HUB_SERVER_MQTT_SERVER_H

#include <stddef.h>

#include <uv.h>

#include "server/config.h"
#include "net/tickets.h"
#include "net/tls_ctx.h"
#include "util/buf.h"

struct hub_mqtt_server;

struct hub_mqtt_server_options {
    uv_loop_t *loop;
    const struct hub_config *cfg;
    const char *cert_chain_pem; /* server certificate + issuing CA */
    const char *key_pem;        /* server key (copied) */
    const char *ca_pem;         /* issuing CA + root: client certificates chain to these */
    hub_tickets_t *tickets;     /* session-ticket keys (borrowed, outlive the server); NULL:
                                   no session tickets */
    const struct hub_tls_ctx_cert *more_certs; /* further server certificates presented side
                                                  by side (server_key_types; copied) */
    size_t n_more_certs;
    /* The proxies trusted to send a PROXY header (borrowed, outlives the server); the
     * listeners with cfg's *_proxy_protocol on require one. NULL: none is on. */
    const struct hub_proxy_trust *proxy_trust;
};

/* Starts listening on cfg->mqtt_mtls_listen (when not off) and the revocation feed.
 * Returns 0 or a HUB_E* code (logged); after a failure what was made is released once the
 * loop has run the close callbacks, as after hub_mqtt_server_stop. */
int hub_mqtt_server_start(const struct hub_mqtt_server_options *o, struct hub_mqtt_server **out);
/* Closes listeners and sessions and stops the feed; memory is released once the loop has
 * run the close callbacks (keep running the loop). */
void hub_mqtt_server_stop(struct hub_mqtt_server *m);
/* Publishes a command to devices/<id>/commands/<name> at QoS 1, waiting up to 5 s for the
 * loop. *delivered = 1 when the device was connected and subscribed. Any thread. Returns 0,
 * HUB_EINVAL (bad name) or HUB_ERANGE (loop busy). */
int hub_mqtt_server_command(struct hub_mqtt_server *m, const char *device_id, const char *name,
                            const void *payload, size_t len, int *delivered);
/* Appends the MQTT side's metrics (Prometheus text) from the snapshot the loop publishes
 * every second, so values are up to 1 s old. Any thread. Returns 0 or HUB_ENOMEM. */
int hub_mqtt_server_metrics(struct hub_mqtt_server *m, hub_buf_t *out);
/* 1 when the device has a live MQTT session on this node. Any thread. */
int hub_mqtt_server_connected(struct hub_mqtt_server *m, const char *device_id);

#endif
