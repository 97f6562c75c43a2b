/* A REST request as handlers see it: the request line and body, its authenticated
 * principal, the database connection it holds and the response set so far. One request is
 * handled by one MHD connection thread from start to end. Replies are set by api/reply.h,
 * the body and query are read by api/params.h, the database by api/transaction.h. */
#ifndef HUB_API_REQUEST_H
#define HUB_API_REQUEST_H

#include <stddef.h>

#include <libpq-fe.h>

#include "ca/authority.h"
#include "db/pool.h"
#include "util/buf.h"

struct MHD_Connection;
struct MHD_Response;
struct hub_fw_upload;

enum hub_role {
    HUB_ROLE_NONE,
    HUB_ROLE_AUDITOR,
    HUB_ROLE_PROVISIONER,
    HUB_ROLE_OPERATOR,
    HUB_ROLE_ADMIN
};

/* Who made the request. */
struct hub_principal {
    enum {
        HUB_WHO_ANONYMOUS,
        HUB_WHO_TOKEN,
        HUB_WHO_DEVICE,
        HUB_WHO_PRODUCT,
        HUB_WHO_SERVICE
    } kind;
    enum hub_role role;               /* tokens only */
    char name[160];                   /* token name, device id, product key or service id */
    long long product_id;             /* product claims */
    char product_key[64];             /* devices: their product */
    char cert_serial[HUB_SERIAL_HEX]; /* serial of the client certificate (cert auth) */
};

/* What the REST API needs from the MQTT side, implemented by server/ (which owns both).
 * Both calls may block briefly and are made from API threads. */
struct hub_api_mqtt {
    /* Publishes a command; *delivered = 1 when the device is connected and subscribed.
     * Returns 0, HUB_EINVAL (bad name) or another HUB_E* code. */
    int (*command)(void *ctx, const char *device_id, const char *name, const void *payload,
                   size_t len, int *delivered);
    /* 1 when the device has a live MQTT session. */
    int (*connected)(void *ctx, const char *device_id);
    /* Appends the MQTT side's metrics (Prometheus text). Returns 0 or a HUB_E* code. */
    int (*metrics)(void *ctx, hub_buf_t *out);
    void *ctx;
    /* Several nodes: this node's name. A device object whose "node" names another node is
     * connected there (devices.connected_node, server/cluster.h). */
    char node_name[65];
};

/* What every request of one server shares (read-only while it runs). */
struct hub_api_shared {
    const struct hub_api_mqtt *mqtt; /* NULL: no MQTT (commands answer 503) */
    struct hub_authority *authority;
    hub_db_pool_t *pool;
    int device_cert_days;
    size_t body_limit;
    int metrics_token; /* GET /metrics needs a bearer token (auditor or above) */
    /* Firmware (api/firmware_*.c). */
    unsigned long long firmware_max_size; /* largest image accepted (bytes); larger: 413 */
    unsigned firmware_max_downloads;      /* concurrent image downloads; more: 503 */
    int draining; /* atomic: 1 after SIGTERM while the node drains; /healthz answers 503 */
    int mqtt_starting; /* atomic: 1 until the MQTT listeners accept; /healthz answers 503 */
};

#define HUB_REQ_PARAMS 3

struct hub_req {
    struct MHD_Connection *conn;
    const struct hub_api_shared *api;
    const char *method;
    char path[512];
    char *params[HUB_REQ_PARAMS]; /* {} segments of the matched route, in order */
    int mutating;                 /* route changes state: failures are audited too */
    const char *action;           /* audit action name of the route */
    hub_buf_t body;
    int body_too_large;
    char source[64]; /* client address */
    struct hub_principal who;
    PGconn *db;             /* held from hub_transaction_db until the request ends */
    int audited;            /* an audit row was written in the current transaction */
    unsigned revoked, crls; /* counted into /metrics once the transaction commits */
    /* Response. */
    unsigned status;
    struct MHD_Response *response;
    const char *error_code; /* for failure audit */
    struct hub_fw_upload *fw_upload; /* a streamed firmware upload (api/firmware_upload.h) */
};

/* Value of query parameter name, or NULL (owned by MHD, valid until the request ends). */
const char *hub_request_query(struct hub_req *r, const char *name);
/* Value of request header name, or NULL (owned by MHD, valid until the request ends). */
const char *hub_request_header(struct hub_req *r, const char *name);
/* The name of a role as tokens carry it ("auditor" ... "admin"), NULL for HUB_ROLE_NONE. */
const char *hub_request_role_name(enum hub_role role);
/* Parses a role name; HUB_ROLE_NONE when it is none of them. */
enum hub_role hub_request_role_parse(const char *name);

#endif
