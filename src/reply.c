/*
 * Response framer: lines end at "\n" (memcached's metadump ends lines with
 * a bare "\n"), VALUE and VA lines carry a data block of the stated length,
 * and the expected reply kind says which line closes a reply.
 */
#include "mcfault/reply.h"

#include <string.h>

/* ST_NEXT: between two lines of one reply. */
enum { ST_IDLE = 0, ST_NEXT, ST_LINE, ST_DATA, ST_RAW };

void reply_init(struct reply_framer *r)
{
    memset(r, 0, sizeof(*r));
    r->state = ST_IDLE;
    r->kind = REPLY_KIND_LINE;
}

void reply_expect(struct reply_framer *r, enum reply_kind kind)
{
    r->kind = kind;
}

bool reply_idle(const struct reply_framer *r)
{
    return r->state == ST_IDLE;
}

/* The line in head without its terminator (once the line has ended). */
static size_t head_text_len(const struct reply_framer *r)
{
    size_t text = r->line_len - r->term_len;
    return r->head_len < text ? r->head_len : text;
}

size_t reply_last_line(const struct reply_framer *r, const char **text)
{
    *text = r->head;
    return head_text_len(r);
}

static bool has_prefix(const char *s, size_t n, const char *p)
{
    size_t pn = strlen(p);
    return n >= pn && memcmp(s, p, pn) == 0;
}

static bool equals(const char *s, size_t n, const char *p)
{
    return n == strlen(p) && memcmp(s, p, n) == 0;
}

/* The decimal in the token at index 'want' (tokens split on spaces). */
static bool token_number(const char *s, size_t n, unsigned want, uint64_t *out)
{
    size_t i = 0;
    for (unsigned t = 0;; t++) {
        while (i < n && s[i] == ' ') {
            i++;
        }
        size_t start = i;
        while (i < n && s[i] != ' ') {
            i++;
        }
        if (start == i) {
            return false;
        }
        if (t == want) {
            return proto_strtoull(s + start, i - start, out);
        }
    }
}

/* // VALUE <key> <flags> <bytes> [<cas>] | VA <bytes> <flags>* | ... */
static void classify_line(struct reply_framer *r)
{
    const char *s = r->head;
    size_t n = head_text_len(r);
    uint64_t len;

    r->line = REPLY_LINE_OTHER;
    r->data_left = 0;
    if (has_prefix(s, n, "VALUE ")) {
        if (token_number(s, n, 3, &len) && len <= UINT64_MAX - 2) {
            r->line = REPLY_LINE_VALUE;
            r->data_left = len + 2;
        }
    } else if (has_prefix(s, n, "VA ")) {
        if (token_number(s, n, 1, &len) && len <= UINT64_MAX - 2) {
            r->line = REPLY_LINE_VA;
            r->data_left = len + 2;
        }
    } else if (equals(s, n, "END")) {
        r->line = REPLY_LINE_END;
    } else if (equals(s, n, "MN")) {
        r->line = REPLY_LINE_MN;
    } else if (equals(s, n, "OK")) {
        r->line = REPLY_LINE_OK;
    } else if (has_prefix(s, n, "STAT ") || has_prefix(s, n, "ITEM ") ||
               has_prefix(s, n, "PREFIX ") || has_prefix(s, n, "key=")) {
        r->line = REPLY_LINE_LISTED;
    }
}

/* A line and its data block are complete: does the reply go on? */
static enum reply_event unit_done(struct reply_framer *r)
{
    enum reply_event ev = REPLY_DONE;

    switch (r->kind) {
    case REPLY_KIND_VALUES:
        if (r->line == REPLY_LINE_VALUE) {
            ev = REPLY_LINE_DONE;
        }
        break;
    case REPLY_KIND_LIST:
        if (r->line == REPLY_LINE_LISTED) {
            ev = REPLY_LINE_DONE;
        }
        break;
    case REPLY_KIND_WATCH:
        if (r->line == REPLY_LINE_OK) {
            r->state = ST_RAW;
            return REPLY_RAW;
        }
        break;
    default:
        break;
    }
    /* head keeps the line for the caller until the next line starts. */
    r->state = ev == REPLY_DONE ? ST_IDLE : ST_NEXT;
    return ev;
}

enum reply_event reply_feed(struct reply_framer *r, const char *buf, size_t len,
                            size_t *consumed)
{
    size_t used = 0;

    *consumed = 0;
    if (r->state == ST_RAW) {
        *consumed = len;
        return REPLY_RAW;
    }
    while (used < len) {
        if (r->state == ST_DATA) {
            size_t n = len - used;
            if (n > r->data_left) {
                n = (size_t)r->data_left;
            }
            r->data_left -= n;
            used += n;
            if (r->data_left == 0) {
                *consumed = used;
                return unit_done(r);
            }
            continue;
        }
        if (r->state == ST_IDLE || r->state == ST_NEXT) {
            r->state = ST_LINE;
            r->head_len = 0;
            r->line_len = 0;
            r->last_cr = false;
        }
        const char *s = buf + used;
        size_t avail = len - used;
        const char *nl = memchr(s, '\n', avail);
        size_t take = nl ? (size_t)(nl - s) + 1 : avail;
        size_t room = REPLY_HEAD_MAX - r->head_len;
        size_t copy = take < room ? take : room;
        memcpy(r->head + r->head_len, s, copy);
        r->head_len += copy;
        r->line_len += take;
        used += take;
        if (nl == NULL) {
            r->last_cr = s[take - 1] == '\r';
            break;
        }
        bool cr = nl > s ? nl[-1] == '\r' : r->last_cr;
        r->term_len = cr && r->line_len >= 2 ? 2 : 1;
        classify_line(r);
        if (r->data_left > 0) {
            r->state = ST_DATA;
            continue;
        }
        *consumed = used;
        return unit_done(r);
    }
    *consumed = used;
    return REPLY_AGAIN;
}
