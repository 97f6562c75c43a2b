/* Unit tests for mqtt/topic.c: validity, the spec's matching examples, the '$' rule,
 * inclusion and overlap (also checked exhaustively against matching). */
#include <stdlib.h>
#include <string.h>

#include "mqtt/topic.h"
#include "tests/unit/harness.h"

#define S(x) x, strlen(x)

static int match(const char *f, const char *t)
{
    return hub_topic_match(f, strlen(f), t, strlen(t));
}

static int covers(const char *o, const char *i)
{
    return hub_topic_covers(o, strlen(o), i, strlen(i));
}

static int overlap(const char *a, const char *b)
{
    return hub_topic_overlap(a, strlen(a), b, strlen(b));
}

static void test_name_valid(void)
{
    static const char *const good[] = {
        "a", "/", "a/b", "$SYS/x", " ", "a//b", "caf\xC3\xA9", "devices/d1/telemetry", "a/$b"};
    static const char *const bad[] = {"", "a+", "+", "#", "a/#", "a/b+c", "\xC3", "\xED\xA0\x80"};
    char *big = malloc(65536);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK_EQ(hub_topic_name_valid(S(good[i])), 1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ(hub_topic_name_valid(S(bad[i])), 0);
    CHECK_EQ(hub_topic_name_valid("a\0b", 3), 0);
    memset(big, 'x', 65536);
    CHECK_EQ(hub_topic_name_valid(big, 65535), 1);
    CHECK_EQ(hub_topic_name_valid(big, 65536), 0);
    free(big);
}

static void test_filter_valid(void)
{
    static const char *const good[] = {"#",  "+",      "a/#", "+/+",   "/+",    "a/+/b", "+/#",
                                       "//", "$SYS/#", "/",   "a/b/c", "+/+/#", "a//#"};
    static const char *const bad[] = {"",   "a#", "a/#/b", "a+", "+a",         "##",
                                      "#/", "++", "a/b#",  "#+", "a/\xC0\x80", "+/a+"};
    char *big = malloc(65536);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK_EQ(hub_topic_filter_valid(S(good[i])), 1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ(hub_topic_filter_valid(S(bad[i])), 0);
    CHECK_EQ(hub_topic_filter_valid("a/\0", 3), 0);
    memset(big, '+', 65536);
    CHECK_EQ(hub_topic_filter_valid(big, 65535), 0);
    for (size_t i = 1; i < 65535; i += 2)
        big[i] = '/';
    CHECK_EQ(hub_topic_filter_valid(big, 65535), 1);
    CHECK_EQ(hub_topic_filter_valid(big, 65536), 0);
    free(big);
}

/* Examples from MQTT 3.1.1 §4.7.1 and §4.7.2. */
static void test_match_spec_examples(void)
{
    CHECK(match("sport/tennis/player1/#", "sport/tennis/player1"));
    CHECK(match("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
    CHECK(match("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"));
    CHECK(match("sport/#", "sport"));
    CHECK(match("#", "sport/tennis"));
    CHECK(match("sport/tennis/+", "sport/tennis/player1"));
    CHECK(match("sport/tennis/+", "sport/tennis/player2"));
    CHECK(!match("sport/tennis/+", "sport/tennis/player1/ranking"));
    CHECK(!match("sport/+", "sport"));
    CHECK(match("sport/+", "sport/"));
    CHECK(match("+/+", "/finance"));
    CHECK(match("/+", "/finance"));
    CHECK(!match("+", "/finance"));
    CHECK(match("+/tennis/#", "sport/tennis/x"));
    CHECK(!match("sport/tennis#", "sport/tennis"));
    CHECK(!match("ACCOUNTS", "Accounts"));
    CHECK(match("/", "/"));
    CHECK(!match("a", "/a"));
    CHECK(!match("a", "a/"));
    CHECK(match("a/+/c", "a//c"));
    CHECK(match("#", "/"));
    CHECK(match("+/+/+", "//"));
    CHECK(!match("a/b", "a/b/c"));
    CHECK(!match("a/b/c", "a/b"));
    CHECK(match("a/+/#", "a/b"));
    CHECK(!match("a/+/#", "a"));
    CHECK(match("+/#", "a"));
}

static void test_match_dollar(void)
{
    CHECK(!match("#", "$SYS/broker/uptime"));
    CHECK(!match("+/monitor/Clients", "$SYS/monitor/Clients"));
    CHECK(!match("+", "$SYS"));
    CHECK(!match("+/#", "$SYS"));
    CHECK(match("$SYS/#", "$SYS/monitor/Clients"));
    CHECK(match("$SYS/#", "$SYS"));
    CHECK(match("$SYS/monitor/+", "$SYS/monitor/Clients"));
    CHECK(match("$", "$"));
    CHECK(!match("#", "$"));
    CHECK(match("a/+", "a/$x"));
    CHECK(match("a/#", "a/$x/y"));
    CHECK(match("#", "a$"));
    CHECK(match("+", "a$"));
}

static void test_covers(void)
{
    CHECK(covers("devices/+/telemetry", "devices/+/telemetry"));
    CHECK(covers("devices/+/telemetry", "devices/abc/telemetry"));
    CHECK(!covers("devices/+/telemetry", "devices/#"));
    CHECK(!covers("devices/+/telemetry", "devices/+/+"));
    CHECK(covers("devices/#", "devices/+/x"));
    CHECK(covers("devices/#", "devices"));
    CHECK(covers("devices/#", "devices/#"));
    CHECK(covers("devices/#", "devices/a/#"));
    CHECK(!covers("devices/a/#", "devices/#"));
    CHECK(!covers("devices/+/#", "devices"));
    CHECK(covers("devices/+/#", "devices/x"));
    CHECK(covers("#", "a/#"));
    CHECK(covers("#", "+/x"));
    CHECK(covers("#", "#"));
    CHECK(!covers("#", "$SYS/#"));
    CHECK(!covers("+/#", "$SYS/x"));
    CHECK(!covers("+", "$SYS"));
    CHECK(covers("$SYS/#", "$SYS/+"));
    CHECK(!covers("$SYS/#", "#"));
    CHECK(!covers("$SYS/#", "+/x"));
    CHECK(!covers("a/+", "a/#"));
    CHECK(!covers("a/+", "a"));
    CHECK(!covers("a/+", "a/b/c"));
    CHECK(covers("a/+", "a/+"));
    CHECK(covers("a/+", "a/"));
    CHECK(covers("a/b", "a/b"));
    CHECK(!covers("a/b", "a/+"));
    CHECK(!covers("+", "#"));
    CHECK(covers("+/+", "a/+"));
}

static void test_overlap(void)
{
    CHECK(overlap("devices/secret/#", "devices/+/telemetry"));
    CHECK(!overlap("devices/+/admin", "devices/+/x"));
    CHECK(overlap("devices/+/admin", "devices/a/#"));
    CHECK(overlap("a/#", "a"));
    CHECK(overlap("a", "a/#"));
    CHECK(!overlap("a/+", "a"));
    CHECK(overlap("#", "#"));
    CHECK(overlap("+", "#"));
    CHECK(!overlap("#", "$SYS/#"));
    CHECK(!overlap("$SYS/#", "+/x"));
    CHECK(overlap("$SYS/#", "$SYS/+"));
    CHECK(!overlap("a/b", "a/c"));
    CHECK(!overlap("a/b/c", "a/b"));
    CHECK(overlap("+/b/#", "a/+/c"));
}

/* covers/overlap must agree with match over every topic of a small universe: filters of up
 * to 3 levels over {"", a, $a, +, #}, topics of up to 4 levels over {"", a, c, $a}. */
static void build(const char *const *alpha, size_t na, int depth, int filters, char (*out)[16],
                  size_t *n)
{
    size_t idx[4];
    for (int d = 1; d <= depth; d++) {
        size_t total = 1;
        for (int k = 0; k < d; k++)
            total *= na;
        for (size_t v = 0; v < total; v++) {
            char s[16] = "";
            size_t x = v;
            for (int k = 0; k < d; k++) {
                idx[k] = x % na;
                x /= na;
                if (k)
                    strcat(s, "/");
                strcat(s, alpha[idx[k]]);
            }
            if (strlen(s) == 0 || (filters && !hub_topic_filter_valid(S(s))) ||
                (!filters && !hub_topic_name_valid(S(s))))
                continue;
            strcpy(out[(*n)++], s);
        }
    }
}

static void test_covers_overlap_exhaustive(void)
{
    static const char *const falpha[] = {"", "a", "$a", "+", "#"};
    static const char *const talpha[] = {"", "a", "c", "$a"};
    static char filters[200][16], topics[400][16];
    static unsigned char m[200][400];
    size_t nf = 0, nt = 0, bad_cov = 0, bad_ovl = 0;
    build(falpha, 5, 3, 1, filters, &nf);
    build(talpha, 4, 4, 0, topics, &nt);
    CHECK(nf > 50 && nf <= 200 && nt > 100 && nt <= 400);
    for (size_t f = 0; f < nf; f++)
        for (size_t t = 0; t < nt; t++)
            m[f][t] = (unsigned char)match(filters[f], topics[t]);
    for (size_t o = 0; o < nf; o++) {
        for (size_t i = 0; i < nf; i++) {
            int cov = 1, ovl = 0;
            for (size_t t = 0; t < nt; t++) {
                if (m[i][t] && !m[o][t])
                    cov = 0;
                if (m[i][t] && m[o][t])
                    ovl = 1;
            }
            if (covers(filters[o], filters[i]) != cov && bad_cov++ < 5)
                fprintf(stderr, "  covers(%s, %s) != %d\n", filters[o], filters[i], cov);
            if (overlap(filters[o], filters[i]) != ovl && bad_ovl++ < 5)
                fprintf(stderr, "  overlap(%s, %s) != %d\n", filters[o], filters[i], ovl);
        }
    }
    CHECK_EQ(bad_cov, 0);
    CHECK_EQ(bad_ovl, 0);
}

int main(void)
{
    RUN(test_name_valid);
    RUN(test_filter_valid);
    RUN(test_match_spec_examples);
    RUN(test_match_dollar);
    RUN(test_covers);
    RUN(test_overlap);
    RUN(test_covers_overlap_exhaustive);
    HARNESS_EXIT();
}
