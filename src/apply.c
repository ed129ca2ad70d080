/*
 * What a fired rule does to a command and its reply: asks the rule table
 * about each command, then forwards it, answers it in memcached's words,
 * delays, drops, hangs, misses, evicts, or hands its reply (or data block)
 * to shape.c, placing every proxy-made reply in the in-flight queue exactly
 * where memcached's would be. Also what a `connect` rule does to a new
 * connection.
 */
#include <stdlib.h>
#include <string.h>

#include "conn_int.h"
#include "mcfault/event.h"
#include "mcfault/fault.h"
#include "mcfault/log.h"
#include "mcfault/rules.h"
#include "mcfault/stats.h"
#include "shape.h"

static const char barrier_cmd[] = "mn\r\n";

/* Keys of the command being decided, shared by every connection (the loop
 * is single-threaded): no per-connection memory for a rare need. */
static struct proto_tok *keys;
static size_t keys_cap;
static char keybuf[PROTO_KEY_MAX + 1]; /* a base64 key, decoded */

/* Keys collected at once before growing. */
#define APPLY_KEYS_INIT 32

/* ---- the in-flight queue ---- */

/* Closes an open group with a barrier so that what is queued next can be
 * placed; the barrier's mn goes upstream after what was taken so far. */
static int fence(struct conn *c)
{
    int rc = inflight_fence(&c->q);

    if (rc <= 0) {
        return rc;
    }
    return conn_up_add(c, barrier_cmd, sizeof(barrier_cmd) - 1);
}

/* Moves a proxy-made reply of len bytes from local to the client. */
static int emit_local(struct conn *c, uint32_t len)
{
    if (log_enabled(LOG_TRACE) && len > 2) {
        log_trace('>', c->cfd, buf_head(&c->local), len - 2);
    }
    int rc = conn_client_add(c, buf_head(&c->local), len);
    buf_consume(&c->local, len);
    return rc;
}

/* The reply of len bytes at the end of local goes in line behind the
 * commands in flight and a paced reply's last bytes (at once when there are
 * none). */
static int enqueue_local(struct conn *c, uint32_t len)
{
    if (len == 0) {
        return 0;
    }
    if (c->q.len == 0 && !shape_blocks(c->fx)) {
        return emit_local(c, len);
    }
    if (fence(c) != 0) {
        return -1;
    }
    struct inflight_entry e = {.type = IF_LOCAL, .len = len};
    return inflight_push(&c->q, e);
}

/* A DROP (closing with a reset when rst) or HANG in line behind the
 * commands in flight; a drop with nothing in flight happens at once. */
static int enqueue_fault(struct conn *c, enum inflight_type type, bool rst)
{
    if (type == IF_DROP && c->q.len == 0 && !shape_blocks(c->fx)) {
        conn_begin_drop(c, rst);
        return 0;
    }
    if (fence(c) != 0) {
        return -1;
    }
    struct inflight_entry e = {.type = (uint8_t)type, .rst = rst};
    return inflight_push(&c->q, e);
}

bool apply_head_entries(struct conn *c)
{
    struct inflight_entry *e;

    while ((e = inflight_head(&c->q)) != NULL) {
        switch (e->type) {
        case IF_LOCAL: {
            uint32_t len = e->len;
            inflight_pop(&c->q);
            if (emit_local(c, len) != 0) {
                conn_fail(c); /* a reply lost would shift every later one */
                return false;
            }
            break;
        }
        case IF_DELAY: {
            uint64_t now = conn_now_us();
            if (now < e->until) {
                conn_wake_output_in(c, e->until - now);
                return false;
            }
            inflight_pop(&c->q);
            break;
        }
        case IF_DROP:
            conn_begin_drop(c, e->rst);
            return false;
        case IF_HANG:
            c->output = OUT_HANG;
            return false;
        default:
            return true;
        }
    }
    return true;
}

/* ---- rendering ---- */

/* Appends to local the reply for cmd that render makes (growing the room
 * when it does not fit: nothing is dropped for lack of it); *len is its
 * length, 0 when the protocol answers nothing. */
static int local_render(struct conn *c, const struct proto_cmd *cmd,
                        const struct rule *r, uint32_t *len)
{
    char small[512];
    char *out = small;
    size_t cap = sizeof(small);
    size_t n;
    enum fault_outcome o;

    *len = 0;
    for (;;) {
        o = r != NULL ? fault_render_error(cmd, r->message, r->message_len, out,
                                           cap, &n)
                      : fault_render_miss(cmd, out, cap, &n);
        if (o != FAULT_NO_ROOM || out != small) {
            break;
        }
        if ((out = malloc(n)) == NULL) {
            return -1;
        }
        cap = n;
    }
    int rc = 0;
    if (o == FAULT_REPLY) {
        rc = buf_append(&c->local, out, n);
        *len = (uint32_t)n;
    }
    if (out != small) {
        free(out);
    }
    return rc;
}

