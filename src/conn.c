/*
 * One client connection and its upstream connection: requests are parsed
 * and forwarded, replies framed and matched to the FIFO of in-flight
 * commands, so that a reply made by the proxy lands where memcached's would.
 */
#include "mcfault/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "mcfault/fault.h"
#include "mcfault/log.h"
#include "mcfault/proto.h"
#include "mcfault/reply.h"
#include "mcfault/resolve.h"
#include "mcfault/rules.h"
#include "mcfault/stats.h"

/* One recv reads at most this much; a full read is followed by another, up
 * to CONN_READS_MAX times, so big values need few loop turns. */
#define CONN_READ_SIZE (64 * 1024)
#define CONN_READS_MAX 4
/* Backpressure: stop reading one side while the buffer towards the other
 * side holds more than HIGH bytes; resume below LOW. */
#define CONN_WATER_HIGH (1024 * 1024)
#define CONN_WATER_LOW (256 * 1024)
/* The FIFO starts with this many slots and doubles when full. */
#define CONN_FIFO_INIT 16
/* Keys of a command the rule table sees without allocating; more grow
 * conn.keys. */
#define CONN_KEYS_INIT 32

static const char barrier_cmd[] = "mn\r\n";

/*
 * In-flight entries, oldest first:
 * - ONE: a forwarded command with exactly one reply, framed by its kind;
 * - GROUP: forwarded commands whose reply count is unknown (noreply, meta q,
 *   and whatever follows them before a barrier); their replies pass through
 *   as they come;
 * - BARRIER: an "mn" closing the GROUP before it; its MN ends the group and
 *   is stripped when the proxy injected it;
 * - LOCAL: a reply made by the proxy, held in conn.local until its turn.
 * Faults add three more, which act when they reach the head:
 * - DELAY: hold every reply behind it until a time (forward: true delay);
 * - DROP: close the connection (drop);
 * - HANG: swallow every reply from here on (hang).
 * A ONE or GROUP marked swallow is a forwarded command whose reply a fault
 * replaces: it is framed as usual and discarded.
 */
enum entry_type {
    E_ONE = 0,
    E_GROUP,
    E_BARRIER,
    E_LOCAL,
    E_DELAY,
    E_DROP,
    E_HANG
};

struct entry {
    uint8_t type;
    uint8_t kind;    /* E_ONE: enum proto_reply */
    uint8_t strip;   /* E_BARRIER: injected by us */
    uint8_t swallow; /* E_ONE, E_GROUP: discard the reply */
    uint32_t len;    /* E_LOCAL: reply bytes in conn.local */
    uint64_t until;  /* E_DELAY: monotonic microseconds */
};

/* What a forward: true fault does once the command is on its way. */
enum post_fx { FX_NONE = 0, FX_ERROR, FX_DROP, FX_HANG };

enum conn_mode {
    MODE_TEXT = 0, /* parse and frame */
    MODE_TUNNEL    /* binary protocol or watch: raw bytes both ways */
};

struct conn {
    struct proxy *px;
    struct conn *prev;
    struct conn *next;
    int cfd;
    int ufd;
    struct event *cread;
    struct event *cwrite;
    struct event *uread;
    struct event *uwrite;
    bool cread_on;
    bool cwrite_on;
    bool uread_on;
    bool uwrite_on;
    bool uconnected;
    bool client_eof;   /* no more requests will come */
    bool client_dead;  /* nothing can be written to the client */
    bool upstream_eof; /* no more replies will come */
    bool stop_parsing; /* quit or an over-long line: ignore the rest */
    bool ushut;        /* upstream write side shut after client EOF */
    bool in_paused;    /* a delay rule holds the current command */
    bool dropping;     /* a drop rule fired: flush what is owed, close */
    enum conn_mode mode;
    struct evbuffer *cin;   /* from client, not yet forwarded */
    struct evbuffer *uout;  /* to upstream */
    struct evbuffer *uin;   /* from upstream, not yet passed on */
    struct evbuffer *cout;  /* to client */
    struct evbuffer *local; /* proxy-made replies waiting for their turn */
    struct proto_parser parser;
    struct reply_framer framer;
    size_t req_fwd;    /* bytes at the head of cin to forward */
    size_t req_held;   /* then bytes of a partial line the parser holds */
    bool data_local;   /* the current data block is dropped, not sent */
    uint32_t deferred; /* local reply bytes waiting for the data block */
    bool has_deferred;
    uint8_t post;            /* enum post_fx waiting for the data block */
    uint32_t post_len;       /* FX_ERROR: reply bytes in conn.local */
    struct event *in_timer;  /* ends in_paused */
    struct event *out_timer; /* wakes a DELAY entry at the head */
    struct proto_tok *keys;  /* the current command's keys, for rules */
    uint32_t keys_cap;
    char keybuf[PROTO_KEY_MAX + 1]; /* a base64 key, decoded */
    size_t resp_fwd; /* bytes at the head of uin owed to the client */
    bool group_open; /* the FIFO tail is a GROUP without a barrier */
    struct entry *fifo;
    uint32_t fifo_cap; /* a power of two */
    uint32_t fifo_head;
    uint32_t fifo_len;
};

static void conn_free(struct conn *c);
static void conn_check_done(struct conn *c);

/* ---- FIFO ---- */

static struct entry *fifo_at(struct conn *c, uint32_t i)
{
    return &c->fifo[(c->fifo_head + i) & (c->fifo_cap - 1)];
}

