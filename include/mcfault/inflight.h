/*
 * The in-flight queue of one connection: what its client is owed, oldest
 * first, so that a reply the proxy makes lands exactly where memcached's
 * would. Groups and barriers handle commands whose reply count is unknown.
 * Pure: no sockets, no libevent.
 */
#ifndef MCFAULT_INFLIGHT_H
#define MCFAULT_INFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * - ONE: a forwarded command with exactly one reply, framed by its kind;
 * - GROUP: forwarded commands whose reply count is unknown (noreply, meta
 *   q, and whatever follows them before a barrier); their replies pass
 *   through as they come;
 * - BARRIER: an "mn" closing the GROUP before it; its MN ends the group
 *   and is stripped when the proxy sent it;
 * - LOCAL: a reply made by the proxy (len bytes in the connection's local
 *   buffer) waiting for its turn;
 * - DELAY: replies behind it wait until a time (forward: true delay);
 * - DROP: at the head, the connection closes (drop);
 * - HANG: at the head, every reply from then on is discarded (hang).
 * A ONE or GROUP marked swallow is a forwarded command whose reply a fault
 * replaces: it is framed as usual and discarded; one marked shape has its
 * reply throttled, sliced, truncated or corrupted (shape.c).
 */
enum inflight_type {
    IF_ONE = 0,
    IF_GROUP,
    IF_BARRIER,
    IF_LOCAL,
    IF_DELAY,
    IF_DROP,
    IF_HANG
};

struct inflight_entry {
    uint8_t type;
    uint8_t kind; /* IF_ONE: enum proto_reply */
    union {
        struct {
            uint8_t strip : 1;   /* IF_BARRIER: the proxy sent it; strip its
                                    MN */
            uint8_t swallow : 1; /* IF_ONE, IF_GROUP: discard the reply */
            uint8_t shape : 1;   /* IF_ONE, IF_GROUP: the reply goes through
                                    shape.c (its spec is next in the fx
                                    queue) */
            uint8_t rst : 1;     /* IF_DROP: close with a reset */
        };
        /* All of them at once: on a ONE or GROUP, nonzero when its reply
         * does not simply go on (swallow or shape), in one test. */
        uint8_t marks;
    };
    uint8_t op;     /* IF_ONE: enum proto_op, for its latency */
    uint32_t len;   /* IF_LOCAL: reply bytes */
    uint64_t until; /* IF_DELAY: monotonic microseconds to wait for; IF_ONE:
                       when it was forwarded (the loop's clock), 0 unknown */
};

/* Slots held inside the queue itself: an idle or lightly pipelined
 * connection allocates none. */
#define INFLIGHT_INLINE 4

struct inflight {
    struct inflight_entry *slots; /* small, or a heap ring */
    uint32_t cap;                 /* a power of two */
    uint32_t head;
    uint32_t len;
    uint32_t marked; /* entries whose marks are not 0: while there are none,
                        every reply goes on as it is (conn.c's fast path) */
    bool group_open; /* the tail is a GROUP no barrier closed yet */
    struct inflight_entry small[INFLIGHT_INLINE];
};

void inflight_init(struct inflight *q);
void inflight_deinit(struct inflight *q);

static inline struct inflight_entry *inflight_at(struct inflight *q, uint32_t i)
{
    return &q->slots[(q->head + i) & (q->cap - 1)];
}

/* The oldest entry, or NULL when nothing is owed. */
static inline struct inflight_entry *inflight_head(struct inflight *q)
{
    return q->len > 0 ? inflight_at(q, 0) : NULL;
}

/* Appends e. Returns 0, or -1 when out of memory. */
int inflight_push(struct inflight *q, struct inflight_entry e);

/* Removes the oldest entry (the queue is not empty). */
void inflight_pop(struct inflight *q);

/* Marks the newest entry (a ONE just forwarded) as shaped. */
void inflight_mark_shape(struct inflight *q);

/*
 * Records a forwarded command: its reply kind (enum proto_reply), whether
 * it may stay silent (noreply, meta q), whether it is an "mn", whether its
 * reply is to be swallowed. Inside an open group the command joins it (a
 * client's own mn closes it, and that MN reaches the client). Returns 0 or
 * -1 when out of memory.
 */
int inflight_forward(struct inflight *q, uint8_t kind, bool noreply, bool mn,
                     bool swallow);

/*
 * Closes an open group with a barrier the proxy sends (its MN stripped),
 * so that what is queued next can be placed. Returns 1 when the caller
 * must send "mn\r\n" upstream now, 0 when no group was open, -1 when out
 * of memory.
 */
int inflight_fence(struct inflight *q);

/* What the end of a reply (or of one line of a group's replies) means. */
enum inflight_end {
    INFLIGHT_NEXT = 0, /* the head entry is done (or nothing was owed) */
    INFLIGHT_GOES_ON,  /* a group's line: the group goes on */
    INFLIGHT_GROUP_MN, /* the MN closing a group: pass it to the client */
    INFLIGHT_STRIP_MN  /* the MN of the proxy's barrier: drop it */
};

/*
 * A reply ended; mn tells whether its (last) line was "MN". Pops what it
 * completes and returns what to do with the line (see enum inflight_end).
 */
enum inflight_end inflight_reply_end(struct inflight *q, bool mn);

#endif
