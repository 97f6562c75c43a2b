/* util/log.c: control characters from clients are escaped in both formats, so a value with a
 * newline cannot start a forged line (issue 19, "logs that cannot be forged"). */
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/unit/harness.h"

static void test_escape(void)
{
    char out[64];
    CHECK_EQ(hub_log_escape(out, sizeof out, "plain text: 100% ok"), 19);
    CHECK_STR(out, "plain text: 100% ok");
    hub_log_escape(out, sizeof out, "a\nb\rc\td");
    CHECK_STR(out, "a\\nb\\rc\\td");
    hub_log_escape(out, sizeof out, "\x01\x1b[31m\x7f");
    CHECK_STR(out, "\\x01\\x1b[31m\\x7f");
    hub_log_escape(out, sizeof out, "back\\slash caf\xc3\xa9");
    CHECK_STR(out, "back\\slash caf\xc3\xa9"); /* UTF-8 and backslashes as they are */
    /* An escape that does not fit is left out whole. */
    CHECK_EQ(hub_log_escape(out, 4, "ab\ncd"), 2);
    CHECK_STR(out, "ab");
    CHECK_EQ(hub_log_escape(out, 1, "x"), 0);
    CHECK_STR(out, "");
}

/* Logs one record with stderr sent to a file; returns the file's contents (malloc'd). */
static char *logged(enum hub_log_format format, const char *user)
{
    char path[] = "/tmp/test_log.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    unlink(path);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    hub_log_setup(HUB_LOG_INFO, format);
    hub_warn("POST /v1/tokens: wrong credentials for \"%.64s\" from %s", user, "127.0.0.1");
    dup2(saved, STDERR_FILENO);
    close(saved);
    static char buf[8192];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    buf[n < 0 ? 0 : n] = 0;
    return buf;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_no_forged_line(void)
{
    const char *user = "x\n2026-12-07T19:00:00.000Z error forged admin login\r\x7f";
    char *text = logged(HUB_LOG_TEXT, user);
    CHECK(text != NULL);
    CHECK_EQ(count_lines(text), 1);
    CHECK(strstr(text, "\"x\\n2026-12-07T19:00:00.000Z error forged admin login\\r\\x7f\"") !=
          NULL);
    char *json = logged(HUB_LOG_JSON, user);
    CHECK_EQ(count_lines(json), 1);
    CHECK(strstr(json, "x\\u000a2026-12-07T19:00:00.000Z error forged admin login\\u000d"
                       "\\u007f") != NULL);
    /* The longest message stays one line, whatever it holds. */
    char big[3000];
    memset(big, '\n', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CHECK_EQ(count_lines(logged(HUB_LOG_TEXT, big)), 1);
    CHECK_EQ(count_lines(logged(HUB_LOG_JSON, big)), 1);
}

int main(void)
{
    RUN(test_escape);
    RUN(test_no_forged_line);
    HARNESS_EXIT();
}
