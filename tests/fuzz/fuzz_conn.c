/*
 * libFuzzer target for a whole connection (conn.c, apply.c): a client and
 * a model memcached drive both ends of one proxied connection through
 * socketpairs, following a script read from the input. Every reply must
 * reach the client, in order, exactly as the rules fault it; memcached
 * must receive exactly the commands the rules let through. In one input
 * in eight an allocation of the proxy fails: the connection may end, but
 * never with a reply out of place. One input in eight is raw bytes both
 * ways instead: no crash, leak or hang. The rules cover every action:
 * error, delay, drop, hang, miss, and throttle, slice, truncate, evict and
 * corrupt (on retrievals). See docs/fuzzing.md for the input format and
 * the checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "conn_int.h" /* only to print the connection's state on failure */
#include "shape.h"    /* the same, for the shaping rules' */
#include "mcfault/config.h"
#include "mcfault/conn.h"
#include "mcfault/log.h"
#include "mcfault/rules.h"
#include "mcfault/stats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Requests per input: enough for pipelines past every buffer, few enough
 * that an input runs in milliseconds. */
#define MAX_REQS 200
/* Bytes of requests per input (large values included), and of replies
 * expected: past a few times the proxy's high mark nothing new happens,
 * only memory and time go. */
#define MAX_REQ_BYTES (3 * 1024 * 1024)
#define MAX_REPLY_BYTES (6 * 1024 * 1024)
/* Keys of a short get, of a long one (a line past PROTO_LINE_MAX, which
 * only get and gets may have), and the pool of keys requests reuse. */
#define SHORT_GET_KEYS 5
#define MAX_GET_KEYS 600
#define KEY_POOL 48
#define KEY_CAP 32
#define LINE_CAP 8192
/* A wait for timers (the rules' delays are at most 1 ms). */
#define WAIT_US 250
/* Waits with nothing moving before the input counts as a hang: about a
 * second, a thousand times the longest delay. */
#define MAX_IDLE_WAITS 4000
/* Waits a script may ask for: an input of nothing but waits would only
 * be slow. */
#define MAX_SCRIPT_WAITS 16
/* Reply bytes per input a throttle rule paces (at 4 MiB/s, an eighth of
 * a second) and a slice rule cuts (a pass or a 50 us wait per piece of 1
 * to 7 bytes). */
#define THROTTLE_BUDGET (512 * 1024)
#define SLICE_BUDGET 2048
/* Passes of the loop in all, against a livelock. */
#define MAX_PASSES 400000
/* A line the model memcached reads without finding its end: longer than
 * any the script makes. */
#define UP_LINE_MAX (LINE_CAP + 64)

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

/* ---- allocation failures ---- */

/*
 * The target is linked with --wrap=malloc,calloc,realloc: every allocation
 * of the proxy's own code (not libevent's, not libc's) comes here. While
 * the proxy runs (armed), the allocation numbered inject_at fails once.
 */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static bool inject_armed;
static unsigned long inject_at; /* 1-based; 0: never */
static unsigned long inject_count;
static bool inject_hit; /* an allocation failed in this input */

/* From the sanitizer runtime: where the failed allocation was made. */
void __sanitizer_print_stack_trace(void);

static bool inject_now(void)
{
    if (!inject_armed || inject_at == 0 || ++inject_count != inject_at) {
        return false;
    }
    inject_hit = true;
    if (getenv("MCFAULT_FUZZ_DUMP") != NULL) {
        fprintf(stderr, "fuzz_conn: allocation %lu fails here:\n", inject_at);
        __sanitizer_print_stack_trace();
    }
    return true;
}

void *__wrap_malloc(size_t n)
{
    return inject_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return inject_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return inject_now() ? NULL : __real_realloc(p, n);
}

/* ---- byte strings ---- */

/* Content is p[off..len): consumed from the front without moving. */
struct bytes {
    char *p;
    size_t off;
    size_t len;
    size_t cap;
};

static size_t b_size(const struct bytes *b)
{
    return b->len - b->off;
}

static const char *b_data(const struct bytes *b)
{
    return b->p + b->off;
}

/* Makes room for n more bytes. */
static void b_grow(struct bytes *b, size_t n)
{
    if (b->len + n > b->cap && b->off > 0) {
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) {
            cap *= 2;
        }
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            die("out of memory");
        }
        b->p = np;
        b->cap = cap;
    }
}

static void b_put(struct bytes *b, const void *p, size_t n)
{
    if (n == 0) {
        return;
    }
    b_grow(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void b_puts(struct bytes *b, const char *s)
{
    b_put(b, s, strlen(s));
}

static void b_fmt(struct bytes *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void b_fmt(struct bytes *b, const char *fmt, ...)
{
    char tmp[LINE_CAP * 2];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        die("b_fmt overflow");
    }
    b_put(b, tmp, (size_t)n);
}

static void b_drop(struct bytes *b, size_t n)
{
    b->off += n;
    if (b->off == b->len) {
        b->off = 0;
        b->len = 0;
    }
}

static void b_free(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* Bytes made printable for a report. */
static void print_escaped(const char *what, const char *p, size_t n)
{
    fprintf(stderr, "%s (%zu bytes): \"", what, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '\r') {
            fputs("\\r", stderr);
        } else if (ch == '\n') {
            fputs("\\n", stderr);
        } else if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '"') {
            fputc(ch, stderr);
        } else {
            fprintf(stderr, "\\x%02x", ch);
        }
    }
    fputs("\"\n", stderr);
}

/* A list of byte strings (commands), stored end to end. */
struct cmdlist {
    struct bytes all;
    size_t *end;
    size_t n;
    size_t cap;
};

static void cl_add(struct cmdlist *l, const char *p, size_t n)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->end = realloc(l->end, l->cap * sizeof(*l->end));
        if (l->end == NULL) {
            die("out of memory");
        }
    }
    b_put(&l->all, p, n);
    l->end[l->n++] = b_size(&l->all);
}

static size_t cl_get(const struct cmdlist *l, size_t i, const char **p)
{
    size_t start = i > 0 ? l->end[i - 1] : 0;
    *p = b_data(&l->all) + start;
    return l->end[i] - start;
}

static void cl_free(struct cmdlist *l)
{
    b_free(&l->all);
    free(l->end);
    memset(l, 0, sizeof(*l));
}

/* ---- reading the input ---- */

struct in {
    const uint8_t *p;
    size_t n;
};

/* The next byte; 0 once the input is used up. */
static unsigned in_u8(struct in *in)
{
    if (in->n == 0) {
        return 0;
    }
    in->n--;
    return *in->p++;
}

/* ---- tokens and base64 ---- */

struct tok {
    const char *p;
    size_t n;
};

#define MAX_TOK (MAX_GET_KEYS + 8)

static size_t split(const char *s, size_t n, struct tok *t, size_t max)
{
    size_t nt = 0;
    size_t i = 0;

    while (i < n && nt < max) {
        while (i < n && s[i] == ' ') {
            i++;
        }
        if (i == n) {
            break;
        }
        size_t start = i;
        while (i < n && s[i] != ' ') {
            i++;
        }
        t[nt].p = s + start;
        t[nt].n = i - start;
        nt++;
    }
    return nt;
}

static bool tok_is(const struct tok *t, const char *s)
{
    return t->n == strlen(s) && memcmp(t->p, s, t->n) == 0;
}

static unsigned long long tok_num(const struct tok *t)
{
    unsigned long long v = 0;

    for (size_t i = 0; i < t->n && t->p[i] >= '0' && t->p[i] <= '9'; i++) {
        v = v * 10 + (unsigned long long)(t->p[i] - '0');
    }
    return v;
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_encode(const char *in, size_t n, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)(unsigned char)in[i] << 16;
        if (i + 1 < n) {
            w |= (uint32_t)(unsigned char)in[i + 1] << 8;
        }
        if (i + 2 < n) {
            w |= (uint32_t)(unsigned char)in[i + 2];
        }
        out[o++] = b64chars[(w >> 18) & 63];
        out[o++] = b64chars[(w >> 12) & 63];
        out[o++] = i + 1 < n ? b64chars[(w >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64chars[w & 63] : '=';
    }
    return o;
}

static size_t b64_decode(const char *in, size_t n, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i + 3 < n; i += 4) {
        uint32_t w = 0;
        int pad = 0;
        for (size_t j = 0; j < 4; j++) {
            const char *c = strchr(b64chars, in[i + j]);
            if (in[i + j] == '=' || c == NULL) {
                pad++;
                w <<= 6;
            } else {
                w = (w << 6) | (uint32_t)(c - b64chars);
            }
        }
        out[o++] = (char)(w >> 16);
        if (pad < 2) {
            out[o++] = (char)(w >> 8);
        }
        if (pad < 1) {
            out[o++] = (char)w;
        }
    }
    return o;
}

/* ---- the model memcached ---- */

/*
 * A small memcached: a list of items, and the commands the script sends
 * (classic storage, retrieval, delete, incr/decr, touch; meta mg ms md ma
 * mn; version, quit). Classic noreply answers nothing at all; meta q hides
 * EN for mg and HD for the others. Both the checker (to predict) and the
 * upstream end of the connection (to answer) run one.
 */
struct item {
    char key[KEY_CAP];
    size_t klen;
    uint32_t flags;
    char *val;
    size_t vlen;
    uint64_t cas;
};

struct model {
    struct item *it;
    size_t n;
    size_t cap;
    uint64_t next_cas;
};

static struct item *model_find(struct model *m, const char *k, size_t kn)
{
    for (size_t i = 0; i < m->n; i++) {
        if (m->it[i].klen == kn && memcmp(m->it[i].key, k, kn) == 0) {
            return &m->it[i];
        }
    }
    return NULL;
}

static void model_store(struct model *m, const char *k, size_t kn,
                        uint32_t flags, const char *v, size_t vn)
{
    struct item *it = model_find(m, k, kn);

    if (kn >= KEY_CAP) {
        die("model: key too long");
    }
    if (it == NULL) {
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 16;
            m->it = realloc(m->it, m->cap * sizeof(*m->it));
            if (m->it == NULL) {
                die("out of memory");
            }
        }
        it = &m->it[m->n++];
        memset(it, 0, sizeof(*it));
        memcpy(it->key, k, kn);
        it->klen = kn;
    }
    char *nv = malloc(vn + 1);
    if (nv == NULL) {
        die("out of memory");
    }
    if (vn > 0) {
        memcpy(nv, v, vn);
    }
    free(it->val);
    it->val = nv;
    it->vlen = vn;
    it->flags = flags;
    it->cas = ++m->next_cas;
}

static void model_remove(struct model *m, struct item *it)
{
    free(it->val);
    *it = m->it[--m->n];
}

static void model_free(struct model *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->it[i].val);
    }
    free(m->it);
    memset(m, 0, sizeof(*m));
}

/* A counter's value: 1 to 19 digits (never overflows with our deltas). */
static bool item_number(const struct item *it, unsigned long long *v)
{
    if (it->vlen == 0 || it->vlen > 19) {
        return false;
    }
    *v = 0;
    for (size_t i = 0; i < it->vlen; i++) {
        if (it->val[i] < '0' || it->val[i] > '9') {
            return false;
        }
        *v = *v * 10 + (unsigned long long)(it->val[i] - '0');
    }
    return true;
}