/* ---- forwarding ---- */

static int forward(struct conn *c, const struct proto_cmd *cmd, bool swallow)
{
    uint32_t before = c->q.len;

    c->data = DATA_FORWARD;
    if (conn_line_forward(c) != 0 ||
        inflight_forward(&c->q, (uint8_t)cmd->reply, cmd->noreply,
                         cmd->op == PROTO_OP_MN, swallow) != 0) {
        return -1;
    }
    if (c->q.len > before) {
        /* A command with one reply of its own: time its round trip. */
        struct inflight_entry *e = inflight_at(&c->q, c->q.len - 1);
        if (e->type == IF_ONE) {
            e->op = (uint8_t)cmd->op;
            e->until = conn_loop_us(c);
        }
    }
    return 0;
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

static int forward_health_probe(struct conn *c)
{
    static const char version[] = "version\r\n";

    c->data = DATA_FORWARD;
    if (conn_up_add(c, version, sizeof(version) - 1) != 0) {
        return -1;
    }
    return inflight_forward(&c->q, PROTO_REPLY_LINE, false, false, false);
}

/* ---- the rule table ---- */

static int grow_keys(size_t cap)
{
    if (cap < APPLY_KEYS_INIT) {
        cap = APPLY_KEYS_INIT;
    }
    struct proto_tok *k = realloc(keys, sizeof(*k) * cap);
    if (k == NULL) {
        return -1;
    }
    keys = k;
    keys_cap = cap;
    return 0;
}

/* Collects the keys of cmd for the rule table (a base64 key decoded).
 * Returns -1 when out of memory. */
static int collect_keys(const struct proto_cmd *cmd, struct rules_subject *s)
{
    size_t pos = 0;
    struct proto_tok key;
    size_t n = 0;

    s->key_base = cmd->line;
    if (cmd->ntokens < PROTO_MAX_TOKENS - 1 && cmd->key_index > 0 &&
        cmd->key_index + cmd->nkeys <= cmd->ntokens &&
        cmd->nkeys <= APPLY_KEYS_INIT) {
        /* The whole line is in tok[]: the keys are tokens. */
        if (keys == NULL && grow_keys(APPLY_KEYS_INIT) != 0) {
            return -1;
        }
        n = cmd->nkeys;
        memcpy(keys, &cmd->tok[cmd->key_index], n * sizeof(*keys));
    } else {
        while (proto_cmd_next_key(cmd, &pos, &key)) {
            if (n == keys_cap && grow_keys(keys_cap * 2) != 0) {
                return -1;
            }
            keys[n++] = key;
        }
    }
    size_t dlen;
    if (n == 1 && cmd->key_base64 &&
        fault_b64_decode(cmd->line + keys[0].off, keys[0].len, keybuf,
                         sizeof(keybuf), &dlen)) {
        s->key_base = keybuf;
        keys[0].off = 0;
        keys[0].len = (uint32_t)dlen;
    }
    s->keys = keys;
    s->nkeys = n;
    return 0;
}

/* Asks the rule table about cmd; NULL: forward untouched. quit, lines
 * memcached closes on, and commands it refuses on its own are never
 * faulted. *fail is set when out of memory. */
static const struct rule *decide(struct conn *c, const struct proto_cmd *cmd,
                                 struct rules_subject *s, bool *fail)
{
    if (cmd->reply == PROTO_REPLY_NONE || fault_refused_by_memcached(cmd)) {
        return NULL;
    }
    s->op = cmd->op;
    s->name = cmd->line + cmd->name.off;
    s->name_len = cmd->name.len;
    s->data_len = cmd->data_len >= 2 ? (int64_t)cmd->data_len - 2 : -1;
    s->client_addr = c->peer_ip ? c->peer : NULL;
    s->conn_pick = c->pick;
    s->now_us = conn_loop_us(c);
    if (collect_keys(cmd, s) != 0) {
        *fail = true;
        return NULL;
    }
    return rules_decide(c->px->rules, s);
}

/* ---- actions ---- */

/* Answers cmd with the len bytes at the end of local (possibly none)
 * instead of forwarding it; a data block is swallowed first, as memcached
 * reads it before answering. */
static int answer_local(struct conn *c, const struct proto_cmd *cmd,
                        uint32_t len)
{
    if (cmd->data_len > 0) {
        c->data = DATA_DISCARD;
        c->deferred = len;
        return 0;
    }
    return enqueue_local(c, len);
}

/* What a forward: true fault does once its command (and data block) is on
 * its way: the command's reply is swallowed (marked when it was queued),
 * then the fault's entry follows. */
static int run_post(struct conn *c)
{
    enum post_fx fx = (enum post_fx)c->post;

    c->post = FX_NONE;
    switch (fx) {
    case FX_ERROR:
        if (fence(c) != 0) {
            return -1;
        }
        return enqueue_local(c, c->post_len);
    case FX_DROP:
        conn_stop_input(c);
        return enqueue_fault(c, IF_DROP, c->post_rst);
    case FX_HANG:
        conn_stop_input(c);
        return enqueue_fault(c, IF_HANG, false);
    case FX_FENCE:
        return fence(c);
    case FX_NONE:
        break;
    }
    return 0;
}

/* fx acts once cmd (just forwarded) and its data block are on their
 * way. */
static int post_after(struct conn *c, const struct proto_cmd *cmd,
                      enum post_fx fx, uint32_t len)
{
    c->post = (uint8_t)fx;
    c->post_len = len;
    return cmd->data_len > 0 ? 0 : run_post(c);
}

/* forward: true for error, drop, hang: the command goes to memcached; its
 * reply is framed and discarded (a noreply or quiet command is fenced with
 * a barrier so its replies, if any, are known), then fx acts. */
static int forward_then(struct conn *c, const struct proto_cmd *cmd,
                        enum post_fx fx, uint32_t len)
{
    if (fence(c) != 0 || forward(c, cmd, true) != 0) {
        return -1;
    }
    return post_after(c, cmd, fx, len);
}

/* A delay: with forward, an IF_DELAY holds the replies from this command
 * on; without, the command and everything after it wait in cin (other
 * connections go on). */
/* A delay's length: delay_us +- a uniform jitter. */
static uint64_t delay_us(struct conn *c, const struct rule *r)
{
    uint64_t d = r->delay_us;

    if (r->jitter_us > 0) {
        uint64_t span = 2 * r->jitter_us + 1;
        uint64_t j = rules_random(c->px->rules) % span;
        d = d + j >= r->jitter_us ? d + j - r->jitter_us : 0;
    }
    return d;
}

static int apply_delay(struct conn *c, const struct proto_cmd *cmd,
                       const struct rule *r)
{
    uint64_t d = delay_us(c, r);

    if (r->forward) {
        struct inflight_entry e = {.type = IF_DELAY,
                                   .until = conn_now_us() + d};
        if (fence(c) != 0 || inflight_push(&c->q, e) != 0) {
            return -1;
        }
        return forward(c, cmd, false);
    }
    c->data = DATA_FORWARD;
    if (conn_hold(c, d) != 0) {
        return -1;
    }
    return inflight_forward(&c->q, (uint8_t)cmd->reply, cmd->noreply,
                            cmd->op == PROTO_OP_MN, false);
}

/* miss on get/gets/gat/gats: the keys r matches are dropped from the line
 * (memcached omits misses); when none is left, or for mg, the proxy
 * answers the miss itself. */
static int apply_miss(struct conn *c, const struct proto_cmd *cmd,
                      const struct rule *r, const struct rules_subject *s)
{
    size_t kept = 0;
    uint32_t len;

    if (cmd->op != PROTO_OP_MG) {
        for (size_t i = 0; i < s->nkeys; i++) {
            const struct proto_tok *k = &s->keys[i];
            if (!rule_key_match(r, s->key_base + k->off, k->len)) {
                keys[kept++] = *k; /* s->keys is keys */
            }
        }
    }
    if (kept == 0) {
        if (local_render(c, cmd, NULL, &len) != 0) {
            return -1;
        }
        return answer_local(c, cmd, len);
    }
    /* "get a b c" becomes "get a c": the prefix up to the first key as the
     * client wrote it, then the kept keys. */
    uint32_t first = cmd->tok[cmd->key_index].off;
    int rc = conn_up_add(c, cmd->line, first);
    for (size_t i = 0; rc == 0 && i < kept; i++) {
        if (i > 0) {
            rc = conn_up_add(c, " ", 1);
        }
        if (rc == 0) {
            rc = conn_up_add(c, cmd->line + keys[i].off, keys[i].len);
        }
    }
    if (rc != 0 || conn_up_add(c, "\r\n", 2) != 0) {
        return -1;
    }
    c->data = DATA_FORWARD;
    return inflight_forward(&c->q, (uint8_t)cmd->reply, cmd->noreply, false,
                            false);
}

/* corrupt on a multi-key retrieval some of whose keys r does not match:
 * the values of the keys it matches, listed in spec->keys. */
static int corrupt_keys(struct shape_spec *spec, const struct rule *r,
                        const struct rules_subject *s)
{
    size_t n = 0;
    size_t bytes = 0;

    for (size_t i = 0; i < s->nkeys; i++) {
        const struct proto_tok *k = &s->keys[i];
        if (rule_key_match(r, s->key_base + k->off, k->len)) {
            n++;
            bytes += 1 + k->len;
        }
    }
    if (n == s->nkeys) {
        return 0; /* every value */
    }
    if ((spec->keys = malloc(bytes > 0 ? bytes : 1)) == NULL) {
        return -1;
    }
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct proto_tok *k = &s->keys[i];
        if (rule_key_match(r, s->key_base + k->off, k->len)) {
            spec->keys[spec->keys_len++] = (char)k->len; /* <= 250 */
            memcpy(spec->keys + spec->keys_len, s->key_base + k->off, k->len);
            spec->keys_len += k->len;
        }
    }
    return 0;
}

