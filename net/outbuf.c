/* Two alternating output buffers per connection (see outbuf.h). Once idle, a connection
 * keeps small buffers only: a TLS handshake grows them to several KiB for a moment. */
#include "net/outbuf.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"

static void part_release(struct hub_outbuf_part *b)
{
    free(b->data);
    b->data = NULL;
    b->cap = 0;
}

int hub_outbuf_append(struct hub_outbuf *o, const void *p, size_t n)
{
    struct hub_outbuf_part *b = &o->part[o->cur];
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : HUB_OUTBUF_FIRST;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2)
                return HUB_ENOMEM;
            cap *= 2;
        }
        uint8_t *d = realloc(b->data, cap);
        if (d == NULL)
            return HUB_ENOMEM;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int hub_outbuf_take(struct hub_outbuf *o, const uint8_t **data, size_t *len)
{
    struct hub_outbuf_part *b = &o->part[o->cur];
    if (o->inflight || b->len == 0)
        return 0;
    o->cur ^= 1;
    o->inflight = 1;
    *data = b->data;
    *len = b->len;
    return 1;
}

void hub_outbuf_written(struct hub_outbuf *o)
{
    struct hub_outbuf_part *b = &o->part[o->cur ^ 1], *f = &o->part[o->cur];
    o->inflight = 0;
    b->len = 0;
    if (b->cap > HUB_OUTBUF_KEEP_MAX || (f->len == 0 && b->cap > HUB_OUTBUF_KEEP_IDLE))
        part_release(b);
    if (f->len == 0 && f->cap > HUB_OUTBUF_KEEP_IDLE)
        part_release(f);
}

void hub_outbuf_drop(struct hub_outbuf *o)
{
    o->inflight = 0;
    o->part[o->cur ^ 1].len = 0;
}

void hub_outbuf_filling(const struct hub_outbuf *o, const uint8_t **data, size_t *len)
{
    *data = o->part[o->cur].data;
    *len = o->part[o->cur].len;
}

size_t hub_outbuf_pending(const struct hub_outbuf *o)
{
    return o->part[0].len + o->part[1].len;
}

int hub_outbuf_over_pause(const struct hub_outbuf *o)
{
    return hub_outbuf_pending(o) >= HUB_OUTBUF_READ_PAUSE;
}

void hub_outbuf_free(struct hub_outbuf *o)
{
    part_release(&o->part[0]);
    part_release(&o->part[1]);
    o->part[0].len = o->part[1].len = 0;
    o->cur = o->inflight = 0;
}