static const char non_numeric[] =
    "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";

/* The key of a meta command as the model stores it (b: base64). */
static size_t meta_key(const struct tok *t, size_t nt, size_t first_flag,
                       char *key)
{
    bool b = false;

    for (size_t i = first_flag; i < nt; i++) {
        if (t[i].p[0] == 'b') {
            b = true;
        }
    }
    if (b) {
        return b64_decode(t[1].p, t[1].n, key);
    }
    memcpy(key, t[1].p, t[1].n < KEY_CAP ? t[1].n : KEY_CAP - 1);
    return t[1].n < KEY_CAP ? t[1].n : KEY_CAP - 1;
}

/* The flags a meta reply returns, in request order: O and k (with b) for
 * every code; f, s, c for a hit of mg (it). */
static void meta_echo(const struct tok *t, size_t nt, size_t first_flag,
                      const struct item *it, struct bytes *out)
{
    bool b = false;

    for (size_t i = first_flag; i < nt; i++) {
        if (t[i].p[0] == 'b') {
            b = true;
        }
    }
    for (size_t i = first_flag; i < nt; i++) {
        switch (t[i].p[0]) {
        case 'O':
            b_puts(out, " ");
            b_put(out, t[i].p, t[i].n);
            break;
        case 'k':
            b_puts(out, " k");
            b_put(out, t[1].p, t[1].n);
            if (b) {
                b_puts(out, " b");
            }
            break;
        case 'f':
            if (it != NULL) {
                b_fmt(out, " f%u", it->flags);
            }
            break;
        case 's':
            if (it != NULL) {
                b_fmt(out, " s%zu", it->vlen);
            }
            break;
        case 'c':
            if (it != NULL) {
                b_fmt(out, " c%llu", (unsigned long long)it->cas);
            }
            break;
        default:
            break;
        }
    }
}

static bool has_flag(const struct tok *t, size_t nt, size_t first, char f)
{
    for (size_t i = first; i < nt; i++) {
        if (t[i].p[0] == f) {
            return true;
        }
    }
    return false;
}

/* The second character of flag f ("ME" -> 'E'), 0 when absent. */
static char flag_arg(const struct tok *t, size_t nt, size_t first, char f)
{
    for (size_t i = first; i < nt; i++) {
        if (t[i].p[0] == f && t[i].n > 1) {
            return t[i].p[1];
        }
    }
    return 0;
}

static unsigned long long flag_num(const struct tok *t, size_t nt, size_t first,
                                   char f, unsigned long long d)
{
    for (size_t i = first; i < nt; i++) {
        if (t[i].p[0] == f && t[i].n > 1) {
            struct tok v = {t[i].p + 1, t[i].n - 1};
            return tok_num(&v);
        }
    }
    return d;
}

/* A meta code line: "CODE <echo>\r\n", nothing when q hides the code. */
static void meta_code(const struct tok *t, size_t nt, size_t first,
                      const char *code, bool hidden, struct bytes *out)
{
    if (hidden && has_flag(t, nt, first, 'q')) {
        return;
    }
    b_puts(out, code);
    meta_echo(t, nt, first, NULL, out);
    b_puts(out, "\r\n");
}

static void exec_retrieval(struct model *m, const struct tok *t, size_t nt,
                           size_t first, bool cas, struct bytes *out)
{
    for (size_t i = first; i < nt; i++) {
        struct item *it = model_find(m, t[i].p, t[i].n);
        if (it == NULL) {
            continue;
        }
        b_puts(out, "VALUE ");
        b_put(out, it->key, it->klen);
        b_fmt(out, " %u %zu", it->flags, it->vlen);
        if (cas) {
            b_fmt(out, " %llu", (unsigned long long)it->cas);
        }
        b_puts(out, "\r\n");
        b_put(out, it->val, it->vlen);
        b_puts(out, "\r\n");
    }
    b_puts(out, "END\r\n");
}

/* set add replace append prepend cas: <cmd> <key> <flags> <exp> <bytes>
 * [<cas>] [noreply] */
static void exec_store(struct model *m, const struct tok *t, size_t nt,
                       const char *data, size_t dlen, struct bytes *out)
{
    bool noreply = tok_is(&t[nt - 1], "noreply");
    struct item *it = model_find(m, t[1].p, t[1].n);
    uint32_t flags = (uint32_t)tok_num(&t[2]);
    const char *r = "STORED\r\n";

    if (tok_is(&t[0], "set")) {
        model_store(m, t[1].p, t[1].n, flags, data, dlen);
    } else if (tok_is(&t[0], "add") || tok_is(&t[0], "replace")) {
        if ((it != NULL) == tok_is(&t[0], "add")) {
            r = "NOT_STORED\r\n";
        } else {
            model_store(m, t[1].p, t[1].n, flags, data, dlen);
        }
    } else if (tok_is(&t[0], "cas")) {
        if (it == NULL) {
            r = "NOT_FOUND\r\n";
        } else if (it->cas != tok_num(&t[5])) {
            r = "EXISTS\r\n";
        } else {
            model_store(m, t[1].p, t[1].n, flags, data, dlen);
        }
    } else if (it == NULL) {
        r = "NOT_STORED\r\n"; /* append, prepend */
    } else {
        bool app = tok_is(&t[0], "append");
        size_t n = it->vlen + dlen;
        char *v = malloc(n + 1);
        if (v == NULL) {
            die("out of memory");
        }
        memcpy(v + (app ? 0 : dlen), it->val, it->vlen);
        memcpy(v + (app ? it->vlen : 0), data, dlen);
        model_store(m, t[1].p, t[1].n, it->flags, v, n);
        free(v);
    }
    if (!noreply) {
        b_puts(out, r);
    }
}

/* incr/decr <key> <delta> [noreply]; ma <key> <flags>*: new value */
static int arith(struct model *m, const char *k, size_t kn, bool decr,
                 unsigned long long delta, unsigned long long *v)
{
    struct item *it = model_find(m, k, kn);
    char num[32];

    if (it == NULL) {
        return -1;
    }
    if (!item_number(it, v)) {
        return -2;
    }
    *v = decr ? (*v > delta ? *v - delta : 0) : *v + delta;
    int n = snprintf(num, sizeof(num), "%llu", *v);
    model_store(m, k, kn, it->flags, num, (size_t)n);
    return 0;
}

static void exec_meta(struct model *m, const struct tok *t, size_t nt,
                      const char *data, size_t dlen, struct bytes *out)
{
    char key[KEY_CAP];
    size_t first = tok_is(&t[0], "ms") ? 3 : 2;
    size_t kn = meta_key(t, nt, first, key);
    struct item *it = model_find(m, key, kn);

    if (tok_is(&t[0], "mg")) {
        if (it == NULL) {
            meta_code(t, nt, first, "EN", true, out);
            return;
        }
        bool v = has_flag(t, nt, first, 'v');
        if (v) {
            b_fmt(out, "VA %zu", it->vlen);
        } else {
            b_puts(out, "HD");
        }
        meta_echo(t, nt, first, it, out);
        b_puts(out, "\r\n");
        if (v) {
            b_put(out, it->val, it->vlen);
            b_puts(out, "\r\n");
        }
    } else if (tok_is(&t[0], "ms")) {
        char mode = flag_arg(t, nt, first, 'M');
        uint32_t flags = (uint32_t)flag_num(t, nt, first, 'F', 0);
        if ((mode == 'E' && it != NULL) || (mode == 'R' && it == NULL)) {
            meta_code(t, nt, first, "NS", false, out);
            return;
        }
        model_store(m, key, kn, flags, data, dlen);
        meta_code(t, nt, first, "HD", true, out);
    } else if (tok_is(&t[0], "md")) {
        if (it == NULL) {
            meta_code(t, nt, first, "NF", false, out);
            return;
        }
        model_remove(m, it);
        meta_code(t, nt, first, "HD", true, out);
    } else {
        unsigned long long v;
        bool decr = flag_arg(t, nt, first, 'M') == 'D';
        int rc = arith(m, key, kn, decr, flag_num(t, nt, first, 'D', 1), &v);
        if (rc == -1) {
            meta_code(t, nt, first, "NF", false, out);
        } else if (rc == -2) {
            b_puts(out, non_numeric);
        } else if (has_flag(t, nt, first, 'v')) {
            char num[32];
            int n = snprintf(num, sizeof(num), "%llu", v);
            b_fmt(out, "VA %d", n);
            meta_echo(t, nt, first, NULL, out);
            b_puts(out, "\r\n");
            b_put(out, num, (size_t)n);
            b_puts(out, "\r\n");
        } else {
            meta_code(t, nt, first, "HD", true, out);
        }
    }
}

/*
 * Runs one command (its line without the terminator, its data block
 * without "\r\n") and appends the reply to out. Returns true for quit:
 * memcached closes.
 */
static bool model_exec(struct model *m, const char *line, size_t len,
                       const char *data, size_t dlen, struct bytes *out)
{
    struct tok t[MAX_TOK];
    size_t nt = split(line, len, t, MAX_TOK);

    if (nt == 0) {
        b_puts(out, "ERROR\r\n");
    } else if (tok_is(&t[0], "get") || tok_is(&t[0], "gets")) {
        exec_retrieval(m, t, nt, 1, tok_is(&t[0], "gets"), out);
    } else if (tok_is(&t[0], "gat") || tok_is(&t[0], "gats")) {
        exec_retrieval(m, t, nt, 2, tok_is(&t[0], "gats"), out);
    } else if (tok_is(&t[0], "set") || tok_is(&t[0], "add") ||
               tok_is(&t[0], "replace") || tok_is(&t[0], "append") ||
               tok_is(&t[0], "prepend") || tok_is(&t[0], "cas")) {
        exec_store(m, t, nt, data, dlen, out);
    } else if (tok_is(&t[0], "delete") && nt >= 2) {
        struct item *it = model_find(m, t[1].p, t[1].n);
        const char *r = it != NULL ? "DELETED\r\n" : "NOT_FOUND\r\n";
        if (it != NULL) {
            model_remove(m, it);
        }
        if (!tok_is(&t[nt - 1], "noreply")) {
            b_puts(out, r);
        }
    } else if ((tok_is(&t[0], "incr") || tok_is(&t[0], "decr")) && nt >= 3) {
        unsigned long long v;
        int rc =
            arith(m, t[1].p, t[1].n, tok_is(&t[0], "decr"), tok_num(&t[2]), &v);
        if (tok_is(&t[nt - 1], "noreply")) {
            return false;
        }
        if (rc == -1) {
            b_puts(out, "NOT_FOUND\r\n");
        } else if (rc == -2) {
            b_puts(out, non_numeric);
        } else {
            b_fmt(out, "%llu\r\n", v);
        }
    } else if (tok_is(&t[0], "touch") && nt >= 3) {
        bool hit = model_find(m, t[1].p, t[1].n) != NULL;
        if (!tok_is(&t[nt - 1], "noreply")) {
            b_puts(out, hit ? "TOUCHED\r\n" : "NOT_FOUND\r\n");
        }
    } else if ((tok_is(&t[0], "mg") || tok_is(&t[0], "ms") ||
                tok_is(&t[0], "md") || tok_is(&t[0], "ma")) &&
               nt >= 2) {
        exec_meta(m, t, nt, data, dlen, out);
    } else if (tok_is(&t[0], "mn")) {
        b_puts(out, "MN\r\n");
    } else if (tok_is(&t[0], "version")) {
        b_puts(out, "VERSION 1.6.18-model\r\n");
    } else if (tok_is(&t[0], "stats") && nt == 1) {
        b_fmt(out, "STAT pid 1\r\nSTAT curr_items %zu\r\nEND\r\n", m->n);
    } else if (tok_is(&t[0], "lru_crawler") && nt == 3) {
        for (size_t i = 0; i < m->n; i++) {
            b_puts(out, "key=");
            b_put(out, m->it[i].key, m->it[i].klen);
            b_fmt(out, " exp=-1 cas=%llu\n", (unsigned long long)m->it[i].cas);
        }
        b_puts(out, "END\r\n");
    } else if (tok_is(&t[0], "quit")) {
        return true;
    } else {
        b_puts(out, "ERROR\r\n");
    }
    return false;
}