static struct entry *fifo_head(struct conn *c)
{
    return c->fifo_len ? fifo_at(c, 0) : NULL;
}

static int fifo_push(struct conn *c, struct entry e)
{
    if (c->fifo_len == c->fifo_cap) {
        uint32_t cap = c->fifo_cap * 2;
        struct entry *f = malloc(sizeof(*f) * cap);
        if (f == NULL) {
            return -1;
        }
        for (uint32_t i = 0; i < c->fifo_len; i++) {
            f[i] = *fifo_at(c, i);
        }
        free(c->fifo);
        c->fifo = f;
        c->fifo_cap = cap;
        c->fifo_head = 0;
    }
    *fifo_at(c, c->fifo_len) = e;
    c->fifo_len++;
    return 0;
}

static void fifo_pop(struct conn *c)
{
    c->fifo_head = (c->fifo_head + 1) & (c->fifo_cap - 1);
    c->fifo_len--;
}

/* ---- events and writes ---- */

static void ev_set(struct event *ev, bool *on, bool want)
{
    if (want && !*on) {
        event_add(ev, NULL);
    } else if (!want && *on) {
        event_del(ev);
    }
    *on = want;
}

/* Applies backpressure: read a side only while the buffer it feeds is not
 * over the high mark (resuming under the low mark). */
static void conn_update_reads(struct conn *c)
{
    /* Held input (a delay) and held replies count as well. */
    size_t uo = evbuffer_get_length(c->uout) + evbuffer_get_length(c->cin);
    size_t co = evbuffer_get_length(c->cout) + evbuffer_get_length(c->uin);
    bool want_c = !c->client_eof &&
                  (c->cread_on ? uo <= CONN_WATER_HIGH : uo < CONN_WATER_LOW);
    bool want_u = !c->upstream_eof &&
                  (c->uread_on ? co <= CONN_WATER_HIGH : co < CONN_WATER_LOW);
    ev_set(c->cread, &c->cread_on, want_c);
    ev_set(c->uread, &c->uread_on, want_u);
}

/* Writes what buf holds to fd (adding what went to *count); arms the
 * write event only on EAGAIN. Returns -1 when the peer is gone. */
static int flush_buf(struct evbuffer *buf, int fd, struct event *ev, bool *on,
                     uint64_t *count)
{
    if (evbuffer_get_length(buf) > 0) {
        int n = evbuffer_write(buf, fd);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return -1;
        }
        if (n > 0) {
            *count += (uint64_t)n;
        }
    }
    ev_set(ev, on, evbuffer_get_length(buf) > 0);
    return 0;
}

static void flush_upstream(struct conn *c)
{
    if (!c->uconnected || c->upstream_eof) {
        return;
    }
    if (flush_buf(c->uout, c->ufd, c->uwrite, &c->uwrite_on,
                  &stats.upstream_bytes_out) != 0) {
        log_msg(LOG_INFO, "conn %d: upstream write failed: %s", c->cfd,
                strerror(errno));
        c->upstream_eof = true;
        evbuffer_drain(c->uout, evbuffer_get_length(c->uout));
    }
}

static void flush_client(struct conn *c)
{
    if (c->client_dead) {
        evbuffer_drain(c->cout, evbuffer_get_length(c->cout));
        return;
    }
    if (flush_buf(c->cout, c->cfd, c->cwrite, &c->cwrite_on,
                  &stats.client_bytes_out) != 0) {
        c->client_dead = true;
        c->client_eof = true;
        evbuffer_drain(c->cout, evbuffer_get_length(c->cout));
    }
}

/* ---- replies ---- */

/* Moves the framed bytes owed to the client from uin to cout. */
static void resp_flush(struct conn *c)
{
    if (c->resp_fwd > 0) {
        evbuffer_remove_buffer(c->uin, c->cout, c->resp_fwd);
        c->resp_fwd = 0;
    }
}

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
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

/* Moves a proxy-made reply of len bytes from conn.local to the client. */
static void emit_local(struct conn *c, uint32_t len)
{
    if (log_enabled(LOG_TRACE) && len > 2) {
        const char *text = (const char *)evbuffer_pullup(c->local, len);
        log_trace('>', c->cfd, text, len - 2);
    }
    evbuffer_remove_buffer(c->local, c->cout, len);
}

/* A drop fired: what is owed is flushed, then both sides close. */
static void conn_begin_drop(struct conn *c)
{
    c->dropping = true;
    c->stop_parsing = true;
    c->client_eof = true;
    c->upstream_eof = true;
}

static void on_out_timer(evutil_socket_t fd, short what, void *arg);

/* Acts on the entries at the head of the FIFO that the proxy made.
 * Returns false when replies must not flow now (a delay is pending, the
 * connection hangs or is being dropped). */
static bool run_head(struct conn *c)
{
    struct entry *e;

    while ((e = fifo_head(c)) != NULL) {
        switch (e->type) {
        case E_LOCAL:
            resp_flush(c);
            emit_local(c, e->len);
            fifo_pop(c);
            break;
        case E_DELAY: {
            uint64_t now = now_us();
            if (now < e->until) {
                resp_flush(c);
                timer_arm(c, &c->out_timer, on_out_timer, e->until - now);
                return false;
            }
            fifo_pop(c);
            break;
        }
        case E_DROP:
            resp_flush(c);
            conn_begin_drop(c);
            return false;
        case E_HANG:
            resp_flush(c);
            evbuffer_drain(c->uin, evbuffer_get_length(c->uin));
            return false;
        default:
            return true;
        }
    }
    return true;
}

