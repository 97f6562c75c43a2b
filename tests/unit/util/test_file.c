/* Unit tests for util/file.c: atomic replacement, its mode, staging and failures. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/harness.h"
#include "util/error.h"
#include "util/file.h"

static char dir[] = "/tmp/hub-test-file-XXXXXX";

static int entries(void)
{
    int n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    if (d != NULL)
        closedir(d);
    return n;
}

static void read_back(const char *path, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(out, 1, len - 1, f) : 0;
    out[n] = 0;
    if (f)
        fclose(f);
}

static void test_write_atomic(void)
{
    char path[256], got[64];
    const char *what = NULL;
    struct stat st;
    snprintf(path, sizeof path, "%s/key.pem", dir);
    CHECK_EQ(hub_file_write_atomic(path, "first", 5, 0600, &what), 0);
    CHECK_EQ(hub_file_write_atomic(path, "second", 6, 0640, &what), 0);
    read_back(path, got, sizeof got);
    CHECK_STR(got, "second");
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0640);
    CHECK_EQ(entries(), 1); /* no temporary file left behind */
    CHECK_EQ(unlink(path), 0);
}

static void test_stage_commit_discard(void)
{
    char a[256], b[256], got[64];
    const char *what = NULL;
    hub_buf_t ta = HUB_BUF_INIT, tb = HUB_BUF_INIT;
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    CHECK_EQ(hub_file_stage(a, "A", 1, 0644, &ta, &what), 0);
    CHECK_EQ(hub_file_stage(b, "B", 1, 0644, &tb, &what), 0);
    CHECK_EQ(access(a, F_OK), -1); /* nothing in place before the commit */
    CHECK_EQ(entries(), 2);
    CHECK_EQ(hub_file_commit(&ta, a, &what), 0);
    hub_file_discard(&tb);
    CHECK(ta.data == NULL && tb.data == NULL);
    read_back(a, got, sizeof got);
    CHECK_STR(got, "A");
    CHECK_EQ(access(b, F_OK), -1);
    CHECK_EQ(entries(), 1);
    CHECK_EQ(unlink(a), 0);
}

static void test_failures(void)
{
    char path[256];
    const char *what = NULL;
    snprintf(path, sizeof path, "%s/missing/x", dir);
    CHECK_EQ(hub_file_write_atomic(path, "x", 1, 0644, &what), HUB_EIO);
    CHECK_STR(what, "create a temporary file for");
    CHECK_EQ(errno, ENOENT);
    /* A directory in the way: the rename fails and the temporary file is removed. */
    snprintf(path, sizeof path, "%s/sub", dir);
    CHECK_EQ(mkdir(path, 0700), 0);
    char inner[300];
    snprintf(inner, sizeof inner, "%s/f", path);
    CHECK_EQ(mkdir(inner, 0700), 0);
    CHECK_EQ(hub_file_write_atomic(path, "x", 1, 0644, &what), HUB_EIO);
    CHECK_STR(what, "rename a temporary file to");
    CHECK_EQ(entries(), 1);
    CHECK_EQ(rmdir(inner), 0);
    CHECK_EQ(rmdir(path), 0);
    CHECK_EQ(hub_file_sync_dir("relative-name"), 0); /* the current directory */
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    RUN(test_write_atomic);
    RUN(test_stage_commit_discard);
    RUN(test_failures);
    rmdir(dir);
    HARNESS_EXIT();
}
