/*
 * Unit tests for the response framer: hand-written upstream streams cut into
 * the units memcached 1.6.18 sends (a line and its data block), each stream
 * fed whole, byte by byte, split at every point and in random pieces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcfault/reply.h"

#include "chunker.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define RANDOM_ROUNDS 48
#define RANDOM_SEED 0x7265706c79ULL

/*
 * One unit of the stream: s, then fill_n copies of fill, then post. The
 * framer must report ev with line class line once the unit's last byte is
 * in (REPLY_AGAIN: no event, for raw bytes after a watch and for a cut-off
 * reply at the end). text is what reply_last_line must give then; NULL
 * means the unit is one line without data and the text is its first
 * REPLY_HEAD_MAX bytes less the terminator.
 */
struct seg {
    const char *s;
    size_t len;
    char fill;
    size_t fill_n;
    const char *post;
    size_t post_len;
    enum reply_event ev;
    enum reply_line line;
    const char *text;
};

#define MAX_KINDS 8
#define MAX_SEGS 12

struct reply_case {
    const char *name;
    enum reply_kind kinds[MAX_KINDS]; /* per reply; the last one repeats */
    size_t nkinds;
    struct seg seg[MAX_SEGS];
    size_t nseg;
};

/* clang-format off */
/* a unit: bytes, event, line class, reply_last_line text */
#define SEG(x, e, l, t)                                                      \
    {(x), sizeof(x) - 1, 0, 0, "", 0, REPLY_##e, REPLY_LINE_##l, (t)}
/* a long unit: bytes, fill byte, fill count, closing bytes, event, class */
#define LONG(x, c, n, p, e, l, t)                                            \
    {(x), sizeof(x) - 1, (c), (n), (p), sizeof(p) - 1, REPLY_##e,            \
     REPLY_LINE_##l, (t)}
/* bytes that end no unit */
#define TAIL(x) {(x), sizeof(x) - 1, 0, 0, "", 0, REPLY_AGAIN, 0, NULL}

#define KINDS(...)                                                           \
    .kinds = {__VA_ARGS__},                                                  \
    .nkinds = sizeof((enum reply_kind[]){__VA_ARGS__}) /                     \
              sizeof(enum reply_kind)
#define SEGS(...)                                                            \
    .seg = {__VA_ARGS__},                                                    \
    .nseg = sizeof((struct seg[]){__VA_ARGS__}) / sizeof(struct seg)

#define LINE_ REPLY_KIND_LINE
#define VALUES_ REPLY_KIND_VALUES
#define LIST_ REPLY_KIND_LIST
#define META_ REPLY_KIND_META
#define WATCH_ REPLY_KIND_WATCH
#define ANY_ REPLY_KIND_ANY
/* clang-format on */

static const struct reply_case cases[] = {
    /* ---- one-line replies ---- */
    {"STORED", KINDS(LINE_), SEGS(SEG("STORED\r\n", DONE, OTHER, "STORED"))},
    {"storage and delete replies", KINDS(LINE_),
     SEGS(SEG("STORED\r\n", DONE, OTHER, "STORED"),
          SEG("NOT_STORED\r\n", DONE, OTHER, "NOT_STORED"),
          SEG("EXISTS\r\n", DONE, OTHER, "EXISTS"),
          SEG("NOT_FOUND\r\n", DONE, OTHER, "NOT_FOUND"),
          SEG("DELETED\r\n", DONE, OTHER, "DELETED"),
          SEG("TOUCHED\r\n", DONE, OTHER, "TOUCHED"))},
    {"ERROR", KINDS(LINE_), SEGS(SEG("ERROR\r\n", DONE, OTHER, "ERROR"))},
    {"CLIENT_ERROR", KINDS(LINE_),
     SEGS(SEG("CLIENT_ERROR bad command line format\r\n", DONE, OTHER,
              "CLIENT_ERROR bad command line format"))},
    {"SERVER_ERROR", KINDS(LINE_),
     SEGS(SEG("SERVER_ERROR out of memory storing object\r\n", DONE, OTHER,
              "SERVER_ERROR out of memory storing object"))},
    {"incr results", KINDS(LINE_),
     SEGS(SEG("42\r\n", DONE, OTHER, "42"),
          SEG("18446744073709551615\r\n", DONE, OTHER, "18446744073709551615"),
          SEG("0\r\n", DONE, OTHER, "0"))},
    {"OK and VERSION", KINDS(LINE_),
     SEGS(SEG("OK\r\n", DONE, OK, "OK"),
          SEG("VERSION 1.6.18\r\n", DONE, OTHER, "VERSION 1.6.18"))},
    /* memcached ends every line but metadump's key= lines with "\r\n" */
    {"bare \\n ends no line", KINDS(LINE_),
     SEGS(SEG("SERVER_ERROR a\nb\r\n", DONE, OTHER, "SERVER_ERROR a\nb"),
          TAIL("STORED\nEND\n"))},
    {"empty line", KINDS(LINE_),
     SEGS(SEG("\r\n", DONE, OTHER, ""), SEG("\n\r\n", DONE, OTHER, "\n"))},
    {"\\r alone ends no line", KINDS(LINE_),
     SEGS(SEG("a\rb\r\r\n", DONE, OTHER, "a\rb\r"), TAIL("\r"))},
    {"cut-off line", KINDS(LINE_), SEGS(TAIL("STOR"))},
    {"OK in a line reply is not raw", KINDS(LINE_),
     SEGS(SEG("OK\r\n", DONE, OK, "OK"), SEG("OK\r\n", DONE, OK, "OK"))},

    /* ---- retrievals ---- */
    {"get hit", KINDS(VALUES_),
     SEGS(SEG("VALUE foo 0 5\r\nhello\r\n", LINE_DONE, VALUE, "VALUE foo 0 5"),
          SEG("END\r\n", DONE, END, "END"))},
    {"get miss", KINDS(VALUES_), SEGS(SEG("END\r\n", DONE, END, "END"))},
    {"value holding \\r\\nEND\\r\\n", KINDS(VALUES_),
     SEGS(SEG("VALUE foo 0 8\r\na\r\nEND\r\n\r\n", LINE_DONE, VALUE,
              "VALUE foo 0 8"),
          SEG("END\r\n", DONE, END, "END"))},
    {"value holding \\n", KINDS(VALUES_),
     SEGS(SEG("VALUE foo 0 3\r\na\nb\r\n", LINE_DONE, VALUE, "VALUE foo 0 3"),
          SEG("END\r\n", DONE, END, "END"))},
    {"0-byte value", KINDS(VALUES_),
     SEGS(SEG("VALUE foo 0 0\r\n\r\n", LINE_DONE, VALUE, "VALUE foo 0 0"),
          SEG("END\r\n", DONE, END, "END"))},
    {"value holding a VALUE line", KINDS(VALUES_),
     SEGS(SEG("VALUE a 0 13\r\nVALUE b 0 1\r\n\r\n", LINE_DONE, VALUE,
              "VALUE a 0 13"),
          SEG("END\r\n", DONE, END, "END"))},
    {"value of binary bytes", KINDS(VALUES_),
     SEGS(SEG("VALUE a 0 4\r\n\0\xff\r\0\r\n", LINE_DONE, VALUE, "VALUE a 0 4"),
          SEG("END\r\n", DONE, END, "END"))},
    {"key named END", KINDS(VALUES_),
     SEGS(SEG("VALUE END 0 3\r\nEND\r\n", LINE_DONE, VALUE, "VALUE END 0 3"),
          SEG("END\r\n", DONE, END, "END"))},
    {"gets with several values", KINDS(VALUES_),
     SEGS(SEG("VALUE a 1 1 10\r\nA\r\n", LINE_DONE, VALUE, "VALUE a 1 1 10"),
          SEG("VALUE b 2 2 11\r\nBB\r\n", LINE_DONE, VALUE, "VALUE b 2 2 11"),
          SEG("VALUE c 4294967295 3 18446744073709551615\r\nCCC\r\n", LINE_DONE,
              VALUE, "VALUE c 4294967295 3 18446744073709551615"),
          SEG("END\r\n", DONE, END, "END"))},
    {"value of 5000 bytes", KINDS(VALUES_),
     SEGS(LONG("VALUE big 0 5000\r\n", 'd', 5000, "\r\n", LINE_DONE, VALUE,
               "VALUE big 0 5000"),
          SEG("END\r\n", DONE, END, "END"))},
    {"values: bare \\n ends no line", KINDS(VALUES_),
     SEGS(SEG("VALUE foo 0 1\r\n\n\r\n", LINE_DONE, VALUE, "VALUE foo 0 1"),
          TAIL("END\n"))},
    {"error after values", KINDS(VALUES_),
     SEGS(SEG("VALUE a 0 1\r\nA\r\n", LINE_DONE, VALUE, "VALUE a 0 1"),
          SEG("SERVER_ERROR out of memory writing get response\r\n", DONE,
              OTHER, "SERVER_ERROR out of memory writing get response"))},
    {"retrieval error", KINDS(VALUES_),
     SEGS(SEG("CLIENT_ERROR bad command line format\r\n", DONE, OTHER,
              "CLIENT_ERROR bad command line format"))},
    {"get without keys", KINDS(VALUES_),
     SEGS(SEG("ERROR\r\n", DONE, OTHER, "ERROR"))},
    {"two retrievals", KINDS(VALUES_),
     SEGS(SEG("VALUE a 0 1\r\nA\r\n", LINE_DONE, VALUE, "VALUE a 0 1"),
          SEG("END\r\n", DONE, END, "END"), SEG("END\r\n", DONE, END, "END"),
          SEG("VALUE b 0 2\r\nBB\r\n", LINE_DONE, VALUE, "VALUE b 0 2"),
          SEG("END\r\n", DONE, END, "END"))},
    {"cut-off value", KINDS(VALUES_),
     SEGS(SEG("VALUE a 0 1\r\nA\r\n", LINE_DONE, VALUE, "VALUE a 0 1"),
          TAIL("VALUE foo 0 5\r\nhel"))},

    /* ---- lists ---- */
    {"stats", KINDS(LIST_),
     SEGS(SEG("STAT pid 123\r\n", LINE_DONE, LISTED, "STAT pid 123"),
          SEG("STAT uptime 5\r\n", LINE_DONE, LISTED, "STAT uptime 5"),
          SEG("STAT version 1.6.18\r\n", LINE_DONE, LISTED,
              "STAT version 1.6.18"),
          SEG("END\r\n", DONE, END, "END"))},
    {"stats sizes", KINDS(LIST_),
     SEGS(SEG("STAT sizes_status disabled\r\n", LINE_DONE, LISTED,
              "STAT sizes_status disabled"),
          SEG("END\r\n", DONE, END, "END"))},
    {"stats cachedump", KINDS(LIST_),
     SEGS(SEG("ITEM a [1 b; 0 s]\r\n", LINE_DONE, LISTED, "ITEM a [1 b; 0 s]"),
          SEG("ITEM f [1 b; 0 s]\r\n", LINE_DONE, LISTED, "ITEM f [1 b; 0 s]"),
          SEG("END\r\n", DONE, END, "END"))},
    {"stats detail dump", KINDS(LIST_),
     SEGS(SEG("PREFIX foo get 2 hit 1 set 1 del 0\r\n", LINE_DONE, LISTED,
              "PREFIX foo get 2 hit 1 set 1 del 0"),
          SEG("END\r\n", DONE, END, "END"))},
    {"lru_crawler metadump", KINDS(LIST_),
     SEGS(SEG("key=k exp=-1 la=1795248205 cas=19 fetch=yes cls=4 "
              "size=160\n",
              LINE_DONE, LISTED,
              "key=k exp=-1 la=1795248205 cas=19 fetch=yes cls=4 size=160"),
          SEG("key=a%20b exp=100 la=1 cas=20 fetch=no cls=1 size=70\n",
              LINE_DONE, LISTED,
              "key=a%20b exp=100 la=1 cas=20 fetch=no cls=1 size=70"),
          SEG("END\r\n", DONE, END, "END"))},
    /* Keys made by "mg <base64> b N<ttl>" are printed raw by cachedump. */
    {"cachedump of raw keys", KINDS(LIST_),
     SEGS(SEG("ITEM ab\ncd [0 b; 1795252459 s]\r\n", LINE_DONE, LISTED,
              "ITEM ab\ncd [0 b; 1795252459 s]"),
          SEG("ITEM pre\nfix:a\nb [0 b; 1795252459 s]\r\n", LINE_DONE, LISTED,
              "ITEM pre\nfix:a\nb [0 b; 1795252459 s]"),
          SEG("ITEM \nEND\n [0 b; 0 s]\r\n", LINE_DONE, LISTED,
              "ITEM \nEND\n [0 b; 0 s]"),
          SEG("ITEM key=\n [0 b; 0 s]\r\n", LINE_DONE, LISTED,
              "ITEM key=\n [0 b; 0 s]"),
          SEG("END\r\n", DONE, END, "END"))},
    /* Only a line that starts with key= ends at a bare "\n". */
    {"list: key= lines only", KINDS(LIST_, LIST_, LIST_),
     SEGS(SEG("key=a exp=-1\n", LINE_DONE, LISTED, "key=a exp=-1"),
          SEG("key=\n", LINE_DONE, LISTED, "key="),
          SEG("key=b\r\n", LINE_DONE, LISTED, "key=b"),
          SEG("END\r\n", DONE, END, "END"),
          SEG("ERROR\nkey=x\r\n", DONE, OTHER, "ERROR\nkey=x"),
          SEG("STAT key= \n1\r\n", LINE_DONE, LISTED, "STAT key= \n1"),
          SEG("key\n=\r\n", DONE, OTHER, "key\n="))},
    {"empty list", KINDS(LIST_), SEGS(SEG("END\r\n", DONE, END, "END"))},
    {"stats reset", KINDS(LIST_), SEGS(SEG("RESET\r\n", DONE, OTHER, "RESET"))},
    {"stats detail on", KINDS(LIST_), SEGS(SEG("OK\r\n", DONE, OK, "OK"))},
    {"unknown stats", KINDS(LIST_),
     SEGS(SEG("ERROR\r\n", DONE, OTHER, "ERROR"))},
    {"metadump refused", KINDS(LIST_),
     SEGS(SEG("BADCLASS invalid class id\r\n", DONE, OTHER,
              "BADCLASS invalid class id"))},
    {"long STAT line", KINDS(LIST_),
     SEGS(LONG("STAT x ", 'y', 1000, "\r\n", LINE_DONE, LISTED, NULL),
          SEG("END\r\n", DONE, END, "END"))},
    {"long metadump line", KINDS(LIST_),
     SEGS(LONG("key=", 'k', 800, " exp=-1 la=1 cas=1 fetch=no cls=1\n",
               LINE_DONE, LISTED, NULL),
          SEG("END\r\n", DONE, END, "END"))},

    /* ---- meta replies ---- */
    {"HD", KINDS(META_), SEGS(SEG("HD\r\n", DONE, OTHER, "HD"))},
    {"HD with flags", KINDS(META_),
     SEGS(SEG("HD kk O123 c24\r\n", DONE, OTHER, "HD kk O123 c24"))},
    {"VA", KINDS(META_),
     SEGS(SEG("VA 5 f0 s5\r\nhello\r\n", DONE, VA, "VA 5 f0 s5"))},
    {"VA 0", KINDS(META_), SEGS(SEG("VA 0\r\n\r\n", DONE, VA, "VA 0"))},
    {"VA holding \\r\\nEN\\r\\n", KINDS(META_),
     SEGS(SEG("VA 6\r\n\r\nEN\r\n\r\n", DONE, VA, "VA 6"))},
    {"VA with base64 key", KINDS(META_),
     SEGS(SEG("VA 2 kZm9v b\r\nhi\r\n", DONE, VA, "VA 2 kZm9v b"))},
    {"ma value", KINDS(META_), SEGS(SEG("VA 1\r\n5\r\n", DONE, VA, "VA 1"))},
    {"meta status codes", KINDS(META_),
     SEGS(SEG("EN\r\n", DONE, OTHER, "EN"), SEG("NF\r\n", DONE, OTHER, "NF"),
          SEG("NS\r\n", DONE, OTHER, "NS"), SEG("EX\r\n", DONE, OTHER, "EX"),
          SEG("EN O\r\n", DONE, OTHER, "EN O"))},
    {"MN", KINDS(META_), SEGS(SEG("MN\r\n", DONE, MN, "MN"))},
    {"ME", KINDS(META_),
     SEGS(SEG("ME k exp=-1 la=2 cas=16 fetch=no cls=1 size=61\r\n", DONE, OTHER,
              "ME k exp=-1 la=2 cas=16 fetch=no cls=1 size=61"))},
    /* memcached 1.6.18 echoes the key of an item vivified through a
     * base64 key decoded, raw: "mg YWIKY2Q= b k v N3600". */
    {"VA with a raw key holding \\n", KINDS(META_),
     SEGS(SEG("VA 0 kab\ncd W\r\n\r\n", DONE, VA, "VA 0 kab\ncd W"))},
    {"raw keys in meta replies", KINDS(META_),
     SEGS(SEG("VA 0 kab\ncd s0 f0 c1 t3600 O1 Z\r\n\r\n", DONE, VA,
              "VA 0 kab\ncd s0 f0 c1 t3600 O1 Z"),
          SEG("HD kab\ncd Z\r\n", DONE, OTHER, "HD kab\ncd Z"),
          SEG("HD k\n Z\r\n", DONE, OTHER, "HD k\n Z"),
          SEG("HD k\nEND\n Z\r\n", DONE, OTHER, "HD k\nEND\n Z"),
          SEG("VA 2 k\nEN\n O9\r\nhi\r\n", DONE, VA, "VA 2 k\nEN\n O9"),
          SEG("HD kab\rcd\r\n", DONE, OTHER, "HD kab\rcd"),
          SEG("HD kab\r\r\n", DONE, OTHER, "HD kab\r"),
          SEG("HD kx\0y\n\r\n", DONE, OTHER, NULL),
          SEG("HD k\n\n\nMN\n\r\n", DONE, OTHER, "HD k\n\n\nMN\n"))},
    {"meta error", KINDS(META_),
     SEGS(SEG("CLIENT_ERROR bad command line format\r\n", DONE, OTHER,
              "CLIENT_ERROR bad command line format"))},

    /* ---- groups of quiet commands ---- */
    {"quiet group closed by mn", KINDS(ANY_, ANY_, ANY_, ANY_, META_),
     SEGS(SEG("HD\r\n", DONE, OTHER, "HD"),
          SEG("VA 2\r\nhi\r\n", DONE, VA, "VA 2"),
          SEG("EX\r\n", DONE, OTHER, "EX"),
          SEG("NF O5\r\n", DONE, OTHER, "NF O5"),
          SEG("MN\r\n", DONE, MN, "MN"))},
    {"quiet group with raw keys", KINDS(ANY_, ANY_, ANY_, META_),
     SEGS(SEG("HD kab\ncd Z\r\n", DONE, OTHER, "HD kab\ncd Z"),
          SEG("VA 1 k\nMN\n\r\nx\r\n", DONE, VA, "VA 1 k\nMN\n"),
          SEG("EN\r\n", DONE, OTHER, "EN"), SEG("MN\r\n", DONE, MN, "MN"))},
    {"noreply group with errors", KINDS(ANY_),
     SEGS(SEG("ERROR\r\n", DONE, OTHER, "ERROR"),
          SEG("CLIENT_ERROR bad data chunk\r\n", DONE, OTHER,
              "CLIENT_ERROR bad data chunk"),
          SEG("VA 3 O1\r\nEND\r\n", DONE, VA, "VA 3 O1"))},

    /* ---- watch ---- */
    {"watch accepted", KINDS(WATCH_),
     SEGS(SEG("OK\r\n", RAW, OK, "OK"),
          TAIL("ts=1.5 gid=1 type=item_get key=foo status=not_found "
               "clsid=0 cfd=5\n"),
          TAIL("VALUE x 0 1000\r\n"), TAIL("END\r\n"), TAIL("\r\n"))},
    {"watch: bare \\n ends no line", KINDS(WATCH_),
     SEGS(SEG("OK\nERROR\r\n", DONE, OTHER, "OK\nERROR"), TAIL("OK\n"))},
    {"watch refused", KINDS(WATCH_, LINE_),
     SEGS(SEG("ERROR\r\n", DONE, OTHER, "ERROR"),
          SEG("STORED\r\n", DONE, OTHER, "STORED"))},
    {"watch not allowed", KINDS(WATCH_, LINE_),
     SEGS(SEG("CLIENT_ERROR watch commands not allowed\r\n", DONE, OTHER,
              "CLIENT_ERROR watch commands not allowed"),
          SEG("OK\r\n", DONE, OK, "OK"))},

    /* ---- long lines ---- */
    {"line of 5000 bytes", KINDS(LINE_),
     SEGS(LONG("SERVER_ERROR ", 'x', 5000, "\r\n", DONE, OTHER, NULL),
          SEG("STORED\r\n", DONE, OTHER, "STORED"))},
    {"line of REPLY_HEAD_MAX bytes", KINDS(LINE_),
     SEGS(LONG("", 'x', REPLY_HEAD_MAX - 2, "\r\n", DONE, OTHER, NULL))},
    /* REPLY_HEAD_MAX - 1 bytes and "\r\n": head keeps the '\r' but not
     * the '\n'; reply_last_line still leaves the '\r' out. */
    {"line of REPLY_HEAD_MAX + 1 bytes", KINDS(LINE_),
     SEGS(LONG("", 'x', REPLY_HEAD_MAX - 1, "\r\n", DONE, OTHER, NULL))},
    {"line of REPLY_HEAD_MAX + 2 bytes", KINDS(LINE_),
     SEGS(LONG("", 'x', REPLY_HEAD_MAX, "\r\n", DONE, OTHER, NULL))},
    {"metadump line of REPLY_HEAD_MAX + 1 bytes", KINDS(LIST_),
     SEGS(LONG("key=", 'x', REPLY_HEAD_MAX - 4, "\n", LINE_DONE, LISTED, NULL),
          SEG("END\r\n", DONE, END, "END"))},
    {"long line with bare \\n inside", KINDS(META_),
     SEGS(LONG("HD k\n", 'x', REPLY_HEAD_MAX, "\n\r\n", DONE, OTHER, NULL))},
    {"long lines between values", KINDS(VALUES_, LINE_),
     SEGS(SEG("VALUE a 0 1\r\nA\r\n", LINE_DONE, VALUE, "VALUE a 0 1"),
          LONG("SERVER_ERROR ", 'e', 3000, "\r\n", DONE, OTHER, NULL),
          LONG("CLIENT_ERROR ", 'c', 600, "\r\n", DONE, OTHER, NULL))},
};

/* ---- feeding ---- */

struct event {
    enum reply_event ev;
    enum reply_line line;
    size_t end;
    char text[REPLY_HEAD_MAX];
    size_t text_len;
};

struct rrun {
    struct event *ev;
    size_t n;
    size_t cap;
    size_t used;
    bool raw;
    bool idle;
    char err[256];
};

static bool run_err(struct rrun *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records the first broken contract; returns false to stop the run. */
static bool run_err(struct rrun *r, const char *fmt, ...)
{
    if (r->err[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err, sizeof(r->err), fmt, ap);
        va_end(ap);
    }
    return false;
}

static void record(struct rrun *r, const struct reply_framer *f,
                   enum reply_event ev, size_t end)
{
    const char *t = NULL;
    size_t n = reply_last_line(f, &t);

    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->ev = realloc(r->ev, r->cap * sizeof(*r->ev));
        assert_non_null(r->ev);
    }
    struct event *e = &r->ev[r->n++];
    e->ev = ev;
    e->line = f->line;
    e->end = end;
    if (n > REPLY_HEAD_MAX || t == NULL) {
        run_err(r, "reply_last_line gave %zu bytes", n);
        n = 0;
    }
    memcpy(e->text, t ? t : "", n);
    e->text_len = n;
}

static enum reply_kind kind_at(const struct reply_case *c, size_t i)
{
    return c->kinds[i < c->nkinds ? i : c->nkinds - 1];
}

/* Feeds one piece; false when a contract broke. */
static bool feed_piece(const struct reply_case *c, struct reply_framer *f,
                       const char *in, size_t pos, size_t end, size_t *nreplies,
                       struct rrun *r)
{
    while (pos < end) {
        size_t avail = end - pos;
        size_t consumed = (size_t)-1;
        enum reply_event ev = reply_feed(f, in + pos, avail, &consumed);

        if (consumed > avail || consumed == 0) {
            return run_err(r, "consumed %zu of %zu at %zu", consumed, avail,
                           pos);
        }
        if (r->raw) {
            if (ev != REPLY_RAW || consumed != avail) {
                return run_err(r, "raw stream: event %d, %zu of %zu", (int)ev,
                               consumed, avail);
            }
            pos += consumed;
            continue;
        }
        switch (ev) {
        case REPLY_AGAIN:
            if (consumed != avail || reply_idle(f)) {
                return run_err(r, "AGAIN consumed %zu of %zu at %zu, idle %d",
                               consumed, avail, pos, reply_idle(f));
            }
            break;
        case REPLY_LINE_DONE:
            record(r, f, ev, pos + consumed);
            if (reply_idle(f)) {
                return run_err(r, "idle inside a reply at %zu", pos + consumed);
            }
            break;
        case REPLY_DONE:
            record(r, f, ev, pos + consumed);
            if (!reply_idle(f)) {
                return run_err(r, "not idle after a reply at %zu",
                               pos + consumed);
            }
            reply_expect(f, kind_at(c, ++*nreplies));
            break;
        case REPLY_RAW:
            record(r, f, ev, pos + consumed);
            r->raw = true;
            break;
        default:
            return run_err(r, "unknown event %d", (int)ev);
        }
        if (r->err[0] != '\0') {
            return false;
        }
        pos += consumed;
    }
    return true;
}

static void run_stream(const struct reply_case *c, const char *in, size_t len,
                       struct chunker *ch, struct rrun *r)
{
    struct reply_framer f;
    size_t pos = 0;
    size_t nreplies = 0;

    r->n = 0;
    r->used = 0;
    r->raw = false;
    r->err[0] = '\0';
    reply_init(&f);
    if (!reply_idle(&f)) {
        run_err(r, "not idle after reply_init");
        return;
    }
    reply_expect(&f, kind_at(c, 0));
    while (pos < len) {
        size_t end = pos + chunk_next(ch, pos, len);
        if (!feed_piece(c, &f, in, pos, end, &nreplies, r)) {
            return;
        }
        pos = end;
        r->used = pos;
    }
    r->idle = reply_idle(&f);
}

/* ---- expectations ---- */

struct expect {
    const struct reply_case *c;
    char *in;
    size_t len;
    struct event *ev;
    size_t n;
    bool check_idle;
    bool idle;
};

/* Lays out the stream and the events the table asks for. */
static void expect_build(const struct reply_case *c, struct expect *x)
{
    size_t len = 0;
    size_t off = 0;

    for (size_t i = 0; i < c->nseg; i++) {
        len += c->seg[i].len + c->seg[i].fill_n + c->seg[i].post_len;
    }
    x->c = c;
    x->len = len;
    x->in = malloc(len ? len : 1);
    x->ev = calloc(c->nseg, sizeof(*x->ev));
    assert_non_null(x->in);
    assert_non_null(x->ev);
    x->n = 0;
    x->check_idle = true;
    x->idle = true;
    for (size_t i = 0; i < c->nseg; i++) {
        const struct seg *s = &c->seg[i];
        size_t start = off;
        memcpy(x->in + off, s->s, s->len);
        off += s->len;
        memset(x->in + off, s->fill, s->fill_n);
        off += s->fill_n;
        memcpy(x->in + off, s->post, s->post_len);
        off += s->post_len;
        if (s->ev == REPLY_AGAIN) {
            /* raw bytes after a watch, or a reply cut off at the end */
            x->idle = false;
            continue;
        }
        struct event *e = &x->ev[x->n++];
        e->ev = s->ev;
        e->line = s->line;
        e->end = off;
        if (s->text != NULL) {
            e->text_len = strlen(s->text);
            assert_true(e->text_len <= REPLY_HEAD_MAX);
            memcpy(e->text, s->text, e->text_len);
        } else {
            /* one line: its bytes less "\n" and one "\r", cut */
            size_t n = off - start;
            assert_true(n > 0 && x->in[off - 1] == '\n');
            n--;
            if (n > 0 && x->in[start + n - 1] == '\r') {
                n--;
            }
            e->text_len = n < REPLY_HEAD_MAX ? n : REPLY_HEAD_MAX;
            memcpy(e->text, x->in + start, e->text_len);
        }
        x->idle = s->ev == REPLY_DONE;
        x->check_idle = s->ev != REPLY_RAW && x->check_idle;
    }
}

static const char *esc(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\r') {
            o += (size_t)snprintf(out + o, cap - o, "\\r");
        } else if (ch == '\n') {
            o += (size_t)snprintf(out + o, cap - o, "\\n");
        } else if (ch < 0x20 || ch >= 0x7f || ch == '\\') {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    if (o + 8 >= cap && o >= 3) {
        memcpy(out + o - 3, "...", 3);
    }
    out[o] = '\0';
    return out;
}

static bool check_run(const struct expect *x, const struct rrun *r, char *why,
                      size_t cap)
{
    char b1[128];
    char b2[128];

    if (r->err[0] != '\0') {
        snprintf(why, cap, "contract: %s", r->err);
        return false;
    }
    for (size_t i = 0; i < x->n && i < r->n; i++) {
        const struct event *w = &x->ev[i];
        const struct event *g = &r->ev[i];
        if (g->ev != w->ev || g->line != w->line || g->end != w->end) {
            snprintf(why, cap,
                     "event %zu: %d line %d at %zu, want %d line %d at %zu", i,
                     (int)g->ev, (int)g->line, g->end, (int)w->ev, (int)w->line,
                     w->end);
            return false;
        }
        if (g->text_len != w->text_len ||
            memcmp(g->text, w->text, g->text_len) != 0) {
            snprintf(why, cap,
                     "event %zu: text \"%s\" (%zu), want \"%s\" "
                     "(%zu)",
                     i, esc(g->text, g->text_len, b1, sizeof(b1)), g->text_len,
                     esc(w->text, w->text_len, b2, sizeof(b2)), w->text_len);
            return false;
        }
    }
    if (r->n != x->n) {
        snprintf(why, cap, "%zu events, want %zu", r->n, x->n);
        return false;
    }
    if (r->used != x->len) {
        snprintf(why, cap, "consumed %zu of %zu", r->used, x->len);
        return false;
    }
    if (x->check_idle && r->idle != x->idle) {
        snprintf(why, cap, "idle %d at the end, want %d", r->idle, x->idle);
        return false;
    }
    return true;
}

static size_t case_index[ARRAY_LEN(cases)];

/* What a case owns, freed by case_teardown even when a check fails. */
static struct {
    struct expect x;
    struct rrun r;
} cs;

static int case_teardown(void **state)
{
    (void)state;
    free(cs.x.in);
    free(cs.x.ev);
    free(cs.r.ev);
    memset(&cs, 0, sizeof(cs));
    return 0;
}

static void run_and_check(struct chunker *ch)
{
    char why[1024];

    run_stream(cs.x.c, cs.x.in, cs.x.len, ch, &cs.r);
    if (!check_run(&cs.x, &cs.r, why, sizeof(why))) {
        fail_msg("\"%s\" fed %s: %s", cs.x.c->name, ch->desc, why);
    }
}

static void test_case(void **state)
{
    static const size_t maxes[] = {2, 3, 5, 8, 16, 64, 300, 2100, 6000};
    struct chunker ch;

    expect_build(&cases[*(const size_t *)*state], &cs.x);

    memset(&ch, 0, sizeof(ch));
    ch.kind = CH_WHOLE;
    snprintf(ch.desc, sizeof(ch.desc), "whole");
    run_and_check(&ch);

    ch.kind = CH_BYTES;
    snprintf(ch.desc, sizeof(ch.desc), "byte by byte");
    run_and_check(&ch);

    ch.kind = CH_SPLIT;
    for (size_t k = 1; k < cs.x.len; k++) {
        ch.split = k;
        snprintf(ch.desc, sizeof(ch.desc), "split at %zu", k);
        run_and_check(&ch);
    }

    ch.kind = CH_RANDOM;
    for (size_t i = 0; i < RANDOM_ROUNDS; i++) {
        ch.max = maxes[i % ARRAY_LEN(maxes)];
        ch.rng = RANDOM_SEED + i;
        snprintf(ch.desc, sizeof(ch.desc), "at random, round %zu (max %zu)", i,
                 ch.max);
        run_and_check(&ch);
    }
}

/* ---- the framer API outside the table ---- */

static void test_idle_and_last_line(void **state)
{
    struct reply_framer f;
    const char *t = NULL;
    size_t consumed;
    (void)state;

    reply_init(&f);
    assert_true(reply_idle(&f));
    assert_int_equal(reply_last_line(&f, &t), 0);
    assert_non_null(t);

    reply_expect(&f, REPLY_KIND_VALUES);
    assert_int_equal(reply_feed(&f, "VALUE k 0 2\r\nh", 14, &consumed),
                     REPLY_AGAIN);
    assert_int_equal(consumed, 14);
    assert_false(reply_idle(&f));
    assert_int_equal(reply_feed(&f, "i\r\nEND\r\n", 8, &consumed),
                     REPLY_LINE_DONE);
    assert_int_equal(consumed, 3);
    /* the data block is not a line: the last line is still VALUE */
    assert_int_equal(f.line, REPLY_LINE_VALUE);
    assert_int_equal(reply_last_line(&f, &t), 11);
    assert_memory_equal(t, "VALUE k 0 2", 11);
    assert_false(reply_idle(&f));
    assert_int_equal(reply_feed(&f, "END\r\n", 5, &consumed), REPLY_DONE);
    assert_int_equal(consumed, 5);
    assert_true(reply_idle(&f));
    assert_int_equal(reply_last_line(&f, &t), 3);
    assert_memory_equal(t, "END", 3);
}

static void test_empty_feed(void **state)
{
    struct reply_framer f;
    size_t consumed = 99;
    (void)state;

    reply_init(&f);
    assert_int_equal(reply_feed(&f, "x", 0, &consumed), REPLY_AGAIN);
    assert_int_equal(consumed, 0);
    assert_true(reply_idle(&f));
}

/* The first reply after reply_init is framed as one line. */
static void test_default_kind_is_line(void **state)
{
    struct reply_framer f;
    size_t consumed;
    (void)state;

    reply_init(&f);
    assert_int_equal(reply_feed(&f, "STAT a 1\r\nEND\r\n", 15, &consumed),
                     REPLY_DONE);
    assert_int_equal(consumed, 10);
    assert_int_equal(f.line, REPLY_LINE_LISTED);
}

static const struct CMUnitTest api_tests[] = {
    cmocka_unit_test(test_idle_and_last_line),
    cmocka_unit_test(test_empty_feed),
    cmocka_unit_test(test_default_kind_is_line),
};

int main(void)
{
    static struct CMUnitTest tests[ARRAY_LEN(cases) + ARRAY_LEN(api_tests)];

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        case_index[i] = i;
        tests[i].name = cases[i].name;
        tests[i].test_func = test_case;
        tests[i].teardown_func = case_teardown;
        tests[i].initial_state = &case_index[i];
    }
    for (size_t i = 0; i < ARRAY_LEN(api_tests); i++) {
        tests[ARRAY_LEN(cases) + i] = api_tests[i];
    }
    return cmocka_run_group_tests_name("reply", tests, NULL, NULL);
}