static enum reply_kind expected_kind(struct conn *c)
{
    struct entry *e = fifo_head(c);

    if (e != NULL && e->type == E_ONE) {
        return (enum reply_kind)e->kind;
    }
    /* A group, or bytes nobody asked for: frame line by line. */
    return REPLY_KIND_ANY;
}

static void enter_tunnel(struct conn *c)
{
    c->mode = MODE_TUNNEL;
    c->stop_parsing = false;
}

/* A reply (or, for groups, one line of it) has ended; a swallowed one is
 * already gone from uin. */
static void reply_done(struct conn *c, bool swallow)
{
    struct entry *e = fifo_head(c);

    if (e == NULL) {
        return;
    }
    if (e->type == E_ONE) {
        fifo_pop(c);
        return;
    }
    if (e->type == E_GROUP && c->framer.line == REPLY_LINE_MN &&
        c->fifo_len > 1 && fifo_at(c, 1)->type == E_BARRIER) {
        bool strip = fifo_at(c, 1)->strip;
        if (strip && !swallow) {
            size_t n = c->framer.line_len;
            c->resp_fwd -= n;
            resp_flush(c);
            evbuffer_drain(c->uin, n);
        }
        fifo_pop(c);
        fifo_pop(c);
    }
}

/* Frames what arrived from upstream and passes it on in order. */
static void process_upstream(struct conn *c)
{
    if (c->dropping) {
        return;
    }
    for (;;) {
        if (!run_head(c)) {
            break;
        }
        if (c->mode == MODE_TUNNEL) {
            c->resp_fwd = evbuffer_get_length(c->uin);
            break;
        }
        size_t have = evbuffer_get_length(c->uin);
        if (c->resp_fwd >= have) {
            break;
        }
        if (reply_idle(&c->framer)) {
            reply_expect(&c->framer, expected_kind(c));
        }
        struct entry *h = fifo_head(c);
        bool swallow = h != NULL && h->swallow;
        if (swallow) {
            resp_flush(c);
        }
        struct evbuffer_ptr ptr;
        struct evbuffer_iovec v;
        evbuffer_ptr_set(c->uin, &ptr, c->resp_fwd, EVBUFFER_PTR_SET);
        if (evbuffer_peek(c->uin, -1, &ptr, &v, 1) < 1) {
            break;
        }
        size_t used;
        enum reply_event ev =
            reply_feed(&c->framer, v.iov_base, v.iov_len, &used);
        if (swallow) {
            evbuffer_drain(c->uin, used);
        } else {
            c->resp_fwd += used;
        }
        if (ev == REPLY_AGAIN) {
            continue;
        }
        if (log_enabled(LOG_TRACE) && !swallow &&
            !(c->framer.line == REPLY_LINE_MN && c->fifo_len > 1 &&
              fifo_head(c)->type == E_GROUP && fifo_at(c, 1)->strip)) {
            const char *text;
            size_t n = reply_last_line(&c->framer, &text);
            log_trace('>', c->cfd, text, n);
        }
        if (ev == REPLY_DONE) {
            reply_done(c, swallow);
        } else if (ev == REPLY_RAW) {
            if (fifo_head(c) != NULL) {
                fifo_pop(c);
            }
            enter_tunnel(c);
        }
    }
    resp_flush(c);
}

/* ---- requests ---- */

/* Moves the bytes decided for forwarding from cin to uout. */
static void req_flush(struct conn *c)
{
    if (c->req_fwd > 0) {
        evbuffer_remove_buffer(c->cin, c->uout, c->req_fwd);
        c->req_fwd = 0;
    }
}

/* Closes an open group with an "mn" so the replies after it can be told
 * apart. */
static int close_group(struct conn *c, bool strip)
{
    if (!c->group_open) {
        return 0;
    }
    if (strip) {
        req_flush(c);
        evbuffer_add(c->uout, barrier_cmd, sizeof(barrier_cmd) - 1);
    }
    c->group_open = false;
    struct entry e = {.type = E_BARRIER, .strip = strip};
    return fifo_push(c, e);
}

/* Records a forwarded command in the FIFO. */
static int enqueue_forward(struct conn *c, const struct proto_cmd *cmd)
{
    if (cmd->op == PROTO_OP_MN && c->group_open) {
        /* The client's own mn closes the group; its MN goes to it. */
        return close_group(c, false);
    }
    if (c->group_open) {
        return 0; /* joins the group: its replies pass through */
    }
    struct entry e = {.type = E_ONE, .kind = (uint8_t)cmd->reply};
    if (cmd->noreply) {
        e.type = E_GROUP;
        c->group_open = true;
    }
    return fifo_push(c, e);
}

/* Puts the reply held in conn.local (len bytes) in line behind the
 * commands already in flight. */
static int enqueue_local(struct conn *c, uint32_t len)
{
    if (c->fifo_len == 0) {
        emit_local(c, len);
        return 0;
    }
    if (close_group(c, true) != 0) {
        return -1;
    }
    struct entry e = {.type = E_LOCAL, .len = len};
    return fifo_push(c, e);
}

/* Puts a fault entry (DROP, HANG) in line behind the commands in flight;
 * a drop with nothing in flight happens at once. */
