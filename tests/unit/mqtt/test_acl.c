/* Unit tests for mqtt/acl.c: service ACLs (deny first, allow patterns matching topics and
 * covering filters, fail closed) and device ACLs (only "devices/<id>/#"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/acl.h"
#include "mqtt/topic.h"
#include "tests/unit/harness.h"

#define S(x) x, strlen(x)

static int allows(const char *const *p, size_t n, const char *t, int is_filter)
{
    return hub_acl_allows(p, n, S(t), is_filter);
}

static void test_acl_service(void)
{
    static const char *const p[] = {"devices/+/telemetry", "!devices/secret/#", "cmd/#"};
    static const char *const q[] = {"devices/#", "!devices/+/admin"};
    static const char *const all[] = {"#"};
    static const char *const sys[] = {"$SYS/#"};
    static const char *const bad_deny[] = {"!a/#/b", "#"};
    static const char *const bad_allow[] = {"a/#/b", "x"};
    /* PUBLISH: deny first, then any allow pattern matching. */
    CHECK_EQ(allows(p, 3, "devices/abc/telemetry", 0), 1);
    CHECK_EQ(allows(p, 3, "devices/secret/telemetry", 0), 0);
    CHECK_EQ(allows(p, 3, "devices/abc/other", 0), 0);
    CHECK_EQ(allows(p, 3, "cmd/x/y", 0), 1);
    CHECK_EQ(allows(p, 3, "cmd", 0), 1);
    CHECK_EQ(allows(p, 3, "other", 0), 0);
    /* SUBSCRIBE: a deny that overlaps refuses; an allow must cover. */
    CHECK_EQ(allows(p, 3, "devices/+/telemetry", 1), 0);
    CHECK_EQ(allows(p, 3, "devices/abc/telemetry", 1), 1);
    CHECK_EQ(allows(p, 3, "devices/#", 1), 0);
    CHECK_EQ(allows(p, 3, "cmd/+", 1), 1);
    CHECK_EQ(allows(p, 3, "#", 1), 0);
    CHECK_EQ(allows(q, 2, "devices/+/x", 1), 1);
    CHECK_EQ(allows(q, 2, "devices/a/#", 1), 0);
    CHECK_EQ(allows(q, 2, "devices/+/+", 1), 0);
    CHECK_EQ(allows(q, 2, "devices/a/admin", 0), 0);
    CHECK_EQ(allows(q, 2, "devices/a/admin/x", 0), 1);
    /* '$' topics are not reached through a leading wildcard. */
    CHECK_EQ(allows(all, 1, "$SYS/x", 0), 0);
    CHECK_EQ(allows(all, 1, "$SYS/#", 1), 0);
    CHECK_EQ(allows(all, 1, "x/#", 1), 1);
    CHECK_EQ(allows(sys, 1, "$SYS/broker/+", 1), 1);
    CHECK_EQ(allows(sys, 1, "$SYS/broker", 0), 1);
    /* Fail closed: invalid deny refuses all, invalid allow allows nothing. */
    CHECK_EQ(allows(bad_deny, 2, "x", 0), 0);
    CHECK_EQ(allows(bad_allow, 2, "a/x/b", 0), 0);
    CHECK_EQ(allows(bad_allow, 2, "x", 0), 1);
    CHECK_EQ(allows(NULL, 0, "x", 0), 0);
    /* Invalid topic names and filters are refused. */
    CHECK_EQ(allows(all, 1, "a/+", 0), 0);
    CHECK_EQ(allows(all, 1, "a/#/b", 1), 0);
    CHECK_EQ(hub_acl_allows(all, 1, "", 0, 0), 0);
    CHECK_EQ(hub_acl_pattern_valid("!a/#"), 1);
    CHECK_EQ(hub_acl_pattern_valid("a/+/b"), 1);
    CHECK_EQ(hub_acl_pattern_valid("a/#/b"), 0);
    CHECK_EQ(hub_acl_pattern_valid("!"), 0);
    CHECK_EQ(hub_acl_pattern_valid(""), 0);
}

