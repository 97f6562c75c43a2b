/* Unit tests for mqtt/filterset.c and the session's filters (mqtt/session.c): find, add,
 * remove with the last filter moved into the hole, against a plain scan over 20,000
 * filters; duplicates; prefixes of one another; 40,000 adds in well under the time a scan
 * per add would take. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mqtt/filterset.h"
#include "mqtt/session.h"
#include "tests/unit/harness.h"

#define N 20000

static long scan(char *const *v, size_t n, const char *f)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], f) == 0)
            return (long)i;
    return -1;
}

/* The set by itself over an array managed here as session.c does. */
static void test_set_against_scan(void)
{
    struct hub_filterset s = {0};
    char **v = calloc(N, sizeof *v), buf[64];
    size_t n = 0;
    CHECK_EQ(hub_filterset_find(&s, v, "x", 1), -1); /* empty */
    for (size_t i = 0; i < N; i++) {
        snprintf(buf, sizeof buf, "devices/d/s/%zu/x", i);
        v[n] = strdup(buf);
        CHECK_EQ(hub_filterset_add(&s, v, n), 0);
        n++;
    }
    CHECK_EQ(s.count, N);
    CHECK_EQ(hub_filterset_find(&s, v, "devices/d/s/123/x", 17), 123);
    CHECK_EQ(hub_filterset_find(&s, v, "devices/d/s/123/", 16), -1); /* a prefix */
    CHECK_EQ(hub_filterset_find(&s, v, "devices/d/s/123/xy", 18), -1); /* longer */
    /* Remove every third, moving the last one into the hole. */
    for (size_t i = 0; i < N; i += 3) {
        snprintf(buf, sizeof buf, "devices/d/s/%zu/x", i);
        long at = hub_filterset_find(&s, v, buf, strlen(buf));
        CHECK(at >= 0);
        if (at < 0)
            continue;
        hub_filterset_del(&s, v, (size_t)at);
        free(v[at]);
        if ((size_t)at != --n) {
            v[at] = v[n];
            hub_filterset_moved(&s, v, n, (size_t)at);
        }
    }
    CHECK_EQ(s.count, n);
    int bad = 0;
    for (size_t i = 0; i < N; i++) {
        snprintf(buf, sizeof buf, "devices/d/s/%zu/x", i);
        long at = hub_filterset_find(&s, v, buf, strlen(buf));
        bad += (i % 3 == 0) != (at < 0) || (at >= 0 && strcmp(v[at], buf) != 0);
        if (i % 97 == 0) /* a plain scan agrees (on a sample: it is quadratic) */
            bad += at != scan(v, n, buf);
    }
    CHECK_EQ(bad, 0);
    while (n > 0) {
        hub_filterset_del(&s, v, n - 1);
        free(v[--n]);
    }
    CHECK_EQ(s.count, 0);
    CHECK(s.slots == NULL); /* emptied: freed */
    hub_filterset_free(&s);
    free(v);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Through the session: duplicates are one filter; removal keeps the rest findable; 40,000
 * adds take milliseconds (a scan per add made them quadratic: seconds). */
static void test_session_filters(void)
{
    struct hub_session_table t;
    CHECK_EQ(hub_session_table_init(&t), 0);
    struct hub_session *s = hub_session_create(&t, "d:dev");
    char buf[64];
    double lap[4];
    for (int k = 0; k < 4; k++) {
        double t0 = now();
        for (size_t i = k * 10000; i < (size_t)(k + 1) * 10000; i++) {
            int n = snprintf(buf, sizeof buf, "devices/dev/s/%zu/#", i);
            CHECK_EQ(hub_session_add_filter(s, buf, (size_t)n), 0);
        }
        lap[k] = now() - t0;
    }
    fprintf(stderr, "  4 x 10,000 adds: %.1f %.1f %.1f %.1f ms\n", lap[0] * 1e3, lap[1] * 1e3,
            lap[2] * 1e3, lap[3] * 1e3);
    /* A scan per add (quadratic) takes seconds for the last 10,000 alone; the set a few ms
     * each on a quiet host. Generous for a loaded one, where a lap may catch a rehash and
     * a descheduling: the four together under 2 s. */
    CHECK(lap[0] + lap[1] + lap[2] + lap[3] < 2.0);
    CHECK_EQ(s->nsubs, 40000);
    CHECK_EQ(hub_session_add_filter(s, "devices/dev/s/7/#", 17), 0); /* a duplicate */
    CHECK_EQ(s->nsubs, 40000);
    for (size_t i = 0; i < 40000; i += 2) {
        int n = snprintf(buf, sizeof buf, "devices/dev/s/%zu/#", i);
        hub_session_remove_filter(s, buf, (size_t)n);
    }
    hub_session_remove_filter(s, "devices/dev/s/0/#", 17); /* gone already */
    hub_session_remove_filter(s, "nothing", 7);
    CHECK_EQ(s->nsubs, 20000);
    int bad = 0;
    for (size_t i = 0; i < s->nsubs; i++) {
        unsigned long k = strtoul(s->filters[i] + 14, NULL, 10);
        bad += k % 2 == 0;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(hub_session_has_filter(s, "devices/dev/s/39999/#", 21), 1);
    CHECK_EQ(hub_session_has_filter(s, "devices/dev/s/39998/#", 21), 0); /* removed */
    CHECK_EQ(hub_session_has_filter(s, "devices/dev/s/39999/", 20), 0);  /* a prefix */
    /* connect.c's prune: removing filters[i] by its own string while walking. */
    for (size_t i = 0; i < s->nsubs;) {
        if (strtoul(s->filters[i] + 14, NULL, 10) % 4 == 1)
            hub_session_remove_filter(s, s->filters[i], strlen(s->filters[i]));
        else
            i++;
    }
    CHECK_EQ(s->nsubs, 10000);
    CHECK_EQ(hub_filterset_find(&s->fset, s->filters, "devices/dev/s/3/#", 17) >= 0, 1);
    CHECK_EQ(hub_filterset_find(&s->fset, s->filters, "devices/dev/s/5/#", 17), -1);
    hub_session_table_free(&t);
}

int main(void)
{
    RUN(test_set_against_scan);
    RUN(test_session_filters);
    HARNESS_EXIT();
}
