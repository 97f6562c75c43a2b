#include "util/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util/error.h"

static _Atomic int log_level = HUB_LOG_INFO;
static _Atomic int log_format = HUB_LOG_TEXT;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void hub_log_setup(enum hub_log_level level, enum hub_log_format format)
{
    atomic_store(&log_level, (int)level);
    atomic_store(&log_format, (int)format);
}

int hub_log_level_parse(const char *s, enum hub_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum hub_log_level)i;
            return 0;
        }
    }
    return HUB_EINVAL;
}

int hub_log_format_parse(const char *s, enum hub_log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = HUB_LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = HUB_LOG_JSON;
    else
        return HUB_EINVAL;
    return 0;
}

/* Appends s to out as the inside of a JSON string; returns the new length. */
static size_t json_escape(char *out, size_t pos, size_t cap, const char *s)
{
    for (; *s && pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[pos++] = '\\';
            out[pos++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            pos += (size_t)snprintf(out + pos, cap - pos, "\\u%04x", c);
        } else {
            out[pos++] = (char)c;
        }
    }
    return pos;
}

/* Appends s to out with its control characters escaped (see hub_log_escape); returns the new
 * length. An escape that does not fit whole is left out, with the rest of s. */
static size_t text_escape(char *out, size_t pos, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[4];
        size_t n = 0;
        if (c == '\n' || c == '\r' || c == '\t') {
            esc[n++] = '\\';
            esc[n++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        } else if (c < 0x20 || c == 0x7f) {
            esc[n++] = '\\';
            esc[n++] = 'x';
            esc[n++] = hex[c >> 4];
            esc[n++] = hex[c & 15];
        } else {
            esc[n++] = (char)c;
        }
        if (pos + n >= cap)
            break;
        memcpy(out + pos, esc, n);
        pos += n;
    }
    return pos;
}

size_t hub_log_escape(char *out, size_t cap, const char *s)
{
    if (cap == 0)
        return 0;
    size_t len = text_escape(out, 0, cap, s);
    out[len] = 0;
    return len;
}

void hub_log(enum hub_log_level level, const char *fmt, ...)
{
    if ((int)level < atomic_load(&log_level))
        return;
    /* Room for a message whose every byte is escaped to 4 (text) or 6 (JSON) characters is
     * not kept: such a line is cut, never split. */
    char msg[2048], line[4608], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03dZ", (int)(tv.tv_usec / 1000));

    size_t len;
    if (atomic_load(&log_format) == HUB_LOG_JSON) {
        len = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
                               level_names[level]);
        len = json_escape(line, len, sizeof line - 3, msg);
        line[len++] = '"';
        line[len++] = '}';
    } else {
        /* Client-supplied strings (user names, client ids, topics, paths) reach the message:
         * escaped, a newline in one cannot start a forged line. */
        int w = snprintf(line, sizeof line, "%s %-5s ", ts, level_names[level]);
        len = w < 0 ? 0 : (size_t)w;
        len = text_escape(line, len, sizeof line - 1, msg);
    }
    line[len++] = '\n';
    ssize_t r = write(STDERR_FILENO, line, len);
    (void)r;
}
