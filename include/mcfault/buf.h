/*
 * A byte queue that holds exactly the memory it reports: one block,
 * consumed from the front, compacted or grown when appending, freed when
 * it empties. The connection's buffers are these, so its memory rule can
 * count what is really held. Pure.
 */
#ifndef MCFAULT_BUF_H
#define MCFAULT_BUF_H

#include <stddef.h>

/* Below this a block grows in powers of two; above, in steps of this, so
 * a big buffer holds at most one step more than its bytes. */
#define BUF_STEP (64 * 1024)

struct buf {
    char *data;
    size_t start; /* first byte not consumed */
    size_t end;   /* one past the last byte */
    size_t cap;   /* bytes allocated: what the buffer costs */
};

static inline size_t buf_len(const struct buf *b)
{
    return b->end - b->start;
}

static inline const char *buf_head(const struct buf *b)
{
    return b->data + b->start;
}

/* Appends p[0..n). Returns 0, or -1 when out of memory (b unchanged). */
int buf_append(struct buf *b, const void *p, size_t n);

/* Drops the first n bytes (n <= buf_len); an emptied buffer frees its
 * block, so an idle connection holds none. */
void buf_consume(struct buf *b, size_t n);

/* Frees the block; b is empty and may be used again. */
void buf_free(struct buf *b);

#endif