/* throttle, slice, truncate, and corrupt on a retrieval: the command is
 * forwarded and its reply handed to shape.c. A noreply or quiet command's
 * replies (if any) are fenced on both sides, so they are all its own;
 * truncate's close follows the reply. */
static int apply_shape(struct conn *c, const struct proto_cmd *cmd,
                       const struct rule *r, const struct rules_subject *s)
{
    struct shape_spec spec;

    shape_spec_from_rule(&spec, r);
    if (r->action == RULE_CORRUPT && corrupt_keys(&spec, r, s) != 0) {
        return -1;
    }
    if (fence(c) != 0) {
        free(spec.keys);
        return -1;
    }
    if (shape_push(c, &spec) != 0 || forward(c, cmd, false) != 0) {
        return -1;
    }
    /* No group was open: forward queued exactly one entry. */
    inflight_mark_shape(&c->q);
    if (r->action == RULE_TRUNCATE) {
        c->post_rst = r->close == RULE_CLOSE_RESET;
        return post_after(c, cmd, FX_DROP, 0);
    }
    return cmd->noreply ? post_after(c, cmd, FX_FENCE, 0) : 0;
}

/* corrupt on a command with a data block: the block goes to memcached
 * with bits flipped, so every later reader gets the bad value. */
static int apply_corrupt_block(struct conn *c, const struct proto_cmd *cmd,
                               const struct rule *r)
{
    if (shape_block_begin(c, cmd->data_len - 2, r->flips) != 0 ||
        forward(c, cmd, false) != 0) {
        return -1;
    }
    c->data = DATA_CORRUPT;
    return 0;
}

