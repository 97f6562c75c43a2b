/* Unit tests for mqtt/topictrie.c and hub_retained_match: set, get, delete with pruning;
 * matching against hub_topic_match over every pair of a set of topics and filters ('+',
 * '#', "a/#" matching "a", empty levels, '$' topics); a topic of 30,000 levels set, matched
 * and freed without deep recursion; retained messages found by filter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/msg.h"
#include "mqtt/retained.h"
#include "mqtt/topic.h"
#include "mqtt/topictrie.h"
#include "tests/unit/harness.h"

static const char *topics[] = {
    "a", "a/b", "a/b/c", "a/c", "a//c", "/a", "/", "b", "b/b", "a/b/c/d", "$SYS/x",
    "$SYS", "x/$y", "devices/1/t", "devices/2/t", "devices/1/t/deep/er",
};
static const char *filters[] = {
    "#", "+", "+/#", "a", "a/#", "a/+", "a/+/c", "+/+", "+/b", "/#", "/+", "+/+/+", "$SYS/#",
    "$SYS", "+/x", "x/+", "devices/+/t", "devices/1/#", "devices/+/t/#", "a/b/c/d/#",
    "nothing/#", "a//c", "a/+/+/+",
};
#define NT (sizeof topics / sizeof *topics)
#define NF (sizeof filters / sizeof *filters)

static void mark(void *v, void *ctx)
{
    unsigned *seen = ctx;
    seen[(const char **)v - topics]++;
}

static void test_match_against_topic_match(void)
{
    hub_topictrie_t *t = hub_topictrie_new();
    for (size_t i = 0; i < NT; i++)
        CHECK_EQ(hub_topictrie_set(t, topics[i], strlen(topics[i]), (void *)&topics[i]), 0);
    CHECK_EQ(hub_topictrie_count(t), NT);
    CHECK(hub_topictrie_get(t, "a/b", 3) == &topics[1]);
    CHECK(hub_topictrie_get(t, "a/b/c/d/e", 9) == NULL);
    CHECK(hub_topictrie_get(t, "devices/1", 9) == NULL); /* an inner node, no value */
    int bad = 0;
    for (size_t f = 0; f < NF; f++) {
        unsigned seen[NT] = {0};
        size_t n = hub_topictrie_match(t, filters[f], strlen(filters[f]), mark, seen), want = 0;
        for (size_t i = 0; i < NT; i++) {
            unsigned m = (unsigned)hub_topic_match(filters[f], strlen(filters[f]), topics[i],
                                                   strlen(topics[i]));
            want += m;
            if (seen[i] != m) {
                fprintf(stderr, "  filter %s topic %s: %u visits, want %u\n", filters[f],
                        topics[i], seen[i], m);
                bad++;
            }
        }
        CHECK_EQ(n, want);
    }
    CHECK_EQ(bad, 0);
    /* Delete: values go, emptied nodes are pruned, the rest stays. */
    CHECK(hub_topictrie_del(t, "a/b", 3) == &topics[1]);
    CHECK(hub_topictrie_del(t, "a/b", 3) == NULL);
    CHECK(hub_topictrie_get(t, "a/b/c", 5) == &topics[2]);
    unsigned seen[NT] = {0};
    CHECK_EQ(hub_topictrie_match(t, "a/+", 3, mark, seen), 1); /* a/c only */
    for (size_t i = 0; i < NT; i++)
        hub_topictrie_del(t, topics[i], strlen(topics[i]));
    CHECK_EQ(hub_topictrie_count(t), 0);
    CHECK_EQ(hub_topictrie_match(t, "#", 1, mark, seen), 0);
    CHECK_EQ(hub_topictrie_set(t, "a/b", 3, (void *)&topics[1]), 0); /* reusable */
    CHECK(hub_topictrie_get(t, "a/b", 3) == &topics[1]);
    hub_topictrie_free(t);
}

