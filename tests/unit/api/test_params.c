/* Unit tests for api/params.c: ids, revocation reasons, and HUB_REPLIED (api/reply.h). */
#include <string.h>

#include <microhttpd.h>

#include "api/params.h"
#include "api/reply.h"
#include "ca/crl.h"
#include "tests/unit/harness.h"
#include "util/error.h"

static void test_ids(void)
{
    char id[] = "0B8E3B8A-1111-4C1E-8A6E-00000000000A";
    CHECK(hub_params_uuid_valid(id));
    CHECK(!hub_params_uuid_valid("0b8e3b8a-1111-4c1e-8a6e-00000000000"));
    CHECK(!hub_params_uuid_valid("0b8e3b8a-1111-4c1e-8a6e-00000000000g"));
    CHECK(!hub_params_uuid_valid("0b8e3b8a11111-4c1e-8a6e-00000000000a"));
    hub_params_lower(id);
    CHECK_STR(id, "0b8e3b8a-1111-4c1e-8a6e-00000000000a");
}

/* A refused body is one 400 reply and HUB_REPLIED, which is no HUB_E* code. */
static void test_replied(void)
{
    CHECK((int)HUB_REPLIED > 0 && (int)HUB_REPLIED != (int)HUB_ENOMEM);
    struct hub_req r;
    memset(&r, 0, sizeof r);
    r.method = "POST";
    strcpy(r.path, "/v1/test");
    int reason = -5;
    json_t *ok = json_pack("{s:s}", "reason", "keyCompromise");
    CHECK_EQ(hub_params_reason_parse(&r, ok, HUB_REASON_UNSPECIFIED, &reason), 0);
    CHECK_EQ(reason, HUB_REASON_KEY_COMPROMISE);
    CHECK(r.response == NULL);
    json_t *bad = json_pack("{s:s}", "reason", "certificateHold");
    CHECK_EQ(hub_params_reason_parse(&r, bad, HUB_REASON_UNSPECIFIED, &reason), HUB_REPLIED);
    CHECK_EQ(r.status, 400);
    CHECK_STR(r.error_code, "invalid_reason");
    json_decref(ok);
    json_decref(bad);
    if (r.response != NULL)
        MHD_destroy_response(r.response);
}

int main(void)
{
    RUN(test_ids);
    RUN(test_replied);
    HARNESS_EXIT();
}
