/* Accessors of a request that MHD holds: query parameters, headers; and role names. */
#include "api/request.h"

#include <string.h>

#include <microhttpd.h>

static const char *const role_names[] = {NULL, "auditor", "provisioner", "operator", "admin"};

const char *hub_request_query(struct hub_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *hub_request_header(struct hub_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *hub_request_role_name(enum hub_role role)
{
    return role > HUB_ROLE_NONE && role <= HUB_ROLE_ADMIN ? role_names[role] : NULL;
}

enum hub_role hub_request_role_parse(const char *name)
{
    for (int i = 1; i <= HUB_ROLE_ADMIN; i++)
        if (strcmp(name, role_names[i]) == 0)
            return (enum hub_role)i;
    return HUB_ROLE_NONE;
}
