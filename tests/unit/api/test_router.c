/* Unit tests for api/router.c: the route table's shape, the minimum roles of the routes
 * the role x route integration test must refuse, and the /metrics override. */
#include <string.h>

#include "api/ocsp.h"
#include "api/router.h"
#include "tests/unit/harness.h"

/* Every route is unique, state-changing ones (every method but GET) are audited, role routes name a role and
 * routes of a principal's own credentials take its id as the first {} segment (EST's excepted). */
static void test_table(void)
{
    size_t n = 0;
    for (const struct hub_route *a = hub_router_routes; a->pattern; a++, n++) {
        CHECK(a->handler != NULL);
        /* Every state-changing route is audited. POST /ocsp changes nothing (RFC 6960 sends
         * a read by POST) and is anonymous: auditing its refusals would let anyone write
         * audit rows. */
        int reads = strcmp(a->method, "GET") == 0 || a->handler == hub_api_ocsp_post;
        CHECK(reads == (a->action == NULL));
        CHECK((a->auth == HUB_AUTH_ROLE) == (a->min_role != HUB_ROLE_NONE) ||
              a->auth == HUB_AUTH_PROVISION);
        /* EST (RFC 7030) paths name no device: the credentials do (api/auth.c). */
        if (a->auth == HUB_AUTH_DEVICE || a->auth == HUB_AUTH_DEVICE_CERT)
            CHECK(strncmp(a->pattern, "/v1/devices/{}/", 15) == 0 ||
                  strncmp(a->pattern, "/.well-known/est/", 17) == 0);
        if (a->auth == HUB_AUTH_SERVICE || a->auth == HUB_AUTH_SERVICE_CERT)
            CHECK(strncmp(a->pattern, "/v1/services/{}/", 16) == 0);
        for (const struct hub_route *b = a + 1; b->pattern; b++)
            CHECK(strcmp(a->method, b->method) != 0 || strcmp(a->pattern, b->pattern) != 0);
    }
    CHECK(n >= 20);
}

static const struct hub_route *find(const char *method, const char *pattern)
{
    for (const struct hub_route *rt = hub_router_routes; rt->pattern; rt++)
        if (strcmp(rt->method, method) == 0 && strcmp(rt->pattern, pattern) == 0)
            return rt;
    return NULL;
}

static void test_auth(void)
{
    enum hub_auth kind;
    enum hub_role role;
    const struct hub_route *m = find("GET", "/metrics");
    CHECK(m != NULL);
    if (m == NULL)
        return;
    hub_router_auth(m, 0, &kind, &role);
    CHECK_EQ(kind, HUB_AUTH_NONE);
    hub_router_auth(m, 1, &kind, &role);
    CHECK_EQ(kind, HUB_AUTH_ROLE);
    CHECK_EQ(role, HUB_ROLE_AUDITOR);
    const struct hub_route *rv = find("POST", "/v1/certificates/{}/revoke");
    CHECK(rv != NULL && rv->auth == HUB_AUTH_ROLE && rv->min_role == HUB_ROLE_OPERATOR);
    const struct hub_route *cmd = find("POST", "/v1/devices/{}/commands");
    CHECK(cmd != NULL && cmd->auth == HUB_AUTH_ROLE && cmd->min_role == HUB_ROLE_OPERATOR);
    CHECK_STR(hub_auth_name(HUB_AUTH_DEVICE_CERT), "device_cert");
    CHECK_STR(hub_request_role_name(HUB_ROLE_OPERATOR), "operator");
    CHECK(hub_request_role_name(HUB_ROLE_NONE) == NULL);
    CHECK_EQ(hub_request_role_parse("admin"), HUB_ROLE_ADMIN);
    CHECK_EQ(hub_request_role_parse("root"), HUB_ROLE_NONE);
}

int main(void)
{
    RUN(test_table);
    RUN(test_auth);
    HARNESS_EXIT();
}
