/*
 * Response framer: lines end at "\r\n" (metadump's key= lines at "\n"),
 * VALUE and VA lines carry a data block of the stated length, and the
 * expected reply kind says which line closes a reply.
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

static bool has_prefix(const char *s, size_t n, const char *p, size_t pn)
{
    return n >= pn && memcmp(s, p, pn) == 0;
}

/* The decimal in the token at index 'want' (tokens split on spaces).
 * memcached writes plain digits; anything else is read as the request
 * parser reads numbers. */
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
        if (t != want) {
            continue;
        }
        uint64_t v = 0;
        size_t j = start;
        /* 19 digits never overflow 64 bits. */
        while (j < i && j - start < 19 && s[j] >= '0' && s[j] <= '9') {
            v = v * 10 + (uint64_t)(s[j] - '0');
            j++;
        }
        if (j == i) {
            *out = v;
            return true;
        }
        return proto_strtoull(s + start, i - start, out);
    }
}

#define PREFIX(s, n, lit) has_prefix(s, n, lit, sizeof(lit) - 1)

/* // VALUE <key> <flags> <bytes> [<cas>]
 * The bytes of a VALUE line as memcached writes it (single spaces, plain
 * digits), found without walking the key byte by byte; any other shape is
 * read token by token. */
static bool value_bytes(const char *s, size_t n, uint64_t *out)
{
    const char *p = s + 6;
    const char *e = s + n;
    const char *sp = p < e ? memchr(p, ' ', (size_t)(e - p)) : NULL;

    if (sp == NULL || sp == p) {
        return token_number(s, n, 3, out);
    }
    for (p = sp + 1; p < e && *p >= '0' && *p <= '9'; p++) {
    }
    if (p == sp + 1 || p >= e || *p != ' ') {
        return token_number(s, n, 3, out);
    }
    const char *d = ++p;
    uint64_t v = 0;
    while (p < e && p - d < 19 && *p >= '0' && *p <= '9') {
        v = v * 10 + (uint64_t)(*p++ - '0');
    }
    if (p == d || (p < e && *p != ' ')) {
        return token_number(s, n, 3, out);
    }
    *out = v;
    return true;
}

/* A VALUE or VA line (REPLY_LINE_VALUE, REPLY_LINE_VA) and the bytes of
 * the data block it heads; REPLY_LINE_OTHER for any other line. */
static enum reply_line line_block(const char *s, size_t n, uint64_t *len)
{
    if (PREFIX(s, n, "VALUE ")) {
        if (value_bytes(s, n, len) && *len <= UINT64_MAX - 2) {
            return REPLY_LINE_VALUE;
        }
    } else if (PREFIX(s, n, "VA ")) {
        if (token_number(s, n, 1, len) && *len <= UINT64_MAX - 2) {
            return REPLY_LINE_VA;
        }
    }
    return REPLY_LINE_OTHER;
}

enum reply_line reply_line_block(const char *s, size_t n, uint64_t *len)
{
    return line_block(s, n, len);
}

/* // VALUE <key> <flags> <bytes> [<cas>] | VA <bytes> <flags>* | ... */
static void classify_line(struct reply_framer *r)
{
    const char *s = r->head;
    size_t n = head_text_len(r);
    uint64_t len;

    r->line = REPLY_LINE_OTHER;
    r->data_left = 0;
    if (n < 2) {
        return;
    }
    switch (s[0]) {
    case 'V': {
        enum reply_line line = line_block(s, n, &len);
        if (line != REPLY_LINE_OTHER) {
            r->line = line;
            r->data_left = len + 2;
        }
        break;
    }
    case 'E':
        if (n == 3 && s[1] == 'N' && s[2] == 'D') {
            r->line = REPLY_LINE_END;
        }
        break;
    case 'M':
        if (n == 2 && s[1] == 'N') {
            r->line = REPLY_LINE_MN;
        }
        break;
    case 'O':
        if (n == 2 && s[1] == 'K') {
            r->line = REPLY_LINE_OK;
        }
        break;
    default:
        if (PREFIX(s, n, "STAT ") || PREFIX(s, n, "ITEM ") ||
            PREFIX(s, n, "PREFIX ") || PREFIX(s, n, "key=")) {
            r->line = REPLY_LINE_LISTED;
        }
        break;
    }
}

/* The line so far (head, then s[0..n)) starts with p. head holds the
 * line's first bytes, all of them while it is shorter than REPLY_HEAD_MAX. */
static bool line_starts_with(const struct reply_framer *r, const char *s,
                             size_t n, const char *p)
{
    size_t pn = strlen(p);

    for (size_t i = 0; i < pn; i++) {
        char c;
        if (i < r->head_len) {
            c = r->head[i];
        } else if (i - r->head_len < n) {
            c = s[i - r->head_len];
        } else {
            return false;
        }
        if (c != p[i]) {
            return false;
        }
    }
    return true;
}

/*
 * // line = byte* "\r\n" | "key=" byte* "\n"   (key=: in a LIST reply)
 * The "\n" in s[0..n) that ends the current line, NULL if none does. Only
 * "\r\n" ends a line: memcached 1.6.18 prints the decoded key of an item
 * made by "mg <base64> b N<ttl>" raw, in meta replies with k ("VA 0 kab\ncd
 * W") and in stats cachedump's ITEM lines, so a bare "\n" may sit inside a
 * line. The key= lines of lru_crawler metadump end at a bare "\n" (their
 * keys are URI-encoded, so they hold no other one).
 */
static const char *find_line_end(const struct reply_framer *r, const char *s,
                                 size_t n)
{
    size_t from = 0;

    while (from < n) {
        const char *nl = memchr(s + from, '\n', n - from);
        if (nl == NULL) {
            return NULL;
        }
        size_t at = (size_t)(nl - s);
        bool cr = at > 0 ? s[at - 1] == '\r' : r->last_cr;
        if (cr || (r->kind == REPLY_KIND_LIST &&
                   line_starts_with(r, s, at, "key="))) {
            return nl;
        }
        from = at + 1;
    }
    return NULL;
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
        const char *nl = find_line_end(r, s, avail);
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
