/*
 * One client connection and its upstream: sockets, reading, writing and
 * closing. Requests are parsed and handed to apply.c, replies framed and
 * matched to the in-flight queue (inflight.c) so each reaches the client
 * in order.
 */
#include "mcfault/conn.h"

#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn_int.h"
#include "mcfault/log.h"
#include "mcfault/resolve.h"
#include "mcfault/stats.h"
#include "shape.h"

/* One recv reads at most this much into a buffer every connection shares
 * (the loop is single-threaded); a full read is followed by another, up to
 * CONN_READS_MAX times. What cannot go on at once is copied into the
 * connection's own buffers, sized to what they hold, so a trickle of tiny
 * reads costs tiny buffers. */
#define CONN_READ_SIZE (64 * 1024)
#define CONN_READS_MAX 4

static char scratch[CONN_READ_SIZE];

/* conn.ev[] and the bits of conn.armed. */
enum { EV_CREAD = 0, EV_CWRITE, EV_UREAD, EV_UWRITE };

static void conn_run(struct conn *c);
static void conn_free(struct conn *c);
static void reply_chunk(struct conn *c, const char *p, size_t n);

/* ---- events ---- */

static void arm(struct conn *c, int i, bool want)
{
    uint8_t bit = (uint8_t)(1u << i);

    if (want == ((c->armed & bit) != 0)) {
        return;
    }
    if (want) {
        event_add(c->ev[i], NULL);
        c->armed |= bit;
    } else {
        event_del(c->ev[i]);
        c->armed &= (uint8_t)~bit;
    }
}

uint64_t conn_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The time a read callback started, for latencies: one clock read per
 * read, not per command. libevent's own cached time comes from
 * CLOCK_MONOTONIC_COARSE (4 ms steps), too coarse for round trips, and a
 * precise one costs a timerfd_settime per loop turn. */
static uint64_t read_started_us;

uint64_t conn_loop_us(const struct conn *c)
{
    (void)c;
    return read_started_us != 0 ? read_started_us : conn_now_us();
}

static void timer_arm(struct conn *c, struct event **ev, event_callback_fn fn,
                      uint64_t us)
{
    struct timeval tv = {.tv_sec = (time_t)(us / 1000000u),
                         .tv_usec = (suseconds_t)(us % 1000000u)};

    if (*ev == NULL && (*ev = evtimer_new(c->px->base, fn, c)) == NULL) {
        log_msg(LOG_ERROR, "conn %d: out of memory for a timer", c->cfd);
        return;
    }
    evtimer_add(*ev, &tv);
}

/* ---- memory ---- */

/* What waits for the client. Proxy-made replies waiting in local are not
 * counted here: they leave only once the replies before them are read, so
 * they must never stop the upstream from being read (pausing the parser
 * bounds them). */
static size_t held_to_client(const struct conn *c)
{
    return c->uin.cap + c->cout.cap + shape_held_to_client(c->fx);
}

/* What the in-flight queue holds beyond its inline slots: a client that
 * pipelines towards a stopped memcached grows it by one entry a command. */
static size_t held_queue(const struct conn *c)
{
    return c->q.slots == c->q.small ? 0 : c->q.cap * sizeof(*c->q.slots);
}

/* Everything the connection holds but a partial command line. */
static size_t held_total(const struct conn *c)
{
    return c->cin.cap + c->uout.cap + c->local.cap + held_queue(c) +
           shape_held(c->fx) + held_to_client(c);
}

/* ---- runs: bytes passed on as they are ---- */

/* Copies the run into dst (it can't be sent straight away). */
static int run_flush(struct run *r, struct buf *dst)
{
    int rc = 0;

    if (r->end > r->start) {
        rc = buf_append(dst, r->base + r->start, r->end - r->start);
    }
    r->start = r->end;
    return rc;
}

/* The n bytes at pos of the chunk go on; a gap before them ends the run
 * so far (copied into dst). */
static int run_take(struct run *r, struct buf *dst, size_t pos, size_t n)
{
    if (r->end != pos) {
        if (run_flush(r, dst) != 0) {
            return -1;
        }
        r->start = pos;
    }
    r->end = pos + n;
    return 0;
}

/*
 * Sends what waits for fd: b first, then the run, which goes straight from
 * where it was read when b is empty. What the socket does not take stays
 * in b. Returns 0, -1 when the peer is gone, -2 when out of memory.
 */
static int out_send(int fd, struct buf *b, struct run *r, uint64_t *count)
{
    const char *p;
    size_t n;
    bool direct = buf_len(b) == 0 && r != NULL && r->end > r->start;

    if (direct) {
        p = r->base + r->start;
        n = r->end - r->start;
        r->start = r->end;
    } else {
        if (r != NULL && run_flush(r, b) != 0) {
            return -2;
        }
        if (buf_len(b) == 0) {
            return 0;
        }
        p = buf_head(b);
        n = buf_len(b);
    }
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            return -1;
        }
        w = 0;
    }
    *count += (uint64_t)w;
    if (!direct) {
        buf_consume(b, (size_t)w);
    } else if ((size_t)w < n && buf_append(b, p + w, n - (size_t)w) != 0) {
        return -2;
    }
    return 0;
}

