/*
 * The inside of a connection, shared by conn.c (sockets, reading, writing,
 * closing) and apply.c (what a fired rule does). Nothing else includes it.
 */
#ifndef MCFAULT_CONN_INT_H
#define MCFAULT_CONN_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "mcfault/buf.h"
#include "mcfault/conn.h"
#include "mcfault/inflight.h"
#include "mcfault/proto.h"
#include "mcfault/reply.h"

/* Backpressure, one rule for every buffer of a connection: the client is
 * not read (nor its input parsed) while what the connection holds is over
 * HIGH (resuming under LOW), the upstream not while the replies read and
 * not yet written to the client are. A partial command line is bounded by
 * the line limits instead (proto.h). */
#define CONN_WATER_HIGH (1024 * 1024)
#define CONN_WATER_LOW (256 * 1024)
/* A connect to memcached that neither succeeds nor fails within this long
 * (an address nobody answers any more: a container gone) fails: the name
 * is looked up again and the client closed, as if refused. */
#define CONN_CONNECT_TIMEOUT_MS 2000

/* What the connection carries. Text is parsed and framed; the tunnels
 * relay raw bytes both ways and close like a relay (half-close passed
 * through). */
enum conn_mode {
    MODE_TEXT = 0,
    MODE_WATCH, /* memcached accepted "watch": log lines flow up to us */
    MODE_BINARY /* first byte 0x80 */
};

/* The client side. */
enum client_state {
    CLIENT_OPEN = 0,   /* requests may come, replies are written */
    CLIENT_READ_DONE,  /* no more requests (EOF, or the proxy stopped
                          reading: a line too long, drop) */
    CLIENT_WRITE_SHUT, /* tunnel: memcached closed, the EOF was passed on */
    CLIENT_GONE        /* nothing can be written to it any more */
};

/* The upstream side. */
enum upstream_state {
    UP_RESOLVING = 0, /* waiting for the upstream's address */
    UP_CONNECTING,    /* connect in progress */
    UP_OPEN,          /* reading and writing */
    UP_WRITE_SHUT,    /* the client's EOF was passed on; replies still come */
    UP_CLOSED         /* no more replies, nothing more can be written */
};

/* What happens to what the client sends. */
enum input_state {
    IN_PARSE = 0, /* parsed and forwarded as it comes */
    IN_HELD,      /* a delay holds the current command and all behind it in
                     cin until in_timer */
    IN_DISCARD    /* nothing more is taken (quit, line too long, drop, hang) */
};

/* What happens to replies. */
enum output_state {
    OUT_FLOW = 0, /* passed on in order */
    OUT_HANG,     /* a hang reached the head: every reply is discarded */
    OUT_DROP,     /* a drop reached the head: flush what is owed, close */
    OUT_SILENT    /* a connect rule's hang: never served, no upstream;
                     ends when the client goes */
};

/* What happens to the data block of the current command. */
enum data_fate {
    DATA_FORWARD = 0,
    DATA_DISCARD, /* the proxy answers it: the block is read and dropped */
    DATA_CORRUPT  /* corrupt: copied upstream with bits flipped (shape.c) */
};

/* What a forward: true fault does once its command is on its way. */
enum post_fx { FX_NONE = 0, FX_ERROR, FX_DROP, FX_HANG, FX_FENCE };

/* Bytes of the chunk being processed that go on to the other side as
 * they are: [start, end). Kept as a range so that a whole read can be sent
 * with one system call, straight from where it was read. */
struct run {
    const char *base;
    size_t start;
    size_t end;
};