/* The data block length of a command line, -1 when none follows. */
static long long data_block_len(const char *line, size_t len)
{
    struct tok t[MAX_TOK];
    size_t nt = split(line, len, t, MAX_TOK);

    if (nt >= 5 && (tok_is(&t[0], "set") || tok_is(&t[0], "add") ||
                    tok_is(&t[0], "replace") || tok_is(&t[0], "append") ||
                    tok_is(&t[0], "prepend") || tok_is(&t[0], "cas"))) {
        return (long long)tok_num(&t[4]);
    }
    if (nt >= 3 && tok_is(&t[0], "ms")) {
        return (long long)tok_num(&t[2]);
    }
    return -1;
}

/* ---- the rules ---- */

/* One rule per key prefix: "<prefix>:*". Keys "ok:..." match none. */
struct rule_spec {
    const char *prefix;
    enum rule_action action;
    bool forward;
    const char *msg; /* error */
    unsigned after;
    unsigned limit;
    const char *delay; /* delay */
    const char *jitter;
    unsigned variant; /* the rule byte's bits 4-7: a shaping action's
                         parameters (rates[] ... flip_counts[] below) */
};

/* Bytes 1-9 set the first nine rules in every input (the format before
 * the shaping rules); with byte 0's bits 3-4 at 2 or 3, bytes 10-14 set
 * the other five, otherwise those take the parameters of a zero byte. */
#define NRULES_OLD 9
#define NRULES 14

static const struct rule_spec rule_base[NRULES] = {
    {"ef", RULE_ERROR, false, NULL, 0, 0, NULL, NULL, 0},
    {"eF", RULE_ERROR, true, NULL, 0, 0, NULL, NULL, 0},
    {"df", RULE_DELAY, false, NULL, 0, 0, NULL, NULL, 0},
    {"dF", RULE_DELAY, true, NULL, 0, 0, NULL, NULL, 0},
    {"xf", RULE_DROP, false, NULL, 0, 0, NULL, NULL, 0},
    {"xF", RULE_DROP, true, NULL, 0, 0, NULL, NULL, 0},
    {"hf", RULE_HANG, false, NULL, 0, 0, NULL, NULL, 0},
    {"hF", RULE_HANG, true, NULL, 0, 0, NULL, NULL, 0},
    {"mi", RULE_MISS, false, NULL, 0, 0, NULL, NULL, 0},
    {"tr", RULE_THROTTLE, false, NULL, 0, 0, NULL, NULL, 0},
    {"sl", RULE_SLICE, false, NULL, 0, 0, NULL, NULL, 0},
    {"tc", RULE_TRUNCATE, false, NULL, 0, 0, NULL, NULL, 0},
    {"ev", RULE_EVICT, false, NULL, 0, 0, NULL, NULL, 0},
    {"cr", RULE_CORRUPT, false, NULL, 0, 0, NULL, NULL, 0},
};

/* The shaping actions' parameters, chosen by a rule's variant. Rates fast
 * and slices few (run_script's budgets bound the bytes they pace) so that
 * an input stays quick. */
static const char *const rates[] = {"4MiB/s", "32MiB/s"}; /* bit 0 */
static const char *const slice_sizes[] = {"1-7", "1-7", "1",
                                          "4-7"};      /* bits 0-1 */
static const char *const intervals[] = {"0s", "50us"}; /* bit 2 */
/* truncate: keep (bits 0-1 and 3), close (bit 2: reset, else fin). */
static const struct {
    const char *text;
    uint64_t bytes;
    unsigned percent; /* 0: bytes */
} keeps[] = {{"5", 5, 0}, {"9", 9, 0},    {"0", 0, 0},      {"50%", 0, 50},
             {"1", 1, 0}, {"25%", 0, 25}, {"100%", 0, 100}, {"2", 2, 0}};
static const unsigned flip_counts[] = {1, 2, 13, 1024}; /* bits 0-1 */

static unsigned keep_index(unsigned variant)
{
    return (variant & 3) | ((variant >> 1) & 4);
}

/* The commands a corrupt rule is limited to: its flips in a stored data
 * block would make every later read of the key unpredictable, so only
 * those in replies are modelled (sim_corrupt). */
static const char corrupt_cmds[] = "[get, gets, gat, gats, mg]";

/* A message past 512 bytes (filled in at the first input). */
static char long_msg[700];

/* Error messages: classic lines, and status words a meta command gets as
 * its code. */
static const char *const messages[] = {
    "SERVER_ERROR out of memory storing object",
    "CLIENT_ERROR bad data chunk",
    "NOT_STORED",
    "EXISTS",
    "NOT_FOUND",
    "STORED",
    "END",
    "HD",
    "EN",
    "NS",
    "ERROR",
    "SERVER_ERROR fuzz",
    long_msg, /* longer than apply.c's first try at rendering */
};

static const char *const delays[] = {"0s", "50us", "300us", "1ms"};
static const char *const jitters[] = {"0s", "25us", "150us", "500us"};

/* The meta code of an error message (fault.h), NULL for a plain line. */
static const char *msg_code(const char *msg)
{
    static const char *const map[][2] = {
        {"NOT_STORED", "NS"}, {"EXISTS", "EX"},  {"NOT_FOUND", "NF"},
        {"STORED", "HD"},     {"DELETED", "HD"}, {"TOUCHED", "HD"},
        {"END", "EN"},        {"NS", "NS"},      {"EX", "EX"},
        {"NF", "NF"},         {"HD", "HD"},      {"EN", "EN"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(map[i][0], msg) == 0) {
            return map[i][1];
        }
    }
    return NULL;
}

/* The rule table, through the config loader as the daemon builds it. */
static struct rules *rules_build(const struct rule_spec *spec)
{
    struct bytes y = {0};
    struct config cfg;
    struct config_errors errs = {0};

    b_puts(&y, "rules:\n");
    for (size_t i = 0; i < NRULES; i++) {
        const struct rule_spec *r = &spec[i];
        b_fmt(&y, "  - name: r-%s\n    key: \"%s:*\"\n    action: %s\n",
              r->prefix, r->prefix, rule_action_name(r->action));
        if (r->forward) {
            b_puts(&y, "    forward: true\n");
        }
        if (r->action == RULE_ERROR) {
            b_fmt(&y, "    message: \"%s\"\n", r->msg);
        }
        if (r->action == RULE_DELAY) {
            b_fmt(&y, "    delay: %s\n    jitter: %s\n", r->delay, r->jitter);
        }
        unsigned v = r->variant;
        switch (r->action) {
        case RULE_THROTTLE:
            b_fmt(&y, "    rate: %s\n", rates[v & 1]);
            break;
        case RULE_SLICE:
            b_fmt(&y, "    size: %s\n    interval: %s\n", slice_sizes[v & 3],
                  intervals[(v >> 2) & 1]);
            break;
        case RULE_TRUNCATE:
            b_fmt(&y, "    keep: \"%s\"\n    close: %s\n",
                  keeps[keep_index(v)].text, (v & 4) ? "reset" : "fin");
            break;
        case RULE_CORRUPT:
            b_fmt(&y, "    flips: %u\n    command: %s\n", flip_counts[v & 3],
                  corrupt_cmds);
            break;
        default:
            break;
        }
        b_fmt(&y, "    after: %u\n    limit: %u\n", r->after, r->limit);
    }
    if (config_parse("fuzz.yaml", b_data(&y), b_size(&y), &cfg, &errs) != 0) {
        for (size_t i = 0; i < errs.n; i++) {
            fprintf(stderr, "%s\n", errs.msgs[i]);
        }
        die("the fuzzer's rule file does not load");
    }
    struct config_proxy *cp = &cfg.proxies[0];
    struct rules *t = rules_create(cp->rules, cp->nrules, 1);
    cp->rules = NULL;
    cp->nrules = 0;
    config_free(&cfg);
    b_free(&y);
    if (t == NULL) {
        die("rules_create failed");
    }
    return t;
}

/* ---- requests ---- */

enum gop {
    G_SET = 0,
    G_ADD,
    G_REPLACE,
    G_APPEND,
    G_PREPEND,
    G_CAS,
    G_GET,
    G_GETS,
    G_GAT,
    G_GATS,
    G_DELETE,
    G_INCR,
    G_DECR,
    G_TOUCH,
    G_MG,
    G_MS,
    G_MD,
    G_MA,
    G_MN,
    G_VERSION,
    G_QUIT,
    G_LONGGET,  /* get/gets with 25 to 535 keys */
    G_JUNK,     /* a line over PROTO_LINE_MAX: the proxy closes */
    G_HEALTH,   /* mcfault_health, forwarded as version */
    G_STATS,    /* a list reply */
    G_METADUMP, /* lru_crawler metadump all: key= lines end in "\n" */
    G__COUNT
};

/* One request as the checker sees it. */
struct req {
    enum gop op;
    char line[LINE_CAP]; /* without its terminator */
    size_t line_len;
    bool crlf;        /* "\r\n", else "\n" */
    bool has_data;    /* a data block follows */
    const char *data; /* without its "\r\n" */
    size_t dlen;
    size_t nkeys; /* keys as the rules see them (base64 decoded) */
    char keys[MAX_GET_KEYS][KEY_CAP];
    size_t klen[MAX_GET_KEYS];
    size_t first_key;             /* offset of the first key in line */
    size_t key_off[MAX_GET_KEYS]; /* the keys as written in line */
    size_t key_len[MAX_GET_KEYS];
    bool noreply; /* classic noreply */
    bool quiet;   /* meta q */
    bool b64;     /* meta b: the key is written in base64 */
};

static bool op_meta_keyed(enum gop op)
{
    return op == G_MG || op == G_MS || op == G_MD || op == G_MA;
}

