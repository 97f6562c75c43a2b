/* A growable byte buffer. The struct is owned by the caller; hub_buf_free releases data. */
#ifndef HUB_UTIL_BUF_H
#define HUB_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct hub_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} hub_buf_t;

#define HUB_BUF_INIT {NULL, 0, 0}

/* Makes room for n more bytes. Returns 0 or HUB_ENOMEM. */
int hub_buf_reserve(hub_buf_t *b, size_t n);
/* Appends n bytes. Returns 0 or HUB_ENOMEM. */
int hub_buf_append(hub_buf_t *b, const void *p, size_t n);
/* Appends a NUL-terminated string (the NUL is kept past len, not counted). */
int hub_buf_puts(hub_buf_t *b, const char *s);
/* Appends printf-formatted text (NUL kept past len). */
int hub_buf_printf(hub_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Wipes (zeroes) and frees the data, leaving an empty buffer. */
void hub_buf_free(hub_buf_t *b);

#endif