static int enqueue_fault(struct conn *c, enum entry_type type)
{
    if (type == E_DROP && c->fifo_len == 0) {
        conn_begin_drop(c);
        return 0;
    }
    if (close_group(c, true) != 0) {
        return -1;
    }
    struct entry e = {.type = (uint8_t)type};
    return fifo_push(c, e);
}

/* Appends a reply made by render() to conn.local; returns its length. */
static uint32_t local_add(struct conn *c, const char *text, size_t n)
{
    if (n == 0 || evbuffer_add(c->local, text, n) != 0) {
        return 0;
    }
    return (uint32_t)n;
}

/* Testing aid (--debug-inject): keys with the prefix get SERVER_ERROR. */
static bool debug_inject(struct conn *c, const struct proto_cmd *cmd,
                         uint32_t *len)
{
    static const char msg[] = "SERVER_ERROR mcfault injected";
    const struct proxy *px = c->px;
    size_t pos = 0;
    struct proto_tok key;
    char out[sizeof(msg) + FAULT_ECHO_MAX + 2];

    if (px->inject_prefix == NULL || !proto_cmd_next_key(cmd, &pos, &key) ||
        key.len < px->inject_len ||
        memcmp(cmd->line + key.off, px->inject_prefix, px->inject_len) != 0) {
        return false;
    }
    size_t n = fault_render_error(cmd, msg, sizeof(msg) - 1, out, sizeof(out));
    *len = local_add(c, out, n);
    return true;
}

/* Collects the keys of cmd for the rule table (a base64 key decoded).
 * Returns -1 when out of memory. */
static int collect_keys(struct conn *c, const struct proto_cmd *cmd,
                        struct rules_subject *s)
{
    size_t pos = 0;
    struct proto_tok key;
    size_t n = 0;

    s->key_base = cmd->line;
    while (proto_cmd_next_key(cmd, &pos, &key)) {
        if (n == c->keys_cap) {
            uint32_t cap = c->keys_cap ? c->keys_cap * 2 : CONN_KEYS_INIT;
            struct proto_tok *k = realloc(c->keys, sizeof(*k) * cap);
            if (k == NULL) {
                return -1;
            }
            c->keys = k;
            c->keys_cap = cap;
        }
        c->keys[n++] = key;
    }
    size_t dlen;
    if (n == 1 && cmd->key_base64 &&
        fault_b64_decode(cmd->line + c->keys[0].off, c->keys[0].len, c->keybuf,
                         sizeof(c->keybuf), &dlen)) {
        s->key_base = c->keybuf;
        c->keys[0].off = 0;
        c->keys[0].len = (uint32_t)dlen;
    }
    s->keys = c->keys;
    s->nkeys = n;
    return 0;
}

/* Logs a fault that fired: -v text, and a JSON line for --event-log. */
static void log_fault(struct conn *c, const struct rule *r,
                      const struct rules_subject *s)
{
    stats.faults_total++;
    stats.faults[r->action]++;
    if (!log_enabled(LOG_INFO) && !log_event_enabled() && !stats_keep_events) {
        return;
    }
    /* The first key the rule matched (the command's first key for rules
     * on keyless commands). */
    size_t ki = 0;
    while (ki + 1 < s->nkeys &&
           !rule_key_match(r, s->key_base + s->keys[ki].off, s->keys[ki].len)) {
        ki++;
    }
    const char *key = s->nkeys > 0 ? s->key_base + s->keys[ki].off : "";
    size_t klen = s->nkeys > 0 ? s->keys[ki].len : 0;
    const char *act = rule_action_name(r->action);
    /* Escaping makes a byte at most 6 bytes (\u00HH); rule and proxy names
     * are at most 128 bytes (config.c), keys PROTO_KEY_MAX, a command
     * name at most a line. */
    char k[PROTO_KEY_MAX * 6 + 8];
    char name[PROTO_LINE_MAX * 6 + 8];

    if (log_enabled(LOG_INFO)) {
        log_msg(LOG_INFO, "conn %d: fault %s rule '%s' %s%s: %s%s%s", c->cfd,
                c->px->name, r->name, act, r->forward ? " (forward)" : "",
                log_printable(s->name, s->name_len, name, sizeof(name)),
                klen > 0 ? " " : "", log_printable(key, klen, k, sizeof(k)));
    }
    if (log_event_enabled() || stats_keep_events) {
        char line[sizeof(k) + sizeof(name) + 2048];
        char rn[128 * 6 + 8];
        char pn[128 * 6 + 8];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(
            line, sizeof(line),
            "{\"time\":%lld.%06ld,\"proxy\":\"%s\",\"conn\":%d,"
            "\"rule\":\"%s\",\"action\":\"%s\",\"forward\":%s,"
            "\"command\":\"%s\",\"key\":\"%s\",\"keys\":%zu}",
            (long long)ts.tv_sec, ts.tv_nsec / 1000,
            log_json_escape(c->px->name, strlen(c->px->name), pn, sizeof(pn)),
            c->cfd, log_json_escape(r->name, strlen(r->name), rn, sizeof(rn)),
            act, r->forward ? "true" : "false",
            log_json_escape(s->name, s->name_len, name, sizeof(name)),
            log_json_escape(key, klen, k, sizeof(k)), s->nkeys);
        log_event(line);
        if (stats_keep_events) {
            stats_event_push(line);
        }
    }
}

