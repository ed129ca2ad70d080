/*
 * libFuzzer target for the request parser: the first byte picks how the rest
 * is cut into reads; every call must keep proto.h's contracts, and the run
 * must see the same commands as a run that reads everything at once.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcfault/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the comparison looks at. */
struct rec {
    enum proto_op op;
    enum proto_reply reply;
    bool noreply;
    uint64_t data_len;
    uint32_t nkeys;
};

struct frun {
    struct rec *cmd;
    size_t n;
    enum proto_status stop; /* PROTO_AGAIN: ran to the end */
    size_t stop_line;       /* where the line that stopped it starts */
    size_t stop_end;        /* where the read it stopped in ends */
    size_t used;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz_proto: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ULL;
}

/* memcached's test in try_read_command_ascii, on everything it holds. */
static bool long_get_allowed(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] == ' ') {
        i++;
    }
    if (i > 100) {
        return false;
    }
    return (n - i >= 4 && memcmp(s + i, "get ", 4) == 0) ||
           (n - i >= 5 && memcmp(s + i, "gets ", 5) == 0);
}

/* The line contract of PROTO_CMD; see proto_parse in proto.h. */
static void check_cmd(const struct proto_parser *p, const char *in,
                      size_t line_start, size_t end,
                      const struct proto_cmd *cmd)
{
    size_t n = end - 1 - line_start;
    if (n > 1 && in[line_start + n - 1] == '\r') {
        n--;
    }
    const char *nul = memchr(in + line_start, '\0', n);
    if (nul != NULL) {
        n = (size_t)(nul - (in + line_start));
    }
    if (cmd->line_len != n || memcmp(cmd->line, in + line_start, n) != 0) {
        die("line at %zu: %zu bytes, want %zu", line_start, cmd->line_len, n);
    }
    if ((unsigned)cmd->op >= PROTO_OP__COUNT ||
        (unsigned)cmd->reply > PROTO_REPLY_NONE ||
        proto_op_name(cmd->op) == NULL) {
        die("op %d reply %d", (int)cmd->op, (int)cmd->reply);
    }
    if (proto_data_left(p) != cmd->data_len ||
        cmd->data_len > (uint64_t)INT32_MAX) {
        die("data_len %llu, data_left %llu", (unsigned long long)cmd->data_len,
            (unsigned long long)proto_data_left(p));
    }
    if (cmd->ntokens > PROTO_MAX_TOKENS - 1) {
        die("%u tokens", cmd->ntokens);
    }
    for (uint32_t i = 0; i < cmd->ntokens; i++) {
        if ((uint64_t)cmd->tok[i].off + cmd->tok[i].len > cmd->line_len) {
            die("token %u outside the line", i);
        }
    }
    const struct proto_tok *o = &cmd->opaque;
    if ((uint64_t)o->off + o->len > cmd->line_len ||
        (o->len > 0 && cmd->line[o->off] != 'O')) {
        die("opaque %u+%u in a line of %zu", o->off, o->len, cmd->line_len);
    }

    size_t pos = 0;
    size_t walked = 0;
    struct proto_tok k;
    while (proto_cmd_next_key(cmd, &pos, &k)) {
        if ((uint64_t)k.off + k.len > cmd->line_len || k.len == 0 ||
            memchr(cmd->line + k.off, ' ', k.len) != NULL) {
            die("key %u+%u in a line of %zu", k.off, k.len, cmd->line_len);
        }
        if (++walked > cmd->line_len) {
            die("proto_cmd_next_key does not end");
        }
    }
    if (walked != cmd->nkeys) {
        die("nkeys %u, walked %zu", cmd->nkeys, walked);
    }
}

/*
 * Is the line starting at line_start too long, with the bytes up to end
 * read? Its length: the bytes before its "\n" less a "\r" right before it,
 * or, with no "\n" read yet, every byte read (a last "\r" too: memcached
 * cannot know a "\n" follows). Too long: over PROTO_LINE_MAX, unless
 * memcached keeps reading it, a get line, which may reach
 * PROTO_GETLINE_MAX.
 */
static bool too_long(const char *in, size_t line_start, size_t end)
{
    const char *nl = memchr(in + line_start, '\n', end - line_start);
    size_t n = (nl ? (size_t)(nl - in) : end) - line_start;
    if (nl != NULL && n > 0 && nl[-1] == '\r') {
        n--;
    }
    if (n <= PROTO_LINE_MAX) {
        return false;
    }
    return !long_get_allowed(in + line_start, n) || n > PROTO_GETLINE_MAX;
}

/* Parses in[0..len) in reads of 1..max bytes (max 0: one read). */
static void run(const char *in, size_t len, size_t max, uint64_t seed,
                struct frun *r)
{
    struct proto_parser p;
    size_t pos = 0;
    size_t line_start = 0;

