/* Process-wide logging to stderr: text lines or one JSON object per line. Thread-safe:
 * each record is written with a single write(2). */
#ifndef HUB_UTIL_LOG_H
#define HUB_UTIL_LOG_H

#include <stddef.h>

enum hub_log_level { HUB_LOG_DEBUG, HUB_LOG_INFO, HUB_LOG_WARN, HUB_LOG_ERROR };
enum hub_log_format { HUB_LOG_TEXT, HUB_LOG_JSON };

/* Sets the minimum level and the format; may be called again (SIGHUP). */
void hub_log_setup(enum hub_log_level level, enum hub_log_format format);
/* Parses "debug|info|warn|error" / "text|json"; returns 0 or HUB_EINVAL. */
int hub_log_level_parse(const char *s, enum hub_log_level *out);
int hub_log_format_parse(const char *s, enum hub_log_format *out);
/* Copies s to out (cap bytes, NUL-terminated) with its control characters escaped as the
 * text format writes them: newline, carriage return and tab as \n \r \t, other C0 bytes and
 * DEL as \xHH; a backslash stays as it is. Returns the length written (an escape that does
 * not fit is left out, with the rest of s). */
size_t hub_log_escape(char *out, size_t cap, const char *s);
/* Logs one record; the message must not carry secrets. In the text format its control
 * characters are escaped (hub_log_escape); the JSON format escapes them as JSON does. */
void hub_log(enum hub_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hub_debug(...) hub_log(HUB_LOG_DEBUG, __VA_ARGS__)
#define hub_info(...) hub_log(HUB_LOG_INFO, __VA_ARGS__)
#define hub_warn(...) hub_log(HUB_LOG_WARN, __VA_ARGS__)
#define hub_error(...) hub_log(HUB_LOG_ERROR, __VA_ARGS__)

#endif