void conn_fail(struct conn *c)
{
    log_msg(LOG_ERROR, "conn %d: out of memory, closing", c->cfd);
    c->client = CLIENT_GONE;
    c->input = IN_DISCARD;
    buf_free(&c->cout);
    buf_free(&c->cin);
}

/* ---- the upstream side ---- */

static void up_close(struct conn *c)
{
    if (c->ufd >= 0) {
        arm(c, EV_UREAD, false);
        arm(c, EV_UWRITE, false);
        close(c->ufd);
        c->ufd = -1;
    }
    c->up = UP_CLOSED;
    buf_free(&c->uout);
}

/* Sends what waits for the upstream (and the run r, when not NULL). */
static void up_flush(struct conn *c, struct run *r)
{
    if (c->up != UP_OPEN) {
        if (c->up >= UP_WRITE_SHUT) {
            buf_free(&c->uout); /* nobody will read it */
            if (r != NULL) {
                r->start = r->end;
            }
        } else if (r != NULL && run_flush(r, &c->uout) != 0) {
            conn_fail(c); /* kept until the connect is done */
        }
        return;
    }
    int rc = out_send(c->ufd, &c->uout, r, &stats.upstream_bytes_out);
    if (rc == -1) {
        /* Replies already on their way can still be read. */
        log_msg(LOG_INFO, "conn %d: upstream write failed: %s", c->cfd,
                strerror(errno));
        c->up = UP_WRITE_SHUT;
        buf_free(&c->uout);
    } else if (rc == -2) {
        conn_fail(c);
    }
}

int conn_up_add(struct conn *c, const void *p, size_t n)
{
    if (run_flush(&c->rq, &c->uout) != 0) {
        return -1;
    }
    return buf_append(&c->uout, p, n);
}

/* ---- the client side ---- */

static void client_flush(struct conn *c, struct run *r)
{
    if (c->client == CLIENT_GONE || c->client == CLIENT_WRITE_SHUT) {
        buf_free(&c->cout);
        if (r != NULL) {
            r->start = r->end;
        }
        return;
    }
    int rc = out_send(c->cfd, &c->cout, r, &stats.client_bytes_out);
    if (rc == -1) {
        c->client = CLIENT_GONE;
        c->input = IN_DISCARD;
        buf_free(&c->cout);
        buf_free(&c->cin);
    } else if (rc == -2) {
        conn_fail(c);
    }
}

int conn_client_add(struct conn *c, const void *p, size_t n)
{
    if (c->rp_active && run_flush(&c->rp, &c->cout) != 0) {
        return -1;
    }
    return buf_append(&c->cout, p, n);
}

/* The client will send no more requests. */
static void client_read_done(struct conn *c)
{
    if (c->client == CLIENT_OPEN) {
        c->client = CLIENT_READ_DONE;
    } else if (c->client == CLIENT_WRITE_SHUT) {
        c->client = CLIENT_GONE; /* both ways done */
    }
}

void conn_stop_input(struct conn *c)
{
    c->input = IN_DISCARD;
}

void conn_begin_drop(struct conn *c, bool rst)
{
    c->rst = rst;
    c->output = OUT_DROP;
    c->input = IN_DISCARD;
    client_read_done(c);
    buf_free(&c->cin);
    buf_free(&c->uin);
    up_close(c);
}

/* ---- requests ---- */

int conn_line_forward(struct conn *c)
{
    if (c->cur_spanned) {
        /* The line came in pieces: the parser holds all of it. */
        return conn_up_add(c, c->parser.buf, c->cur_bytes);
    }
    return run_take(&c->rq, &c->uout, c->cur_pos, c->cur_bytes);
}

static void on_in_timer(evutil_socket_t fd, short what, void *arg);

void conn_hold_all(struct conn *c, uint64_t us)
{
    c->held_line = 0;
    c->input = IN_HELD;
    timer_arm(c, &c->in_timer, on_in_timer, us);
}

int conn_hold(struct conn *c, uint64_t us)
{
    const char *line = c->cur_spanned ? c->parser.buf : c->rq.base + c->cur_pos;

    if (buf_append(&c->cin, line, c->cur_bytes) != 0) {
        return -1;
    }
    c->held_line = (uint32_t)c->cur_bytes;
    c->input = IN_HELD;
    timer_arm(c, &c->in_timer, on_in_timer, us);
    return 0;
}

/*
 * Parses p[0..n) from the client and passes it on, command by command.
 * Takes all n bytes: what cannot be parsed now (a delay holds it, or the
 * connection holds too much) waits in cin.
 */
