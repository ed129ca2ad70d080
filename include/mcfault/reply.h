/*
 * Response framer for the memcached text protocol: finds where each line,
 * data block and whole reply ends in the upstream byte stream. Pure.
 */
#ifndef MCFAULT_REPLY_H
#define MCFAULT_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcfault/proto.h"

/* Bytes of each reply line kept for classification and logging. A VALUE
 * line is "VALUE " + key (250) + flags, length and cas: well under this. */
#define REPLY_HEAD_MAX 384

/* What kind of reply is expected next. Besides the per-command kinds of
 * proto.h, REPLY_ANY frames replies of a group of noreply/quiet commands:
 * each line (with its data block, for VA) is a reply of its own. */
enum reply_kind {
    REPLY_KIND_LINE = PROTO_REPLY_LINE,
    REPLY_KIND_VALUES = PROTO_REPLY_VALUES,
    REPLY_KIND_LIST = PROTO_REPLY_LIST,
    REPLY_KIND_META = PROTO_REPLY_META,
    REPLY_KIND_WATCH = PROTO_REPLY_WATCH,
    REPLY_KIND_NONE = PROTO_REPLY_NONE,
    REPLY_KIND_ANY
};

/* The class of a reply line, from its first bytes. */
enum reply_line {
    REPLY_LINE_OTHER = 0,
    REPLY_LINE_VALUE, /* VALUE <key> <flags> <bytes> [<cas>] */
    REPLY_LINE_VA,    /* VA <bytes> <flags>* */
    REPLY_LINE_END,   /* END */
    REPLY_LINE_MN,    /* MN */
    REPLY_LINE_OK,    /* OK */
    REPLY_LINE_LISTED /* STAT, ITEM, PREFIX, key= */
};

enum reply_event {
    REPLY_AGAIN = 0, /* all input consumed, reply not finished */
    REPLY_LINE_DONE, /* a line (and its data block) ended; reply goes on */
    REPLY_DONE,      /* the reply ended */
    REPLY_RAW        /* watch started: the rest of the stream is raw */
};

struct reply_framer {
    int state;
    enum reply_kind kind;
    uint64_t data_left;
    enum reply_line line;      /* class of the last line seen */
    char head[REPLY_HEAD_MAX]; /* first bytes of the current line */
    size_t head_len;
    size_t line_len; /* full length of the current line */
    size_t term_len; /* its terminator: 1 ("\n") or 2 */
    bool last_cr;    /* the last byte scanned was '\r' */
};

/* Prepares a framer; the first reply is expected as REPLY_KIND_LINE. */
void reply_init(struct reply_framer *r);

/* Sets the kind of the next reply. Call between replies only. */
void reply_expect(struct reply_framer *r, enum reply_kind kind);

/* True between replies (no line or data block started). */
bool reply_idle(const struct reply_framer *r);

/*
 * Scans buf[0..len) and stops at the first line end (after its data block,
 * if any). A line ends at "\r\n"; in a REPLY_KIND_LIST reply, a line that
 * starts with "key=" (lru_crawler metadump) ends at its first "\n".
 * *consumed tells how many bytes were used. Returns REPLY_DONE when that
 * line completed the reply, REPLY_LINE_DONE when more lines belong to
 * it, REPLY_RAW when a watch was accepted, REPLY_AGAIN when buf ran out.
 * After a line event, r->line and r->head describe the line that ended.
 */
enum reply_event reply_feed(struct reply_framer *r, const char *buf, size_t len,
                            size_t *consumed);

/* Whether the reply line s[0..n) (its \r\n excluded) heads a data block,
 * read as the framer reads it: REPLY_LINE_VALUE or REPLY_LINE_VA with *len
 * the block's bytes (its \r\n excluded), else REPLY_LINE_OTHER. */
enum reply_line reply_line_block(const char *s, size_t n, uint64_t *len);

/* The last line's text for logging: up to REPLY_HEAD_MAX bytes without the
 * line terminator. */
size_t reply_last_line(const struct reply_framer *r, const char **text);

#endif