/* evict: each key r matches is deleted in memcached first ("md", its reply
 * swallowed), then the command runs and finds it gone. */
static int apply_evict(struct conn *c, const struct proto_cmd *cmd,
                       const struct rule *r, const struct rules_subject *s)
{
    static const char md[] = "md ";

    if (fence(c) != 0) {
        return -1;
    }
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct proto_tok *k = &s->keys[i];
        if (!rule_key_match(r, s->key_base + k->off, k->len)) {
            continue;
        }
        /* A base64 key goes as the client wrote it, with b. */
        const char *key = s->key_base + k->off;
        size_t len = k->len;
        if (cmd->key_base64) {
            key = cmd->line + cmd->tok[cmd->key_index].off;
            len = cmd->tok[cmd->key_index].len;
        }
        const char *end = cmd->key_base64 ? " b\r\n" : "\r\n";
        if (conn_up_add(c, md, sizeof(md) - 1) != 0 ||
            conn_up_add(c, key, len) != 0 ||
            conn_up_add(c, end, strlen(end)) != 0 ||
            inflight_forward(&c->q, PROTO_REPLY_META, false, false, true) !=
                0) {
            return -1;
        }
    }
    return forward(c, cmd, false);
}

/* Applies the rule that fired for cmd. */
static int apply_rule(struct conn *c, const struct proto_cmd *cmd,
                      const struct rule *r, const struct rules_subject *s)
{
    uint32_t len = 0;

    event_fault(c->px->name, c->cfd, r, s);
    switch (r->action) {
    case RULE_ERROR:
        if (local_render(c, cmd, r, &len) != 0) {
            return -1;
        }
        if (r->forward) {
            return forward_then(c, cmd, FX_ERROR, len);
        }
        return answer_local(c, cmd, len);
    case RULE_DELAY:
        return apply_delay(c, cmd, r);
    case RULE_DROP:
    case RULE_HANG:
        if (r->forward) {
            c->post_rst = r->close == RULE_CLOSE_RESET;
            return forward_then(c, cmd,
                                r->action == RULE_DROP ? FX_DROP : FX_HANG, 0);
        }
        conn_stop_input(c); /* the rest of the input is never read */
        return enqueue_fault(c, r->action == RULE_DROP ? IF_DROP : IF_HANG,
                             r->close == RULE_CLOSE_RESET);
    case RULE_MISS:
        return apply_miss(c, cmd, r, s);
    case RULE_THROTTLE:
    case RULE_SLICE:
    case RULE_TRUNCATE:
        if (cmd->reply == PROTO_REPLY_WATCH) {
            /* watch's OK turns the stream raw: no reply to shape. */
            return forward(c, cmd, false);
        }
        return apply_shape(c, cmd, r, s);
    case RULE_CORRUPT:
        if (cmd->data_len > 2) {
            return apply_corrupt_block(c, cmd, r);
        }
        if (rule_op_is_retrieval(cmd->op)) {
            return apply_shape(c, cmd, r, s);
        }
        return forward(c, cmd, false); /* no value to hit */
    case RULE_EVICT:
        return apply_evict(c, cmd, r, s);
    case RULE__COUNT:
        break;
    }
    return 0;
}

