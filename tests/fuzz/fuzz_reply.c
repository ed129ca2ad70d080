/*
 * libFuzzer target for the response framer: the first byte picks the kind
 * of each reply and how the rest is cut into reads; every call must keep
 * reply.h's contracts, and the events must match one read of everything.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcfault/reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ev {
    enum reply_event ev;
    enum reply_line line;
    size_t end;
    size_t text_len;
    char text[REPLY_HEAD_MAX];
};

struct frun {
    struct ev *ev;
    size_t n;
    size_t used;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz_reply: ", stderr);
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

/* The kind of reply number i, the same in every run of one input. */
static enum reply_kind kind_of(uint8_t seed, size_t i)
{
    static const enum reply_kind kinds[] = {
        REPLY_KIND_LINE, REPLY_KIND_VALUES, REPLY_KIND_LIST,
        REPLY_KIND_META, REPLY_KIND_ANY,    REPLY_KIND_NONE,
    };
    uint64_t s = (uint64_t)seed * 0x100000001b3ULL + i + 1;
    uint64_t r = rng_next(&s);
    /* a watch makes the rest raw: rarer than the others */
    if (r % 23 == 0) {
        return REPLY_KIND_WATCH;
    }
    return kinds[(r >> 8) % (sizeof(kinds) / sizeof(kinds[0]))];
}

static bool starts(const char *s, size_t n, const char *p)
{
    size_t pn = strlen(p);
    return n >= pn && memcmp(s, p, pn) == 0;
}

/* Where the line starting at in[start] ends (the index of its "\n"), or
 * len: at "\r\n"; a key= line of a LIST reply at its first "\n". */
static size_t line_end(const char *in, size_t len, size_t start,
                       enum reply_kind kind)
{
    bool key =
        kind == REPLY_KIND_LIST && starts(in + start, len - start, "key=");
    for (size_t i = start; i < len; i++) {
        if (in[i] == '\n' && (key || (i > start && in[i - 1] == '\r'))) {
            return i;
        }
    }
    return len;
}

/* What reply_last_line must say about the unit in[start..end), a unit of
 * a reply of the given kind. */
static void check_text(const char *in, size_t start, size_t end,
                       enum reply_kind kind, enum reply_line line,
                       const char *t, size_t tn)
{
    size_t e = line_end(in, end, start, kind);
    if (e == end) {
        die("event at %zu without a line end since %zu", end, start);
    }
    size_t n = e - start;
    bool data = line == REPLY_LINE_VALUE || line == REPLY_LINE_VA;
    if (!data && start + n + 1 != end) {
        die("line of class %d at %zu ends at %zu, event at %zu", (int)line,
            start, start + n + 1, end);
    }
    if (n > 0 && in[start + n - 1] == '\r') {
        n--;
    }
    size_t want = n < REPLY_HEAD_MAX ? n : REPLY_HEAD_MAX;
    if (tn != want || memcmp(t, in + start, want) != 0) {
        die("text of the line at %zu: %zu bytes, want %zu", start, tn, want);
    }
    bool ok;
    switch (line) {
    case REPLY_LINE_VALUE:
        ok = starts(t, tn, "VALUE ");
        break;
    case REPLY_LINE_VA:
        ok = starts(t, tn, "VA ");
        break;
    case REPLY_LINE_END:
        ok = tn == 3 && memcmp(t, "END", 3) == 0;
        break;
    case REPLY_LINE_MN:
        ok = tn == 2 && memcmp(t, "MN", 2) == 0;
        break;
    case REPLY_LINE_OK:
        ok = tn == 2 && memcmp(t, "OK", 2) == 0;
        break;
    case REPLY_LINE_LISTED:
        ok = starts(t, tn, "STAT ") || starts(t, tn, "ITEM ") ||
             starts(t, tn, "PREFIX ") || starts(t, tn, "key=");
        break;
    case REPLY_LINE_OTHER:
        ok = true;
        break;
    default:
        ok = false;
        break;
    }
    if (!ok) {
        die("line at %zu: class %d", start, (int)line);
    }
}

