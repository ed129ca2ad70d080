/*
 * Request parser: frames the request stream into command lines and data
 * blocks, and decides for each line what memcached 1.6 will do with it
 * (does a data block follow, can the reply be suppressed, how is it framed).
 */
#include "mcfault/proto.h"

#include <stdlib.h>
#include <string.h>

enum { ST_LINE = 0, ST_DATA };

static const char *const op_names[PROTO_OP__COUNT] = {
    [PROTO_OP_UNKNOWN] = "unknown",
    [PROTO_OP_GET] = "get",
    [PROTO_OP_GETS] = "gets",
    [PROTO_OP_GAT] = "gat",
    [PROTO_OP_GATS] = "gats",
    [PROTO_OP_SET] = "set",
    [PROTO_OP_ADD] = "add",
    [PROTO_OP_REPLACE] = "replace",
    [PROTO_OP_APPEND] = "append",
    [PROTO_OP_PREPEND] = "prepend",
    [PROTO_OP_CAS] = "cas",
    [PROTO_OP_DELETE] = "delete",
    [PROTO_OP_INCR] = "incr",
    [PROTO_OP_DECR] = "decr",
    [PROTO_OP_TOUCH] = "touch",
    [PROTO_OP_MG] = "mg",
    [PROTO_OP_MS] = "ms",
    [PROTO_OP_MD] = "md",
    [PROTO_OP_MA] = "ma",
    [PROTO_OP_MN] = "mn",
    [PROTO_OP_ME] = "me",
    [PROTO_OP_STATS] = "stats",
    [PROTO_OP_FLUSH_ALL] = "flush_all",
    [PROTO_OP_VERSION] = "version",
    [PROTO_OP_VERBOSITY] = "verbosity",
    [PROTO_OP_QUIT] = "quit",
    [PROTO_OP_SHUTDOWN] = "shutdown",
    [PROTO_OP_CACHE_MEMLIMIT] = "cache_memlimit",
    [PROTO_OP_SLABS] = "slabs",
    [PROTO_OP_LRU] = "lru",
    [PROTO_OP_LRU_CRAWLER] = "lru_crawler",
    [PROTO_OP_WATCH] = "watch",
    [PROTO_OP_MISBEHAVE] = "misbehave",
    [PROTO_OP_BGET] = "bget",
};

const char *proto_op_name(enum proto_op op)
{
    if ((unsigned)op >= PROTO_OP__COUNT) {
        return "unknown";
    }
    return op_names[op];
}

void proto_init(struct proto_parser *p)
{
    memset(p, 0, sizeof(*p));
    p->state = ST_LINE;
}

void proto_deinit(struct proto_parser *p)
{
    free(p->buf);
    memset(p, 0, sizeof(*p));
}

uint64_t proto_data_left(const struct proto_parser *p)
{
    return p->state == ST_DATA ? p->data_left : 0;
}

/* isspace() in the C locale, as memcached's xisspace. */
static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
           c == '\r';
}

/*
 * // [space*] [+|-] digit+ [space ...]
 * The strtol/strtoul core: magnitude in *mag, sign in *neg. Fails like
 * memcached when no digit is read, on overflow of 64 bits (ERANGE), or when
 * a non-space follows the digits.
 */
static bool parse_decimal(const char *s, size_t len, uint64_t *mag, bool *neg)
{
    size_t i = 0;
    uint64_t v = 0;

    while (i < len && is_space(s[i])) {
        i++;
    }
    *neg = false;
    if (i < len && (s[i] == '+' || s[i] == '-')) {
        *neg = s[i] == '-';
        i++;
    }
    size_t digits = i;
    bool overflow = false;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            overflow = true;
        } else {
            v = v * 10 + d;
        }
        i++;
    }
    if (i == digits || overflow) {
        return false;
    }
    if (i < len && !is_space(s[i])) {
        return false;
    }
    *mag = v;
    return true;
}

