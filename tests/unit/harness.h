/* A minimal test runner: each CHECK failure prints its place; RUN prints one
 * "ok - name" or "not ok - name" line per test, the format deploy/dev.sh counts. */
#ifndef HUB_TEST_HARNESS_H
#define HUB_TEST_HARNESS_H

#include <stdio.h>
#include <string.h>

static int harness_failed_checks;
static int harness_failed_tests;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);  \
            harness_failed_checks++;                                                     \
        }                                                                                \
    } while (0)

#define CHECK_EQ(a, b)                                                                   \
    do {                                                                                 \
        long long ha_ = (long long)(a), hb_ = (long long)(b);                            \
        if (ha_ != hb_) {                                                                \
            fprintf(stderr, "  %s:%d: %s == %s failed (%lld != %lld)\n", __FILE__,      \
                    __LINE__, #a, #b, ha_, hb_);                                         \
            harness_failed_checks++;                                                     \
        }                                                                                \
    } while (0)

#define CHECK_STR(a, b)                                                                  \
    do {                                                                                 \
        const char *ha_ = (a), *hb_ = (b);                                               \
        if (ha_ == NULL || hb_ == NULL || strcmp(ha_, hb_) != 0) {                       \
            fprintf(stderr, "  %s:%d: %s == \"%s\" failed (got \"%s\")\n", __FILE__,    \
                    __LINE__, #a, hb_ ? hb_ : "(null)", ha_ ? ha_ : "(null)");          \
            harness_failed_checks++;                                                     \
        }                                                                                \
    } while (0)

#define RUN(fn)                                                                          \
    do {                                                                                 \
        int before_ = harness_failed_checks;                                             \
        fn();                                                                            \
        if (harness_failed_checks == before_) {                                          \
            printf("ok - %s\n", #fn);                                                    \
        } else {                                                                         \
            printf("not ok - %s\n", #fn);                                                \
            harness_failed_tests++;                                                      \
        }                                                                                \
        fflush(stdout);                                                                  \
    } while (0)

#define HARNESS_EXIT() return harness_failed_tests == 0 ? 0 : 1

#endif