static void client_feed(struct conn *c, const char *p, size_t n)
{
    struct run *r = &c->rq;
    size_t pos = 0;

    r->base = p;
    r->start = 0;
    r->end = 0;
    while (pos < n && c->input == IN_PARSE) {
        if (c->mode != MODE_TEXT) {
            if (run_take(r, &c->uout, pos, n - pos) != 0) {
                conn_fail(c);
                return;
            }
            pos = n;
            break;
        }
        if (held_total(c) > CONN_WATER_HIGH) {
            break; /* paused: resumed by conn_run under the low mark */
        }
        struct proto_cmd cmd;
        size_t used;
        int rc = 0;
        switch (proto_parse(&c->parser, p + pos, n - pos, &used, &cmd)) {
        case PROTO_AGAIN:
            c->line_held += used;
            break;
        case PROTO_CMD:
            c->cur_pos = pos;
            c->cur_bytes = c->line_held + used;
            c->cur_spanned = c->line_held > 0;
            c->line_held = 0;
            rc = apply_command(c, &cmd);
            break;
        case PROTO_DATA:
            if (c->data == DATA_FORWARD) {
                rc = run_take(r, &c->uout, pos, used);
            } else if (c->data == DATA_CORRUPT &&
                       (rc = conn_up_add(c, p + pos, used)) == 0) {
                shape_block_piece(c, c->uout.data + c->uout.end - used, used);
            }
            if (rc == 0 && proto_data_left(&c->parser) == 0) {
                rc = apply_data_end(c);
            }
            break;
        case PROTO_BINARY:
            log_msg(LOG_INFO, "conn %d: binary protocol, tunnelling", c->cfd);
            c->mode = MODE_BINARY;
            break;
        case PROTO_TOO_LONG:
            /* memcached closes such a connection: what came before is
             * answered, then it closes. */
            log_msg(LOG_INFO, "conn %d: line too long, closing", c->cfd);
            c->input = IN_DISCARD;
            client_read_done(c);
            break;
        }
        if (rc != 0) {
            conn_fail(c);
            return;
        }
        pos += used;
    }
    if (pos < n && c->input != IN_DISCARD &&
        buf_append(&c->cin, p + pos, n - pos) != 0) {
        conn_fail(c);
        return;
    }
    up_flush(c, r);
}

static void client_input(struct conn *c, const char *p, size_t n)
{
    if (c->input == IN_DISCARD) {
        return;
    }
    if (buf_len(&c->cin) > 0 || c->input == IN_HELD) {
        if (buf_append(&c->cin, p, n) != 0) {
            conn_fail(c);
        }
        return;
    }
    client_feed(c, p, n);
}

/* Parses what waits in cin (after a delay or a pause). */
static void client_resume(struct conn *c)
{
    struct buf src = c->cin;
    size_t skip = c->held_line;

    memset(&c->cin, 0, sizeof(c->cin));
    c->held_line = 0;
    if (skip > 0 && conn_up_add(c, buf_head(&src), skip) != 0) {
        conn_fail(c); /* the delayed command line goes now, as it was */
    } else if (buf_len(&src) > skip) {
        /* client_feed takes it all; what it keeps is in the new cin. */
        client_feed(c, buf_head(&src) + skip, buf_len(&src) - skip);
    }
    buf_free(&src);
}

/* ---- replies ---- */

static enum reply_kind expected_kind(struct conn *c)
{
    struct inflight_entry *e = inflight_head(&c->q);

    if (e != NULL && e->type == IF_ONE) {
        return (enum reply_kind)e->kind;
    }
    /* A group, or bytes nobody asked for: frame line by line. */
    return REPLY_KIND_ANY;
}

/* The head is a group that ends at a barrier the proxy sent: its MN must
 * not reach the client. */
static bool strip_next_mn(struct conn *c)
{
    struct inflight_entry *h = inflight_head(&c->q);

    return h != NULL && h->type == IF_GROUP && c->q.len > 1 &&
           inflight_at(&c->q, 1)->type == IF_BARRIER &&
           inflight_at(&c->q, 1)->strip;
}

/* "MN\r" split over reads: the first bytes of a line that may be the
 * barrier's MN are held back until the line ends. */
static bool maybe_mn(const struct reply_framer *f)
{
    return f->line_len <= 3 && f->head_len == f->line_len &&
           memcmp(f->head, "MN\r", f->line_len) == 0;
}

/*
 * The bytes p[pos..pos+used) of a reply that does not simply go on: the
 * head h swallows it (nothing is taken) or shapes it (shape_take), or the
 * line may be, or is, the barrier's MN (strip), or bytes were
 * held back as a possible MN (c->mn_len). Returns 0 or -1 (out of memory).
 */