bool proto_strtol32(const char *s, size_t len, int32_t *out)
{
    uint64_t mag;
    bool neg;

    if (!parse_decimal(s, len, &mag, &neg)) {
        return false;
    }
    /* strtol's range is that of a 64-bit long. */
    if ((!neg && mag > (uint64_t)INT64_MAX) ||
        (neg && mag > (uint64_t)INT64_MAX + 1)) {
        return false;
    }
    uint64_t v = neg ? (uint64_t)0 - mag : mag;
    /* memcached stores the long into an int32_t: keep the low 32 bits. */
    *out = (int32_t)(uint32_t)v;
    return true;
}

bool proto_strtoull(const char *s, size_t len, uint64_t *out)
{
    uint64_t mag;
    bool neg;

    if (!parse_decimal(s, len, &mag, &neg)) {
        return false;
    }
    uint64_t v = neg ? (uint64_t)0 - mag : mag;
    /* safe_strtoul(l): a value negative as signed is refused if a '-' was
     * written. */
    if ((int64_t)v < 0 && memchr(s, '-', len) != NULL) {
        return false;
    }
    *out = v;
    return true;
}

bool proto_strtoul32(const char *s, size_t len, uint32_t *out)
{
    uint64_t v;

    if (!proto_strtoull(s, len, &v)) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/*
 * // token (' '+ token)*   -- split on spaces only, like tokenize_command
 * Fills cmd->tok with at most PROTO_MAX_TOKENS - 1 tokens; the rest of the
 * line is left for proto_cmd_next_key.
 */
static void tokenize(struct proto_cmd *cmd)
{
    const char *l = cmd->line;
    size_t n = cmd->line_len;
    size_t i = 0;

    cmd->ntokens = 0;
    while (i < n && cmd->ntokens < PROTO_MAX_TOKENS - 1) {
        while (i < n && l[i] == ' ') {
            i++;
        }
        if (i == n) {
            break;
        }
        size_t s = i;
        while (i < n && l[i] != ' ') {
            i++;
        }
        cmd->tok[cmd->ntokens].off = (uint32_t)s;
        cmd->tok[cmd->ntokens].len = (uint32_t)(i - s);
        cmd->ntokens++;
    }
}

static bool tok_is(const struct proto_cmd *cmd, uint32_t i, const char *s)
{
    size_t n = strlen(s);
    return i < cmd->ntokens && cmd->tok[i].len == n &&
           memcmp(cmd->line + cmd->tok[i].off, s, n) == 0;
}

static const char *tok_ptr(const struct proto_cmd *cmd, uint32_t i)
{
    return cmd->line + cmd->tok[i].off;
}

/* set_noreply_maybe: the last token is "noreply". */
static bool last_is_noreply(const struct proto_cmd *cmd)
{
    return cmd->ntokens > 0 && tok_is(cmd, cmd->ntokens - 1, "noreply");
}

/* Counts the space-separated tokens of the line from token index 'from'. */
static uint32_t count_keys(const struct proto_cmd *cmd, uint32_t from)
{
    size_t pos = 0;
    struct proto_tok t;
    uint32_t n = 0;

    if (from >= cmd->ntokens) {
        return 0;
    }
    if (cmd->ntokens < PROTO_MAX_TOKENS - 1) {
        return cmd->ntokens - from; /* the whole line is in tok[] */
    }
    while (proto_cmd_next_key(cmd, &pos, &t)) {
        n++;
    }
    return n;
}

/*
 * // <cmd> <key> <flags> <exptime> <bytes> [<cas>] [noreply]
 * process_update_command: a data block follows only when the line is well
 * formed; otherwise memcached answers at once and reads the data as
 * commands. 'nt' counts tokens like memcached (with the terminal one).
 */
static void classify_update(struct proto_cmd *cmd, bool is_cas)
{
    uint32_t nt = cmd->ntokens + 1;
    uint32_t flags;
    int32_t exptime;
    int32_t vlen;
    uint64_t cas;

    cmd->key_index = 1;
    cmd->nkeys = cmd->ntokens > 1 ? 1 : 0;
    if (is_cas ? (nt != 7 && nt != 8) : (nt != 6 && nt != 7)) {
        return; /* ERROR */
    }
    cmd->noreply = last_is_noreply(cmd);
    if (cmd->tok[1].len > PROTO_KEY_MAX) {
        return;
    }
    if (!proto_strtoul32(tok_ptr(cmd, 2), cmd->tok[2].len, &flags) ||
        !proto_strtol32(tok_ptr(cmd, 3), cmd->tok[3].len, &exptime) ||
        !proto_strtol32(tok_ptr(cmd, 4), cmd->tok[4].len, &vlen)) {
        return;
    }
    if (is_cas && !proto_strtoull(tok_ptr(cmd, 5), cmd->tok[5].len, &cas)) {
        return;
    }
    if (vlen < 0 || vlen > INT32_MAX - 2) {
        return;
    }
    cmd->data_len = (uint64_t)vlen + 2;
}

/*
 * // <mc> <key> [<datalen>] <flag>*
 * Meta flags: q suppresses nominal replies, b marks a base64 key, O and k
 * are echoed. Flags of ms start after <datalen>.
 */
static void classify_meta(struct proto_cmd *cmd)
{
    uint32_t nt = cmd->ntokens + 1;
    uint32_t first_flag = cmd->op == PROTO_OP_MS ? 3 : 2;

    cmd->reply = PROTO_REPLY_META;
    if (cmd->op == PROTO_OP_MN) {
        return;
    }
    if (cmd->ntokens >= 2) {
        cmd->key_index = 1;
        cmd->nkeys = 1;
    }
    if (cmd->op == PROTO_OP_ME) {
        /* me <key> b */
        cmd->key_base64 = cmd->ntokens >= 3 && tok_is(cmd, 2, "b");
        return;
    }
    for (uint32_t i = first_flag; i < cmd->ntokens; i++) {
        switch (tok_ptr(cmd, i)[0]) {
        case 'q':
            cmd->noreply = true;
            break;
        case 'b':
            cmd->key_base64 = true;
            break;
        case 'k':
            cmd->meta_k = true;
            break;
        case 'O':
            cmd->opaque = cmd->tok[i];
            break;
        default:
            break;
        }
    }
    if (cmd->op != PROTO_OP_MS) {
        return;
    }
    /* process_mset_command: only a parsed, non-negative <datalen> makes
     * memcached read (or swallow) a data block. */
    int32_t vlen;
    if (nt < 4 || cmd->tok[1].len > PROTO_KEY_MAX ||
        nt > PROTO_META_MAX_TOKENS) {
        return;
    }
    if (!proto_strtol32(tok_ptr(cmd, 2), cmd->tok[2].len, &vlen) || vlen < 0 ||
        vlen > INT32_MAX - 2) {
        return;
    }
    cmd->data_len = (uint64_t)vlen + 2;
}

static void classify_retrieval(struct proto_cmd *cmd, enum proto_op op)
{
    cmd->op = op;
    cmd->reply = PROTO_REPLY_VALUES;
    cmd->key_index = (op == PROTO_OP_GAT || op == PROTO_OP_GATS) ? 2 : 1;
    cmd->nkeys = count_keys(cmd, cmd->key_index);
}

/* set_noreply_maybe runs only once memcached's token count check passed:
 * 'nt' (tokens plus the terminal one) must be within [min, max]. */
static bool noreply_if(const struct proto_cmd *cmd, uint32_t min, uint32_t max)
{
    uint32_t nt = cmd->ntokens + 1;
    return nt >= min && nt <= max && last_is_noreply(cmd);
}

/* Ops with one key at token 1 whose reply may be suppressed by noreply:
 * delete looks for noreply from 4 tokens on (of 3..5), incr/decr/touch
 * need 4 or 5. */
static void classify_keyed(struct proto_cmd *cmd, enum proto_op op)
{
    cmd->op = op;
    cmd->noreply = noreply_if(cmd, 4, 5);
    if (cmd->ntokens >= 2) {
        cmd->key_index = 1;
        cmd->nkeys = 1;
    }
}

/* Names that map to a plain op. memcached calls set_noreply_maybe for
 * some of them once the token count ('nt', with the terminal token) is
 * within [nr_min, nr_max]; nr_max 0 means never. */
static const struct {
    const char *name;
    enum proto_op op;
    enum proto_reply reply;
    uint8_t nr_min;
    uint8_t nr_max;
} plain_ops[] = {
    {"stats", PROTO_OP_STATS, PROTO_REPLY_LIST, 0, 0},
    {"flush_all", PROTO_OP_FLUSH_ALL, PROTO_REPLY_LINE, 2, 4},
    {"version", PROTO_OP_VERSION, PROTO_REPLY_LINE, 0, 0},
    {"verbosity", PROTO_OP_VERBOSITY, PROTO_REPLY_LINE, 3, 4},
    {"quit", PROTO_OP_QUIT, PROTO_REPLY_NONE, 0, 0},
    {"shutdown", PROTO_OP_SHUTDOWN, PROTO_REPLY_LINE, 0, 0},
    {"cache_memlimit", PROTO_OP_CACHE_MEMLIMIT, PROTO_REPLY_LINE, 3, 4},
    {"slabs", PROTO_OP_SLABS, PROTO_REPLY_LINE, 0, 0}, /* automove: below */
    {"lru", PROTO_OP_LRU, PROTO_REPLY_LINE, 3, PROTO_MAX_TOKENS},
    {"lru_crawler", PROTO_OP_LRU_CRAWLER, PROTO_REPLY_LINE, 0, 0},
    {"watch", PROTO_OP_WATCH, PROTO_REPLY_WATCH, 1, PROTO_MAX_TOKENS},
    {"misbehave", PROTO_OP_MISBEHAVE, PROTO_REPLY_LINE, 0, 0},
};

/* process_command_ascii, reduced to what the proxy must know. */
/* process_command_ascii: a line whose last token starts with "HTTP/" is
 * taken for an HTTP request; memcached closes without a reply. */
static bool is_http(const struct proto_cmd *cmd)
{
    if (cmd->ntokens < 2) {
        return false;
    }
    const struct proto_tok *t = &cmd->tok[cmd->ntokens - 1];
    return t->len >= 5 && memcmp(cmd->line + t->off, "HTTP/", 5) == 0;
}

static void classify(struct proto_cmd *cmd)
{
    tokenize(cmd);
    cmd->op = PROTO_OP_UNKNOWN;
    cmd->reply = PROTO_REPLY_LINE;
    if (cmd->ntokens == 0 || cmd->tok[0].len < 2) {
        return; /* ERROR */
    }
    cmd->name = cmd->tok[0];

    const char *n = tok_ptr(cmd, 0);
    size_t nl = cmd->tok[0].len;
    if (n[0] == 'm' && nl == 2) {
        switch (n[1]) {
        case 'g':
            cmd->op = PROTO_OP_MG;
            break;
        case 's':
            cmd->op = PROTO_OP_MS;
            break;
        case 'd':
            cmd->op = PROTO_OP_MD;
            break;
        case 'n':
            cmd->op = PROTO_OP_MN;
            break;
        case 'a':
            cmd->op = PROTO_OP_MA;
            break;
        case 'e':
            cmd->op = PROTO_OP_ME;
            break;
        default:
            return;
        }
        classify_meta(cmd);
        return;
    }
    if (tok_is(cmd, 0, "get")) {
        classify_retrieval(cmd, PROTO_OP_GET);
    } else if (tok_is(cmd, 0, "gets")) {
        classify_retrieval(cmd, PROTO_OP_GETS);
    } else if (tok_is(cmd, 0, "gat")) {
        classify_retrieval(cmd, PROTO_OP_GAT);
    } else if (tok_is(cmd, 0, "gats")) {
        classify_retrieval(cmd, PROTO_OP_GATS);
    } else if (tok_is(cmd, 0, "bget")) {
        classify_retrieval(cmd, PROTO_OP_BGET);
    } else if (tok_is(cmd, 0, "set")) {
        cmd->op = PROTO_OP_SET;
        classify_update(cmd, false);
    } else if (tok_is(cmd, 0, "add")) {
        cmd->op = PROTO_OP_ADD;
        classify_update(cmd, false);
    } else if (tok_is(cmd, 0, "replace")) {
        cmd->op = PROTO_OP_REPLACE;
        classify_update(cmd, false);
    } else if (tok_is(cmd, 0, "append")) {
        cmd->op = PROTO_OP_APPEND;
        classify_update(cmd, false);
    } else if (tok_is(cmd, 0, "prepend")) {
        cmd->op = PROTO_OP_PREPEND;
        classify_update(cmd, false);
    } else if (tok_is(cmd, 0, "cas")) {
        cmd->op = PROTO_OP_CAS;
        classify_update(cmd, true);
    } else if (tok_is(cmd, 0, "delete")) {
        classify_keyed(cmd, PROTO_OP_DELETE);
    } else if (tok_is(cmd, 0, "incr")) {
        classify_keyed(cmd, PROTO_OP_INCR);
    } else if (tok_is(cmd, 0, "decr")) {
        classify_keyed(cmd, PROTO_OP_DECR);
    } else if (tok_is(cmd, 0, "touch")) {
        classify_keyed(cmd, PROTO_OP_TOUCH);
    } else {
        for (size_t i = 0; i < sizeof(plain_ops) / sizeof(plain_ops[0]); i++) {
            if (tok_is(cmd, 0, plain_ops[i].name)) {
                cmd->op = plain_ops[i].op;
                cmd->reply = plain_ops[i].reply;
                cmd->noreply =
                    noreply_if(cmd, plain_ops[i].nr_min, plain_ops[i].nr_max);
                break;
            }
        }
        if (cmd->op == PROTO_OP_SLABS && cmd->ntokens >= 3 &&
            tok_is(cmd, 1, "automove")) {
            cmd->noreply = last_is_noreply(cmd);
        }
        /* Names starting with these letters end in ERROR in their own
         * branch of process_command_ascii; others reach the HTTP test. */
        if (cmd->op == PROTO_OP_UNKNOWN && strchr("gsacidt", n[0]) == NULL &&
            is_http(cmd)) {
            cmd->reply = PROTO_REPLY_NONE;
        }
        /* lru_crawler metadump streams key= lines until END. */
        if (cmd->op == PROTO_OP_LRU_CRAWLER && cmd->ntokens == 3 &&
            tok_is(cmd, 1, "metadump")) {
            cmd->reply = PROTO_REPLY_LIST;
        }
    }
}

bool proto_cmd_next_key(const struct proto_cmd *cmd, size_t *pos,
                        struct proto_tok *key)
{
    if (cmd->nkeys == 0 && cmd->reply != PROTO_REPLY_VALUES) {
        return false;
    }
    if (cmd->key_index >= cmd->ntokens || cmd->key_index == 0) {
        return false;
    }
    size_t start = cmd->tok[cmd->key_index].off;
    if (*pos == 0) {
        *pos = start;
    } else if (cmd->reply != PROTO_REPLY_VALUES) {
        return false; /* single-key command: one key only */
    }
    const char *l = cmd->line;
    size_t n = cmd->line_len;
    size_t i = *pos;
    while (i < n && l[i] == ' ') {
        i++;
    }
    if (i >= n) {
        *pos = n;
        return false;
    }
    size_t s = i;
    while (i < n && l[i] != ' ') {
        i++;
    }
    key->off = (uint32_t)s;
    key->len = (uint32_t)(i - s);
    *pos = i;
    return true;
}

/* Fills cmd from a complete line (terminator at line[len]). */
static void parse_line(const char *line, size_t len, struct proto_cmd *cmd)
{
    memset(cmd, 0, sizeof(*cmd));
    /* try_read_command_ascii strips "\r" before "\n" only when the line
     * has at least one other byte. */
    if (len > 1 && line[len - 1] == '\r') {
        len--;
    }
    /* memcached works on a C string: a NUL ends the command. */
    const char *nul = memchr(line, '\0', len);
    if (nul != NULL) {
        len = (size_t)(nul - line);
    }
    cmd->line = line;
    cmd->line_len = len;
    classify(cmd);
}

/* try_read_command_ascii: a long line without newline is tolerated only for
 * get/gets after at most 100 leading spaces. */
static bool long_line_allowed(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && s[i] == ' ') {
        i++;
    }
    if (i > 100) {
        return false;
    }
    return (len - i >= 4 && memcmp(s + i, "get ", 4) == 0) ||
           (len - i >= 5 && memcmp(s + i, "gets ", 5) == 0);
}

