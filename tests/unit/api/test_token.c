/* Unit tests for api/token.c: the bearer token format and role names. */
#include <stdint.h>
#include <string.h>

#include "api/token.h"
#include "tests/unit/harness.h"
#include "util/error.h"

static void test_token_parse(void)
{
    char id[HUB_TOKEN_ID_LEN + 1];
    uint8_t h1[32], h2[32];
    const char *tok = "iothub_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    CHECK_EQ(hub_token_parse(tok, id, h1), 0);
    CHECK_STR(id, "0123456789abcdef");
    CHECK_EQ(hub_token_parse("iothub_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",
                             id, h2),
             0);
    CHECK(memcmp(h1, h2, 32) != 0);
    CHECK_EQ(hub_token_parse("iothub_0123456789ABCDEF_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                             id, h1),
             HUB_EINVAL);
    CHECK_EQ(hub_token_parse("Bearer x", id, h1), HUB_EINVAL);
    CHECK_EQ(hub_token_parse("", id, h1), HUB_EINVAL);
    CHECK(hub_token_role_valid("auditor"));
    CHECK(!hub_token_role_valid("root"));
}

int main(void)
{
    RUN(test_token_parse);
    HARNESS_EXIT();
}
