/*
 * What throttle, slice, truncate and corrupt do to bytes: a reply of one
 * command paced, cut in pieces, cut short or with bits flipped in its
 * values, and a stored data block with bits flipped. All of it lives in a
 * struct fx a connection allocates only once such a rule fires on it (and
 * frees when it is done), so other connections pay one NULL pointer.
 * Shared by conn.c (reply bytes, pacing) and apply.c (the rule fired).
 */
#ifndef MCFAULT_SHAPE_H
#define MCFAULT_SHAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcfault/buf.h"
#include "mcfault/rules.h"

struct conn;
struct event;

enum shape_kind {
    SHAPE_THROTTLE = 0, /* paced at rate_bps as it arrives */
    SHAPE_SLICE,        /* released a piece at a time */
    SHAPE_TRUNCATE,     /* cut after keep bytes (a share: kept until its
                           end, 4 MiB at most); a close follows */
    SHAPE_CORRUPT       /* kept a line and its value at a time, bits
                           flipped in the value */
};

/* What to do to the reply of one shaped command (an in-flight entry with
 * its shape bit set; specs are queued in the same order). */
struct shape_spec {
    uint8_t kind;          /* enum shape_kind */
    bool keep_is_fraction; /* truncate */
    uint32_t flips;        /* corrupt: bits per value */
    uint32_t slice_min;    /* slice */
    uint32_t slice_max;
    uint64_t rate_bps;    /* throttle */
    uint64_t interval_us; /* slice */
    uint64_t keep_bytes;  /* truncate */
    double keep_fraction; /* truncate */
    char *keys;           /* corrupt: only the values of these keys, each
                             a length byte then the key; NULL: all */
    uint32_t keys_len;
};

struct fx {
    struct shape_spec *q; /* specs of shaped replies still to come, a ring */
    uint32_t qcap;        /* a power of two (0: none allocated) */
    uint32_t qhead;
    uint32_t qlen;
    size_t keys_held;      /* bytes of the queued specs' key lists */
    struct shape_spec cur; /* the reply being shaped (or paced out) */
    bool active;           /* cur's reply is at the head, bytes coming */
    struct buf out;        /* throttle, slice: bytes not yet released */
    struct buf cap;        /* truncate, corrupt: the reply so far */
    uint64_t total;        /* bytes of cur's reply so far */
    uint64_t passed;       /* truncate by count: bytes passed on */
    uint64_t started_us;   /* throttle: cur's first byte */
    uint64_t released;     /* throttle: bytes released since */
    uint64_t next_us;      /* slice: when the next piece may go */
    uint64_t prng;         /* flips and piece sizes (splitmix64 state) */
    /* corrupt on a storage command: bit positions in the data block,
     * ascending, and how far the block has gone by. */
    uint64_t *flip;
    uint32_t nflip;
    uint32_t flip_next;
    uint64_t block_off;
    struct event *timer; /* the next release */
};

/* Fills spec from the rule that fired (keys: set separately). */
void shape_spec_from_rule(struct shape_spec *spec, const struct rule *r);

/* Queues the spec of a command about to be forwarded with its entry's
 * shape bit set; takes spec->keys. Returns 0 or -1 (out of memory: keys
 * freed). */
int shape_push(struct conn *c, struct shape_spec *spec);

/* Bytes of the shaped reply at the head of the in-flight queue. Returns 0
 * or -1 (out of memory). */
int shape_take(struct conn *c, const char *p, size_t n);

/* The shaped reply at the head ended: a captured one is cut or corrupted
 * and goes to the client; a paced one goes on being paced. Returns 0 or
 * -1. */
int shape_reply_done(struct conn *c);

/* A line (and its data block) of the shaped reply at the head ended:
 * corrupt hits its values and passes it on. Returns 0 or -1. */
int shape_line_done(struct conn *c);

/* memcached closed while a reply was being kept (truncate, corrupt): what
 * came of it goes to the client. */
void shape_upstream_gone(struct conn *c);

/* Paced bytes are still to be released: the replies behind them wait. */
static inline bool shape_blocks(const struct fx *f)
{
    return f != NULL && !f->active && buf_len(&f->out) > 0;
}

/* Releases the paced bytes that are due to the client and arms the timer
 * for the next; frees the fx when nothing is left to do. */
void shape_pump(struct conn *c);

/* Memory the fx holds: what waits to be released (counted as waiting for
 * the client), and the rest. Inline: the memory rule asks on every read. */
static inline size_t shape_held_to_client(const struct fx *f)
{
    return f != NULL ? f->out.cap : 0;
}

static inline size_t shape_held(const struct fx *f)
{
    if (f == NULL) {
        return 0;
    }
    return sizeof(*f) + f->qcap * sizeof(*f->q) + f->keys_held + f->cap.cap +
           f->nflip * sizeof(*f->flip);
}

/* Frees the fx of c (closing). */
void shape_free(struct conn *c);

/* corrupt on a storage command: flips bits of its data block of len bytes
 * (its \r\n excluded) as it goes upstream. Returns 0 or -1. */
int shape_block_begin(struct conn *c, uint64_t len, uint32_t flips);

/* Flips the chosen bits that fall in n bytes of the block just appended
 * at the end of dst (they came after the block's earlier bytes). */
void shape_block_piece(struct conn *c, char *dst, size_t n);

#endif