static bool op_retrieval(enum gop op)
{
    return op == G_GET || op == G_GETS || op == G_GAT || op == G_GATS ||
           op == G_LONGGET || op == G_MG;
}

/* ---- the checker ---- */

/* How the connection ends when every request has been processed. */
enum fate {
    FATE_OPEN = 0, /* stays open */
    FATE_CLOSE,    /* the proxy closes the client (drop, quit) */
    FATE_HANG      /* open, silent */
};

/* A stretch of the client's stream (a value) in which a corrupt rule flips
 * bits: exactly `bits` of its bits differ from the model's, the rest of
 * the stream is exact. */
struct fuzzy {
    size_t off;
    size_t len;
    uint64_t bits;
};

/* What the client and memcached must see, computed as the requests are
 * made: the rules' decisions, the model's replies, the faults' replies. */
struct sim {
    bool rules_on;
    struct rule_spec spec[NRULES];
    uint64_t matched[NRULES];
    uint64_t fired[NRULES];
    struct model m;
    struct bytes expect; /* the client's whole stream */
    struct cmdlist up;   /* what memcached must get (barrier mn aside) */
    bool stopped;        /* a drop, hang or quit: nothing more is taken */
    enum fate fate;
    struct bytes trace; /* one line per request, for failure reports */
    /* Value bytes a corrupt rule flips, in stream order. */
    struct fuzzy *fz;
    size_t nfz;
    size_t fzcap;
    size_t paced[2]; /* reply bytes throttled, sliced (budgets) */
};

static bool key_has_prefix(const char *k, size_t n, const char *prefix)
{
    size_t pn = strlen(prefix);
    return n > pn && memcmp(k, prefix, pn) == 0 && k[pn] == ':';
}

/* rules_decide, written out for one-prefix rules: the first rule in file
 * order whose prefix one of the keys has and whose gates open. */
static int sim_decide(struct sim *s, const struct req *r)
{
    if (!s->rules_on || r->op == G_QUIT) {
        return -1;
    }
    for (int i = 0; i < NRULES; i++) {
        const struct rule_spec *rs = &s->spec[i];
        /* miss rules act on retrievals only, corrupt ones here too (their
         * command list). */
        if ((rs->action == RULE_MISS || rs->action == RULE_CORRUPT) &&
            !op_retrieval(r->op)) {
            continue;
        }
        bool hit = false;
        for (size_t k = 0; k < r->nkeys && !hit; k++) {
            hit = key_has_prefix(r->keys[k], r->klen[k], rs->prefix);
        }
        if (!hit) {
            continue;
        }
        s->matched[i]++;
        if (s->matched[i] <= rs->after ||
            (rs->limit > 0 && s->fired[i] >= rs->limit)) {
            continue;
        }
        s->fired[i]++;
        return i;
    }
    return -1;
}

/* The reply of an error rule (fault.h's rules). */
static void render_error(const struct req *r, const char *msg,
                         struct bytes *out)
{
    if (op_meta_keyed(r->op)) {
        const char *code = msg_code(msg);
        if (code != NULL) {
            struct tok t[MAX_TOK];
            size_t nt = split(r->line, r->line_len, t, MAX_TOK);
            bool hidden = strcmp(code, r->op == G_MG ? "EN" : "HD") == 0;
            meta_code(t, nt, r->op == G_MS ? 3 : 2, code, hidden, out);
            return;
        }
    } else if (r->noreply) {
        return;
    }
    b_puts(out, msg);
    b_puts(out, "\r\n");
}

static void sim_forward(struct sim *s, const struct req *r, const char *raw,
                        size_t rawlen, struct bytes *out)
{
    cl_add(&s->up, raw, rawlen);
    if (model_exec(&s->m, r->line, r->line_len, r->data, r->dlen, out)) {
        s->stopped = true;
        s->fate = FATE_CLOSE; /* quit: memcached closes */
    }
}

/* A miss rule: mg answers the miss; get-family keys of the rule go. */
static void sim_miss(struct sim *s, const struct req *r,
                     const struct rule_spec *rs)
{
    if (r->op == G_MG) {
        struct tok t[MAX_TOK];
        size_t nt = split(r->line, r->line_len, t, MAX_TOK);
        meta_code(t, nt, 2, "EN", true, &s->expect);
        return;
    }
    struct bytes line = {0};
    size_t kept = 0;
    b_put(&line, r->line, r->first_key);
    for (size_t k = 0; k < r->nkeys; k++) {
        if (key_has_prefix(r->keys[k], r->klen[k], rs->prefix)) {
            continue;
        }
        if (kept++ > 0) {
            b_puts(&line, " ");
        }
        b_put(&line, r->line + r->key_off[k], r->key_len[k]);
    }
    if (kept == 0) {
        b_puts(&s->expect, "END\r\n");
    } else {
        struct req rw = *r;
        memcpy(rw.line, b_data(&line), b_size(&line));
        rw.line_len = b_size(&line);
        b_puts(&line, "\r\n");
        sim_forward(s, &rw, b_data(&line), b_size(&line), &s->expect);
    }
    b_free(&line);
}

/* evict: each key the rule matches goes first as "md <key>" (as written,
 * with " b" for a base64 one), its reply swallowed; the model runs it, so
 * the command finds the key gone. */
static void sim_evict(struct sim *s, const struct req *r,
                      const struct rule_spec *rs)
{
    struct bytes md = {0};
    struct bytes discard = {0};

    for (size_t k = 0; k < r->nkeys; k++) {
        if (!key_has_prefix(r->keys[k], r->klen[k], rs->prefix)) {
            continue;
        }
        md.off = md.len = 0;
        b_puts(&md, "md ");
        b_put(&md, r->line + r->key_off[k], r->key_len[k]);
        b_puts(&md, r->b64 ? " b\r\n" : "\r\n");
        cl_add(&s->up, b_data(&md), b_size(&md));
        model_exec(&s->m, b_data(&md), b_size(&md) - 2, NULL, 0, &discard);
    }
    b_free(&md);
    b_free(&discard);
}

/* A truncate by percentage keeps at most this much of a reply until its
 * length is known (shape.c's SHAPE_CAPTURE_MAX). */
#define TRUNCATE_CAPTURE_MAX (4u * 1024 * 1024)

/* truncate: the command goes through; the client gets the first keep
 * bytes of its reply (a noreply or quiet command's replies, if any: the
 * proxy fences it on both sides), then the connection closes. A share is
 * taken of the whole length, the bytes from the first 4 MiB. */
static void sim_truncate(struct sim *s, const struct req *r, const char *raw,
                         size_t rawlen, const struct rule_spec *rs)
{
    struct bytes rep = {0};
    unsigned k = keep_index(rs->variant);

    sim_forward(s, r, raw, rawlen, &rep);
    size_t n = b_size(&rep);
    uint64_t keep = keeps[k].bytes;
    if (keeps[k].percent > 0) {
        keep = (uint64_t)((double)keeps[k].percent / 100.0 * (double)n);
        keep = keep < TRUNCATE_CAPTURE_MAX ? keep : TRUNCATE_CAPTURE_MAX;
    }
    if (keep > 0 && n > 0) {
        b_put(&s->expect, b_data(&rep), keep < n ? (size_t)keep : n);
    }
    b_free(&rep);
    s->stopped = true;
    s->fate = FATE_CLOSE;
}

static void sim_fuzzy(struct sim *s, size_t off, size_t len, uint64_t flips)
{
    if (len == 0) {
        return;
    }
    if (s->nfz == s->fzcap) {
        s->fzcap = s->fzcap ? s->fzcap * 2 : 16;
        s->fz = realloc(s->fz, s->fzcap * sizeof(*s->fz));
        if (s->fz == NULL) {
            die("out of memory");
        }
    }
    uint64_t bits = (uint64_t)len * 8;
    s->fz[s->nfz].off = off;
    s->fz[s->nfz].len = len;
    s->fz[s->nfz].bits = flips < bits ? flips : bits;
    s->nfz++;
}

/* corrupt on a retrieval: the model's reply, in which each value of a key
 * the rule matches (every VA block of an mg) has its bits flipped. */
static void sim_corrupt(struct sim *s, const struct req *r, const char *raw,
                        size_t rawlen, const struct rule_spec *rs)
{
    struct bytes rep = {0};
    size_t base = b_size(&s->expect);
    uint64_t flips = flip_counts[rs->variant & 3];

    sim_forward(s, r, raw, rawlen, &rep);
    size_t n = b_size(&rep);
    if (n == 0) {
        return; /* a quiet mg's miss */
    }
    const char *p = b_data(&rep);
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(p + i, '\n', n - i);
        if (nl == NULL) {
            die("sim: a reply without its line end");
        }
        size_t end = (size_t)(nl - p) + 1;
        struct tok t[8];
        size_t nt = split(p + i, end - i >= 2 ? end - i - 2 : 0, t, 8);
        i = end;
        if (nt >= 4 && tok_is(&t[0], "VALUE")) {
            size_t vlen = (size_t)tok_num(&t[3]);
            if (key_has_prefix(t[1].p, t[1].n, rs->prefix)) {
                sim_fuzzy(s, base + i, vlen, flips);
            }
            i += vlen + 2;
        } else if (nt >= 2 && tok_is(&t[0], "VA")) {
            size_t vlen = (size_t)tok_num(&t[1]);
            sim_fuzzy(s, base + i, vlen, flips);
            i += vlen + 2;
        }
    }
    b_put(&s->expect, p, n);
    b_free(&rep);
}

/* Processes one request as the proxy and memcached must. */
static void sim_request(struct sim *s, const struct req *r, const char *raw,
                        size_t rawlen, unsigned no)
{
    struct bytes discard = {0};

    b_fmt(&s->trace, "#%u %.*s", no, (int)(r->line_len < 80 ? r->line_len : 80),
          r->line);
    if (s->stopped) {
        b_puts(&s->trace, "  (never read)\n");
        return;
    }
    size_t before = b_size(&s->expect);
    if (r->op == G_JUNK) {
        /* memcached closes on such a line: replies owed, then nothing. */
        s->stopped = true;
        s->fate = FATE_CLOSE;
        b_puts(&s->trace, "  (too long: stops)\n");
        return;
    }
    if (r->op == G_HEALTH) {
        static const char version[] = "version\r\n";
        struct req v = *r;
        memcpy(v.line, "version", 7);
        v.line_len = 7;
        sim_forward(s, &v, version, sizeof(version) - 1, &s->expect);
        b_puts(&s->trace, "  (as version)\n");
        return;
    }
    int ri = sim_decide(s, r);
    const struct rule_spec *rs = ri >= 0 ? &s->spec[ri] : NULL;
    if (rs != NULL) {
        b_fmt(&s->trace, "  [rule r-%s]", rs->prefix);
    }
    if (rs == NULL || rs->action == RULE_DELAY) {
        sim_forward(s, r, raw, rawlen, &s->expect);
    } else if (rs->action == RULE_THROTTLE || rs->action == RULE_SLICE) {
        /* Paced: the same bytes, later. */
        sim_forward(s, r, raw, rawlen, &s->expect);
        s->paced[rs->action == RULE_SLICE] += b_size(&s->expect) - before;
    } else if (rs->action == RULE_TRUNCATE) {
        sim_truncate(s, r, raw, rawlen, rs);
    } else if (rs->action == RULE_CORRUPT) {
        sim_corrupt(s, r, raw, rawlen, rs);
    } else if (rs->action == RULE_EVICT) {
        sim_evict(s, r, rs);
        sim_forward(s, r, raw, rawlen, &s->expect);
    } else if (rs->action == RULE_ERROR) {
        if (rs->forward) {
            sim_forward(s, r, raw, rawlen, &discard);
        }
        render_error(r, rs->msg, &s->expect);
    } else if (rs->action == RULE_DROP || rs->action == RULE_HANG) {
        if (rs->forward) {
            sim_forward(s, r, raw, rawlen, &discard);
        }
        s->stopped = true;
        s->fate = rs->action == RULE_DROP ? FATE_CLOSE : FATE_HANG;
    } else {
        sim_miss(s, r, rs);
    }
    b_fmt(&s->trace, "  -> %zu bytes at %zu%s\n", b_size(&s->expect) - before,
          before, s->stopped ? " (stops)" : "");
    b_free(&discard);
}

