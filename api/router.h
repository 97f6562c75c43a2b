/* The route table (SPEC §4) and the router that matches a request to a route, checks its
 * authentication kind and minimum role (api/auth.h) and calls its handler. */
#ifndef HUB_API_ROUTER_H
#define HUB_API_ROUTER_H

#include "api/auth.h"
#include "api/request.h"

struct hub_route {
    const char *method;
    const char *pattern; /* "/v1/devices/{}/activate": {} matches one segment */
    enum hub_auth auth;
    enum hub_role min_role;
    const char *action; /* audit action; NULL for reads */
    void (*handler)(struct hub_req *r);
};

/* Every route, ended by one with a NULL pattern. */
extern const struct hub_route hub_router_routes[];

/* The authentication a route asks for on a server whose GET /metrics needs a token
 * (metrics_token) or not: the route's own kind and role, but auditor tokens for /metrics
 * when metrics_token. */
void hub_router_auth(const struct hub_route *rt, int metrics_token, enum hub_auth *kind,
                     enum hub_role *min_role);
/* Routes a complete request: 404/405 when no route matches, 413 for an over-long body, then
 * authentication, then the route's handler. Always leaves a response in r. Sets r->params
 * (freed by hub_router_release), r->action and r->mutating. */
void hub_router_dispatch(struct hub_req *r);
/* Frees the path parameters of r. */
void hub_router_release(struct hub_req *r);

#endif
