/* Long-lived heap blocks whose tail is rarely used (mbedTLS's two 16.7 KB record buffers per
 * connection) keep only the pages in use: the rest is given back with madvise and comes
 * back as zero pages when written. Only pages wholly inside the block's usable size are
 * touched, so the allocator's own headers (before the block and after it) stay. */
#include "util/memtune.h"

#include <malloc.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

size_t hub_memtune_page(void)
{
    long n = sysconf(_SC_PAGESIZE); /* read from the auxiliary vector: no system call */
    return n > 0 ? (size_t)n : 4096;
}

static uintptr_t first_boundary(const void *buf, size_t keep)
{
    uintptr_t pg = hub_memtune_page();
    return ((uintptr_t)buf + keep + pg - 1) & ~(pg - 1);
}

int hub_memtune_touches(const void *buf, size_t keep, const void *p, size_t n)
{
    return buf != NULL && (uintptr_t)p + n > first_boundary(buf, keep);
}

void hub_memtune_discard(void *buf, size_t keep)
{
    if (buf == NULL)
        return;
    uintptr_t pg = hub_memtune_page();
    uintptr_t start = first_boundary(buf, keep);
    uintptr_t end = ((uintptr_t)buf + malloc_usable_size(buf)) & ~(pg - 1);
    if (end > start)
        (void)madvise((void *)start, end - start, MADV_DONTNEED);
}