static void test_acl_device(void)
{
    static const char *const pat[] = {"devices/d1/#"};
    static const struct {
        const char *t;
        int is_filter, want;
    } cases[] = {
        {"devices/d1/telemetry", 0, 1},
        {"devices/d1", 0, 1},
        {"devices/d1/", 0, 1},
        {"devices/d1/commands/reboot", 0, 1},
        {"devices/d1/#", 1, 1},
        {"devices/d1/+/x", 1, 1},
        {"devices/d1", 1, 1},
        {"devices/d10/x", 0, 0},
        {"devices/d/x", 0, 0},
        {"devices/+/x", 1, 0},
        {"devices/#", 1, 0},
        {"#", 1, 0},
        {"+/d1/x", 1, 0},
        {"devices/d1x", 0, 0},
        {"Devices/d1/x", 0, 0},
        {"devices", 0, 0},
        {"devices/", 0, 0},
        {"/devices/d1", 0, 0},
        {"devices/d1/+", 0, 0},
        {"devices/d1/#/x", 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = hub_acl_device("d1", S(cases[i].t), cases[i].is_filter);
        if (got != cases[i].want)
            fprintf(stderr, "  device d1, %s (filter %d)\n", cases[i].t, cases[i].is_filter);
        CHECK_EQ(got, cases[i].want);
        /* Same answer as the general ACL with the equivalent pattern. */
        CHECK_EQ(allows(pat, 1, cases[i].t, cases[i].is_filter), cases[i].want);
        /* And, for valid topics and filters, as the variant that skips the validity check. */
        if (cases[i].is_filter ? hub_topic_filter_valid(S(cases[i].t))
                               : hub_topic_name_valid(S(cases[i].t)))
            CHECK_EQ(hub_acl_device_checked("d1", S(cases[i].t)), cases[i].want);
        if (cases[i].is_filter ? hub_topic_filter_valid(S(cases[i].t))
                               : hub_topic_name_valid(S(cases[i].t)))
            CHECK_EQ(hub_acl_device_under("d1", 2, S(cases[i].t)), cases[i].want);
    }
    CHECK_EQ(hub_acl_device_checked("a/b", S("devices/a/b/x")), 0);
    CHECK_EQ(hub_acl_device_checked("", S("devices//x")), 0);
    CHECK_EQ(hub_acl_device("", S("devices//x"), 0), 0);
    CHECK_EQ(hub_acl_device("a/b", S("devices/a/b/x"), 0), 0);
    CHECK_EQ(hub_acl_device("+", S("devices/+/x"), 1), 0);
    CHECK_EQ(hub_acl_device("#", S("devices/#"), 1), 0);
    CHECK_EQ(hub_acl_device_id_valid("d1"), 1);
    CHECK_EQ(hub_acl_device_id_valid(""), 0);
    CHECK_EQ(hub_acl_device_id_valid("a/b"), 0);
    CHECK_EQ(hub_acl_device_id_valid("a+"), 0);
    CHECK_EQ(hub_acl_device_id_valid("#"), 0);
}

/* Another device id must never reach this device's subtree, above all one of the same
 * length (a comparison bounded by the id's length would still tell them apart only by
 * content), nor one that is a prefix of it or that it is a prefix of. */
static void test_acl_device_other_ids(void)
{
    static const char a[] = "6f1c0b2e-4d3a-4f5e-9a8b-0c1d2e3f4a51";
    static const char *const others[] = {
        "6f1c0b2e-4d3a-4f5e-9a8b-0c1d2e3f4a52",  /* same length, last character */
        "7f1c0b2e-4d3a-4f5e-9a8b-0c1d2e3f4a51",  /* same length, first character */
        "6f1c0b2e-4d3a-4f5e-9a8b-0c1d2e3f4a5",   /* a prefix of a */
        "6f1c0b2e-4d3a-4f5e-9a8b-0c1d2e3f4a510", /* a is a prefix of it */
    };
    char t[128];
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        const char *b = others[i];
        static const char *const fmt[] = {"devices/%s", "devices/%s/", "devices/%s/telemetry",
                                          "devices/%s/commands/reboot"};
        static const char *const ffmt[] = {"devices/%s", "devices/%s/#", "devices/%s/+",
                                           "devices/%s/+/x"};
        for (size_t k = 0; k < sizeof fmt / sizeof fmt[0]; k++) {
            snprintf(t, sizeof t, fmt[k], b);
            CHECK_EQ(hub_acl_device(a, S(t), 0), 0);
            CHECK_EQ(hub_acl_device_checked(a, S(t)), 0);
            CHECK_EQ(hub_acl_device_under(a, strlen(a), S(t)), 0);
            CHECK_EQ(hub_acl_device(b, S(t), 0), 1); /* while its own device may */
            CHECK_EQ(hub_acl_device_under(b, strlen(b), S(t)), 1);
            snprintf(t, sizeof t, ffmt[k], b);
            CHECK_EQ(hub_acl_device(a, S(t), 1), 0);
            CHECK_EQ(hub_acl_device_checked(a, S(t)), 0);
            CHECK_EQ(hub_acl_device(b, S(t), 1), 1);
        }
    }
    /* Short ids of the same length, and ids that are prefixes of each other. */
    CHECK_EQ(hub_acl_device("d1", S("devices/d2/x"), 0), 0);
    CHECK_EQ(hub_acl_device("d1", S("devices/d2"), 0), 0);
    CHECK_EQ(hub_acl_device("d1", S("devices/e1/#"), 1), 0);
    CHECK_EQ(hub_acl_device("d1", S("devices/dd/+"), 1), 0);
    CHECK_EQ(hub_acl_device("d10", S("devices/d1/x"), 0), 0);
    CHECK_EQ(hub_acl_device("d10", S("devices/d1"), 0), 0);
    CHECK_EQ(hub_acl_device("d10", S("devices/d1/#"), 1), 0);
    CHECK_EQ(hub_acl_device("d1", S("devices/d"), 0), 0);
    CHECK_EQ(hub_acl_device("d1", S("devices/d+"), 1), 0);
    CHECK_EQ(hub_acl_device("d1", S("devices/+"), 1), 0);
    /* A device's own topics stay allowed. */
    CHECK_EQ(hub_acl_device(a, S("devices/6f1c0b2e-4d3a-4f5e-9a8b-0c1d2e3f4a51/x"), 0), 1);
}

int main(void)
{
    RUN(test_acl_service);
    RUN(test_acl_device);
    RUN(test_acl_device_other_ids);
    HARNESS_EXIT();
}