/* Answers cmd with the len bytes at the end of conn.local (possibly none)
 * instead of forwarding it; a data block is swallowed first. */
static int answer_local(struct conn *c, const struct proto_cmd *cmd,
                        size_t line_bytes, uint32_t len)
{
    req_flush(c);
    evbuffer_drain(c->cin, line_bytes);
    if (cmd->data_len > 0) {
        /* Answer after the data block, as memcached does. */
        c->data_local = true;
        c->deferred = len;
        c->has_deferred = true;
        return 0;
    }
    return len > 0 ? enqueue_local(c, len) : 0;
}

/* What a forward: true fault does once the command (and its data block)
 * is on its way: its reply is swallowed (marked when it was queued), then
 * the fault's entry follows. */
static int run_post(struct conn *c)
{
    enum post_fx fx = (enum post_fx)c->post;

    c->post = FX_NONE;
    switch (fx) {
    case FX_ERROR:
        if (close_group(c, true) != 0) {
            return -1;
        }
        return c->post_len > 0 ? enqueue_local(c, c->post_len) : 0;
    case FX_DROP:
        c->stop_parsing = true;
        return enqueue_fault(c, E_DROP);
    case FX_HANG:
        c->stop_parsing = true;
        return enqueue_fault(c, E_HANG);
    case FX_NONE:
        break;
    }
    return 0;
}

/* forward: true for error, drop, hang: the command goes to memcached; its
 * reply is framed and discarded (a noreply or quiet command is fenced with
 * a barrier so its replies, if any, are known), then fx acts. */
static int forward_then(struct conn *c, const struct proto_cmd *cmd,
                        size_t line_bytes, enum post_fx fx, uint32_t len)
{
    if (close_group(c, true) != 0) {
        return -1;
    }
    c->data_local = false;
    c->req_fwd += line_bytes;
    struct entry e = {.type = E_ONE, .kind = (uint8_t)cmd->reply, .swallow = 1};
    if (cmd->noreply) {
        e.type = E_GROUP;
        c->group_open = true;
    }
    if (fifo_push(c, e) != 0) {
        return -1;
    }
    c->post = (uint8_t)fx;
    c->post_len = len;
    return cmd->data_len > 0 ? 0 : run_post(c);
}

static void on_in_timer(evutil_socket_t fd, short what, void *arg);

/* A delay of d microseconds: with forward, a DELAY entry holds the replies
 * from this command on; without, the command and everything after it wait
 * in cin (other connections go on). */
static int apply_delay(struct conn *c, const struct proto_cmd *cmd,
                       size_t line_bytes, const struct rule *r)
{
    uint64_t d = r->delay_us;
    c->data_local = false;
    if (r->jitter_us > 0) {
        uint64_t span = 2 * r->jitter_us + 1;
        uint64_t j = rules_random(c->px->rules) % span;
        d = d + j >= r->jitter_us ? d + j - r->jitter_us : 0;
    }
    if (r->forward) {
        if (close_group(c, true) != 0) {
            return -1;
        }
        struct entry e = {.type = E_DELAY, .until = now_us() + d};
        if (fifo_push(c, e) != 0) {
            return -1;
        }
        c->req_fwd += line_bytes;
        return enqueue_forward(c, cmd);
    }
    req_flush(c);
    c->req_fwd = line_bytes;
    c->in_paused = true;
    timer_arm(c, &c->in_timer, on_in_timer, d);
    return enqueue_forward(c, cmd);
}

/* miss on get/gets/gat/gats: the keys r matches are dropped from the line
 * (memcached omits misses); when none is left, or for mg, the proxy
 * answers the miss itself. */
static int apply_miss(struct conn *c, const struct proto_cmd *cmd,
                      size_t line_bytes, const struct rule *r,
                      const struct rules_subject *s)
{
    char out[FAULT_ECHO_MAX + 8];
    size_t kept = 0;

    if (cmd->op != PROTO_OP_MG) {
        for (size_t i = 0; i < s->nkeys; i++) {
            const struct proto_tok *k = &s->keys[i];
            if (!rule_key_match(r, s->key_base + k->off, k->len)) {
                c->keys[kept++] = *k; /* s->keys is conn.keys */
            }
        }
    }
    if (kept == 0) {
        size_t n = fault_render_miss(cmd, out, sizeof(out));
        return answer_local(c, cmd, line_bytes, local_add(c, out, n));
    }
    /* "get a b c" becomes "get a c": the prefix up to the first key as the
     * client wrote it, then the kept keys. */
    req_flush(c);
    uint32_t first = cmd->tok[cmd->key_index].off;
    evbuffer_add(c->uout, cmd->line, first);
    for (size_t i = 0; i < kept; i++) {
        if (i > 0) {
            evbuffer_add(c->uout, " ", 1);
        }
        evbuffer_add(c->uout, cmd->line + s->keys[i].off, s->keys[i].len);
    }
    evbuffer_add(c->uout, "\r\n", 2);
    evbuffer_drain(c->cin, line_bytes);
    c->data_local = false;
    return enqueue_forward(c, cmd);
}

/* Applies the rule that fired for cmd. */
static int apply_rule(struct conn *c, const struct proto_cmd *cmd,
                      size_t line_bytes, const struct rule *r,
                      struct rules_subject *s)
{
    char out[1024 + FAULT_ECHO_MAX];
    uint32_t len = 0;

