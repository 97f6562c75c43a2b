#include "cli/output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/file.h"
#include "util/secure.h"

/* The text of a JSON value as shown to people; returns a new string (caller frees). */
static char *cell_text(json_t *v)
{
    hub_buf_t b = HUB_BUF_INIT;
    int rc = 0;
    if (v == NULL || json_is_null(v)) {
        rc = hub_buf_puts(&b, "-");
    } else if (json_is_string(v)) {
        rc = hub_buf_append(&b, json_string_value(v), json_string_length(v));
    } else if (json_is_boolean(v)) {
        rc = hub_buf_puts(&b, json_is_true(v) ? "yes" : "no");
    } else if (json_is_integer(v)) {
        rc = hub_buf_printf(&b, "%lld", (long long)json_integer_value(v));
    } else if (json_is_array(v) && json_array_size(v) == 0) {
        rc = hub_buf_puts(&b, "-");
    } else {
        size_t i;
        json_t *e;
        int strings = json_is_array(v);
        json_array_foreach(v, i, e) strings = strings && json_is_string(e);
        if (strings) {
            json_array_foreach(v, i, e)
            {
                if (rc == 0 && i > 0)
                    rc = hub_buf_puts(&b, ", ");
                if (rc == 0)
                    rc = hub_buf_append(&b, json_string_value(e), json_string_length(e));
            }
        } else {
            char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            rc = t ? hub_buf_puts(&b, t) : HUB_ENOMEM;
            free(t);
        }
    }
    if (rc != 0 || b.data == NULL) {
        hub_buf_free(&b);
        return strdup("?");
    }
    /* Server data goes to a terminal: no escape sequences, no line breaks. */
    for (size_t i = 0; i < b.len; i++)
        if (b.data[i] < 0x20 || b.data[i] == 0x7f)
            b.data[i] = '?';
    return (char *)b.data;
}

/* Display width of UTF-8 text: one column per code point. */
static size_t width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static void pad(size_t n)
{
    while (n-- > 0)
        putchar(' ');
}

void hub_output_table(json_t *rows, const struct hub_field *cols, size_t n)
{
    size_t nrows = json_array_size(rows);
    size_t w[16] = {0};
    char **cells = calloc(nrows * n + 1, sizeof *cells);
    if (cells == NULL || n > 16) {
        free(cells);
        fprintf(stderr, "error: out of memory\n");
        return;
    }
    for (size_t c = 0; c < n; c++)
        w[c] = width(cols[c].label);
    for (size_t r = 0; r < nrows; r++) {
        for (size_t c = 0; c < n; c++) {
            char *t = cell_text(json_object_get(json_array_get(rows, r), cols[c].key));
            cells[r * n + c] = t;
            if (t != NULL && width(t) > w[c])
                w[c] = width(t);
        }
    }
    for (size_t c = 0; c < n; c++) {
        fputs(cols[c].label, stdout);
        if (c + 1 < n)
            pad(w[c] - width(cols[c].label) + 2);
    }
    putchar('\n');
    for (size_t r = 0; r < nrows; r++) {
        for (size_t c = 0; c < n; c++) {
            const char *t = cells[r * n + c] ? cells[r * n + c] : "?";
            fputs(t, stdout);
            if (c + 1 < n)
                pad(w[c] - width(t) + 2);
        }
        putchar('\n');
    }
    for (size_t i = 0; i < nrows * n; i++)
        free(cells[i]);
    free(cells);
}

void hub_output_fields(json_t *obj, const struct hub_field *f, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (json_object_get(obj, f[i].key) != NULL && width(f[i].label) > w)
            w = width(f[i].label);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(obj, f[i].key);
        if (v == NULL)
            continue;
        char *t = cell_text(v);
        printf("%s:", f[i].label);
        pad(w - width(f[i].label) + 1);
        puts(t ? t : "?");
        if (t != NULL) {
            hub_wipe(t, strlen(t)); /* may be a secret shown once */
            free(t);
        }
    }
}

void hub_output_json(const hub_buf_t *body)
{
    if (body->len > 0)
        fwrite(body->data, 1, body->len, stdout);
    if (body->len == 0 || body->data[body->len - 1] != '\n')
        putchar('\n');
}

/* Prints why a hub_file_* call failed, as iothubctl reports errors. */
static int report(int rc, const char *what, const char *path)
{
    if (rc == HUB_ENOMEM)
        fprintf(stderr, "error: out of memory\n");
    else if (rc != 0)
        fprintf(stderr, "error: cannot %s %s: %s\n", what, path, strerror(errno));
    return rc;
}

int hub_output_stage(const char *path, const void *data, size_t len, mode_t mode, hub_buf_t *tmp)
{
    const char *what = "";
    return report(hub_file_stage(path, data, len, mode, tmp, &what), what, path);
}

int hub_output_commit(hub_buf_t *tmp, const char *path)
{
    const char *what = "";
    return report(hub_file_commit(tmp, path, &what), what, path);
}

void hub_output_discard(hub_buf_t *tmp)
{
    hub_file_discard(tmp);
}

int hub_output_file(const char *path, const void *data, size_t len, mode_t mode)
{
    hub_buf_t tmp = HUB_BUF_INIT;
    int rc = hub_output_stage(path, data, len, mode, &tmp);
    return rc != 0 ? rc : hub_output_commit(&tmp, path);
}
