/* Unit tests for the pure parts of the rollouts: server/rollouts.c's firmware/state parser
 * (hostile device input) and api/rollouts.c's wave bounds. */
#include <string.h>

#include <jansson.h>

#include "api/rollouts.h"
#include "server/rollouts.h"
#include "tests/unit/harness.h"
#include "util/error.h"

#define DEV "0b4e2c1a-7d3f-4e8a-9c6b-5a1d2e3f4a5b"
#define RID "6f1c2d3e-4a5b-4c6d-8e7f-901234567890"

/* Parses s; returns the parser's code, the batches left in *reports / *versions. */
static int parse(const char *s, json_t **reports, json_t **versions, const char **why)
{
    *reports = json_object();
    *versions = json_object();
    return hub_rollouts_parse_state(DEV, s, strlen(s), *reports, *versions, why);
}

static void test_state_accepted(void)
{
    json_t *r, *v;
    const char *why;
    CHECK_EQ(parse("{\"rollout_id\": \"" RID "\", \"state\": \"downloading\", \"progress\": 4096}",
                   &r, &v, &why),
             0);
    CHECK_EQ(json_object_size(r), 1);
    CHECK_EQ(json_object_size(v), 0);
    json_t *row = json_object_get(r, RID "/" DEV);
    CHECK_STR(json_string_value(json_object_get(row, "state")), "downloading");
    CHECK_EQ(json_integer_value(json_object_get(row, "progress")), 4096);
    json_decref(r);
    json_decref(v);

    CHECK_EQ(parse("{\"rollout_id\": null, \"state\": \"running\", \"version\": \"1.2.0\"}", &r,
                   &v, &why),
             0);
    CHECK_EQ(json_object_size(r), 0); /* no rollout row for "running" */
    CHECK_STR(json_string_value(json_object_get(json_object_get(v, DEV), "version")), "1.2.0");
    json_decref(r);
    json_decref(v);
}

static void test_latest_report_wins(void)
{
    json_t *r = json_object(), *v = json_object();
    const char *why;
    const char *a = "{\"rollout_id\": \"" RID "\", \"state\": \"installing\"}";
    const char *b = "{\"rollout_id\": \"" RID "\", \"state\": \"installed\", \"version\": \"2.0\"}";
    CHECK_EQ(hub_rollouts_parse_state(DEV, a, strlen(a), r, v, &why), 0);
    CHECK_EQ(hub_rollouts_parse_state(DEV, b, strlen(b), r, v, &why), 0);
    CHECK_EQ(json_object_size(r), 1);
    CHECK_STR(json_string_value(json_object_get(json_object_get(r, RID "/" DEV), "state")),
              "installed");
    json_decref(r);
    json_decref(v);
}

static void test_state_refused(void)
{
    static const char *const bad[] = {
        "",
        "[]",
        "\"installed\"",
        "{\"rollout_id\": \"" RID "\", \"state\": \"exploded\"}",
        "{\"rollout_id\": \"" RID "\"}",
        "{\"rollout_id\": \"" RID "\", \"state\": 3}",
        "{\"rollout_id\": \"not-a-uuid\", \"state\": \"installed\"}",
        "{\"rollout_id\": null, \"state\": \"failed\"}",
        "{\"rollout_id\": \"" RID "\", \"state\": \"installed\", \"version\": \"1.2.x\"}",
        "{\"rollout_id\": \"" RID "\", \"state\": \"installed\", \"version\": \"1.2.3.4.5\"}",
        "{\"rollout_id\": \"" RID "\", \"state\": \"installed\", \"version\": \"99999999999\"}",
        "{\"rollout_id\": \"" RID "\", \"state\": \"installed\", \"version\": \"1..2\"}",
        "{\"rollout_id\": \"" RID "\", \"state\": \"failed\", \"reason\": \"a\\nb\"}",
        "{\"rollout_id\": \"" RID "\", \"state\": \"failed\", \"reason\": 7}",
        "{\"rollout_id\": \"" RID "\", \"state\": \"downloading\", \"progress\": -1}",
        "{\"rollout_id\": \"" RID "\", \"state\": \"installed\", \"state\": \"failed\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *r, *v;
        const char *why = NULL;
        CHECK_EQ(parse(bad[i], &r, &v, &why), HUB_EINVAL);
        CHECK(why != NULL);
        CHECK_EQ(json_object_size(r) + json_object_size(v), 0);
        json_decref(r);
        json_decref(v);
    }
    char big[HUB_ROLLOUTS_STATE_MAX + 2];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = 0;
    json_t *r, *v;
    const char *why;
    CHECK_EQ(parse(big, &r, &v, &why), HUB_EINVAL);
    json_decref(r);
    json_decref(v);
}

static void test_wave_bounds(void)
{
    struct hub_rollout_spec s;
    char buf[64];
    memset(&s, 0, sizeof s);
    s.wave_count = 3;
    s.wave_value[0] = 10;
    s.wave_value[1] = 50;
    s.wave_pct[1] = 1;
    s.wave_value[2] = 100;
    s.wave_pct[2] = 1;
    hub_api_rollouts_bounds(&s, 1000, buf, sizeof buf);
    CHECK_STR(buf, "{10,500}");
    hub_api_rollouts_bounds(&s, 5, buf, sizeof buf); /* 10 > 5 devices: capped */
    CHECK_STR(buf, "{5,5}");
    hub_api_rollouts_bounds(&s, 3, buf, sizeof buf); /* 50 % of 3 rounds up */
    CHECK_STR(buf, "{3,3}");
    s.wave_value[0] = 40;
    s.wave_pct[0] = 0;
    hub_api_rollouts_bounds(&s, 60, buf, sizeof buf); /* 50 % = 30 < 40: never backwards */
    CHECK_STR(buf, "{40,40}");
    s.wave_count = 1;
    hub_api_rollouts_bounds(&s, 60, buf, sizeof buf); /* one wave: no bound */
    CHECK_STR(buf, "{}");
}

int main(void)
{
    RUN(test_state_accepted);
    RUN(test_latest_report_wins);
    RUN(test_state_refused);
    RUN(test_wave_bounds);
    HARNESS_EXIT();
}