    log_fault(c, r, s);
    switch (r->action) {
    case RULE_ERROR: {
        char *buf = out;
        size_t cap = r->message_len + FAULT_ECHO_MAX + 2;
        if (cap > sizeof(out) && (buf = malloc(cap)) == NULL) {
            return -1;
        }
        size_t n =
            fault_render_error(cmd, r->message, r->message_len, buf, cap);
        len = local_add(c, buf, n);
        if (buf != out) {
            free(buf);
        }
        if (r->forward) {
            return forward_then(c, cmd, line_bytes, FX_ERROR, len);
        }
        return answer_local(c, cmd, line_bytes, len);
    }
    case RULE_DELAY:
        return apply_delay(c, cmd, line_bytes, r);
    case RULE_DROP:
    case RULE_HANG: {
        enum entry_type t = r->action == RULE_DROP ? E_DROP : E_HANG;
        if (r->forward) {
            return forward_then(c, cmd, line_bytes,
                                t == E_DROP ? FX_DROP : FX_HANG, 0);
        }
        req_flush(c);
        evbuffer_drain(c->cin, line_bytes);
        c->stop_parsing = true; /* the rest of the input is never read */
        return enqueue_fault(c, t);
    }
    case RULE_MISS:
        return apply_miss(c, cmd, line_bytes, r, s);
    case RULE__COUNT:
        break;
    }
    return 0;
}

/* Asks the rule table about cmd; NULL: forward untouched. quit and lines
 * memcached closes on are never faulted. */
static const struct rule *decide(struct conn *c, const struct proto_cmd *cmd,
                                 struct rules_subject *s)
{
    if (c->px->rules == NULL || cmd->reply == PROTO_REPLY_NONE) {
        return NULL;
    }
    s->op = cmd->op;
    s->name = cmd->line + cmd->name.off;
    s->name_len = cmd->name.len;
    if (collect_keys(c, cmd, s) != 0) {
        return NULL;
    }
    return rules_decide(c->px->rules, s);
}

/* mcfault --health sends this (memcached would answer ERROR): it goes up
 * as "version", past the rules, so a rule that faults every command does
 * not make a container unhealthy. */
static const char health_cmd[] = "mcfault_health";

static bool is_health_probe(const struct proto_cmd *cmd)
{
    return cmd->op == PROTO_OP_UNKNOWN &&
           cmd->line_len == sizeof(health_cmd) - 1 &&
           memcmp(cmd->line, health_cmd, sizeof(health_cmd) - 1) == 0;
}

static int forward_health_probe(struct conn *c, size_t line_bytes)
{
    static const char version[] = "version\r\n";
    struct entry e = {.type = E_ONE, .kind = PROTO_REPLY_LINE};

    req_flush(c);
    evbuffer_drain(c->cin, line_bytes);
    evbuffer_add(c->uout, version, sizeof(version) - 1);
    c->data_local = false;
    if (c->group_open) {
        return 0; /* joins the group: its reply passes through */
    }
    return fifo_push(c, e);
}

static int handle_cmd(struct conn *c, const struct proto_cmd *cmd,
                      size_t line_bytes)
{
    uint32_t len = 0;
    struct rules_subject s;
    const struct rule *r;

    log_trace('<', c->cfd, cmd->line, cmd->line_len);
    stats.commands[cmd->op]++;
    if (is_health_probe(cmd)) {
        return forward_health_probe(c, line_bytes);
    }
    if ((r = decide(c, cmd, &s)) != NULL) {
        return apply_rule(c, cmd, line_bytes, r, &s);
    }
    if (debug_inject(c, cmd, &len)) {
        return answer_local(c, cmd, line_bytes, len);
    }
    c->data_local = false;
    c->req_fwd += line_bytes;
    if (cmd->reply == PROTO_REPLY_NONE) {
        /* quit (or an HTTP request line): memcached closes and reads
         * nothing after it. */
        c->stop_parsing = true;
    }
    return enqueue_forward(c, cmd);
}

static int handle_data(struct conn *c, size_t n)
{
    if (!c->data_local) {
        c->req_fwd += n;
        if (proto_data_left(&c->parser) == 0 && c->post != FX_NONE) {
            return run_post(c);
        }
        return 0;
    }
    evbuffer_drain(c->cin, n);
    if (proto_data_left(&c->parser) == 0 && c->has_deferred) {
        c->has_deferred = false;
        return c->deferred > 0 ? enqueue_local(c, c->deferred) : 0;
    }
    return 0;
}

/* Client EOF: what it sent still goes upstream, then the upstream write
 * side is shut so memcached answers what it read and closes, as it does
 * with a direct client; the replies owed arrive before that close. */
static void client_ended(struct conn *c)
{
    c->client_eof = true;
}

