/* Unit tests for server/backbone_subs.c (what a node subscribes to on the backbone) and the
 * backbone's configuration checks (server/backbone_conf.c, the keys in server/config.c). */
#include <stdio.h>
#include <string.h>

#include "server/backbone_conf.h"
#include "server/backbone_subs.h"
#include "server/config.h"
#include "tests/unit/harness.h"
#include "util/error.h"

#define F(s) s, strlen(s)

static void test_refcount_per_session(void)
{
    struct hub_bsubs *t = hub_bsubs_new();
    CHECK(t != NULL);
    CHECK_EQ(hub_bsubs_add(t, "d:a", F("devices/a/commands/#"), 1), 1); /* new: subscribe */
    CHECK_EQ(hub_bsubs_add(t, "s:x/1", F("devices/a/commands/#"), 0), HUB_BSUBS_SAME);
    CHECK_EQ(hub_bsubs_add(t, "d:a", F("devices/a/commands/#"), 1), HUB_BSUBS_SAME); /* again */
    CHECK_EQ(hub_bsubs_filters(t), 1);
    CHECK_EQ(hub_bsubs_pairs(t), 2);
    CHECK_EQ(hub_bsubs_remove(t, "d:a", F("devices/a/commands/#")), 0); /* QoS drops to 0 */
    CHECK_EQ(hub_bsubs_remove(t, "d:a", F("devices/a/commands/#")), HUB_BSUBS_SAME); /* unknown */
    CHECK_EQ(hub_bsubs_qos(t, F("devices/a/commands/#")), 0);
    CHECK_EQ(hub_bsubs_remove(t, "s:x/1", F("devices/a/commands/#")), HUB_BSUBS_GONE);
    CHECK_EQ(hub_bsubs_qos(t, F("devices/a/commands/#")), HUB_BSUBS_GONE);
    CHECK_EQ(hub_bsubs_filters(t), 0);
    CHECK_EQ(hub_bsubs_pairs(t), 0);
    hub_bsubs_free(t);
}

static void test_qos_changes(void)
{
    struct hub_bsubs *t = hub_bsubs_new();
    CHECK_EQ(hub_bsubs_add(t, "k1", F("a/+"), 0), 0);
    CHECK_EQ(hub_bsubs_add(t, "k2", F("a/+"), 2), 2);      /* upgrade */
    CHECK_EQ(hub_bsubs_add(t, "k2", F("a/+"), 1), 1);      /* re-SUBSCRIBE lower: down to 1 */
    CHECK_EQ(hub_bsubs_add(t, "k3", F("a/+"), 1), HUB_BSUBS_SAME);
    CHECK_EQ(hub_bsubs_remove(t, "k2", F("a/+")), HUB_BSUBS_SAME); /* k3 keeps QoS 1 */
    CHECK_EQ(hub_bsubs_remove(t, "k3", F("a/+")), 0);
    hub_bsubs_free(t);
}

static void count_cb(void *ctx, const char *filter, uint8_t qos)
{
    int *n = ctx;
    n[0]++;
    n[1] += qos;
    CHECK(strncmp(filter, "t/", 2) == 0);
}

static void test_many_and_each(void)
{
    struct hub_bsubs *t = hub_bsubs_new();
    char key[32], filter[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "d:%d", i);
        snprintf(filter, sizeof filter, "t/%d", i % 1000);
        int rc = hub_bsubs_add(t, key, F(filter), 1);
        CHECK(rc == (i < 1000 ? 1 : HUB_BSUBS_SAME));
    }
    CHECK_EQ(hub_bsubs_filters(t), 1000);
    CHECK_EQ(hub_bsubs_pairs(t), 5000);
    int n[2] = {0, 0};
    hub_bsubs_each(t, count_cb, n);
    CHECK_EQ(n[0], 1000);
    CHECK_EQ(n[1], 1000);
    int gone = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "d:%d", i);
        snprintf(filter, sizeof filter, "t/%d", i % 1000);
        gone += hub_bsubs_remove(t, key, F(filter)) == HUB_BSUBS_GONE;
    }
    CHECK_EQ(gone, 1000);
    CHECK_EQ(hub_bsubs_filters(t), 0);
    hub_bsubs_free(t);
}

