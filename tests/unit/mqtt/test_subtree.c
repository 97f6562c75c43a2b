/* Unit tests for mqtt/subtree.c: matching rules, replace/remove semantics, limits, a
 * randomized comparison with a linear scan over hub_topic_match, and 100k subscriptions. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mqtt/subtree.h"
#include "mqtt/topic.h"
#include "tests/unit/harness.h"
#include "util/error.h"

#define S(x) x, strlen(x)

struct hit {
    void *sub;
    uint8_t qos;
};

struct hits {
    struct hit h[256];
    size_t n;
};

static void collect_cb(void *sub, uint8_t qos, void *ctx)
{
    struct hits *hs = ctx;
    if (hs->n < 256) {
        hs->h[hs->n].sub = sub;
        hs->h[hs->n].qos = qos;
    }
    hs->n++;
}

static size_t run(const hub_subtree_t *t, const char *topic, struct hits *hs)
{
    hs->n = 0;
    return hub_subtree_match(t, S(topic), collect_cb, hs);
}

/* Whether subscriber sub was visited with qos. */
static int has(const struct hits *hs, void *sub, uint8_t qos)
{
    for (size_t i = 0; i < hs->n && i < 256; i++)
        if (hs->h[i].sub == sub && hs->h[i].qos == qos)
            return 1;
    return 0;
}

static int subs[16];
#define SUB(i) ((void *)&subs[i])

static void test_match_rules(void)
{
    hub_subtree_t *t = hub_subtree_new();
    struct hits hs;
    CHECK(t != NULL);
    CHECK_EQ(hub_subtree_insert(t, S("sport/tennis/player1/#"), SUB(0), 1), 0);
    CHECK_EQ(hub_subtree_insert(t, S("sport/tennis/+"), SUB(1), 2), 0);
    CHECK_EQ(hub_subtree_insert(t, S("#"), SUB(2), 0), 0);
    CHECK_EQ(hub_subtree_insert(t, S("+/+"), SUB(3), 0), 0);
    CHECK_EQ(hub_subtree_insert(t, S("$SYS/#"), SUB(4), 0), 0);
    CHECK_EQ(hub_subtree_insert(t, S("+/monitor/Clients"), SUB(5), 0), 0);
    CHECK_EQ(hub_subtree_insert(t, S("/+"), SUB(6), 0), 0);
    CHECK_EQ(hub_subtree_insert(t, S("sport/+"), SUB(7), 0), 0);
    CHECK_EQ(hub_subtree_count(t), 8);

    CHECK_EQ(run(t, "sport/tennis/player1", &hs), 3);
    CHECK(has(&hs, SUB(0), 1) && has(&hs, SUB(1), 2) && has(&hs, SUB(2), 0));
    CHECK_EQ(run(t, "sport/tennis/player1/score/wimbledon", &hs), 2);
    CHECK(has(&hs, SUB(0), 1) && has(&hs, SUB(2), 0));
    CHECK_EQ(run(t, "sport", &hs), 1); /* "#" only; "sport/+" needs a second level */
    CHECK_EQ(run(t, "sport/", &hs), 3);
    CHECK(has(&hs, SUB(2), 0) && has(&hs, SUB(3), 0) && has(&hs, SUB(7), 0));
    CHECK_EQ(run(t, "/finance", &hs), 3);
    CHECK(has(&hs, SUB(2), 0) && has(&hs, SUB(3), 0) && has(&hs, SUB(6), 0));
    /* '$' topics: only filters starting with the literal level. */
    CHECK_EQ(run(t, "$SYS/monitor/Clients", &hs), 1);
    CHECK(has(&hs, SUB(4), 0));
    CHECK_EQ(run(t, "$SYS", &hs), 1); /* "$SYS/#" matches its parent */
    CHECK_EQ(run(t, "$other/x", &hs), 0);
    CHECK_EQ(run(t, "x/monitor/Clients", &hs), 2);
    CHECK_EQ(hub_subtree_match(t, "", 0, collect_cb, &hs), 0);
    hub_subtree_free(t);
}

