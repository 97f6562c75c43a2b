/* Files replaced atomically: the data goes to a new temporary file next to the target
 * (O_EXCL, final mode, fsync), which is renamed over it, then the directory is fsynced, so
 * a reader or a power cut sees the old file or the new one, never a partial one. */
#ifndef HUB_UTIL_FILE_H
#define HUB_UTIL_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "util/buf.h"

/* Writes len bytes to path atomically with mode. Returns 0, HUB_ENOMEM, or HUB_EIO with
 * *what naming the failing call ("create a temporary file for", "write", "fsync", "rename
 * to" ...) and errno kept from it; the caller reports it. */
int hub_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                          const char **what);
/* The two halves of hub_file_write_atomic, to put several files in place only once all are
 * written: stage writes and fsyncs path.tmp.XXXXXX and sets *tmp (owned by the caller) to its
 * name, or frees it and removes the file on failure; commit renames it over path and fsyncs
 * the directory, discard removes it; both free tmp. Same returns as hub_file_write_atomic. */
int hub_file_stage(const char *path, const void *data, size_t len, mode_t mode, hub_buf_t *tmp,
                   const char **what);
int hub_file_commit(hub_buf_t *tmp, const char *path, const char **what);
void hub_file_discard(hub_buf_t *tmp);
/* fsyncs the directory that holds path (the renames in it become durable). Returns 0, or -1
 * with errno set. */
int hub_file_sync_dir(const char *path);

#endif