/* ---- the generator ---- */

/* The rules' prefixes, in rule_base's order. */
static const char *const prefixes[NRULES] = {"ef", "eF", "df", "dF", "xf",
                                             "xF", "hf", "hF", "mi", "tr",
                                             "sl", "tc", "ev", "cr"};

struct gen {
    unsigned next_id;
    char pool[KEY_POOL][KEY_CAP];
    size_t npool;
    size_t pool_next;
    bool lf_ok; /* lines may end in a bare "\n" */
    struct bytes val;
    size_t total;
};

/* A key: a new one (mostly without a rule) or one used before. */
static size_t pick_key(struct gen *g, struct in *in, char *out)
{
    unsigned k = in_u8(in);

    if ((k & 0x80) && g->npool > 0) {
        size_t i = in_u8(in) % g->npool;
        size_t n = strlen(g->pool[i]);
        memcpy(out, g->pool[i], n + 1);
        return n;
    }
    unsigned p = k % 16;
    /* 7..15 are the first nine prefixes; the high bits reach the rest. */
    const char *prefix = p < 7 ? "ok" : prefixes[(p - 7 + (k >> 4)) % NRULES];
    int n = snprintf(out, KEY_CAP, "%s:%u", prefix, g->next_id++);
    memcpy(g->pool[g->pool_next], out, (size_t)n + 1);
    g->pool_next = (g->pool_next + 1) % KEY_POOL;
    if (g->npool < KEY_POOL) {
        g->npool++;
    }
    return (size_t)n;
}

/* A value in g->val: numbers for the counters, text, bytes that look
 * like replies (so framing by length is what keeps the stream right),
 * binary; now and then one bigger than a read. */
static void make_value(struct gen *g, struct in *in, unsigned no, bool big)
{
    unsigned v = in_u8(in);
    unsigned style = in_u8(in) % 5;
    size_t n;

    g->val.off = 0;
    g->val.len = 0;
    if (big) {
        n = 64 * 1024 + ((size_t)in_u8(in) << 10);
    } else if (v < 220) {
        n = v % 40;
    } else {
        n = (size_t)(v - 219) * 2100;
    }
    if (g->total + n > MAX_REQ_BYTES) {
        n = 8;
    }
    if (style == 0) {
        b_fmt(&g->val, "%u", no * 7 + v);
        return;
    }
    b_grow(&g->val, n + 64); /* the doubling below copies from inside */
    b_fmt(&g->val, "%u|", no);
    static const char *const fill[] = {
        "abcdefghijklmnopqrstuvwxyz",
        "\r\nEND\r\nMN\r\nVALUE ok:1 0 1\r\nVA 2\r\nEN\r\nHD\r\n",
        "M",
        "\x00\x80\r\n\xff\n",
    };
    const char *f = fill[style - 1];
    size_t fl = style == 4 ? 6 : strlen(f);
    b_put(&g->val, f, fl);
    while (b_size(&g->val) < n) {
        /* Doubling: the value's own bytes repeat it. */
        size_t k = n - b_size(&g->val);
        size_t have = b_size(&g->val);
        b_put(&g->val, b_data(&g->val), k < have ? k : have);
    }
    g->val.len = g->val.off + n; /* n may be under the header's length */
}

/* Meta flags from a mask byte, rotated by another. */
static void meta_flags(struct req *r, struct in *in, unsigned no,
                       const char *const *cand, size_t ncand, char *out,
                       bool *b)
{
    unsigned mask = in_u8(in) | (in_u8(in) << 8);
    unsigned rot = in_u8(in);
    const char *chosen[16];
    size_t n = 0;

    *b = false;
    for (size_t i = 0; i < ncand && i < 16; i++) {
        if (mask & (1u << i)) {
            chosen[n++] = cand[i];
        }
    }
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *f = chosen[(i + rot) % n];
        size_t at = strlen(out);
        if (f[0] == 'O') {
            snprintf(out + at, LINE_CAP - at, " O%u", no);
        } else {
            snprintf(out + at, LINE_CAP - at, " %s", f);
        }
        if (f[0] == 'q') {
            r->quiet = true;
        }
        if (f[0] == 'b') {
            *b = true;
        }
    }
}

/* Where the key tokens sit in the line. */
static void locate_keys(struct req *r, size_t first_tok)
{
    struct tok t[MAX_TOK];
    size_t nt = split(r->line, r->line_len, t, MAX_TOK);

    for (size_t k = 0; k < r->nkeys && first_tok + k < nt; k++) {
        r->key_off[k] = (size_t)(t[first_tok + k].p - r->line);
        r->key_len[k] = t[first_tok + k].n;
    }
    r->first_key = r->key_off[0];
}

/*
 * Makes one request from the input into r (the data block, if any, in
 * g->val) and returns false when the input is used up. The sim's model
 * gives real cas values to some cas commands.
 */
static bool gen_request(struct gen *g, struct in *in, struct sim *s,
                        unsigned no, struct req *r)
{
    if (in->n == 0) {
        return false;
    }
    unsigned pick = in_u8(in);
    unsigned opt = in_u8(in);
    char key[KEY_CAP];
    size_t kn = 0;
    int n = 0;

    memset(r, 0, sizeof(*r));
    r->op = (enum gop)(pick % G__COUNT);
    if ((r->op == G_QUIT || r->op == G_JUNK) && (pick >> 5) != 0) {
        r->op = G_GET; /* these end the script: rarely */
    }
    r->crlf = !g->lf_ok || (opt & 0x40) == 0;
    r->noreply = (opt & 3) == 0;
    switch (r->op) {
    case G_SET:
    case G_ADD:
    case G_REPLACE:
    case G_APPEND:
    case G_PREPEND:
    case G_CAS: {
        static const char *const names[] = {"set",    "add",     "replace",
                                            "append", "prepend", "cas"};
        kn = pick_key(g, in, key);
        make_value(g, in, no, (opt & 0x3c) == 0x3c);
        unsigned flags = in_u8(in);
        n = snprintf(r->line, LINE_CAP, "%s %s %u 0 %zu", names[r->op], key,
                     flags, b_size(&g->val));
        if (r->op == G_CAS) {
            struct item *it = model_find(&s->m, key, kn);
            unsigned long long cas = it != NULL && (opt & 0x80)
                                         ? (unsigned long long)it->cas
                                         : 1000000 + no;
            n += snprintf(r->line + n, LINE_CAP - (size_t)n, " %llu", cas);
        }
        r->has_data = true;
        r->data = b_data(&g->val);
        r->dlen = b_size(&g->val);
        break;
    }
    case G_GET:
    case G_GETS:
    case G_GAT:
    case G_GATS: {
        static const char *const names[] = {"get", "gets", "gat 0", "gats 0"};
        r->noreply = false;
        n = snprintf(r->line, LINE_CAP, "%s", names[r->op - G_GET]);
        r->nkeys = 1 + (opt >> 2) % SHORT_GET_KEYS;
        for (size_t k = 0; k < r->nkeys; k++) {
            r->klen[k] = pick_key(g, in, r->keys[k]);
            n += snprintf(r->line + n, LINE_CAP - (size_t)n, " %s", r->keys[k]);
        }
        r->line_len = (size_t)n;
        locate_keys(r, r->op >= G_GAT ? 2 : 1);
        goto done;
    }
    case G_DELETE:
        kn = pick_key(g, in, key);
        n = snprintf(r->line, LINE_CAP, "delete %s", key);
        break;
    case G_INCR:
    case G_DECR:
        kn = pick_key(g, in, key);
        n = snprintf(r->line, LINE_CAP, "%s %s %u",
                     r->op == G_INCR ? "incr" : "decr", key, in_u8(in) % 50);
        break;
    case G_TOUCH:
        kn = pick_key(g, in, key);
        n = snprintf(r->line, LINE_CAP, "touch %s 0", key);
        break;
    case G_MG:
    case G_MS:
    case G_MD:
    case G_MA: {
        static const char *const mg[] = {"v", "f", "k", "O", "q",
                                         "s", "c", "b", "t"};
        static const char *const ms[] = {"q",  "O",  "k",  "b", "F5",
                                         "T0", "ME", "MR", "I"};
        static const char *const md[] = {"q", "O", "k", "b", "C0"};
        static const char *const ma[] = {"q", "O", "k", "b", "v", "D3", "MD"};
        static const char *const *const cand[] = {mg, ms, md, ma};
        static const size_t ncand[] = {9, 9, 5, 7};
        static const char *const names[] = {"mg", "ms", "md", "ma"};
        char flags[LINE_CAP];
        char sent[KEY_CAP * 2];
        bool b;
        size_t i = (size_t)(r->op - G_MG);
        r->noreply = false;
        kn = pick_key(g, in, key);
        meta_flags(r, in, no, cand[i], ncand[i], flags, &b);
        r->b64 = b;
        if (r->op == G_MS && strstr(flags, "ME") && strstr(flags, "MR")) {
            /* one mode only */
            char *mr = strstr(flags, " MR");
            memmove(mr, mr + 3, strlen(mr + 3) + 1);
        }
        size_t sn = b ? b64_encode(key, kn, sent) : kn;
        if (!b) {
            memcpy(sent, key, kn);
        }
        sent[sn] = '\0';
        if (r->op == G_MS) {
            make_value(g, in, no, false);
            n = snprintf(r->line, LINE_CAP, "ms %s %zu%s", sent,
                         b_size(&g->val), flags);
            r->has_data = true;
            r->data = b_data(&g->val);
            r->dlen = b_size(&g->val);
        } else {
            n = snprintf(r->line, LINE_CAP, "%s %s%s", names[i], sent, flags);
        }
        r->nkeys = 1;
        memcpy(r->keys[0], key, kn);
        r->klen[0] = kn;
        r->line_len = (size_t)n;
        locate_keys(r, 1);
        goto done;
    }
    case G_MN:
        r->noreply = false;
        n = snprintf(r->line, LINE_CAP, "mn");
        r->line_len = (size_t)n;
        goto done;
    case G_VERSION:
        r->noreply = false;
        n = snprintf(r->line, LINE_CAP, "version");
        r->line_len = (size_t)n;
        goto done;
    case G_QUIT:
    case G_HEALTH:
    case G_STATS:
    case G_METADUMP: {
        static const char *const lines[] = {
            [G_QUIT - G_QUIT] = "quit",
            [G_HEALTH - G_QUIT] = "mcfault_health",
            [G_STATS - G_QUIT] = "stats",
            [G_METADUMP - G_QUIT] = "lru_crawler metadump all"};
        r->noreply = false;
        n = snprintf(r->line, LINE_CAP, "%s", lines[r->op - G_QUIT]);
        r->line_len = (size_t)n;
        goto done;
    }
    case G_LONGGET: {
        /* Keys mostly without a rule, some of the pool (hits), some with
         * a rule when the mix byte says so. */
        unsigned count = 25 + 2 * in_u8(in);
        unsigned mix = in_u8(in);
        r->noreply = false;
        n = snprintf(r->line, LINE_CAP, "%s", (opt & 4) ? "gets" : "get");
        for (unsigned k = 0; k < count && k < MAX_GET_KEYS; k++) {
            char *key_k = r->keys[r->nkeys];
            if ((k + mix) % 3 == 0 && g->npool > 0) {
                memcpy(key_k, g->pool[(k * 7 + mix) % g->npool], KEY_CAP);
            } else if ((mix & 0x80) == 0 && (k * 7 + mix) % 11 == 0) {
                snprintf(key_k, KEY_CAP, "%s:%u", prefixes[(k + mix) % NRULES],
                         g->next_id++);
            } else {
                snprintf(key_k, KEY_CAP, "ok:%u", g->next_id++);
            }
            r->klen[r->nkeys] = strlen(key_k);
            n += snprintf(r->line + n, LINE_CAP - (size_t)n, " %s", key_k);
            r->nkeys++;
        }
        r->line_len = (size_t)n;
        locate_keys(r, 1);
        goto done;
    }
    case G_JUNK: {
        size_t len = 2100 + 8 * (size_t)in_u8(in);
        r->noreply = false;
        memcpy(r->line, "zz ", 3);
        memset(r->line + 3, 'y', len - 3);
        r->line_len = len;
        goto done;
    }
    case G__COUNT:
        break;
    }
    if (r->noreply) {
        n += snprintf(r->line + n, LINE_CAP - (size_t)n, " noreply");
    }
    r->line_len = (size_t)n;
    r->nkeys = 1;
    memcpy(r->keys[0], key, kn);
    r->klen[0] = kn;
    locate_keys(r, 1);
done:
    if (r->line_len >= LINE_CAP - 1) {
        die("generated line too long");
    }
    return true;
}

