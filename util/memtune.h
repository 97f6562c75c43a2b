/* Memory held by idle connections: pages of long-lived buffers given back to the kernel. */
#ifndef HUB_UTIL_MEMTUNE_H
#define HUB_UTIL_MEMTUNE_H

#include <stddef.h>

/* The page size. */
size_t hub_memtune_page(void);
/* Whether the bytes [p, p + n) of the heap block buf reach past its first page boundary
 * after buf + keep, i.e. into a page that hub_memtune_discard would give back. */
int hub_memtune_touches(const void *buf, size_t keep, const void *p, size_t n);
/* Gives back to the kernel (MADV_DONTNEED) the whole pages of the heap block buf (from
 * malloc/calloc, still allocated) that lie after its first keep bytes. Their contents
 * read as zeroes afterwards and are backed again when written. */
void hub_memtune_discard(void *buf, size_t keep);

#endif