static void count_cb(void *v, void *ctx)
{
    (void)v;
    (*(size_t *)ctx)++;
}

/* 30,000 levels: walking, '#' enumeration and freeing use no recursion per topic level. */
static void test_deep_and_wide(void)
{
    hub_topictrie_t *t = hub_topictrie_new();
    size_t len = 60000;
    char *deep = malloc(len);
    for (size_t i = 0; i < len; i += 2) {
        deep[i] = 'x';
        deep[i + 1] = '/';
    }
    deep[len - 1] = 'z';
    CHECK_EQ(hub_topictrie_set(t, deep, len, deep), 0);
    char buf[32];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(buf, sizeof buf, "w/%d", i);
        CHECK_EQ(hub_topictrie_set(t, buf, (size_t)n, deep), 0);
    }
    size_t n = 0;
    CHECK_EQ(hub_topictrie_match(t, "#", 1, count_cb, &n), 5001);
    n = 0;
    CHECK_EQ(hub_topictrie_match(t, "x/#", 3, count_cb, &n), 1);
    CHECK_EQ(hub_topictrie_match(t, "w/+", 3, count_cb, &n), 5000);
    CHECK_EQ(hub_topictrie_match(t, "w/4999", 6, count_cb, &n), 1);
    CHECK_EQ(hub_topictrie_match(t, "w/5000", 6, count_cb, &n), 0);
    CHECK(hub_topictrie_get(t, deep, len) == deep);
    hub_topictrie_free(t); /* deep: no stack overflow */
    free(deep);
}

struct got {
    size_t n;
    char last[32];
};

static void got_cb(const struct hub_msg *m, void *ctx)
{
    struct got *g = ctx;
    g->n++;
    snprintf(g->last, sizeof g->last, "%.*s", (int)m->topic_len, m->topic);
}

static struct hub_msg *msg(const char *topic, const char *payload)
{
    return hub_msg_new(topic, strlen(topic), payload, strlen(payload), 1, 1);
}

static void test_retained_match(void)
{
    struct hub_retained r = {0};
    struct got g = {0};
    hub_retained_match(&r, "#", 1, got_cb, &g); /* empty store, no trie yet */
    CHECK_EQ(g.n, 0);
    char topic[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(topic, sizeof topic, "devices/%d/r", i);
        struct hub_msg *m = msg(topic, "v");
        CHECK_EQ(hub_retained_set(&r, m), 0);
        hub_msg_unref(m);
    }
    hub_retained_match(&r, "devices/1234/r", 14, got_cb, &g);
    CHECK_EQ(g.n, 1);
    CHECK_STR(g.last, "devices/1234/r");
    g.n = 0;
    hub_retained_match(&r, "devices/+/r", 11, got_cb, &g);
    CHECK_EQ(g.n, 3000);
    struct hub_msg *del = msg("devices/1234/r", "");
    CHECK_EQ(hub_retained_set(&r, del), 0); /* deleted: gone from the trie too */
    hub_msg_unref(del);
    g.n = 0;
    hub_retained_match(&r, "devices/1234/#", 14, got_cb, &g);
    CHECK_EQ(g.n, 0);
    struct hub_msg *a = msg("devices/7/r", "new");
    CHECK_EQ(hub_retained_set(&r, a), 0); /* replaced: the trie points to the new one */
    const struct hub_msg *seen = NULL;
    g.n = 0;
    hub_retained_match(&r, "devices/7/r", 11, got_cb, &g);
    CHECK_EQ(g.n, 1);
    (void)seen;
    CHECK_EQ(r.count, 2999);
    CHECK_EQ(hub_topictrie_count(r.topics), 2999);
    hub_msg_unref(a);
    hub_retained_free(&r);
    CHECK(r.topics == NULL);
}

int main(void)
{
    RUN(test_match_against_topic_match);
    RUN(test_deep_and_wide);
    RUN(test_retained_match);
    HARNESS_EXIT();
}