__attribute__((noinline)) /* off the common path: keeps its registers */
static int
reply_take(struct conn *c, const struct inflight_entry *h, enum reply_event ev,
           bool strip, const char *p, size_t pos, size_t used)
{
    bool shaped = h != NULL && !h->swallow && h->shape;
    bool stripped =
        strip && ev == REPLY_DONE && c->framer.line == REPLY_LINE_MN;
    size_t take = used;
    int rc = 0;

    if (h != NULL && h->swallow) {
        return 0;
    }
    if (ev == REPLY_AGAIN && strip && maybe_mn(&c->framer)) {
        /* Maybe the barrier's MN: held back until the line ends. */
        size_t k = c->framer.line_len - c->mn_len;
        memcpy(c->mn_buf + c->mn_len, p + pos + used - k, k);
        c->mn_len = (uint8_t)c->framer.line_len;
        take -= k;
    } else if (stripped) {
        take = 0; /* the barrier's MN: not for the client */
        c->mn_len = 0;
    } else if (c->mn_len > 0) {
        /* Held back, and not the barrier's MN after all: they go first
         * (this chunk's run is still empty). */
        rc = shaped ? shape_take(c, c->mn_buf, c->mn_len)
                    : buf_append(&c->cout, c->mn_buf, c->mn_len);
        c->mn_len = 0;
    }
    if (rc == 0 && take > 0) {
        rc = shaped ? shape_take(c, p + pos, take)
                    : run_take(&c->rp, &c->cout, pos, take);
    }
    return rc;
}

/* Nothing queued is marked (swallow, shape, a stripped barrier), nothing
 * shaped is at work and no byte is held back as a possible MN: the reply
 * goes on as memcached sent it. */
static inline bool replies_plain(const struct conn *c)
{
    return c->q.marked == 0 && c->fx == NULL && c->mn_len == 0;
}

/*
 * Frames p[0..n) from the upstream and passes it to the client in order,
 * acting on the proxy's own entries as they reach the head. Takes all n
 * bytes: what must wait (a delay) is kept in uin.
 */
static void reply_chunk(struct conn *c, const char *p, size_t n)
{
    struct run *r = &c->rp;
    size_t pos = 0;
    int rc = 0;

    r->base = p;
    r->start = 0;
    r->end = 0;
    c->rp_active = true;
    while (rc == 0 && !shape_blocks(c->fx) && apply_head(c) && pos < n) {
        if (c->mode != MODE_TEXT) {
            rc = run_take(r, &c->cout, pos, n - pos);
            pos = n;
            break;
        }
        if (reply_idle(&c->framer)) {
            reply_expect(&c->framer, expected_kind(c));
        }
        struct inflight_entry *h = inflight_head(&c->q);
        bool special = false; /* swallow or shape: not on as it is */
        bool strip = false;
        size_t used;
        enum reply_event ev;
        if (replies_plain(c)) {
            ev = reply_feed(&c->framer, p + pos, n - pos, &used);
            rc = run_take(r, &c->cout, pos, used); /* the common case */
        } else {
            special = h != NULL && h->marks != 0;
            strip = !(special && h->swallow) && strip_next_mn(c);
            ev = reply_feed(&c->framer, p + pos, n - pos, &used);
            rc = reply_take(c, h, ev, strip, p, pos, used);
        }
        pos += used;
        if (ev == REPLY_AGAIN) {
            break;
        }
        if (ev == REPLY_RAW) {
            if (inflight_head(&c->q) != NULL) {
                inflight_pop(&c->q);
            }
            c->mode = MODE_WATCH;
            continue;
        }
        if (ev == REPLY_LINE_DONE && special && h->shape && rc == 0) {
            rc = shape_line_done(c); /* a value of a shaped reply is in */
        }
        bool is_mn = c->framer.line == REPLY_LINE_MN;
        if (log_enabled(LOG_TRACE) && !(strip && is_mn && ev == REPLY_DONE) &&
            !(special && h->swallow)) {
            const char *text;
            size_t tn = reply_last_line(&c->framer, &text);
            log_trace('>', c->cfd, text, tn);
        }
        if (ev == REPLY_DONE) {
            struct inflight_entry *e = inflight_head(&c->q);
            bool shaped = special && e->shape;
            if (c->rp_fresh && e != NULL && e->type == IF_ONE &&
                e->until != 0) {
                uint64_t now = conn_loop_us(c);
                stats_latency((enum proto_op)e->op,
                              now > e->until ? now - e->until : 0);
            }
            enum inflight_end end = inflight_reply_end(&c->q, is_mn);
            if (shaped && rc == 0) {
                rc = end == INFLIGHT_GOES_ON
                         ? shape_line_done(c)   /* a line of its group */
                         : shape_reply_done(c); /* its whole reply is in */
            }
        }
    }
    if (rc == 0 && pos < n && c->output == OUT_FLOW) {
        rc = buf_append(&c->uin, p + pos, n - pos); /* a delay holds it */
    }
    c->rp_active = false;
    if (rc != 0) {
        conn_fail(c);
        return;
    }
    client_flush(c, r);
}

static void upstream_input(struct conn *c, const char *p, size_t n)
{
    if (c->output != OUT_FLOW) {
        return; /* hang or drop: nobody gets these */
    }
    if (buf_len(&c->uin) > 0) {
        if (buf_append(&c->uin, p, n) != 0) {
            conn_fail(c);
        }
        return;
    }
    c->rp_fresh = true;
    reply_chunk(c, p, n);
    c->rp_fresh = false;
}

/* Replies held by a delay, or proxy-made entries at the head. */
static void upstream_resume(struct conn *c)
{
    struct buf src = c->uin;

    memset(&c->uin, 0, sizeof(c->uin));
    reply_chunk(c, buf_len(&src) > 0 ? buf_head(&src) : NULL, buf_len(&src));
    buf_free(&src);
}