/*
 * // length = bytes before the "\n", less a "\r" right before it;
 * //          with no "\n" buffered yet: every byte buffered
 * try_read_command_ascii closes once it holds more than PROTO_LINE_MAX bytes
 * and no "\n". A "\r" that is the last byte buffered counts: memcached
 * cannot know a "\n" follows. A "\r\n" that arrives with the line's last
 * bytes does not. So the verdict depends on the reads only for a line of
 * exactly PROTO_LINE_MAX bytes whose "\r" and "\n" come in different reads,
 * as it does in memcached. The line is buf[0..take) after the p->buf_len
 * bytes buffered by earlier calls; 'ended': a "\n" follows it in buf.
 */
static bool line_too_long(const struct proto_parser *p, const char *buf,
                          size_t take, bool ended)
{
    size_t n = p->buf_len + take;

    if (ended && n > 0) {
        char last = take > 0 ? buf[take - 1] : p->buf[p->buf_len - 1];
        if (last == '\r') {
            n--;
        }
    }
    if (n <= PROTO_LINE_MAX) {
        return false;
    }
    char head[128];
    size_t h = p->buf_len < sizeof(head) ? p->buf_len : sizeof(head);
    if (h > 0) {
        memcpy(head, p->buf, h);
    }
    size_t more = sizeof(head) - h < take ? sizeof(head) - h : take;
    memcpy(head + h, buf, more);
    return !long_line_allowed(head, h + more) || n > PROTO_GETLINE_MAX;
}