/* Parses what the client sent and forwards it, command by command. */
static int process_client(struct conn *c)
{
    struct proto_cmd cmd;

    for (;;) {
        if (c->in_paused) {
            return 0; /* the held command's line stays in cin */
        }
        if (c->mode == MODE_TUNNEL) {
            c->req_fwd = evbuffer_get_length(c->cin);
            break;
        }
        size_t off = c->req_fwd + c->req_held;
        if (c->stop_parsing) {
            req_flush(c);
            evbuffer_drain(c->cin, evbuffer_get_length(c->cin));
            c->req_held = 0;
            break;
        }
        if (off >= evbuffer_get_length(c->cin)) {
            break;
        }
        struct evbuffer_ptr ptr;
        struct evbuffer_iovec v;
        evbuffer_ptr_set(c->cin, &ptr, off, EVBUFFER_PTR_SET);
        if (evbuffer_peek(c->cin, -1, &ptr, &v, 1) < 1) {
            break;
        }
        size_t used;
        enum proto_status st =
            proto_parse(&c->parser, v.iov_base, v.iov_len, &used, &cmd);
        int rc = 0;
        switch (st) {
        case PROTO_AGAIN:
            c->req_held += used;
            break;
        case PROTO_CMD: {
            size_t line_bytes = c->req_held + used;
            c->req_held = 0;
            rc = handle_cmd(c, &cmd, line_bytes);
            break;
        }
        case PROTO_DATA:
            rc = handle_data(c, used);
            break;
        case PROTO_BINARY:
            log_msg(LOG_INFO, "conn %d: binary protocol, tunnelling", c->cfd);
            enter_tunnel(c);
            reply_init(&c->framer);
            break;
        case PROTO_TOO_LONG:
            /* memcached closes such a connection: answer what came before,
             * then close. */
            log_msg(LOG_INFO, "conn %d: line too long, closing", c->cfd);
            c->stop_parsing = true;
            client_ended(c);
            break;
        }
        if (rc != 0) {
            return -1;
        }
    }
    req_flush(c);
    return 0;
}

/* ---- lifecycle ---- */

/* Reads once (or a few times while each read fills the space). Returns the
 * bytes read, 0 at EOF, -1 on error other than EAGAIN, -2 on EAGAIN. */
static ssize_t read_into(struct evbuffer *buf, int fd)
{
    ssize_t total = 0;

    for (int i = 0; i < CONN_READS_MAX; i++) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(buf, CONN_READ_SIZE, &v, 1) < 1) {
            return -1;
        }
        ssize_t n = recv(fd, v.iov_base, v.iov_len, 0);
        if (n <= 0) {
            v.iov_len = 0;
            evbuffer_commit_space(buf, &v, 1);
            if (total > 0) {
                return total;
            }
            if (n == 0) {
                return 0;
            }
            return (errno == EAGAIN || errno == EINTR) ? -2 : -1;
        }
        v.iov_len = (size_t)n;
        evbuffer_commit_space(buf, &v, 1);
        total += n;
        if ((size_t)n < CONN_READ_SIZE) {
            break;
        }
    }
    return total;
}

static void on_client_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;

    ssize_t n = read_into(c->cin, c->cfd);
    if (n == -2) {
        return;
    }
    if (n > 0) {
        stats.client_bytes_in += (uint64_t)n;
    }
    if (n == -1) {
        c->client_dead = true;
    }
    if (process_client(c) != 0) {
        log_msg(LOG_ERROR, "conn %d: out of memory", c->cfd);
        c->upstream_eof = true;
        c->client_dead = true;
    }
    if (n <= 0) {
        client_ended(c);
    }
    flush_upstream(c);
    flush_client(c);
    conn_update_reads(c);
    conn_check_done(c);
}

static void on_upstream_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;

    ssize_t n = read_into(c->uin, c->ufd);
    if (n == -2) {
        return;
    }
    if (n > 0) {
        stats.upstream_bytes_in += (uint64_t)n;
    }
    process_upstream(c);
    if (n <= 0) {
        if (n < 0 && !c->uconnected) {
            resolver_invalidate(c->px->resolver); /* refused: moved? */
        }
        if (n < 0) {
            log_msg(c->uconnected ? LOG_INFO : LOG_ERROR,
                    "conn %d: upstream %s:%s: %s", c->cfd,
                    c->px->upstream_spec.host, c->px->upstream_spec.port,
                    strerror(errno));
        } else {
            log_msg(LOG_INFO, "conn %d: upstream closed", c->cfd);
        }
        c->upstream_eof = true;
    }
    flush_client(c);
    conn_update_reads(c);
    conn_check_done(c);
}

/* A delay without forward is over: the held command goes, and what the
 * client sent behind it. */
static void on_in_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;

    c->in_paused = false;
    if (process_client(c) != 0) {
        log_msg(LOG_ERROR, "conn %d: out of memory", c->cfd);
        c->upstream_eof = true;
        c->client_dead = true;
    }
    flush_upstream(c);
    flush_client(c);
    conn_update_reads(c);
    conn_check_done(c);
}

/* A DELAY entry's time has come: replies flow again. */
static void on_out_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;

    process_upstream(c);
    flush_client(c);
    conn_update_reads(c);
    conn_check_done(c);
}

static void on_client_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;

    flush_client(c);
    conn_update_reads(c);
    conn_check_done(c);
}

static void on_upstream_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;

    if (!c->uconnected) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
            err = errno;
        }
        if (err != 0) {
            resolver_invalidate(c->px->resolver); /* refused: moved? */
            stats.upstream_errors++;
            log_msg(LOG_ERROR, "conn %d: upstream %s:%s: %s", c->cfd,
                    c->px->upstream_spec.host, c->px->upstream_spec.port,
                    strerror(err));
            conn_free(c);
            return;
        }
        c->uconnected = true;
        log_msg(LOG_INFO, "conn %d: upstream connected", c->cfd);
    }
    flush_upstream(c);
    conn_update_reads(c);
    conn_check_done(c);
}