/* ---- the loop ---- */

/* Replies can move: the head is not a delay whose time has yet to come
 * (its timer is armed again: libevent's clock may wake it a little early),
 * and there is something to move or act on. */
static bool replies_can_move(struct conn *c)
{
    struct inflight_entry *h = inflight_head(&c->q);

    if (shape_blocks(c->fx)) {
        return false; /* shape_pump's timer comes back */
    }
    if (h != NULL && h->type == IF_DELAY) {
        uint64_t now = conn_now_us();
        if (now < h->until) {
            conn_wake_output_in(c, h->until - now);
            return false;
        }
    }
    return buf_len(&c->uin) > 0 || (h != NULL && h->type >= IF_LOCAL);
}

/* A close the proxy makes (a drop, a truncate; a reset above all) must not
 * discard what the kernel has yet to send: the replies owed before it
 * would be lost. While some are, it waits (up to CONN_RESET_WAITS times
 * CONN_RESET_WAIT_US, for a client that reads). */
#define CONN_RESET_WAIT_US 5000
#define CONN_RESET_WAITS 200

static bool reset_put_off(struct conn *c)
{
    int unsent = 0;

    if (c->rst_waits >= CONN_RESET_WAITS ||
        ioctl(c->cfd, SIOCOUTQ, &unsent) != 0 || unsent <= 0) {
        return false;
    }
    c->rst_waits++;
    conn_wake_output_in(c, CONN_RESET_WAIT_US);
    return true;
}

/* Decides whether the connection is over; frees it and returns true then.
 * A client's EOF is passed on to the upstream once what it sent is
 * written; memcached then answers what it read and closes. */
static bool conn_check_done(struct conn *c)
{
    if (c->output == OUT_SILENT) {
        /* A connect rule's hang: over when the client goes. */
        if (c->client == CLIENT_OPEN) {
            return false;
        }
        conn_free(c);
        return true;
    }
    if (c->client != CLIENT_OPEN && c->client != CLIENT_WRITE_SHUT &&
        buf_len(&c->uout) == 0 && buf_len(&c->cin) == 0 &&
        c->input != IN_HELD) {
        /* Everything the client sent is on its way. */
        if (c->up == UP_OPEN) {
            shutdown(c->ufd, SHUT_WR);
            c->up = UP_WRITE_SHUT;
        } else if (c->up < UP_OPEN) {
            up_close(c);
        }
    }
    if (c->up != UP_CLOSED) {
        return false;
    }
    if (c->fx != NULL && c->output == OUT_FLOW) {
        shape_upstream_gone(c); /* a kept reply's part that came */
    }
    if (c->client == CLIENT_GONE) {
        conn_free(c);
        return true;
    }
    if (buf_len(&c->cout) > 0) {
        return false;
    }
    struct inflight_entry *h = inflight_head(&c->q);
    if (h != NULL && h->type == IF_DELAY && c->output == OUT_FLOW) {
        return false; /* the output timer comes back */
    }
    if (c->fx != NULL && buf_len(&c->fx->out) > 0 && c->output == OUT_FLOW) {
        return false; /* paced bytes to go: shape_pump's timer comes back */
    }
    if (c->mode != MODE_TEXT && c->client == CLIENT_OPEN) {
        /* A tunnel closes like a relay: memcached's close is passed on as
         * a half-close; the client's own EOF ends the connection. */
        shutdown(c->cfd, SHUT_WR);
        c->client = CLIENT_WRITE_SHUT;
        return false;
    }
    if (c->client == CLIENT_WRITE_SHUT) {
        return false;
    }
    if ((c->rst || c->output == OUT_DROP) && reset_put_off(c)) {
        return false;
    }
    conn_free(c);
    return true;
}

/* Backpressure: the client is read while the connection holds less than
 * the high mark (resuming under the low one), the upstream while what
 * waits for the client does. */
static void conn_update_events(struct conn *c)
{
    size_t to_client = held_to_client(c);
    size_t all = held_total(c);
    unsigned want = 0;

    if (c->client == CLIENT_WRITE_SHUT ||
        (c->client == CLIENT_OPEN &&
         (c->input == IN_DISCARD ||
          all < ((c->armed & (1u << EV_CREAD)) ? CONN_WATER_HIGH
                                               : CONN_WATER_LOW)))) {
        want |= 1u << EV_CREAD;
    }
    if (buf_len(&c->cout) > 0) {
        want |= 1u << EV_CWRITE;
    }
    if (c->ufd >= 0) {
        if (c->up >= UP_OPEN && c->up < UP_CLOSED &&
            to_client < ((c->armed & (1u << EV_UREAD)) ? CONN_WATER_HIGH
                                                       : CONN_WATER_LOW)) {
            want |= 1u << EV_UREAD;
        }
        if (c->up == UP_CONNECTING ||
            (c->up == UP_OPEN && buf_len(&c->uout) > 0)) {
            want |= 1u << EV_UWRITE;
        }
    }
    if (want == c->armed) {
        return;
    }
    for (int i = EV_CREAD; i <= EV_UWRITE; i++) {
        arm(c, i, (want & (1u << i)) != 0);
    }
}

