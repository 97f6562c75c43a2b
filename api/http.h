/* What request handlers see: the request, its authenticated principal, the database
 * connection it holds, and helpers that set the response. A handler returns after setting
 * exactly one response (hub_reply_*); errors use SPEC §4's JSON error shape. */
#ifndef HUB_API_HTTP_H
#define HUB_API_HTTP_H

#include <stddef.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "ca/authority.h"
#include "db/pool.h"
#include "util/buf.h"

struct MHD_Connection;
struct MHD_Response;

enum hub_role { HUB_ROLE_NONE, HUB_ROLE_AUDITOR, HUB_ROLE_PROVISIONER, HUB_ROLE_OPERATOR,
                HUB_ROLE_ADMIN };

/* Who made the request. */
struct hub_principal {
    enum { HUB_WHO_ANONYMOUS, HUB_WHO_TOKEN, HUB_WHO_DEVICE, HUB_WHO_PRODUCT,
           HUB_WHO_SERVICE } kind;
    enum hub_role role;  /* tokens only */
    char name[160];      /* token name, device id, product key or service id */
    long long product_id; /* product claims */
    char product_key[64];  /* devices: their product */
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
};

struct hub_api_shared {
    const struct hub_api_mqtt *mqtt; /* NULL: no MQTT (commands answer 503) */
    struct hub_authority *authority;
    hub_db_pool_t *pool;
    int device_cert_days;
    size_t body_limit;
    int metrics_token; /* GET /metrics needs a bearer token (auditor or above) */
};

struct hub_req {
    struct MHD_Connection *conn;
    const struct hub_api_shared *api;
    const char *method;
    char path[512];
    char *params[3];        /* {} segments of the matched route, in order */
    int mutating;           /* route changes state: failures are audited too */
    const char *action;     /* audit action name of the route */
    hub_buf_t body;
    int body_too_large;
    char source[64];        /* client address */
    struct hub_principal who;
    PGconn *db;             /* held from hub_req_db until the request ends */
    int audited;            /* an audit row was written in the current transaction */
    unsigned revoked, crls; /* counted into /metrics once the transaction commits */
    /* Response. */
    unsigned status;
    struct MHD_Response *response;
    const char *error_code; /* for failure audit */
};

/* Gets the request's database connection (acquired once). On failure replies 503 and
 * returns NULL. */
PGconn *hub_req_db(struct hub_req *r);
/* Parses the body as a JSON object. On failure replies 400/415 and returns NULL. The caller
 * json_decref()s the result. */
json_t *hub_req_json(struct hub_req *r);
/* The body half of hub_req_json, whatever the Content-Type (fuzzed in tests/fuzz). */
json_t *hub_req_json_body(struct hub_req *r);
/* Value of query parameter name, or NULL. */
const char *hub_req_query(struct hub_req *r, const char *name);
/* Value of request header name, or NULL. */
const char *hub_req_header(struct hub_req *r, const char *name);
/* Gets a string member: required ones missing, wrong types, empty, longer than maxlen or
 * with control characters get a 400 reply and NULL. Optional missing ones return NULL
 * without a reply (check r->status). */
const char *hub_json_string(struct hub_req *r, json_t *obj, const char *key, int required,
                            size_t maxlen);

/* Replies with a JSON body (takes ownership of body). */
void hub_reply_json(struct hub_req *r, unsigned status, json_t *body);
/* Replies {"error": {"code": code, "message": printf(fmt)}}. */
void hub_reply_error(struct hub_req *r, unsigned status, const char *code, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));
/* Replies with bytes of a content type (copied). */
void hub_reply_raw(struct hub_req *r, unsigned status, const char *content_type,
                   const void *data, size_t len);
/* Adds a header to the response already set. */
void hub_reply_header(struct hub_req *r, const char *name, const char *value);
/* Maps a HUB_E* from a database or CA call to a reply: 503 when the database is down, 500
 * otherwise (logged). */
void hub_reply_internal(struct hub_req *r, int err, const char *what);

/* Writes the audit row of this request in the current transaction. */
int hub_req_audit(struct hub_req *r, const char *target, const char *details_json);

#endif
