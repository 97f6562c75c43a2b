/* Authentication and authorisation of a request, by the kind its route names: bearer
 * tokens with a minimum role, HTTP Basic credentials of products, devices and services, and
 * TLS client certificates of devices and services. */
#ifndef HUB_API_AUTH_H
#define HUB_API_AUTH_H

#include "api/request.h"

enum hub_auth {
    HUB_AUTH_NONE,         /* anyone */
    HUB_AUTH_ROLE,         /* bearer token with at least min_role */
    HUB_AUTH_PROVISION,    /* bearer provisioner+ or Basic product_key:product_secret */
    HUB_AUTH_DEVICE,       /* Basic device_id:device_secret, the id in the path */
    HUB_AUTH_SERVICE,      /* Basic service_id:service_secret, the id in the path */
    HUB_AUTH_DEVICE_CERT,  /* TLS client certificate of the device in the path */
    HUB_AUTH_SERVICE_CERT, /* TLS client certificate of the service in the path */
    HUB_AUTH_DEVICE_ANY,   /* Basic device credentials if an Authorization header is sent,
                              else the device's TLS client certificate (firmware downloads) */
};

/* Authenticates r for a route of kind (min_role for tokens), setting r->who; the path's
 * principal is r->params[0]. A route without an id in its path (EST) takes the device or
 * service the credentials name (Basic user, certificate CN): r->params[0] is set to it. Returns 0, or HUB_REPLIED after a 401 (no or wrong
 * credentials), 403 (role too low, another's credentials) or 503/500. On the MHD thread. */
int hub_auth_check(struct hub_req *r, enum hub_auth kind, enum hub_role min_role);
/* A short name of kind: "none", "role", "provision", "device", "service", "device_cert",
 * "service_cert" (tests/tools/route_table). */
const char *hub_auth_name(enum hub_auth kind);

#endif