/* After every event: what waits is processed, written, and the events
 * follow the connection's state. */
static void conn_run(struct conn *c)
{
    struct inflight_entry *h = inflight_head(&c->q);

    /* The common case, cheaply: both sides open, nothing held, nothing of
     * the proxy's own at the head, both sides read: nothing to do. */
    if ((c->cin.cap | c->uout.cap | c->uin.cap | c->cout.cap | c->local.cap) ==
            0 &&
        c->fx == NULL && c->client == CLIENT_OPEN && c->up == UP_OPEN &&
        c->input == IN_PARSE && c->output == OUT_FLOW &&
        (h == NULL || h->type < IF_LOCAL) &&
        c->armed == ((1u << EV_CREAD) | (1u << EV_UREAD))) {
        return;
    }
    /* Paced bytes that are due go first; once they are all out, the
     * replies behind them move, and a shaped one among them starts its
     * own pace (which may be due at once: round again). Each turn moves
     * at least one reply. */
    for (;;) {
        if (c->fx != NULL) {
            shape_pump(c);
        }
        if (c->output != OUT_FLOW || !replies_can_move(c)) {
            break;
        }
        upstream_resume(c);
    }
    if (buf_len(&c->uout) > 0) {
        up_flush(c, NULL);
    }
    if (buf_len(&c->cout) > 0) {
        client_flush(c, NULL);
    }
    /* After the writes: they are what brings a paused connection back
     * under the low mark. Each turn takes some input; a client that does
     * not read stops it, and its write event brings us back. */
    while (c->input == IN_PARSE && buf_len(&c->cin) > 0 &&
           held_total(c) - c->cin.cap < CONN_WATER_LOW) {
        client_resume(c);
        if (buf_len(&c->cout) > 0) {
            client_flush(c, NULL);
        }
    }
    if (conn_check_done(c)) {
        return;
    }
    conn_update_events(c);
}

/* ---- callbacks ---- */

static void on_client_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;

    read_started_us = conn_now_us();
    for (int i = 0; i < CONN_READS_MAX; i++) {
        ssize_t n = recv(c->cfd, scratch, sizeof(scratch), 0);
        if (n > 0) {
            stats.client_bytes_in += (uint64_t)n;
            if (c->client == CLIENT_OPEN) {
                client_input(c, scratch, (size_t)n);
            }
            if ((size_t)n < sizeof(scratch) || c->input != IN_PARSE ||
                held_total(c) > CONN_WATER_HIGH) {
                break;
            }
            continue;
        }
        if (n == 0) {
            client_read_done(c);
        } else if (errno != EAGAIN && errno != EINTR) {
            c->client = CLIENT_GONE;
            c->input = IN_DISCARD;
            buf_free(&c->cout);
            buf_free(&c->cin);
        }
        break;
    }
    conn_run(c);
    read_started_us = 0; /* other callbacks read the clock */
}

static void upstream_closed(struct conn *c, ssize_t n)
{
    if (n < 0) {
        log_msg(LOG_INFO, "conn %d: upstream %s:%s: %s", c->cfd,
                c->px->upstream_spec.host, c->px->upstream_spec.port,
                strerror(errno));
    } else {
        log_msg(LOG_INFO, "conn %d: upstream closed", c->cfd);
    }
    up_close(c);
}

static void on_upstream_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;

    read_started_us = conn_now_us();
    for (int i = 0; i < CONN_READS_MAX; i++) {
        ssize_t n = recv(c->ufd, scratch, sizeof(scratch), 0);
        if (n > 0) {
            stats.upstream_bytes_in += (uint64_t)n;
            upstream_input(c, scratch, (size_t)n);
            if ((size_t)n < sizeof(scratch) ||
                held_to_client(c) > CONN_WATER_HIGH) {
                break;
            }
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            upstream_closed(c, n);
        }
        break;
    }
    conn_run(c);
    read_started_us = 0; /* other callbacks read the clock */
}

static void on_client_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_run(arg);
}

static void on_upstream_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;

    if (c->up == UP_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
            err = errno;
        }
        if (err != 0) {
            resolver_invalidate(c->px->resolver); /* moved? look again */
            stats.upstream_errors++;
            log_msg(LOG_ERROR, "conn %d: upstream %s:%s: %s", c->cfd,
                    c->px->upstream_spec.host, c->px->upstream_spec.port,
                    strerror(err));
            conn_free(c);
            return;
        }
        c->up = UP_OPEN;
        if (c->up_timer != NULL) {
            evtimer_del(c->up_timer);
        }
        log_msg(LOG_INFO, "conn %d: upstream connected", c->cfd);
    }
    conn_run(c);
}

/* A delay without forward is over: the held command goes, and what the
 * client sent behind it. */
static void on_in_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;

    if (c->input == IN_HELD) {
        c->input = IN_PARSE;
        client_resume(c);
    }
    conn_run(c);
}