/* The request's bytes on the wire. */
static void req_bytes(const struct req *r, struct bytes *out)
{
    b_put(out, r->line, r->line_len);
    b_puts(out, r->crlf ? "\r\n" : "\n");
    if (r->has_data) {
        b_put(out, r->data, r->dlen);
        b_puts(out, "\r\n");
    }
}

/* ---- the two ends ---- */

struct client {
    int fd;
    struct bytes out; /* requests not written yet */
    struct bytes got; /* everything the proxy sent */
    size_t checked;   /* got[0..checked) matched expect */
    size_t fz_skip;   /* sim.fz[fz_skip] is the first ending past checked */
    size_t fz_done;   /* sim.fz[0..fz_done) had their flips counted */
    bool eof;         /* the proxy closed its side */
    bool shut;        /* we half-closed */
    bool closed;      /* we closed */
    bool stalled;     /* reads nothing for now (the proxy's cout fills) */
};

struct upstream {
    int fd;
    bool raw; /* answer nothing: read and discard */
    struct model m;
    struct bytes in;  /* read, not yet a whole command */
    struct bytes out; /* replies not written yet */
    size_t matched;   /* commands of sim.up received so far */
    size_t barriers;  /* extra "mn" received */
    bool eof;         /* the proxy shut its side */
    bool quit;        /* got quit: reads nothing more */
    bool closed;
    bool stalled; /* reads nothing for now (the proxy's uout fills) */
};

struct world {
    int proxy_fds[2]; /* the ends conn_adopt took */
    /* A second, idle connection beside ours (so the list of connections
     * has two), or none: the harness's ends, then the proxy's. */
    bool neighbour;
    int idle_ends[2];
    int idle_fds[2];
    struct event_base *base;
    struct event *waker;
    struct proxy px;
    struct client c;
    struct upstream u;
    struct sim s;
    bool checked;      /* a script, not raw bytes */
    bool adopt_failed; /* conn_adopt of ours failed (an allocation) */
    unsigned passes;
    unsigned waits;
};

static struct world *cur; /* for the failure report */

/* Whether our connection is still in the proxy's list. */
static bool conn_alive(struct world *w)
{
    for (struct conn *c = w->px.conns; c != NULL; c = c->next) {
        if (c->cfd == w->proxy_fds[0]) {
            return true;
        }
    }
    return false;
}

static void dump_state(void)
{
    struct world *w = cur;

    if (w == NULL) {
        return;
    }
    fprintf(stderr, "---- fuzz_conn state: %u passes, %u waits ----\n",
            w->passes, w->waits);
    if (w->checked) {
        fprintf(stderr, "%.*s", (int)b_size(&w->s.trace), b_data(&w->s.trace));
        fprintf(stderr, "fate %d stopped %d\n", w->s.fate, w->s.stopped);
    }
    fprintf(stderr,
            "client: got %zu bytes, expected %zu, unsent %zu, eof %d shut %d "
            "closed %d; corrupted values %zu, %zu counted\n",
            b_size(&w->c.got), b_size(&w->s.expect), b_size(&w->c.out),
            w->c.eof, w->c.shut, w->c.closed, w->s.nfz, w->c.fz_done);
    if (inject_at != 0) {
        fprintf(stderr, "allocation %lu fails: %s (%lu counted)\n", inject_at,
                inject_hit ? "it did" : "not reached", inject_count);
    }
    fprintf(stderr,
            "upstream: matched %zu of %zu commands, %zu barriers, unread "
            "%zu, unsent %zu, eof %d quit %d closed %d\n",
            w->u.matched, w->s.up.n, w->u.barriers, b_size(&w->u.in),
            b_size(&w->u.out), w->u.eof, w->u.quit, w->u.closed);
    for (struct conn *c = w->px.conns; c != NULL; c = c->next) {
        fprintf(stderr,
                "conn: client %d up %d input %d output %d mode %d q.len %u "
                "head %d open %d cin %zu uout %zu uin %zu cout %zu local %zu "
                "armed %x\n",
                c->client, c->up, c->input, c->output, c->mode, c->q.len,
                c->q.len > 0 ? inflight_head(&c->q)->type : -1, c->q.group_open,
                buf_len(&c->cin), buf_len(&c->uout), buf_len(&c->uin),
                buf_len(&c->cout), buf_len(&c->local), c->armed);
        if (c->fx != NULL) {
            /* A shaping rule's state (shape.h). */
            fprintf(stderr,
                    "fx: kind %u active %d specs %u out %zu cap %zu timer %d\n",
                    c->fx->cur.kind, c->fx->active, c->fx->qlen,
                    buf_len(&c->fx->out), buf_len(&c->fx->cap),
                    c->fx->timer != NULL &&
                        evtimer_pending(c->fx->timer, NULL));
        }
    }
}

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("fuzz_conn: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    dump_state();
    abort();
}

/* Writes up to limit bytes of what the client has to send. */
static bool client_send(struct world *w, size_t limit)
{
    struct client *c = &w->c;
    bool moved = false;

    while (!c->closed && !c->shut && b_size(&c->out) > 0 && limit > 0) {
        size_t n = b_size(&c->out) < limit ? b_size(&c->out) : limit;
        ssize_t k = send(c->fd, b_data(&c->out), n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                break;
            }
            /* The proxy closed (drop, quit): the rest is never read. */
            b_drop(&c->out, b_size(&c->out));
            break;
        }
        b_drop(&c->out, (size_t)k);
        limit -= (size_t)k;
        moved = true;
    }
    return moved;
}

/* The number of bits in which a[0..n) and b[0..n) differ. */
static uint64_t bit_distance(const char *a, const char *b, size_t n)
{
    uint64_t d = 0;

    for (size_t i = 0; i < n; i++) {
        d += (uint64_t)__builtin_popcount((unsigned char)(a[i] ^ b[i]));
    }
    return d;
}

/* Compares what arrived with the expected stream so far: byte for byte,
 * but in a value a corrupt rule hits any byte goes, and once the value
 * is whole exactly its flips must differ. */
static void client_check(struct world *w)
{
    struct client *c = &w->c;
    struct sim *s = &w->s;
    size_t have = b_size(&c->got);
    size_t want = b_size(&s->expect);

    if (!w->checked || c->checked == have) {
        return;
    }
    const char *g = b_data(&c->got);
    const char *e = b_data(&s->expect);
    size_t i = c->checked;
    while (i < have && i < want) {
        while (c->fz_skip < s->nfz &&
               s->fz[c->fz_skip].off + s->fz[c->fz_skip].len <= i) {
            c->fz_skip++;
        }
        if (c->fz_skip < s->nfz && i >= s->fz[c->fz_skip].off) {
            size_t end = s->fz[c->fz_skip].off + s->fz[c->fz_skip].len;
            i = end < have ? end : have;
            continue;
        }
        if (g[i] != e[i]) {
            break;
        }
        i++;
    }
    if (i < have) {
        size_t from = i > 120 ? i - 120 : 0;
        print_escaped("expected", e + from,
                      (want < i + 120 ? want : i + 120) - from);
        print_escaped("received", g + from,
                      (have < i + 120 ? have : i + 120) - from);
        die("the client got a wrong byte at offset %zu (of %zu expected)", i,
            want);
    }
    c->checked = have;
    /* A value is counted once its "\r\n" is in too: memcached may close
     * before that, and the proxy then passes the value as it came. */
    while (c->fz_done < s->nfz &&
           s->fz[c->fz_done].off + s->fz[c->fz_done].len + 2 <= have) {
        const struct fuzzy *z = &s->fz[c->fz_done];
        uint64_t d = bit_distance(g + z->off, e + z->off, z->len);
        if (d != z->bits) {
            print_escaped("expected", e + z->off, z->len < 200 ? z->len : 200);
            print_escaped("received", g + z->off, z->len < 200 ? z->len : 200);
            die("the value at offset %zu (%zu bytes) has %llu bits flipped, "
                "want %llu",
                z->off, z->len, (unsigned long long)d,
                (unsigned long long)z->bits);
        }
        c->fz_done++;
    }
}

static bool client_recv(struct world *w)
{
    struct client *c = &w->c;
    bool moved = false;
    char tmp[16384];

    while (!c->closed && !c->eof && !c->stalled) {
        ssize_t k = recv(c->fd, tmp, sizeof(tmp), 0);
        if (k > 0) {
            b_put(&c->got, tmp, (size_t)k);
            moved = true;
            continue;
        }
        if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
            c->eof = true;
            moved = true;
        }
        break;
    }
    client_check(w);
    return moved;
}

