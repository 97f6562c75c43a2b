/* Atomic file replacement for the client programs (iothubctl, iothub-device). */
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/log.h"

int hub_file_sync_dir(const char *path)
{
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        slash[1] = 0;
    else
        *slash = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int hub_file_stage(const char *path, const void *data, size_t len, mode_t mode, hub_buf_t *tmp,
                   const char **what)
{
    int fd = -1, rc = HUB_EIO;
    *what = "create a temporary file for";
    if (hub_buf_printf(tmp, "%s.tmp.XXXXXX", path) != 0) {
        *what = "allocate a temporary name for";
        errno = ENOMEM;
        return HUB_ENOMEM;
    }
    fd = mkostemp((char *)tmp->data, O_CLOEXEC); /* O_CREAT | O_EXCL, mode 0600 */
    if (fd < 0)
        goto out;
    *what = "chmod";
    if (fchmod(fd, mode) != 0)
        goto out;
    *what = "write";
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, (const char *)data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w == 0)
            errno = EIO;
        if (w <= 0)
            goto out;
        off += (size_t)w;
    }
    *what = "fsync";
    if (fsync(fd) != 0)
        goto out;
    *what = "close";
    int closed = close(fd);
    fd = -1;
    if (closed == 0)
        rc = 0;
out:
    if (rc != 0) {
        int saved = errno;
        if (fd >= 0)
            close(fd);
        if (fd >= 0 || strcmp(*what, "close") == 0)
            unlink((char *)tmp->data);
        hub_buf_free(tmp);
        errno = saved;
    }
    return rc;
}

int hub_file_commit(hub_buf_t *tmp, const char *path, const char **what)
{
    int rc = 0;
    if (rename((char *)tmp->data, path) != 0) {
        int saved = errno;
        *what = "rename a temporary file to";
        unlink((char *)tmp->data);
        errno = saved;
        rc = HUB_EIO;
    } else if (hub_file_sync_dir(path) != 0) {
        /* The file is in place; only its durability across a power cut is in doubt. */
        hub_warn("fsync of the directory of %s failed: %s", path, strerror(errno));
    }
    hub_buf_free(tmp);
    return rc;
}

void hub_file_discard(hub_buf_t *tmp)
{
    if (tmp->data != NULL)
        unlink((char *)tmp->data);
    hub_buf_free(tmp);
}

int hub_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                          const char **what)
{
    hub_buf_t tmp = HUB_BUF_INIT;
    int rc = hub_file_stage(path, data, len, mode, &tmp, what);
    return rc != 0 ? rc : hub_file_commit(&tmp, path, what);
}