/* An IF_DELAY's time has come: replies flow again. */
static void on_out_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_run(arg);
}

void conn_wake_output_in(struct conn *c, uint64_t us)
{
    timer_arm(c, &c->out_timer, on_out_timer, us);
}

/* Shaped bytes are due (shape_pump, from conn_run). */
static void on_shape_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_run(arg);
}

void conn_wake_shape_in(struct conn *c, uint64_t us)
{
    if (c->fx != NULL) {
        timer_arm(c, &c->fx->timer, on_shape_timer, us);
    }
}

/* ---- lifecycle ---- */

/* Frees what c holds (any part may be missing when conn_create failed
 * half-way), closes both sockets, frees c. */
static void conn_release(struct conn *c)
{
    struct event *evs[] = {c->ev[0],    c->ev[1],     c->ev[2],   c->ev[3],
                           c->in_timer, c->out_timer, c->up_timer};
    struct buf *bufs[] = {&c->cin, &c->cout, &c->uin, &c->uout, &c->local};

    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        if (evs[i] != NULL) {
            event_free(evs[i]);
        }
    }
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        buf_free(bufs[i]);
    }
    proto_deinit(&c->parser);
    inflight_deinit(&c->q);
    shape_free(c);
    if (c->rst) {
        /* A reset, not a FIN: the client reads ECONNRESET. */
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->cfd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    } else if (c->output == OUT_DROP) {
        /* A FIN, not a reset: Linux resets a socket closed with input
         * unread, and what the client sent after the drop is. */
        for (int i = 0;
             i < CONN_READS_MAX * 4 &&
             recv(c->cfd, scratch, sizeof(scratch), MSG_DONTWAIT) > 0;
             i++) {
        }
    }
    close(c->cfd);
    if (c->ufd >= 0) {
        close(c->ufd);
    }
    free(c);
}

static void conn_free(struct conn *c)
{
    struct proxy *px = c->px;

    log_msg(LOG_INFO, "conn %d: closed", c->cfd);
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        px->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    px->conns_now--;
    stats.connections_now--;
    conn_release(c);
}

void conn_drain_all(struct proxy *px)
{
    struct conn *c = px->conns;

    while (c != NULL) {
        struct conn *next = c->next; /* c may be freed below */
        client_read_done(c);
        conn_run(c);
        c = next;
    }
}

void conn_close_all(struct proxy *px)
{
    while (px->conns != NULL) {
        conn_free(px->conns);
    }
}

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Starts a non-blocking connect to the upstream and its two events. */
static int upstream_connect(struct conn *c)
{
    const struct proxy *px = c->px;

    c->ufd = socket(px->upstream.ss_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->ufd < 0) {
        return -1;
    }
    set_nodelay(c->ufd);
    c->ev[EV_UREAD] =
        event_new(px->base, c->ufd, EV_READ | EV_PERSIST, on_upstream_read, c);
    c->ev[EV_UWRITE] = event_new(px->base, c->ufd, EV_WRITE | EV_PERSIST,
                                 on_upstream_write, c);
    if (c->ev[EV_UREAD] == NULL || c->ev[EV_UWRITE] == NULL) {
        errno = ENOMEM;
        return -1;
    }
    if (connect(c->ufd, (const struct sockaddr *)&px->upstream,
                px->upstream_len) == 0) {
        c->up = UP_OPEN;
        return 0;
    }
    if (errno != EINPROGRESS) {
        return -1;
    }
    c->up = UP_CONNECTING;
    return 0;
}

/* The half of conn_create both entries share: c for client fd, in px. */
static struct conn *conn_new(struct proxy *px, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        close(fd);
        return NULL;
    }
    c->px = px;
    c->cfd = fd;
    c->ufd = -1;
    evutil_make_socket_nonblocking(fd);
    set_nodelay(fd);
    proto_init(&c->parser);
    reply_init(&c->framer);
    inflight_init(&c->q);
    c->ev[EV_CREAD] =
        event_new(px->base, fd, EV_READ | EV_PERSIST, on_client_read, c);
    c->ev[EV_CWRITE] =
        event_new(px->base, fd, EV_WRITE | EV_PERSIST, on_client_write, c);
    if (c->ev[EV_CREAD] == NULL || c->ev[EV_CWRITE] == NULL) {
        conn_release(c);
        return NULL;
    }
    return c;
}

/* Puts c in px's list and starts serving it. */
static void conn_start(struct conn *c)
{
    struct proxy *px = c->px;

    c->next = px->conns;
    if (px->conns) {
        px->conns->prev = c;
    }
    px->conns = c;
    px->conns_now++;
    px->conns_total++;
    stats.connections_now++;
    stats.connections_total++;
    conn_update_events(c);
}

/* A connect that neither succeeded nor failed in time: as refused. */
static void on_up_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;

    if (c->up != UP_CONNECTING) {
        return;
    }
    resolver_invalidate(c->px->resolver); /* moved? look again */
    stats.upstream_errors++;
    log_msg(LOG_ERROR, "conn %d: upstream %s:%s: no answer within %d ms",
            c->cfd, c->px->upstream_spec.host, c->px->upstream_spec.port,
            CONN_CONNECT_TIMEOUT_MS);
    conn_free(c);
}