/* A command memcached received must be the next one the rules let
 * through, or a barrier mn the proxy added. */
static void up_check(struct world *w, const char *p, size_t n)
{
    struct upstream *u = &w->u;
    const char *want;

    if (u->matched < w->s.up.n) {
        size_t wn = cl_get(&w->s.up, u->matched, &want);
        if (wn == n && memcmp(want, p, n) == 0) {
            u->matched++;
            return;
        }
        if (n != 4 || memcmp(p, "mn\r\n", 4) != 0) {
            print_escaped("expected", want, wn);
        }
    }
    if (n == 4 && memcmp(p, "mn\r\n", 4) == 0) {
        u->barriers++;
        return;
    }
    print_escaped("received", p, n < 300 ? n : 300);
    die("memcached got command %zu wrong", u->matched);
}

/* Takes the whole commands in u->in, answers them into u->out. */
static void up_parse(struct world *w)
{
    struct upstream *u = &w->u;

    while (!u->quit && b_size(&u->in) > 0) {
        const char *p = b_data(&u->in);
        size_t avail = b_size(&u->in);
        const char *nl = memchr(p, '\n', avail);
        if (nl == NULL) {
            if (avail > UP_LINE_MAX) {
                die("memcached got a line of %zu bytes", avail);
            }
            return;
        }
        size_t ll = (size_t)(nl - p);
        size_t total = ll + 1;
        if (ll > 0 && p[ll - 1] == '\r') {
            ll--;
        }
        long long dl = data_block_len(p, ll);
        const char *data = NULL;
        size_t dlen = 0;
        if (dl >= 0) {
            if (avail < total + (size_t)dl + 2) {
                return;
            }
            data = p + total;
            dlen = (size_t)dl;
            if (memcmp(data + dlen, "\r\n", 2) != 0) {
                die("memcached got a data block without its \\r\\n");
            }
            total += dlen + 2;
        }
        up_check(w, p, total);
        if (model_exec(&u->m, p, ll, data, dlen, &u->out)) {
            u->quit = true;
        }
        b_drop(&u->in, total);
    }
}

static void up_close(struct world *w)
{
    if (!w->u.closed) {
        close(w->u.fd);
        w->u.closed = true;
    }
}

/* Reads what the proxy sent upstream, answers, writes up to limit bytes;
 * closes like memcached once the proxy shut its side (or after quit). */
static bool up_service(struct world *w, size_t limit)
{
    struct upstream *u = &w->u;
    bool moved = false;
    char tmp[16384];

    while (!u->closed && !u->eof && !u->stalled) {
        ssize_t k = recv(u->fd, tmp, sizeof(tmp), 0);
        if (k > 0) {
            if (!u->raw && !u->quit) {
                b_put(&u->in, tmp, (size_t)k);
            }
            moved = true;
            continue;
        }
        if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
            u->eof = true;
            moved = true;
        }
        break;
    }
    if (!u->raw) {
        up_parse(w);
    }
    while (!u->closed && b_size(&u->out) > 0 && limit > 0) {
        size_t n = b_size(&u->out) < limit ? b_size(&u->out) : limit;
        ssize_t k = send(u->fd, b_data(&u->out), n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                b_drop(&u->out, b_size(&u->out)); /* the proxy is gone */
            }
            break;
        }
        b_drop(&u->out, (size_t)k);
        limit -= (size_t)k;
        moved = true;
    }
    if (!u->closed && (u->eof || u->quit) && b_size(&u->out) == 0) {
        up_close(w);
        moved = true;
    }
    return moved;
}

/* Runs the proxy: its allocations may fail. */
static void loop(struct world *w, int flags)
{
    inject_armed = true;
    event_base_loop(w->base, flags);
    inject_armed = false;
}

static void on_waker(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Lets time pass: the loop waits for its next event, at most WAIT_US. */
static void wait_a_little(struct world *w)
{
    struct timeval tv = {0, WAIT_US};

    w->waits++;
    evtimer_add(w->waker, &tv);
    loop(w, EVLOOP_ONCE);
    evtimer_del(w->waker);
}

/* The idle neighbour's ends close when the proxy closes its side, as a
 * client and memcached would. */
static bool idle_service(struct world *w)
{
    bool moved = false;
    char tmp[64];

    for (int i = 0; w->neighbour && i < 2; i++) {
        if (w->idle_ends[i] < 0) {
            continue;
        }
        ssize_t k = recv(w->idle_ends[i], tmp, sizeof(tmp), 0);
        if (k > 0) {
            die("the idle connection got bytes");
        }
        if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
            close(w->idle_ends[i]);
            w->idle_ends[i] = -1;
            moved = true;
        }
    }
    return moved;
}

/* One round: the client writes, the proxy runs, memcached answers, the
 * proxy runs, the client reads. Returns whether any byte moved. */
static bool pass(struct world *w, size_t climit, size_t ulimit)
{
    bool moved = client_send(w, climit);

    w->passes++;
    loop(w, EVLOOP_NONBLOCK);
    moved |= up_service(w, ulimit);
    loop(w, EVLOOP_NONBLOCK);
    moved |= client_recv(w);
    moved |= idle_service(w);
    return moved;
}

/* ---- running an input ---- */

enum script_end {
    END_OPEN = 0,     /* the client stays connected */
    END_HALF_CLOSE,   /* the client shuts its writing side */
    END_CLIENT_CLOSE, /* the client closes */
    END_SERVER_CLOSE, /* memcached closes at once */
    END_DRAIN         /* conn_drain_all: a graceful stop */
};

static void client_close(struct world *w, bool half)
{
    struct client *c = &w->c;

    if (half) {
        shutdown(c->fd, SHUT_WR);
        c->shut = true;
    } else {
        close(c->fd);
        c->closed = true;
    }
}

static bool all_sent_and_answered(struct world *w)
{
    return b_size(&w->c.out) == 0 && b_size(&w->u.in) == 0 &&
           b_size(&w->u.out) == 0;
}

/* Whether the end the script asked for has been reached. */
static bool finished(struct world *w, enum script_end end)
{
    bool gone = !conn_alive(w);
    bool complete = b_size(&w->c.got) == b_size(&w->s.expect);

    switch (end) {
    case END_CLIENT_CLOSE:
        return gone;
    case END_SERVER_CLOSE:
    case END_DRAIN:
        return gone && w->c.eof;
    default:
        break;
    }
    if (!w->checked) {
        return gone && w->c.eof;
    }
    bool all_up = w->u.matched == w->s.up.n;
    if (inject_hit) {
        return w->c.eof && gone;
    }
    if (end == END_HALF_CLOSE || w->s.fate == FATE_CLOSE) {
        return complete && all_up && w->c.eof && gone;
    }
    return complete && all_up && all_sent_and_answered(w);
}

/* Runs the loop until the end is reached; a hang is reported. */
static void drain(struct world *w, enum script_end end)
{
    unsigned idle = 0;
    bool closing = end != END_OPEN;

    w->c.stalled = false;
    w->u.stalled = false;
    for (unsigned i = 0;; i++) {
        if (i > MAX_PASSES) {
            die("no end after %u passes (livelock)", i);
        }
        /* A relay (binary, watch) passes memcached's close on as a
         * half-close and waits for the client's own EOF. */
        bool raw_done = !w->checked && w->c.eof;
        if ((end == END_HALF_CLOSE || raw_done) && !w->c.shut && !w->c.closed &&
            b_size(&w->c.out) == 0) {
            client_close(w, true);
        }
        if (inject_hit && !closing) {
            /* After a failed allocation only a prefix is owed; the
             * client ends the connection and it must go away. */
            end = END_HALF_CLOSE;
            closing = true;
        }
        bool moved = pass(w, SIZE_MAX, SIZE_MAX);
        if (finished(w, end)) {
            break;
        }
        if (w->checked && !inject_hit && w->c.eof &&
            (end == END_OPEN || end == END_HALF_CLOSE) &&
            b_size(&w->c.got) < b_size(&w->s.expect)) {
            /* Nothing more can come: say so now rather than as a hang. */
            die("the proxy closed the client after %zu bytes of %zu",
                b_size(&w->c.got), b_size(&w->s.expect));
        }
        if (moved) {
            idle = 0;
            continue;
        }
        if (++idle > MAX_IDLE_WAITS) {
            die("hang: nothing moved for %u waits of %d us", idle, WAIT_US);
        }
        wait_a_little(w);
    }
    /* Nothing more may come: a few more rounds find a late byte. */
    for (int i = 0; i < 3 && conn_alive(w); i++) {
        pass(w, SIZE_MAX, SIZE_MAX);
    }
}

/* The final verdict of a checked script. */
static void verify(struct world *w, enum script_end end)
{
    if (!w->checked || end == END_CLIENT_CLOSE || inject_hit) {
        return; /* prefixes, checked as they came */
    }
    bool complete = b_size(&w->c.got) == b_size(&w->s.expect);
    if (end == END_SERVER_CLOSE || end == END_DRAIN) {
        return; /* a prefix, checked as it came */
    }
    if (!complete) {
        die("the client got %zu bytes of %zu", b_size(&w->c.got),
            b_size(&w->s.expect));
    }
    bool should_close = end == END_HALF_CLOSE || w->s.fate == FATE_CLOSE;
    if (w->c.eof != should_close) {
        die(should_close ? "the proxy did not close the client"
                         : "the proxy closed the client");
    }
    if (w->u.matched != w->s.up.n) {
        die("memcached got %zu commands of %zu", w->u.matched, w->s.up.n);
    }
    if (w->s.rules_on) {
        for (size_t i = 0; i < NRULES; i++) {
            struct rule *r = rules_at(w->px.rules, i);
            if (r->matched != w->s.matched[i] || r->fired != w->s.fired[i]) {
                die("rule r-%s: matched %llu fired %llu, want %llu %llu",
                    w->s.spec[i].prefix, (unsigned long long)r->matched,
                    (unsigned long long)r->fired,
                    (unsigned long long)w->s.matched[i],
                    (unsigned long long)w->s.fired[i]);
            }
        }
    }
}

/* A bound on the size of r's reply, from the model's values. */
static size_t reply_bound(struct sim *s, const struct req *r)
{
    size_t bound = 64;

    if (op_retrieval(r->op)) {
        for (size_t k = 0; k < r->nkeys; k++) {
            const struct item *it = model_find(&s->m, r->keys[k], r->klen[k]);
            bound += it != NULL ? it->klen + it->vlen + 64 : 0;
        }
    }
    return bound;
}

/* Whether r would cost too much: a reply past the input's total (a long
 * get that hits a big value hundreds of times: tens of megabytes), or one
 * a throttle or slice rule would pace past its budget (the rule that would
 * fire, asked without counting). Such a request is left out. */
