#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/secure.h"

int hub_buf_reserve(hub_buf_t *b, size_t n)
{
    if (n > SIZE_MAX - b->len - 1)
        return HUB_ENOMEM;
    size_t need = b->len + n + 1; /* room for a trailing NUL */
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    /* Buffers may hold key material: move it by hand so the old block is wiped. */
    uint8_t *p = malloc(cap);
    if (p == NULL)
        return HUB_ENOMEM;
    if (b->data != NULL) {
        memcpy(p, b->data, b->len);
        hub_wipe(b->data, b->cap);
        free(b->data);
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int hub_buf_append(hub_buf_t *b, const void *p, size_t n)
{
    int rc = hub_buf_reserve(b, n);
    if (rc != 0)
        return rc;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int hub_buf_puts(hub_buf_t *b, const char *s)
{
    return hub_buf_append(b, s, strlen(s));
}

int hub_buf_printf(hub_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return HUB_EINVAL;
    int rc = hub_buf_reserve(b, (size_t)n);
    if (rc != 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void hub_buf_free(hub_buf_t *b)
{
    if (b->data != NULL) {
        hub_wipe(b->data, b->cap);
        free(b->data);
    }
    b->data = NULL;
    b->len = b->cap = 0;
}