static void test_replace_remove(void)
{
    hub_subtree_t *t = hub_subtree_new();
    struct hits hs;
    const char *const f[] = {"a/b", "a/+", "a/#"};
    CHECK_EQ(hub_subtree_insert(t, S("a/b"), SUB(0), 0), 0);
    CHECK_EQ(hub_subtree_insert(t, S("a/b"), SUB(0), 2), 1); /* replaced */
    CHECK_EQ(hub_subtree_insert(t, S("a/b"), SUB(1), 1), 0);
    CHECK_EQ(hub_subtree_count(t), 2);
    CHECK_EQ(run(t, "a/b", &hs), 2);
    CHECK(has(&hs, SUB(0), 2) && has(&hs, SUB(1), 1));
    /* Overlapping filters of one subscriber: one visit per subscription. */
    CHECK_EQ(hub_subtree_insert(t, S("a/+"), SUB(0), 0), 0);
    CHECK_EQ(hub_subtree_insert(t, S("a/#"), SUB(0), 1), 0);
    CHECK_EQ(run(t, "a/b", &hs), 4);
    CHECK_EQ(hub_subtree_remove(t, S("a/b"), SUB(2)), HUB_ENOTFOUND);
    CHECK_EQ(hub_subtree_remove(t, S("a/c"), SUB(0)), HUB_ENOTFOUND);
    CHECK_EQ(hub_subtree_remove(t, S("a/b/c/d"), SUB(0)), HUB_ENOTFOUND);
    CHECK_EQ(hub_subtree_remove(t, S("a/b"), SUB(1)), 0);
    CHECK_EQ(hub_subtree_remove(t, S("a/b"), SUB(1)), HUB_ENOTFOUND);
    CHECK_EQ(run(t, "a/b", &hs), 3);
    CHECK_EQ(hub_subtree_remove_all(t, SUB(0), f, 3), 3);
    CHECK_EQ(hub_subtree_remove_all(t, SUB(0), f, 3), 0);
    CHECK_EQ(hub_subtree_count(t), 0);
    CHECK_EQ(run(t, "a/b", &hs), 0);
    CHECK_EQ(run(t, "a", &hs), 0);
    /* The pruned tree works again. */
    CHECK_EQ(hub_subtree_insert(t, S("a/#"), SUB(3), 0), 0);
    CHECK_EQ(run(t, "a", &hs), 1);
    hub_subtree_free(t);
    hub_subtree_free(NULL);
}

static void test_limits(void)
{
    hub_subtree_t *t = hub_subtree_new();
    char deep[2 * HUB_SUBTREE_MAX_LEVELS + 2];
    struct hits hs;
    CHECK_EQ(hub_subtree_insert(t, S("a/#/b"), SUB(0), 0), HUB_EINVAL);
    CHECK_EQ(hub_subtree_insert(t, S(""), SUB(0), 0), HUB_EINVAL);
    CHECK_EQ(hub_subtree_insert(t, S("a"), SUB(0), 3), HUB_EINVAL);
    CHECK_EQ(hub_subtree_insert(t, "a\0", 2, SUB(0), 0), HUB_EINVAL);
    /* "+/+/.../+": exactly the maximum number of levels, then one more. */
    for (size_t i = 0; i < HUB_SUBTREE_MAX_LEVELS; i++) {
        deep[2 * i] = '+';
        deep[2 * i + 1] = '/';
    }
    CHECK_EQ(hub_subtree_insert(t, deep, 2 * HUB_SUBTREE_MAX_LEVELS - 1, SUB(0), 0), 0);
    deep[2 * HUB_SUBTREE_MAX_LEVELS] = '#';
    CHECK_EQ(hub_subtree_insert(t, deep, 2 * HUB_SUBTREE_MAX_LEVELS + 1, SUB(0), 0), HUB_ERANGE);
    CHECK_EQ(hub_subtree_count(t), 1);
    /* A topic of 128 empty levels ("/" x 127) matches it; a much deeper one does not. */
    memset(deep, '/', sizeof deep);
    CHECK_EQ(hub_subtree_match(t, deep, HUB_SUBTREE_MAX_LEVELS - 1, collect_cb, &hs), 1);
    CHECK_EQ(hub_subtree_match(t, deep, sizeof deep, collect_cb, &hs), 0);
    hub_subtree_free(t);
}

/* --- randomized comparison with a linear scan --- */

struct shadow {
    char filter[32];
    int sub;
    uint8_t qos;
    int live;
};

static const char *const lv[] = {"a", "b", "", "+", "#", "$s", "c0", "c1", "c2", "c3"};

static void random_filter(char *out, int topic)
{
    int levels = 1 + rand() % 4;
    out[0] = 0;
    for (int i = 0; i < levels; i++) {
        const char *l;
        char num[8];
        int r = rand() % 14;
        if (r >= 10) {
            snprintf(num, sizeof num, "n%d", rand() % 40); /* many siblings: table growth */
            l = num;
        } else {
            l = lv[r];
        }
        if (topic && (l[0] == '+' || l[0] == '#'))
            l = "x";
        if (i)
            strcat(out, "/");
        strcat(out, l);
        if (l[0] == '#')
            break;
    }
}

static int cmp_hit(const void *a, const void *b)
{
    const struct hit *x = a, *y = b;
    if (x->sub != y->sub)
        return (uintptr_t)x->sub < (uintptr_t)y->sub ? -1 : 1;
    return (int)x->qos - (int)y->qos;
}

