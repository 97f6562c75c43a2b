/* A connection's output as two alternating buffers: one handed to a uv_write, the other
 * filling, so writes stay ordered, records are coalesced and nothing is allocated per
 * record. Owned by one connection, used on its loop thread only; no locking. */
#ifndef HUB_NET_OUTBUF_H
#define HUB_NET_OUTBUF_H

#include <stddef.h>
#include <stdint.h>

#define HUB_OUTBUF_FIRST 512         /* capacity of a buffer's first allocation */
#define HUB_OUTBUF_KEEP_MAX 65536    /* a written buffer larger than this is freed */
#define HUB_OUTBUF_KEEP_IDLE 1024    /* and larger than this once nothing is queued */
#define HUB_OUTBUF_READ_PAUSE 262144 /* the connection stops reading from this much queued */

struct hub_outbuf_part {
    uint8_t *data;
    size_t len, cap;
};

/* Zero-initialised means empty (no allocation until the first append). */
struct hub_outbuf {
    struct hub_outbuf_part part[2];
    int cur;      /* part[cur] is filling */
    int inflight; /* part[cur ^ 1] is handed out (hub_outbuf_take) and not yet written */
};

/* Appends n bytes to the filling buffer, doubling its capacity from HUB_OUTBUF_FIRST as
 * needed. Returns 0 or HUB_ENOMEM (nothing appended). */
int hub_outbuf_append(struct hub_outbuf *o, const void *p, size_t n);
/* Hands out the filling buffer for one write (*data, *len; valid until hub_outbuf_written or
 * hub_outbuf_drop) and starts filling the other one. Returns 0 when nothing is queued or a
 * write is already in flight, else 1. */
int hub_outbuf_take(struct hub_outbuf *o, const uint8_t **data, size_t *len);
/* The handed-out buffer was written (or the write failed): it is emptied, and freed when
 * larger than HUB_OUTBUF_KEEP_MAX or when nothing else is queued and it is larger than
 * HUB_OUTBUF_KEEP_IDLE (so is the filling one if empty and that large). */
void hub_outbuf_written(struct hub_outbuf *o);
/* The write of the handed-out buffer could not start: its bytes are dropped, no write is in
 * flight any more; the buffers are kept. */
void hub_outbuf_drop(struct hub_outbuf *o);
/* The filling buffer as it stands (for a last best-effort write at shutdown). */
void hub_outbuf_filling(const struct hub_outbuf *o, const uint8_t **data, size_t *len);
/* Bytes queued and not yet written: the filling buffer plus the handed-out one. */
size_t hub_outbuf_pending(const struct hub_outbuf *o);
/* Whether the queue is long enough that its connection should stop reading (backpressure):
 * pending >= HUB_OUTBUF_READ_PAUSE. */
int hub_outbuf_over_pause(const struct hub_outbuf *o);
/* Frees both buffers (the outbuf is empty and reusable afterwards). */
void hub_outbuf_free(struct hub_outbuf *o);

#endif