    r->n = 0;
    r->stop = PROTO_AGAIN;
    proto_init(&p);
    while (pos < len && r->stop == PROTO_AGAIN) {
        size_t end = len;
        if (max > 0) {
            /* tiny reads among large ones: a piece that ends
             * just inside a token, then a big one */
            uint64_t x = rng_next(&seed);
            size_t n = 1 + (size_t)((x >> 8) % ((x & 3) == 0 ? 3 : max));
            end = n < len - pos ? pos + n : len;
        }
        while (pos < end) {
            struct proto_cmd cmd;
            size_t avail = end - pos;
            size_t consumed = (size_t)-1;
            uint64_t left = proto_data_left(&p);
            enum proto_status st =
                proto_parse(&p, in + pos, avail, &consumed, &cmd);

            /* In a line, the bytes line_start..end are all it has seen. */
            if (left == 0 && st != PROTO_BINARY &&
                (st == PROTO_TOO_LONG) != too_long(in, line_start, end)) {
                die("status %d for the line at %zu read up to %zu", (int)st,
                    line_start, end);
            }

            if (consumed > avail) {
                die("consumed %zu of %zu at %zu", consumed, avail, pos);
            }
            if (st != PROTO_BINARY && st != PROTO_TOO_LONG && consumed == 0) {
                die("no progress at %zu (status %d)", pos, (int)st);
            }
            if (pos == 0 &&
                ((unsigned char)in[0] == 0x80) != (st == PROTO_BINARY)) {
                die("first byte 0x%02x, status %d", (unsigned char)in[0],
                    (int)st);
            }
            if (st == PROTO_BINARY) {
                if (pos != 0 || consumed != 0) {
                    die("PROTO_BINARY at %zu", pos);
                }
                r->stop = st;
                r->stop_line = 0;
                break;
            }
            switch (st) {
            case PROTO_AGAIN:
                if (consumed != avail || left != 0) {
                    die("AGAIN: %zu of %zu, data_left %llu", consumed, avail,
                        (unsigned long long)left);
                }
                break;
            case PROTO_CMD:
                if (left != 0 || in[pos + consumed - 1] != '\n') {
                    die("CMD at %zu, data_left %llu", pos,
                        (unsigned long long)left);
                }
                check_cmd(&p, in, line_start, pos + consumed, &cmd);
                r->cmd[r->n++] = (struct rec){cmd.op, cmd.reply, cmd.noreply,
                                              cmd.data_len, cmd.nkeys};
                line_start = pos + consumed;
                break;
            case PROTO_DATA:
                if (consumed > left || proto_data_left(&p) != left - consumed) {
                    die("DATA %zu with data_left %llu -> %llu", consumed,
                        (unsigned long long)left,
                        (unsigned long long)proto_data_left(&p));
                }
                line_start = pos + consumed;
                break;
            case PROTO_TOO_LONG:
                if (consumed != 0 || left != 0) {
                    die("TOO_LONG consumed %zu, data_left %llu", consumed,
                        (unsigned long long)left);
                }
                r->stop = st;
                r->stop_line = line_start;
                r->stop_end = end;
                break;
            default:
                die("status %d", (int)st);
            }
            if (r->stop != PROTO_AGAIN) {
                break;
            }
            pos += consumed;
        }
    }
    r->used = pos;
    if (r->stop == PROTO_AGAIN && pos != len) {
        die("consumed %zu of %zu", pos, len);
    }
    proto_deinit(&p);
}

static bool rec_equal(const struct rec *a, const struct rec *b)
{
    return a->op == b->op && a->reply == b->reply && a->noreply == b->noreply &&
           a->data_len == b->data_len && a->nkeys == b->nkeys;
}

static const size_t chunk_max[8] = {1, 2, 3, 7, 16, 64, 300, 3000};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t seed = data[0];
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    struct frun a;
    struct frun b;

    /* at most one command per "\n" */
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) {
        lines += in[i] == '\n';
    }
    a.cmd = malloc(lines * sizeof(*a.cmd));
    b.cmd = malloc(lines * sizeof(*b.cmd));
    if (a.cmd == NULL || b.cmd == NULL) {
        abort();
    }
    run(in, len, chunk_max[seed >> 5], 0x9e3779b97f4a7c15ULL * (seed + 1), &a);
    run(in, len, 0, 0, &b);

    size_t n = a.n < b.n ? a.n : b.n;
    for (size_t i = 0; i < n; i++) {
        if (!rec_equal(&a.cmd[i], &b.cmd[i])) {
            die("command %zu: chunked op %d data_len %llu noreply %d, "
                "whole op %d data_len %llu noreply %d",
                i, (int)a.cmd[i].op, (unsigned long long)a.cmd[i].data_len,
                a.cmd[i].noreply, (int)b.cmd[i].op,
                (unsigned long long)b.cmd[i].data_len, b.cmd[i].noreply);
        }
    }
    if (a.n != b.n || a.stop != b.stop) {
        /* The one verdict that depends on the reads, as in memcached: a
         * read ending between a line's "\r" and "\n" that leaves one byte
         * too many without a newline. */
        size_t e = a.stop_end;
        bool split_crlf = a.stop == PROTO_TOO_LONG && b.n > a.n && e < len &&
                          in[e - 1] == '\r' && in[e] == '\n' &&
                          !too_long(in, a.stop_line, e + 1);
        if (!split_crlf) {
            die("chunked: %zu commands, status %d; whole: %zu, status %d", a.n,
                (int)a.stop, b.n, (int)b.stop);
        }
    }
    free(a.cmd);
    free(b.cmd);
    return 0;
}