static void test_random_against_scan(void)
{
    static struct shadow sh[3000];
    hub_subtree_t *t = hub_subtree_new();
    size_t nsh = 0, live = 0, mismatches = 0;
    srand(12345);
    for (int op = 0; op < 6000; op++) {
        if (rand() % 3 != 0 || live == 0) {
            struct shadow s;
            int rc, existing = -1, hole = -1;
            random_filter(s.filter, 0);
            if (!hub_topic_filter_valid(S(s.filter)))
                continue;
            s.sub = rand() % 16;
            s.qos = (uint8_t)(rand() % 3);
            s.live = 1;
            for (size_t i = 0; i < nsh; i++) {
                if (sh[i].live && sh[i].sub == s.sub && !strcmp(sh[i].filter, s.filter))
                    existing = (int)i;
                if (!sh[i].live && hole < 0)
                    hole = (int)i;
            }
            if (existing < 0 && hole < 0 && nsh == 3000)
                continue;
            rc = hub_subtree_insert(t, S(s.filter), SUB(s.sub), s.qos);
            CHECK_EQ(rc, existing >= 0 ? 1 : 0);
            if (existing >= 0) {
                sh[existing].qos = s.qos;
            } else {
                sh[hole >= 0 ? (size_t)hole : nsh++] = s;
                live++;
            }
        } else {
            size_t i = (size_t)rand() % nsh;
            if (!sh[i].live)
                continue;
            CHECK_EQ(hub_subtree_remove(t, S(sh[i].filter), SUB(sh[i].sub)), 0);
            sh[i].live = 0;
            live--;
        }
        CHECK_EQ(hub_subtree_count(t), live);
        if (op % 50 == 0) {
            for (int k = 0; k < 40; k++) {
                char topic[32];
                struct hits got;
                struct hit want[256];
                size_t nw = 0;
                random_filter(topic, 1);
                if (!hub_topic_name_valid(S(topic)))
                    continue;
                run(t, topic, &got);
                for (size_t i = 0; i < nsh; i++) {
                    if (sh[i].live && hub_topic_match(S(sh[i].filter), S(topic)) && nw < 256) {
                        want[nw].sub = SUB(sh[i].sub);
                        want[nw++].qos = sh[i].qos;
                    }
                }
                if (got.n != nw || got.n > 256) {
                    if (mismatches < 3) {
                        fprintf(stderr, "  topic '%s': tree %zu, scan %zu\n", topic, got.n, nw);
                        for (size_t i = 0; i < nsh; i++)
                            if (sh[i].live && hub_topic_match(S(sh[i].filter), S(topic)))
                                fprintf(stderr, "    %s sub %d\n", sh[i].filter, sh[i].sub);
                    }
                    mismatches++;
                    continue;
                }
                qsort(got.h, got.n, sizeof got.h[0], cmp_hit);
                qsort(want, nw, sizeof want[0], cmp_hit);
                for (size_t i = 0; i < nw; i++) {
                    if (cmp_hit(&got.h[i], &want[i]) != 0) {
                        mismatches++;
                        break;
                    }
                }
            }
        }
    }
    CHECK_EQ(mismatches, 0);
    for (size_t i = 0; i < nsh; i++)
        if (sh[i].live)
            CHECK_EQ(hub_subtree_remove(t, S(sh[i].filter), SUB(sh[i].sub)), 0);
    CHECK_EQ(hub_subtree_count(t), 0);
    hub_subtree_free(t);
}

static void count_cb(void *sub, uint8_t qos, void *ctx)
{
    (*(size_t *)ctx)++;
}

static void test_scale_100k(void)
{
    enum { N = 100000 };
    hub_subtree_t *t = hub_subtree_new();
    int *devs = calloc(N, sizeof *devs);
    char f[64];
    size_t calls = 0;
    clock_t c0 = clock();
    for (int i = 0; i < N; i++) {
        snprintf(f, sizeof f, "devices/dev%d/commands/#", i);
        CHECK_EQ(hub_subtree_insert(t, S(f), &devs[i], 1), 0);
    }
    CHECK_EQ(hub_subtree_insert(t, S("devices/+/telemetry"), SUB(0), 0), 0);
    CHECK_EQ(hub_subtree_count(t), N + 1);
    for (int i = 0; i < N; i += 7) {
        snprintf(f, sizeof f, "devices/dev%d/commands/reboot", i);
        CHECK_EQ(hub_subtree_match(t, S(f), count_cb, &calls), 1);
        snprintf(f, sizeof f, "devices/dev%d/telemetry", i);
        CHECK_EQ(hub_subtree_match(t, S(f), count_cb, &calls), 1);
    }
    for (int i = 0; i < N; i++) {
        snprintf(f, sizeof f, "devices/dev%d/commands/#", i);
        CHECK_EQ(hub_subtree_remove(t, S(f), &devs[i]), 0);
    }
    CHECK_EQ(hub_subtree_count(t), 1);
    CHECK_EQ(hub_subtree_match(t, S("devices/dev5/commands/x"), count_cb, &calls), 0);
    fprintf(stderr, "  100k insert/match/remove: %.0f ms\n",
            (double)(clock() - c0) * 1000 / CLOCKS_PER_SEC);
    hub_subtree_free(t);
    free(devs);
}

int main(void)
{
    RUN(test_match_rules);
    RUN(test_replace_remove);
    RUN(test_limits);
    RUN(test_random_against_scan);
    RUN(test_scale_100k);
    HARNESS_EXIT();
}