int apply_command(struct conn *c, const struct proto_cmd *cmd)
{
    if (log_enabled(LOG_TRACE)) {
        log_trace('<', c->cfd, cmd->line, cmd->line_len);
    }
    stats.commands[cmd->op]++;
    if (is_health_probe(cmd)) {
        return forward_health_probe(c);
    }
    if (c->px->rules != NULL) {
        struct rules_subject s;
        bool fail = false;
        const struct rule *r = decide(c, cmd, &s, &fail);
        if (fail) {
            return -1;
        }
        if (r != NULL) {
            return apply_rule(c, cmd, r, &s);
        }
    }
    if (cmd->reply == PROTO_REPLY_NONE) {
        /* quit (or an HTTP request line): memcached closes and reads
         * nothing after it. */
        conn_stop_input(c);
    }
    return forward(c, cmd, false);
}

int apply_data_end(struct conn *c)
{
    if (c->data == DATA_CORRUPT) {
        c->data = DATA_FORWARD;
    }
    if (c->data == DATA_DISCARD) {
        uint32_t len = c->deferred;
        c->deferred = 0;
        c->data = DATA_FORWARD;
        return enqueue_local(c, len);
    }
    return c->post != FX_NONE ? run_post(c) : 0;
}

enum connect_verdict apply_connect(struct conn *c)
{
    static const char name[] = "connect";
    struct rules_subject s = {.op = PROTO_OP_UNKNOWN,
                              .name = name,
                              .name_len = sizeof(name) - 1,
                              .key_base = "",
                              .data_len = -1,
                              .client_addr = c->peer_ip ? c->peer : NULL,
                              .conn_pick = c->pick,
                              .now_us = conn_now_us()};
    struct rules *t = c->px->rules;

    if (t == NULL || !rules_have_connect(t)) {
        return CONNECT_SERVE;
    }
    const struct rule *r = rules_decide_connect(t, &s);
    if (r == NULL) {
        return CONNECT_SERVE;
    }
    event_fault(c->px->name, c->cfd, r, &s);
    switch (r->action) {
    case RULE_DROP:
        c->rst = r->close == RULE_CLOSE_RESET;
        return CONNECT_CLOSE;
    case RULE_ERROR:
        /* A line of a few dozen bytes into a fresh socket's empty send
         * buffer: it goes whole, as memcached's own refusal does. */
        if (conn_client_add(c, r->message, r->message_len) != 0 ||
            conn_client_add(c, "\r\n", 2) != 0) {
            return CONNECT_CLOSE;
        }
        return CONNECT_ANSWER;
    case RULE_HANG:
        c->input = IN_DISCARD;
        c->output = OUT_SILENT;
        return CONNECT_SILENT;
    case RULE_DELAY:
        conn_hold_all(c, delay_us(c, r));
        return CONNECT_SERVE;
    default:
        return CONNECT_SERVE; /* config.c allows no other action */
    }
}
