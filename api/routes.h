/* The route table and the handlers it names (one file per resource). */
#ifndef HUB_API_ROUTES_H
#define HUB_API_ROUTES_H

#include <mbedtls/x509_csr.h>

#include "api/http.h"

enum hub_auth {
    HUB_AUTH_NONE,      /* anyone */
    HUB_AUTH_ROLE,      /* bearer token with at least min_role */
    HUB_AUTH_PROVISION, /* bearer provisioner+ or Basic product_key:product_secret */
    HUB_AUTH_DEVICE,    /* Basic device_id:device_secret, the id in the path */
    HUB_AUTH_SERVICE,   /* Basic service_id:service_secret, the id in the path */
    HUB_AUTH_DEVICE_CERT,  /* TLS client certificate of the device in the path */
    HUB_AUTH_SERVICE_CERT, /* TLS client certificate of the service in the path */
};

struct hub_route {
    const char *method;
    const char *pattern; /* "/v1/devices/{}/activate": {} matches one segment */
    enum hub_auth auth;
    enum hub_role min_role;
    const char *action;  /* audit action; NULL for reads */
    void (*handler)(struct hub_req *r);
};

extern const struct hub_route hub_routes[];

void hub_api_products_create(struct hub_req *r);
void hub_api_products_list(struct hub_req *r);
void hub_api_devices_create(struct hub_req *r);
void hub_api_devices_list(struct hub_req *r);
void hub_api_devices_show(struct hub_req *r);
void hub_api_devices_activate(struct hub_req *r);
void hub_api_devices_renew(struct hub_req *r);
void hub_api_devices_revoke(struct hub_req *r);
void hub_api_devices_reset(struct hub_req *r);
void hub_api_devices_command(struct hub_req *r);
void hub_api_certs_revoke(struct hub_req *r);
void hub_api_certs_list(struct hub_req *r);
void hub_api_certs_show(struct hub_req *r);
void hub_api_crl(struct hub_req *r);
void hub_api_ca(struct hub_req *r);
void hub_api_services_create(struct hub_req *r);
void hub_api_services_activate(struct hub_req *r);
void hub_api_services_renew(struct hub_req *r);
void hub_api_tokens_create(struct hub_req *r);
void hub_api_tokens_list(struct hub_req *r);
void hub_api_tokens_revoke(struct hub_req *r);
void hub_api_audit_list(struct hub_req *r);
void hub_api_healthz(struct hub_req *r);
void hub_api_metrics(struct hub_req *r);

/* The body checks of handlers, without the database (also run by tests/fuzz/fuzz_json.c).
 * Each replies 400 and returns -1 on a bad body, else returns 0; strings point into body.
 * *payload_text (a JSON payload as text) and *pub / *sub are the caller's to free, also on
 * failure. */
int hub_api_devices_create_parse(struct hub_req *r, json_t *body, const char **serial,
                                 const char **product_key);
int hub_api_command_parse(struct hub_req *r, json_t *body, const char **name,
                          const char **payload, size_t *len, char **payload_text);
int hub_api_services_parse(struct hub_req *r, json_t *body, const char **name, json_t **pub,
                           json_t **sub);
/* {"reason": name} (optional, def when absent): returns the reason code or -1. */
int hub_api_reason_parse(struct hub_req *r, json_t *body, int def);
/* {"csr": PEM}: loads and checks the CSR into csr (initialised and freed by the caller). */
int hub_api_activate_parse(struct hub_req *r, json_t *body, mbedtls_x509_csr *csr);

/* Shared by handlers. */
/* Returns 1 if s is a canonical lower/upper-case UUID. */
int hub_uuid_valid(const char *s);
/* The cursor of the next page: field of the last element when the page is full (a new
 * reference), else NULL. */
json_t *hub_page_next(json_t *list, int limit, const char *field);
/* Parses ?limit= (default def, 1..max); replies 400 and returns -1 when invalid. */
int hub_req_limit(struct hub_req *r, int def, int max);
/* Revokes serials (reason code) in the current transaction, publishes the next CRL and
 * queues a NOTIFY per serial. Replies on failure (404 unknown serial, 409 already revoked,
 * 503/500) and returns non-zero. */
int hub_api_revoke_serials(struct hub_req *r, char (*serials)[HUB_SERIAL_HEX], size_t n,
                           int reason);
/* Activation shared by devices and services: checks the CSR, locks the principal, revokes
 * its valid certificates as superseded, issues and records a new one, replies 201. A
 * renewal (r->who.cert_serial set) also requires that certificate to be a valid one. */
void hub_api_activate(struct hub_req *r, int service);
/* Parses an optional {"reason": name} body; replies 400 and returns -1 when invalid. */
int hub_req_reason(struct hub_req *r, int def);
/* Sets "connected" in a device object (or each of an array) from the MQTT side. */
void hub_api_mark_connected(struct hub_req *r, json_t *devices);
/* Begins a transaction and locks the device of the path, copying its status. Replies (404,
 * 503, 500) and returns NULL on failure. */
PGconn *hub_req_lock_device(struct hub_req *r, char status[16]);
/* Commits the request's transaction; replies 503/500 on failure and returns non-zero. */
int hub_req_commit(struct hub_req *r);

#endif
