/* A refcounted block of bytes that several threads may hold at once: one producer lays it
 * out, hands references to consumers on other threads, and the last reference dropped frees
 * it through the block's own release function, so a consumer frees it without knowing what
 * it is. The count is atomic; a holder that is one thread only can count its own references
 * plainly and keep one hub_rcbuf reference for all of them (mqtt/msg.h does). */
#ifndef HUB_UTIL_RCBUF_H
#define HUB_UTIL_RCBUF_H

#include <stdatomic.h>
#include <stddef.h>

struct hub_rcbuf {
    atomic_uint refs;
    void (*release)(struct hub_rcbuf *b); /* frees the block holding b */
};

/* One piece of an output made of several: len bytes at p, which lie inside a hub_rcbuf when
 * shared is set (valid while a reference is held), else are the caller's and copied. */
struct hub_rcbuf_piece {
    const void *p;
    size_t len;
    int shared;
};

/* Starts b with one reference; release frees the block when the last one is dropped. */
static inline void hub_rcbuf_init(struct hub_rcbuf *b, void (*release)(struct hub_rcbuf *b))
{
    atomic_init(&b->refs, 1);
    b->release = release;
}

/* Takes a reference to b (any thread that already holds one, or hands one over). */
static inline struct hub_rcbuf *hub_rcbuf_ref(struct hub_rcbuf *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

/* Drops a reference; the last one calls b->release on the thread that drops it. */
static inline void hub_rcbuf_unref(struct hub_rcbuf *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        b->release(b);
}

#endif
