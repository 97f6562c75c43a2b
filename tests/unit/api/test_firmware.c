/* Firmware versions (util/version.c, the contract's ordering) and download ranges
 * (api/firmware_download.c). */
#include <stdint.h>

#include "api/firmware_download.h"
#include "tests/unit/harness.h"
#include "util/version.h"

static int cmp(const char *a, const char *b)
{
    struct hub_version va, vb;
    if (hub_version_parse(a, &va) != 0 || hub_version_parse(b, &vb) != 0)
        return 99;
    return hub_version_cmp(&va, &vb);
}

static void test_versions(void)
{
    struct hub_version v;
    CHECK_EQ(hub_version_parse("1.4.2", &v), 0);
    CHECK_EQ(v.n, 3);
    CHECK_EQ(v.parts[2], 2);
    CHECK_EQ(hub_version_parse("2147483647.0.0.1", &v), 0);
    static const char *const bad[] = {"",      "1.",  ".1",        "1..2",   "01.2",    "1.2.3.4.5",
                                      "1.2a",  "-1",  "+1",        " 1",     "1.2 ",    "2147483648",
                                      "1,2",   "v1",  "1.02",      "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(hub_version_parse(bad[i], &v) != 0);
    CHECK(cmp("1.10", "1.9") > 0); /* numeric, not lexical */
    CHECK(cmp("1.0", "1.0.0") == 0); /* missing parts are 0 */
    CHECK(cmp("1.2.3", "1.2.3.1") < 0);
    CHECK(cmp("0.9.9", "1.0.0") < 0);
    char pg[64];
    hub_version_parse("3.1", &v);
    hub_version_pg_array(&v, pg, sizeof pg);
    CHECK_STR(pg, "{3,1,0,0}");
}

static void test_ranges(void)
{
    uint64_t s = 0, l = 0;
    CHECK_EQ(hub_api_firmware_range("bytes=0-", 1000, &s, &l), 1);
    CHECK(s == 0 && l == 1000);
    CHECK_EQ(hub_api_firmware_range("bytes=300000-", 1000000, &s, &l), 1);
    CHECK(s == 300000 && l == 700000);
    CHECK_EQ(hub_api_firmware_range("bytes=10-19", 1000, &s, &l), 1);
    CHECK(s == 10 && l == 10);
    CHECK_EQ(hub_api_firmware_range("bytes=990-5000", 1000, &s, &l), 1); /* clamped */
    CHECK(s == 990 && l == 10);
    CHECK_EQ(hub_api_firmware_range("bytes=-100", 1000, &s, &l), 1);
    CHECK(s == 900 && l == 100);
    CHECK_EQ(hub_api_firmware_range("bytes=-5000", 1000, &s, &l), 1); /* the whole */
    CHECK(s == 0 && l == 1000);
    CHECK_EQ(hub_api_firmware_range("bytes=1000-", 1000, &s, &l), 0); /* 416 */
    CHECK_EQ(hub_api_firmware_range("bytes=-0", 1000, &s, &l), 0);
    CHECK_EQ(hub_api_firmware_range("bytes=20-10", 1000, &s, &l), -1); /* invalid: ignored */
    CHECK_EQ(hub_api_firmware_range("bytes=0-1,5-6", 1000, &s, &l), -1); /* several */
    CHECK_EQ(hub_api_firmware_range("items=0-1", 1000, &s, &l), -1);
    CHECK_EQ(hub_api_firmware_range("bytes=-", 1000, &s, &l), -1);
    CHECK_EQ(hub_api_firmware_range("bytes=99999999999999999999999-", 1000, &s, &l), -1);
}

int main(void)
{
    RUN(test_versions);
    RUN(test_ranges);
    HARNESS_EXIT();
}