/*
 * Decides whether the connection is over: the upstream closed and the
 * client has what it is owed. A client EOF is passed on to the upstream
 * once everything the client sent is written; memcached then closes.
 */
static void conn_check_done(struct conn *c)
{
    /* Held input is not sent yet. */
    bool sent = evbuffer_get_length(c->uout) == 0 && !c->in_paused;

    if (c->client_eof && !c->upstream_eof && sent) {
        if (!c->uconnected) {
            c->upstream_eof = true;
        } else if (c->mode == MODE_TUNNEL) {
            /* A watcher never reads again: nothing more is owed. */
            c->upstream_eof = true;
            c->client_dead = true;
        } else if (!c->ushut) {
            shutdown(c->ufd, SHUT_WR);
            c->ushut = true;
        }
    }
    if (!c->upstream_eof) {
        return;
    }
    if (c->uconnected) {
        process_upstream(c);
        flush_client(c);
        if (evbuffer_get_length(c->cout) > 0) {
            return;
        }
        /* Replies held by a forward: true delay are still owed: the output
         * timer comes back here. */
        struct entry *h = fifo_head(c);
        if (h != NULL && h->type == E_DELAY && !c->client_dead &&
            evbuffer_get_length(c->uin) > 0) {
            return;
        }
    }
    conn_free(c);
}

/* Frees what c holds (any part may be missing when conn_create failed
 * half-way), closes both sockets, frees c. */
static void conn_release(struct conn *c)
{
    struct event *evs[] = {c->cread,  c->cwrite,   c->uread,
                           c->uwrite, c->in_timer, c->out_timer};
    struct evbuffer *bufs[] = {c->cin, c->cout, c->uin, c->uout, c->local};

    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        if (evs[i] != NULL) {
            event_free(evs[i]);
        }
    }
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        if (bufs[i] != NULL) {
            evbuffer_free(bufs[i]);
        }
    }
    proto_deinit(&c->parser);
    free(c->fifo);
    free(c->keys);
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
        client_ended(c);
        conn_update_reads(c);
        conn_check_done(c);
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

/* Starts a non-blocking connect to the upstream. */
static int upstream_connect(struct conn *c)
{
    const struct proxy *px = c->px;

    c->ufd = socket(px->upstream.ss_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->ufd < 0) {
        return -1;
    }
    set_nodelay(c->ufd);
    if (connect(c->ufd, (const struct sockaddr *)&px->upstream,
                px->upstream_len) == 0) {
        c->uconnected = true;
        return 0;
    }
    return errno == EINPROGRESS ? 0 : -1;
}

int conn_create(struct proxy *px, int fd, const struct sockaddr *peer)
{
    char name[128];
    struct conn *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        close(fd);
        return -1;
    }
    c->px = px;
    c->cfd = fd;
    c->ufd = -1;
    log_msg(LOG_INFO, "conn %d: open from %s", fd,
            addr_format(peer, name, sizeof(name)));
    evutil_make_socket_nonblocking(fd);
    set_nodelay(fd);
    c->fifo_cap = CONN_FIFO_INIT;
    c->fifo = malloc(sizeof(*c->fifo) * c->fifo_cap);
    c->cin = evbuffer_new();
    c->cout = evbuffer_new();
    c->uin = evbuffer_new();
    c->uout = evbuffer_new();
    c->local = evbuffer_new();
    proto_init(&c->parser);
    reply_init(&c->framer);
    if (c->fifo == NULL || c->cin == NULL || c->cout == NULL ||
        c->uin == NULL || c->uout == NULL || c->local == NULL) {
        goto fail;
    }
    if (resolver_get(px->resolver, &px->upstream, &px->upstream_len) != 0) {
        px->upstream_len = 0; /* being looked up on a thread */
    }
    if (px->upstream_len == 0 || upstream_connect(c) != 0) {
        if (c->ufd >= 0) {
            resolver_invalidate(px->resolver); /* refused: moved? */
        }
        stats.upstream_errors++;
        log_msg(LOG_ERROR, "conn %d: upstream %s:%s: %s", fd,
                px->upstream_spec.host, px->upstream_spec.port,
                px->upstream_len == 0 ? "not resolved" : strerror(errno));
        goto fail;
    }
    c->cread = event_new(px->base, fd, EV_READ | EV_PERSIST, on_client_read, c);
    c->cwrite =
        event_new(px->base, fd, EV_WRITE | EV_PERSIST, on_client_write, c);
    c->uread =
        event_new(px->base, c->ufd, EV_READ | EV_PERSIST, on_upstream_read, c);
    c->uwrite = event_new(px->base, c->ufd, EV_WRITE | EV_PERSIST,
                          on_upstream_write, c);
    if (c->cread == NULL || c->cwrite == NULL || c->uread == NULL ||
        c->uwrite == NULL) {
        goto fail;
    }
    c->next = px->conns;
    if (px->conns) {
        px->conns->prev = c;
    }
    px->conns = c;
    px->conns_now++;
    px->conns_total++;
    stats.connections_now++;
    stats.connections_total++;
    ev_set(c->cread, &c->cread_on, true);
    ev_set(c->uread, &c->uread_on, true);
    /* The write event tells when a pending connect is done. */
    ev_set(c->uwrite, &c->uwrite_on, !c->uconnected);
    return 0;

fail:
    conn_release(c);
    return -1;
}