static void test_url_and_node_name(void)
{
    struct hub_backbone_url u;
    char why[128], name[HUB_NODE_NAME_MAX + 1];
    CHECK_EQ(hub_backbone_url_parse("mqtt://broker.example", &u, why, sizeof why), 0);
    CHECK_STR(u.host, "broker.example");
    CHECK_EQ(u.port, 1883);
    CHECK_EQ(u.tls, 0);
    CHECK_EQ(hub_backbone_url_parse("mqtts://[::1]:8884", &u, why, sizeof why), 0);
    CHECK_STR(u.host, "::1");
    CHECK_EQ(u.port, 8884);
    CHECK_EQ(u.tls, 1);
    CHECK_EQ(hub_backbone_url_parse("mqtt://10.0.0.1:1884/", &u, why, sizeof why), 0);
    CHECK_EQ(hub_backbone_url_parse("tcp://h:1", &u, why, sizeof why), HUB_EINVAL);
    CHECK_EQ(hub_backbone_url_parse("mqtt://h:0", &u, why, sizeof why), HUB_EINVAL);
    CHECK_EQ(hub_backbone_url_parse("mqtt://u:p@h", &u, why, sizeof why), HUB_EINVAL);
    CHECK_EQ(hub_backbone_url_parse("mqtt://h/x", &u, why, sizeof why), HUB_EINVAL);
    CHECK_EQ(hub_backbone_url_parse("mqtt://", &u, why, sizeof why), HUB_EINVAL);
    CHECK(hub_node_name_valid("node-1.eu_west"));
    CHECK(!hub_node_name_valid(""));
    CHECK(!hub_node_name_valid("a/b"));
    CHECK(!hub_node_name_valid("a b"));
    hub_node_name("n1", name, sizeof name);
    CHECK_STR(name, "n1");
    hub_node_name(NULL, name, sizeof name);
    CHECK(hub_node_name_valid(name));
}

static void test_config_keys(void)
{
    struct hub_config cfg;
    char err[256];
    CHECK_EQ(hub_config_load(&cfg, NULL, err, sizeof err), 0);
    CHECK(cfg.backbone == NULL);
    CHECK_EQ(cfg.backbone_max_queued, 64 << 20);
    CHECK_EQ(cfg.backbone_session_expiry_s, 600);
    CHECK_EQ(hub_config_parse_text(&cfg, "t", "backbone = mqtts://bb:8883\nnode_name = n-2\n"
                                   "backbone_max_queued = 1048576\n", err, sizeof err), 0);
    CHECK_STR(cfg.backbone, "mqtts://bb:8883");
    CHECK_STR(cfg.node_name, "n-2");
    CHECK_EQ(cfg.backbone_max_queued, 1048576);
    hub_config_free(&cfg);
    CHECK_EQ(hub_config_load(&cfg, NULL, err, sizeof err), 0);
    CHECK_EQ(hub_config_parse_text(&cfg, "t", "backbone = http://bb\n", err, sizeof err),
             HUB_ECONFIG);
    CHECK(strstr(err, "t:1: bad value for backbone") != NULL);
    CHECK_EQ(hub_config_parse_text(&cfg, "u", "node_name = a/b\n", err, sizeof err), HUB_ECONFIG);
    CHECK(strstr(err, "u:1: bad value for node_name") != NULL);
    hub_config_free(&cfg);
}

int main(void)
{
    RUN(test_refcount_per_session);
    RUN(test_qos_changes);
    RUN(test_many_and_each);
    RUN(test_url_and_node_name);
    RUN(test_config_keys);
    HARNESS_EXIT();
}