struct conn {
    struct proxy *px;
    struct conn *prev;
    struct conn *next;
    int cfd;
    int ufd;
    uint8_t mode;       /* enum conn_mode */
    uint8_t client;     /* enum client_state */
    uint8_t up;         /* enum upstream_state */
    uint8_t input;      /* enum input_state */
    uint8_t output;     /* enum output_state */
    uint8_t armed;      /* ARM_* bits: which of the four events are added */
    uint8_t data;       /* enum data_fate of the current data block */
    uint8_t post;       /* enum post_fx waiting for the data block's end */
    uint8_t post_rst;   /* FX_DROP: close with a reset */
    uint8_t rst;        /* the close, when the proxy closes, is a reset */
    uint8_t rst_waits;  /* ... put off while the kernel still sends */
    bool peer_ip;       /* the client came over IP: peer is its address */
    uint8_t peer[16];   /* the client's address, IPv4 mapped */
    uint32_t pick;      /* the connection's draw for `connections:` */
    uint32_t post_len;  /* FX_ERROR: its reply's bytes in local */
    uint32_t deferred;  /* DATA_DISCARD: reply bytes waiting in local for the
                           block's end (0: none) */
    uint32_t held_line; /* IN_HELD: cin starts with this command line */
    uint8_t mn_len;     /* bytes of a possible stripped MN held back */
    char mn_buf[3];     /* ... and they ("M", "MN", "MN\r") */
    struct buf cin;     /* from the client, not yet taken (held, paused) */
    struct buf uout;    /* to upstream */
    struct buf uin;     /* from upstream, not yet passed on (delayed) */
    struct buf cout;    /* to the client */
    struct buf local;   /* proxy-made replies waiting for their turn */
    struct run rq;      /* request bytes of this chunk going upstream */
    struct run rp;      /* reply bytes of this chunk going to the client */
    bool rp_active;     /* rp belongs to a chunk being processed */
    bool rp_fresh;      /* ... just read (not held back by a delay): its
                           replies' round trips are timed */
    size_t line_held;   /* bytes of a partial line the parser holds */
    size_t cur_pos;     /* the current command line: where it starts in the
                           chunk (when not spanned), */
    size_t cur_bytes;   /* its bytes with the terminator, */
    bool cur_spanned;   /* and whether it came in pieces (the parser then
                           holds all of it) */
    struct proto_parser parser;
    struct reply_framer framer;
    struct inflight q;
    struct fx *fx;           /* throttle, slice, truncate, corrupt at work
                                (shape.c); NULL on most connections */
    struct event *in_timer;  /* ends IN_HELD */
    struct event *out_timer; /* wakes an IF_DELAY at the head */
    struct event *up_timer;  /* bounds the upstream connect */
    struct event *ev[4];     /* ARM order: client read/write, up read/write */
};

/* ---- provided by conn.c to apply.c ---- */

/* The current command line goes upstream as the client wrote it. */
int conn_line_forward(struct conn *c);

/* Other bytes go upstream, after everything taken so far. */
int conn_up_add(struct conn *c, const void *p, size_t n);

/* Bytes go to the client, after every reply passed on so far. */
int conn_client_add(struct conn *c, const void *p, size_t n);

/* The current command line and everything behind it wait in cin for us
 * microseconds (a delay), then go on. */
int conn_hold(struct conn *c, uint64_t us);

/* Everything the client sends waits in cin for us microseconds (a connect
 * rule's delay), then goes on. */
void conn_hold_all(struct conn *c, uint64_t us);

/* The rest of the input is never read as commands. */
void conn_stop_input(struct conn *c);

/* Gives up on a connection that cannot get memory: nothing more is read
 * or written; it closes on the next check. */
void conn_fail(struct conn *c);

/* A drop reached the head: what is owed was flushed; close both sides
 * (the client's with a reset when rst). */
void conn_begin_drop(struct conn *c, bool rst);

/* Arms the output timer to wake replies held by an IF_DELAY in us. */
void conn_wake_output_in(struct conn *c, uint64_t us);

/* Arms the timer that releases shaped bytes (shape_pump) in us. */
void conn_wake_shape_in(struct conn *c, uint64_t us);

/* Monotonic microseconds. */
uint64_t conn_now_us(void);

/* The loop's clock in microseconds: read once per loop turn, free to ask
 * again; for latencies. */
uint64_t conn_loop_us(const struct conn *c);

/* ---- provided by apply.c to conn.c ---- */

/*
 * A command line was parsed: ask the rules and forward it, or apply the
 * fault that fires. Returns 0, or -1 when out of memory.
 */
int apply_command(struct conn *c, const struct proto_cmd *cmd);

/* What a `connect` rule makes of a new connection. */
enum connect_verdict {
    CONNECT_SERVE = 0, /* served (after a hold, for a delay) */
    CONNECT_CLOSE,     /* closed at once (drop: c->rst says how) */
    CONNECT_ANSWER,    /* the line in cout is written, then it closes */
    CONNECT_SILENT     /* accepted, never served (OUT_SILENT) */
};

/* Asks the `connect` rules about the new connection c. */
enum connect_verdict apply_connect(struct conn *c);

/* The current data block ended. Returns 0 or -1 (out of memory). */
int apply_data_end(struct conn *c);

/* apply_head's work when the head is an entry the proxy made. */
bool apply_head_entries(struct conn *c);

/*
 * Acts on the entries at the head of the in-flight queue that the proxy
 * made (LOCAL, DELAY, DROP, HANG). Returns false when replies must not
 * flow now. The caller first checks shape_blocks: paced bytes go before
 * anything behind them. Inline: a forwarded command's reply at the head,
 * the common case, costs one test.
 */
static inline bool apply_head(struct conn *c)
{
    const struct inflight_entry *e = inflight_head(&c->q);

    return e == NULL || e->type < IF_LOCAL || apply_head_entries(c);
}

#endif
