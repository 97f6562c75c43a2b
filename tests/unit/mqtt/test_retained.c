/* Unit tests for mqtt/retained.c: one message per topic held by reference, replacement,
 * deletion by an empty payload (with the rest of a probe cluster still found), growth. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/msg.h"
#include "mqtt/retained.h"
#include "tests/unit/harness.h"

static struct hub_msg *msg(const char *topic, const char *payload)
{
    return hub_msg_new(topic, strlen(topic), payload, strlen(payload), 1, 1);
}

struct seen {
    size_t n;
    const struct hub_msg *last;
    char topic[32];
};

static void seen_cb(const struct hub_msg *m, void *ctx)
{
    struct seen *s = ctx;
    if (s->topic[0] == 0 ||
        (m->topic_len == strlen(s->topic) && memcmp(m->topic, s->topic, m->topic_len) == 0)) {
        s->n++;
        s->last = m;
    }
}

/* The message retained for topic (NULL when none), found through hub_retained_each. */
static const struct hub_msg *lookup(const struct hub_retained *r, const char *topic)
{
    struct seen s = {0};
    snprintf(s.topic, sizeof s.topic, "%s", topic);
    hub_retained_each(r, seen_cb, &s);
    return s.n == 1 ? s.last : NULL;
}

static void test_set_replace_delete(void)
{
    struct hub_retained r = {0};
    struct hub_msg *a = msg("a/b", "1"), *a2 = msg("a/b", "2"), *c = msg("c", "3");
    struct hub_msg *del = msg("a/b", "");
    CHECK_EQ(hub_retained_set(&r, a), 0);
    CHECK_EQ(a->refs, 2); /* a reference, not a copy */
    CHECK(lookup(&r, "a/b") == a);
    CHECK_EQ(hub_retained_set(&r, c), 0);
    CHECK_EQ(r.count, 2);
    CHECK_EQ(hub_retained_set(&r, a2), 0); /* replaces a */
    CHECK_EQ(r.count, 2);
    CHECK_EQ(a->refs, 1);
    CHECK(lookup(&r, "a/b") == a2);
    CHECK_EQ(hub_retained_set(&r, del), 0); /* an empty payload deletes */
    CHECK_EQ(r.count, 1);
    CHECK_EQ(a2->refs, 1);
    CHECK_EQ(del->refs, 1); /* not stored */
    CHECK(lookup(&r, "a/b") == NULL);
    CHECK(lookup(&r, "c") == c);
    CHECK_EQ(hub_retained_set(&r, del), 0); /* deleting what is not there */
    CHECK_EQ(r.count, 1);
    hub_retained_free(&r);
    CHECK_EQ(r.count, 0);
    CHECK_EQ(c->refs, 1);
    hub_msg_unref(a);
    hub_msg_unref(a2);
    hub_msg_unref(c);
    hub_msg_unref(del);
    /* Deleting from an empty (never used) store. */
    struct hub_retained e = {0};
    struct hub_msg *d = msg("x", "");
    CHECK_EQ(hub_retained_set(&e, d), 0);
    CHECK_EQ(e.count, 0);
    hub_retained_free(&e);
    hub_msg_unref(d);
}

/* Many topics: the table grows, deletions in the middle of probe clusters keep every other
 * topic reachable. */
static void test_grow_and_clusters(void)
{
    enum { N = 1000 };
    struct hub_retained r = {0};
    struct hub_msg *m[N];
    char t[32];
    for (int i = 0; i < N; i++) {
        snprintf(t, sizeof t, "t/%d", i);
        m[i] = msg(t, "x");
        CHECK_EQ(hub_retained_set(&r, m[i]), 0);
    }
    CHECK_EQ(r.count, N);
    CHECK(r.cap >= 2 * N);
    for (int i = 0; i < N; i += 3) {
        snprintf(t, sizeof t, "t/%d", i);
        struct hub_msg *del = msg(t, "");
        CHECK_EQ(hub_retained_set(&r, del), 0);
        hub_msg_unref(del);
    }
    size_t left = 0;
    for (int i = 0; i < N; i++) {
        snprintf(t, sizeof t, "t/%d", i);
        const struct hub_msg *got = lookup(&r, t);
        CHECK(got == (i % 3 == 0 ? NULL : m[i]));
        CHECK_EQ(m[i]->refs, i % 3 == 0 ? 1u : 2u);
        left += got != NULL;
    }
    CHECK_EQ(r.count, left);
    hub_retained_free(&r);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(m[i]->refs, 1);
        hub_msg_unref(m[i]);
    }
}

int main(void)
{
    RUN(test_set_replace_delete);
    RUN(test_grow_and_clusters);
    HARNESS_EXIT();
}
