/* Unit tests for util/close: the names are the metric labels users see. */
#include "tests/unit/harness.h"
#include "util/close.h"

static void test_names(void)
{
    static const char *const LABELS[] = {"normal",          "peer_closed", "revoked", "timeout",
                                         "protocol_error",  "takeover",    "refused", "limit",
                                         "server_shutdown", "error"};
    for (int r = HUB_CLOSE_NORMAL; r <= HUB_CLOSE_ERROR; r++)
        CHECK_STR(hub_close_reason_name((enum hub_close_reason)r), LABELS[r - HUB_CLOSE_NORMAL]);
    CHECK_STR(hub_close_reason_name(HUB_CLOSE_NONE), "");
    CHECK_STR(hub_close_reason_name(HUB_CLOSE_LOCAL), "local");
    CHECK_STR(hub_close_reason_name(HUB_CLOSE_COUNT), "");
}

int main(void)
{
    RUN(test_names);
    HARNESS_EXIT();
}