static int buf_append(struct proto_parser *p, const char *s, size_t n)
{
    if (p->buf_len + n > p->buf_cap) {
        size_t cap = p->buf_cap ? p->buf_cap : 256;
        while (cap < p->buf_len + n) {
            cap *= 2;
        }
        char *nb = realloc(p->buf, cap);
        if (nb == NULL) {
            return -1;
        }
        p->buf = nb;
        p->buf_cap = cap;
    }
    memcpy(p->buf + p->buf_len, s, n);
    p->buf_len += n;
    return 0;
}

enum proto_status proto_parse(struct proto_parser *p, const char *buf,
                              size_t len, size_t *consumed,
                              struct proto_cmd *cmd)
{
    *consumed = 0;
    if (p->buf_len == 0 && p->buf != NULL) {
        /* The last line that came in pieces has been read: an idle
         * connection holds no line buffer. */
        free(p->buf);
        p->buf = NULL;
        p->buf_cap = 0;
    }
    if (len == 0) {
        return PROTO_AGAIN;
    }
    if (!p->started) {
        /* memcached picks the protocol from the first byte. */
        if ((unsigned char)buf[0] == 0x80) {
            return PROTO_BINARY;
        }
        p->started = true;
    }
    if (p->state == ST_DATA) {
        size_t n = len < p->data_left ? len : (size_t)p->data_left;
        p->data_left -= n;
        if (p->data_left == 0) {
            p->state = ST_LINE;
        }
        *consumed = n;
        return PROTO_DATA;
    }

    const char *nl = memchr(buf, '\n', len);
    size_t take = nl ? (size_t)(nl - buf) : len;
    if (line_too_long(p, buf, take, nl != NULL)) {
        return PROTO_TOO_LONG;
    }
    if (nl == NULL) {
        if (buf_append(p, buf, len) != 0) {
            return PROTO_TOO_LONG;
        }
        *consumed = len;
        return PROTO_AGAIN;
    }

    size_t n = (size_t)(nl - buf);
    if (p->buf_len == 0) {
        parse_line(buf, n, cmd);
    } else {
        if (buf_append(p, buf, n + 1) != 0) {
            return PROTO_TOO_LONG;
        }
        parse_line(p->buf, p->buf_len - 1, cmd);
        p->buf_len = 0; /* the line stays readable until the next call */
    }
    *consumed = n + 1;
    if (cmd->data_len > 0) {
        p->state = ST_DATA;
        p->data_left = cmd->data_len;
    }
    return PROTO_CMD;
}
