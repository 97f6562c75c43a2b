/* What iothubctl prints: aligned tables and `label: value` views of the server's JSON for
 * people, the JSON as received for scripts (--json), and files written atomically. */
#ifndef HUB_CLI_OUTPUT_H
#define HUB_CLI_OUTPUT_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "util/buf.h"

/* A column of a table or a line of a field view: its title and the JSON key it shows. */
struct hub_field {
    const char *label;
    const char *key;
};

/* Prints the objects of rows as a table on stdout: a header line, then one line per object,
 * columns padded to their widest cell. Strings are shown with control characters replaced by
 * '?', null as "-", booleans as yes/no, string arrays joined by ", ". */
void hub_output_table(json_t *rows, const struct hub_field *cols, size_t n);
/* Prints the fields of obj present in f as aligned "label: value" lines on stdout. */
void hub_output_fields(json_t *obj, const struct hub_field *f, size_t n);
/* Prints a body as received from the server, ending with a newline. */
void hub_output_json(const hub_buf_t *body);
/* Writes len bytes to path atomically (hub_file_write_atomic: a new temporary file in the same
 * directory, O_EXCL, mode, fsync, renamed over path, directory fsynced), so readers never see
 * a partial file. Returns 0, or HUB_E* after printing the failing call. */
int hub_output_file(const char *path, const void *data, size_t len, mode_t mode);
/* The two halves of hub_output_file, to put several files in place only once all are written:
 * stage writes the temporary file and sets *tmp to its name (freed on failure); commit renames
 * it to path, discard removes it; both free tmp. Return 0 or HUB_E* after printing why. */
int hub_output_stage(const char *path, const void *data, size_t len, mode_t mode, hub_buf_t *tmp);
int hub_output_commit(hub_buf_t *tmp, const char *path);
void hub_output_discard(hub_buf_t *tmp);

#endif
