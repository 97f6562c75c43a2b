/* Prints the REST API's route table as the router applies it, one route a line:
 * METHOD<TAB>PATTERN<TAB>AUTH<TAB>MIN_ROLE, AUTH as hub_auth_name names it and MIN_ROLE a
 * role name or "-". With --metrics-token: as on a server with metrics_access = token.
 * tests/integration/test_routes.sh reads it, so a route added to the table is tested. */
#include <stdio.h>
#include <string.h>

#include "api/router.h"

int main(int argc, char **argv)
{
    int metrics_token = argc > 1 && strcmp(argv[1], "--metrics-token") == 0;
    if (argc > 2 || (argc == 2 && !metrics_token)) {
        fprintf(stderr, "usage: route_table [--metrics-token]\n");
        return 2;
    }
    for (const struct hub_route *rt = hub_router_routes; rt->pattern != NULL; rt++) {
        enum hub_auth kind;
        enum hub_role min_role;
        hub_router_auth(rt, metrics_token, &kind, &min_role);
        const char *role = hub_request_role_name(min_role);
        printf("%s\t%s\t%s\t%s\n", rt->method, rt->pattern, hub_auth_name(kind),
               role != NULL ? role : "-");
    }
    return 0;
}