/* The upstream's address is known (px->upstream): connect. Returns 0, or
 * -1 with the reason logged. */
static int conn_connect(struct conn *c)
{
    struct proxy *px = c->px;

    if (upstream_connect(c) == 0) {
        if (c->up == UP_CONNECTING) {
            timer_arm(c, &c->up_timer, on_up_timer,
                      (uint64_t)CONN_CONNECT_TIMEOUT_MS * 1000u);
        }
        return 0;
    }
    if (c->ufd >= 0) {
        resolver_invalidate(px->resolver); /* moved? look again */
    }
    stats.upstream_errors++;
    log_msg(LOG_ERROR, "conn %d: upstream %s:%s: %s", c->cfd,
            px->upstream_spec.host, px->upstream_spec.port, strerror(errno));
    return -1;
}

/* A connection a connect rule closes at once: counted as accepted, closed
 * as a drop (a FIN unless the rule says reset). */
static void conn_refused(struct conn *c)
{
    c->px->conns_total++;
    stats.connections_total++;
    c->output = OUT_DROP;
    conn_release(c);
}

/* The client's address for `client:` rules (IPv4 mapped), and its draw
 * for `connections:` ones. */
static void conn_identify(struct conn *c, const struct sockaddr *peer)
{
    struct proxy *px = c->px;
    /* splitmix64 over the proxy's stream: seeded runs draw alike. */
    uint64_t z = (px->conn_seed += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    c->pick = (uint32_t)((z ^ (z >> 31)) >> 32);
    if (peer == NULL) {
        return;
    }
    if (peer->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)peer;
        memset(c->peer, 0, 10);
        c->peer[10] = 0xff;
        c->peer[11] = 0xff;
        memcpy(c->peer + 12, &in->sin_addr, 4);
        c->peer_ip = true;
    } else if (peer->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)peer;
        memcpy(c->peer, &in6->sin6_addr, 16);
        c->peer_ip = true;
    }
}

int conn_create(struct proxy *px, int fd, const struct sockaddr *peer)
{
    char name[128];
    struct conn *c;

    log_msg(LOG_INFO, "conn %d: open from %s", fd,
            addr_format(peer, name, sizeof(name)));
    if ((c = conn_new(px, fd)) == NULL) {
        return -1;
    }
    conn_identify(c, peer);
    switch (apply_connect(c)) {
    case CONNECT_SERVE:
        break;
    case CONNECT_CLOSE:
        log_msg(LOG_INFO, "conn %d: closed by a connect rule", fd);
        conn_refused(c);
        return 0;
    case CONNECT_ANSWER:
        /* Written now, then closed, as memcached refuses a connection. */
        client_flush(c, NULL);
        conn_refused(c);
        return 0;
    case CONNECT_SILENT:
        c->up = UP_CLOSED; /* never served: no upstream either */
        conn_start(c);
        return 0;
    }
    if (resolver_get(px->resolver, &px->upstream, &px->upstream_len) != 0) {
        /* Looked up on a thread: the client waits (what it sends is
         * kept), conn_upstream_resolved goes on. */
        c->up = UP_RESOLVING;
    } else if (conn_connect(c) != 0) {
        conn_release(c);
        return -1;
    }
    conn_start(c);
    return 0;
}

void conn_upstream_resolved(struct proxy *px, int status)
{
    struct conn *c = px->conns;

    while (c != NULL) {
        struct conn *next = c->next; /* c may be freed below */
        if (c->up != UP_RESOLVING) {
            /* not waiting */
        } else if (status != 0) {
            stats.upstream_errors++;
            log_msg(LOG_ERROR, "conn %d: upstream %s:%s: not resolved", c->cfd,
                    px->upstream_spec.host, px->upstream_spec.port);
            conn_free(c);
        } else if (resolver_get(px->resolver, &px->upstream,
                                &px->upstream_len) != 0) {
            /* A connect before this one failed and asked for a new
             * lookup: wait for it. */
        } else if (conn_connect(c) != 0) {
            conn_free(c);
        } else {
            conn_run(c);
        }
        c = next;
    }
}

int conn_adopt(struct proxy *px, int cfd, int ufd)
{
    struct conn *c = conn_new(px, cfd);

    if (c == NULL) {
        close(ufd);
        return -1;
    }
    c->ufd = ufd;
    evutil_make_socket_nonblocking(ufd);
    c->ev[EV_UREAD] =
        event_new(px->base, ufd, EV_READ | EV_PERSIST, on_upstream_read, c);
    c->ev[EV_UWRITE] =
        event_new(px->base, ufd, EV_WRITE | EV_PERSIST, on_upstream_write, c);
    if (c->ev[EV_UREAD] == NULL || c->ev[EV_UWRITE] == NULL) {
        conn_release(c);
        return -1;
    }
    c->up = UP_OPEN;
    conn_start(c);
    return 0;
}