static bool too_costly(struct sim *s, const struct req *r)
{
    uint64_t matched[NRULES];
    uint64_t fired[NRULES];

    if (s->stopped || r->op == G_JUNK || r->op == G_HEALTH) {
        return false; /* never read, or no reply of its own */
    }
    size_t bound = reply_bound(s, r);
    if (b_size(&s->expect) + bound > MAX_REPLY_BYTES) {
        return true;
    }
    memcpy(matched, s->matched, sizeof(matched));
    memcpy(fired, s->fired, sizeof(fired));
    int ri = sim_decide(s, r);
    memcpy(s->matched, matched, sizeof(matched));
    memcpy(s->fired, fired, sizeof(fired));
    if (ri < 0 || (s->spec[ri].action != RULE_THROTTLE &&
                   s->spec[ri].action != RULE_SLICE)) {
        return false;
    }
    bool slice = s->spec[ri].action == RULE_SLICE;
    return s->paced[slice] + bound > (slice ? SLICE_BUDGET : THROTTLE_BUDGET);
}

/* A size for a write: small ones split lines and replies anywhere. */
static size_t step_size(unsigned b)
{
    if (b == 0) {
        return SIZE_MAX;
    }
    return b < 160 ? b : (size_t)(b - 159) * 700;
}

/*
 * The script: each step's first byte picks what happens (see
 * docs/fuzzing.md). Returns how the client ends.
 */
static enum script_end run_script(struct world *w, struct in *in, struct gen *g)
{
    unsigned no = 0;
    struct req r;

    while (in->n > 0) {
        unsigned op = in_u8(in) % 32;
        if (op < 13) {
            if (no >= MAX_REQS || g->total >= MAX_REQ_BYTES ||
                b_size(&w->s.expect) >= MAX_REPLY_BYTES ||
                !gen_request(g, in, &w->s, no, &r) || too_costly(&w->s, &r)) {
                continue;
            }
            size_t at = b_size(&w->c.out);
            req_bytes(&r, &w->c.out);
            size_t rawlen = b_size(&w->c.out) - at;
            g->total += rawlen;
            sim_request(&w->s, &r, b_data(&w->c.out) + at, rawlen, no);
            no++;
        } else if (op == 13) {
            w->c.stalled = !w->c.stalled;
        } else if (op < 18) {
            client_send(w, step_size(in_u8(in)));
            loop(w, EVLOOP_NONBLOCK);
            client_recv(w);
        } else if (op < 22) {
            up_service(w, step_size(in_u8(in)));
            loop(w, EVLOOP_NONBLOCK);
            client_recv(w);
        } else if (op < 24) {
            pass(w, 0, 0);
        } else if (op == 24) {
            w->u.stalled = !w->u.stalled;
        } else if (op < 27) {
            if (w->waits < MAX_SCRIPT_WAITS) {
                wait_a_little(w);
            }
            pass(w, 0, 0);
        } else if (op < 29) {
            for (int i = 0; i < 4; i++) {
                pass(w, SIZE_MAX, SIZE_MAX);
            }
        } else if (op == 29) {
            return END_HALF_CLOSE;
        } else if (op == 30) {
            up_close(w);
            return END_SERVER_CLOSE;
        } else if (in_u8(in) & 1) {
            inject_armed = true;
            conn_drain_all(&w->px);
            inject_armed = false;
            return END_DRAIN;
        } else {
            client_close(w, false);
            return END_CLIENT_CLOSE;
        }
    }
    return END_OPEN;
}

/* Raw bytes both ways: each step's first byte says which side writes
 * how many of the bytes that follow. */
static enum script_end run_raw(struct world *w, struct in *in, bool up_first)
{
    while (in->n > 0) {
        unsigned b = in_u8(in);
        if (b == 0xff) {
            if (w->waits < MAX_SCRIPT_WAITS) {
                wait_a_little(w);
            }
            continue;
        }
        size_t n = (b >> 1) + 1;
        if (n > in->n) {
            n = in->n;
        }
        b_put((b & 1) ? &w->u.out : &w->c.out, in->p, n);
        in->p += n;
        in->n -= n;
        pass(w, SIZE_MAX, SIZE_MAX);
    }
    if (up_first) {
        up_close(w);
        return END_SERVER_CLOSE;
    }
    return END_HALF_CLOSE;
}

static void check_fds_closed(const int *fds);
static void world_teardown(struct world *w);

static void world_setup(struct world *w, unsigned head)
{
    int cs[2];
    int us[2];

    memset(w, 0, sizeof(*w));
    /* Timers to the microsecond (timerfd), not epoll's milliseconds: the
     * waits and the rules' delays are a fraction of one. */
    struct event_config *cfg = event_config_new();
    if (cfg == NULL ||
        event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER) != 0) {
        die("setup: event_config");
    }
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    w->waker = w->base != NULL ? evtimer_new(w->base, on_waker, NULL) : NULL;
    if (w->waker == NULL ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, cs) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, us) != 0) {
        die("setup: %s", strerror(errno));
    }
    w->px.base = w->base;
    w->px.name = "fuzz";
    snprintf(w->px.upstream_spec.host, ADDR_HOST_MAX, "model");
    snprintf(w->px.upstream_spec.port, ADDR_PORT_MAX, "11211");
    w->c.fd = cs[0];
    w->u.fd = us[0];
    w->checked = (head & 7) != 0;
    w->u.raw = !w->checked;
    w->proxy_fds[0] = cs[1];
    w->proxy_fds[1] = us[1];
    /* Modes 6 and 7: an idle connection is adopted before ours (ours is
     * then first in the list) or after it. */
    w->neighbour = (head & 7) >= 6;
    w->idle_ends[0] = w->idle_ends[1] = -1;
    if (w->neighbour &&
        (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, cs) != 0 ||
         socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, us) != 0)) {
        die("setup: %s", strerror(errno));
    }
    for (int i = 0; i < 2; i++) {
        bool ours = i == ((head & 7) == 6 ? 1 : 0);
        int rc = 0;
        inject_armed = true;
        if (ours) {
            rc = conn_adopt(&w->px, w->proxy_fds[0], w->proxy_fds[1]);
            w->adopt_failed = rc != 0;
        } else if (w->neighbour) {
            w->idle_ends[0] = cs[0];
            w->idle_ends[1] = us[0];
            w->idle_fds[0] = cs[1];
            w->idle_fds[1] = us[1];
            rc = conn_adopt(&w->px, cs[1], us[1]);
        }
        inject_armed = false;
        if (rc != 0 && !inject_hit) {
            die("conn_adopt failed");
        }
    }
}

/* A connection that is gone has closed both its sockets (no other fd is
 * opened in between, so the numbers are not reused). */
static void check_fds_closed(const int *fds)
{
    for (int i = 0; i < 2; i++) {
        if (fcntl(fds[i], F_GETFD) != -1 || errno != EBADF) {
            die("the proxy left its %s socket open",
                i == 0 ? "client" : "upstream");
        }
    }
}

static void world_teardown(struct world *w)
{
    if (!conn_alive(w)) {
        check_fds_closed(w->proxy_fds);
    }
    conn_close_all(&w->px);
    check_fds_closed(w->proxy_fds);
    if (w->neighbour) {
        check_fds_closed(w->idle_fds);
        for (int i = 0; i < 2; i++) {
            if (w->idle_ends[i] >= 0) {
                close(w->idle_ends[i]);
            }
        }
    }
    if (!w->c.closed) {
        close(w->c.fd);
    }
    up_close(w);
    event_free(w->waker);
    event_base_free(w->base);
    rules_destroy(w->px.rules);
    model_free(&w->s.m);
    model_free(&w->u.m);
    b_free(&w->s.expect);
    b_free(&w->s.trace);
    free(w->s.fz);
    cl_free(&w->s.up);
    b_free(&w->c.out);
    b_free(&w->c.got);
    b_free(&w->u.in);
    b_free(&w->u.out);
    stats_events_free();
}

static bool quiet_logs;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct world world;
    struct world *w = &world;
    struct in in = {data, size};
    struct gen g;

    if (size < 2) {
        return 0;
    }
    if (!quiet_logs) {
        /* Logs go nowhere unless asked for (MCFAULT_FUZZ_LOG=1 shows
         * every trace line of a reproduction on stderr). */
        if (getenv("MCFAULT_FUZZ_LOG") == NULL && log_open("/dev/null") != 0) {
            die("cannot open /dev/null");
        }
        quiet_logs = true;
        int n = snprintf(long_msg, sizeof(long_msg), "SERVER_ERROR");
        while ((size_t)n + 11 < sizeof(long_msg)) {
            n += snprintf(long_msg + n, sizeof(long_msg) - (size_t)n,
                          " 0123456789");
        }
    }
    unsigned head = in_u8(&in);

    /* The rules: every action on its own key prefix; gates, messages,
     * delays and the shaping parameters from the input. One input in four
     * runs without rules; in one in four the rules after the first nine
     * keep their defaults (the format's first nine bytes only). */
    struct rule_spec spec[NRULES];
    memcpy(spec, rule_base, sizeof(rule_base));
    size_t nbytes = ((head >> 3) & 3) >= 2 ? NRULES : NRULES_OLD;
    for (size_t i = 0; i < NRULES; i++) {
        unsigned b = i < nbytes ? in_u8(&in) : 0;
        struct rule_spec *rs = &spec[i];
        rs->after = (b & 3) == 3 ? 2 : (b & 3) == 2;
        rs->limit = ((b >> 2) & 3) == 3 ? 2 : ((b >> 2) & 3) == 2;
        rs->msg = messages[(b >> 4) % (sizeof(messages) / sizeof(messages[0]))];
        rs->delay = delays[(b >> 4) & 3];
        rs->jitter = (b & 0x40) ? jitters[(b >> 4) & 3] : "0s";
        rs->variant = b >> 4;
    }
    /* One input in eight: one of the proxy's allocations fails. */
    unsigned f = in_u8(&in);
    inject_at = f >= 0xe0 ? 1 + in_u8(&in) * (1 + (f & 7)) : 0;
    inject_count = 0;
    inject_hit = false;

    world_setup(w, head);
    cur = w;
    bool trace = getenv("MCFAULT_FUZZ_LOG") != NULL || (head & 0x60) == 0x60;
    log_level = trace ? LOG_TRACE : LOG_ERROR;
    stats_keep_events = (head & 0x40) != 0;
    memcpy(w->s.spec, spec, sizeof(spec));
    w->s.rules_on = ((head >> 3) & 3) != 0;
    if (w->s.rules_on) {
        w->px.rules = rules_build(w->s.spec);
    }
    if (w->adopt_failed) {
        /* conn_adopt takes both fds, also on failure. */
        check_fds_closed(w->proxy_fds);
        world_teardown(w);
        cur = NULL;
        return 0;
    }

    memset(&g, 0, sizeof(g));
    g.lf_ok = (head & 0x80) != 0;
    enum script_end end =
        w->checked ? run_script(w, &in, &g) : run_raw(w, &in, head & 0x80);
    drain(w, end);
    verify(w, end);
    if (getenv("MCFAULT_FUZZ_DUMP") != NULL) {
        dump_state(); /* what a passing input did */
    }
    b_free(&g.val);
    world_teardown(w);
    cur = NULL;
    return 0;
}