/* Frames in[0..len) in reads of 1..max bytes (max 0: one read). */
static void run(const char *in, size_t len, uint8_t seed, size_t max,
                uint64_t rng, struct frun *r)
{
    struct reply_framer f;
    size_t pos = 0;
    size_t unit = 0;
    size_t replies = 0;
    bool raw = false;

    r->n = 0;
    reply_init(&f);
    if (!reply_idle(&f)) {
        die("not idle after reply_init");
    }
    reply_expect(&f, kind_of(seed, 0));
    while (pos < len) {
        size_t end = len;
        if (max > 0) {
            /* tiny reads among large ones: a piece that ends
             * just inside a token, then a big one */
            uint64_t x = rng_next(&rng);
            size_t n = 1 + (size_t)((x >> 8) % ((x & 3) == 0 ? 3 : max));
            end = n < len - pos ? pos + n : len;
        }
        while (pos < end) {
            size_t avail = end - pos;
            size_t consumed = (size_t)-1;
            enum reply_event e = reply_feed(&f, in + pos, avail, &consumed);

            if (consumed > avail || consumed == 0) {
                die("consumed %zu of %zu at %zu", consumed, avail, pos);
            }
            if (raw) {
                if (e != REPLY_RAW || consumed != avail) {
                    die("raw: event %d, %zu of %zu", (int)e, consumed, avail);
                }
                pos += consumed;
                continue;
            }
            if (e == REPLY_AGAIN) {
                if (consumed != avail || reply_idle(&f)) {
                    die("AGAIN: %zu of %zu, idle %d", consumed, avail,
                        reply_idle(&f));
                }
                pos += consumed;
                continue;
            }
            if (e != REPLY_LINE_DONE && e != REPLY_DONE && e != REPLY_RAW) {
                die("event %d", (int)e);
            }
            struct ev *v = &r->ev[r->n++];
            const char *t = NULL;
            v->ev = e;
            v->line = f.line;
            v->end = pos + consumed;
            v->text_len = reply_last_line(&f, &t);
            if (t == NULL || v->text_len > REPLY_HEAD_MAX) {
                die("reply_last_line: %zu bytes", v->text_len);
            }
            memcpy(v->text, t, v->text_len);
            check_text(in, unit, v->end, kind_of(seed, replies), v->line,
                       v->text, v->text_len);
            if (e == REPLY_DONE) {
                if (!reply_idle(&f)) {
                    die("not idle after REPLY_DONE at %zu", v->end);
                }
                reply_expect(&f, kind_of(seed, ++replies));
            } else if (e == REPLY_LINE_DONE && reply_idle(&f)) {
                die("idle inside a reply at %zu", v->end);
            } else if (e == REPLY_RAW) {
                if (v->line != REPLY_LINE_OK) {
                    die("raw after a line of class %d", (int)v->line);
                }
                raw = true;
            }
            unit = v->end;
            pos += consumed;
        }
    }
    r->used = pos;
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

    /* every event holds a line of its own, so one "\n" at least */
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) {
        lines += in[i] == '\n';
    }
    a.ev = malloc(lines * sizeof(*a.ev));
    b.ev = malloc(lines * sizeof(*b.ev));
    if (a.ev == NULL || b.ev == NULL) {
        abort();
    }
    run(in, len, seed, chunk_max[seed & 7], 0xd1b54a32d192ed03ULL ^ seed, &a);
    run(in, len, seed, 0, 0, &b);
    if (a.n != b.n) {
        die("chunked: %zu events, whole: %zu", a.n, b.n);
    }
    for (size_t i = 0; i < a.n; i++) {
        const struct ev *x = &a.ev[i];
        const struct ev *y = &b.ev[i];
        if (x->ev != y->ev || x->line != y->line || x->end != y->end ||
            x->text_len != y->text_len ||
            memcmp(x->text, y->text, x->text_len) != 0) {
            die("event %zu: chunked %d/%d at %zu, whole %d/%d at %zu", i,
                (int)x->ev, (int)x->line, x->end, (int)y->ev, (int)y->line,
                y->end);
        }
    }
    free(a.ev);
    free(b.ev);
    return 0;
}
