/*
 * Byte queues with exact memory accounting (see buf.h).
 */
#include "mcfault/buf.h"

#include <stdlib.h>
#include <string.h>

/* The smallest block: a line or a short reply fits. */
#define BUF_MIN 512

static size_t buf_size_for(size_t need)
{
    if (need > BUF_STEP) {
        return (need + BUF_STEP - 1) / BUF_STEP * BUF_STEP;
    }
    size_t cap = BUF_MIN;
    while (cap < need) {
        cap *= 2;
    }
    return cap;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    size_t len = buf_len(b);

    if (n == 0) {
        return 0;
    }
    if (b->end + n > b->cap) {
        size_t cap = b->cap;
        if (len + n > cap || b->start < len) {
            /* Moving the bytes would cost more than the room it frees, or
             * cannot free enough: a block of the size they need. */
            cap = buf_size_for(len + n);
        }
        if (b->start > 0) {
            memmove(b->data, b->data + b->start, len);
            b->start = 0;
            b->end = len;
        }
        if (cap != b->cap) {
            /* realloc, not a new block and a copy: a big block's pages
             * are moved, never held twice. */
            char *d = realloc(b->data, cap);
            if (d == NULL) {
                return -1;
            }
            b->data = d;
            b->cap = cap;
        }
    }
    memcpy(b->data + b->end, p, n);
    b->end += n;
    return 0;
}

void buf_consume(struct buf *b, size_t n)
{
    b->start += n;
    if (b->start == b->end) {
        buf_free(b);
    }
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->start = 0;
    b->end = 0;
    b->cap = 0;
}
