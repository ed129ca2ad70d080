/*
 * Configuration loader: YAML text -> struct config. Each mapping goes
 * through three passes, as in twemproxy's nc_conf: shape (a mapping of known
 * keys, each once), values (a setter per key from a {name, setter, offset}
 * table) and meaning (checks across keys). Problems are collected, not fatal.
 * Values with units (durations, sizes, rates, probabilities): config_value.c.
 */
#include "mcfault/config.h"

#include "config_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "mcfault/glob.h"
#include "mcfault/proto.h"

/* Errors kept per parse: past this many the rest is one mistake repeated,
 * and a hostile file could otherwise make millions of messages. */
#define CONFIG_ERRORS_MAX 100
/* Rule and proxy names show up in logs, stats and admin URLs. */
#define CONFIG_NAME_MAX 128
/* A key is at most PROTO_KEY_MAX bytes, so a longer glob only costs time
 * on every match (glob_match is O(plen * slen)). */
#define CONFIG_GLOB_MAX 1024
/* Values quoted in messages are cut after this many bytes... */
#define SHOW_MAX 40
/* ...and every byte may print as "\xNN", plus "..." and the NUL. */
#define SHOW_BUF (SHOW_MAX * 4 + 4)
/* A message body before "FILE:LINE:COL: ": values are cut to SHOW_BUF. */
#define BODY_MAX 1024
/* What a connect rule with action error answers when it has no message:
 * memcached's own words when it is out of connections, which is what a
 * client library is written to handle. */
#define CONNECT_MESSAGE "ERROR Too many open connections"
/* The longest 'client' entry: an IPv6 address in full with an IPv4 tail
 * (45 bytes) and "/128". */
#define CLIENT_MAX 49

/* One collected problem; sorted into file order at the end. */
struct cerr {
    size_t line; /* 0-based, as libyaml marks */
    size_t col;
    size_t seq; /* discovery order, for a stable sort */
    char *msg;
};

/* The state of one config_parse call. */
struct ctx {
    const char *file;
    const char *text;
    size_t len;
    yaml_document_t *doc;
    struct cerr *errs;
    size_t nerrs;
    size_t cap;
    bool full; /* CONFIG_ERRORS_MAX reached: later problems dropped */
    bool oom;
    /* config_parse_rules: rules already in force ahead of the parsed ones
     * (an unnamed rule is numbered after them); duplicate names are left
     * to the caller, who checks them against those rules as well. */
    size_t rule_base;
    bool adding;
};

/* A name or address and where it was written, for duplicate checks. */
struct dupref {
    const char *s;
    size_t len;
    yaml_mark_t mark;
    size_t idx; /* position in the file */
};

struct field;
/* Pass 2: stores v into obj as f says. Returns 0, or -1 after reporting. */
typedef int (*field_set)(struct ctx *c, const struct field *f,
                         const yaml_node_t *v, void *obj);

struct field {
    const char *name;
    field_set set; /* NULL: the caller handles the key */
    size_t off;    /* where set stores the value in obj */
    size_t max;    /* set_string: longest value in bytes, 0 no limit;
                      set_count: the largest value; set_duration: the
                      largest in seconds, 0 RULES_DELAY_MAX_US */
};

static void err_at(struct ctx *c, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_at(struct ctx *c, const yaml_mark_t *m, const char *fmt, ...)
{
    char body[BODY_MAX];
    va_list ap;

    if (c->nerrs == CONFIG_ERRORS_MAX) {
        c->full = true;
        return;
    }
    if (c->nerrs == c->cap) {
        size_t cap = c->cap == 0 ? 8 : 2 * c->cap;
        struct cerr *e = realloc(c->errs, cap * sizeof(*e));
        if (e == NULL) {
            c->oom = true;
            return;
        }
        c->errs = e;
        c->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);

    int n = snprintf(NULL, 0, "%s:%zu:%zu: %s", c->file, m->line + 1,
                     m->column + 1, body);
    char *msg = n < 0 ? NULL : malloc((size_t)n + 1);
    if (msg == NULL) {
        c->oom = true;
        return;
    }
    snprintf(msg, (size_t)n + 1, "%s:%zu:%zu: %s", c->file, m->line + 1,
             m->column + 1, body);
    c->errs[c->nerrs].line = m->line;
    c->errs[c->nerrs].col = m->column;
    c->errs[c->nerrs].seq = c->nerrs;
    c->errs[c->nerrs].msg = msg;
    c->nerrs++;
}

/*
 * Copies s[0..len) into buf (SHOW_BUF bytes) for quoting in a message:
 * control bytes as C escapes, cut after SHOW_MAX bytes (at a UTF-8
 * boundary) with "...". Returns buf.
 */
static const char *show(char *buf, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = len;
    size_t o = 0;

    if (n > SHOW_MAX) {
        n = SHOW_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) {
            n--;
        }
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        if (b >= 0x20 && b != 0x7f) {
            buf[o++] = (char)b;
            continue;
        }
        buf[o++] = '\\';
        switch (b) {
        case '\0':
            buf[o++] = '0';
            break;
        case '\t':
            buf[o++] = 't';
            break;
        case '\n':
            buf[o++] = 'n';
            break;
        case '\r':
            buf[o++] = 'r';
            break;
        default:
            buf[o++] = 'x';
            buf[o++] = hex[b >> 4];
            buf[o++] = hex[b & 15];
            break;
        }
    }
    if (n < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

static const char *sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static size_t slen(const yaml_node_t *n)
{
    return n->data.scalar.length;
}

/* show() of a scalar node's value. */
static const char *show_node(char *buf, const yaml_node_t *n)
{
    return show(buf, sval(n), slen(n));
}

/* True for a plain scalar YAML reads as null: "key:" with nothing after
 * it, "~" or "null". */
static bool is_null(const yaml_node_t *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

    if (n->type != YAML_SCALAR_NODE ||
        n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return false;
    }
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
        if (config_seq_eq(sval(n), slen(n), nulls[i])) {
            return true;
        }
    }
    return false;
}

static const yaml_node_t *node_at(struct ctx *c, int i)
{
    return yaml_document_get_node(c->doc, i);
}

static size_t seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static char *dup_bytes(struct ctx *c, const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (p == NULL) {
        c->oom = true;
        return NULL;
    }
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/*
 * Common checks of a scalar value: reports "what" when v is not a scalar
 * and a missing value when it is null. Returns true when v is usable.
 */
static bool want_scalar(struct ctx *c, const struct field *f,
                        const yaml_node_t *v, const char *what)
{
    if (v->type != YAML_SCALAR_NODE) {
        err_at(c, &v->start_mark, "expected %s", what);
        return false;
    }
    if (is_null(v)) {
        err_at(c, &v->start_mark, "missing value for '%s'", f->name);
        return false;
    }
    return true;
}

static int set_string(struct ctx *c, const struct field *f,
                      const yaml_node_t *v, void *obj)
{
    if (!want_scalar(c, f, v, "a string")) {
        return -1;
    }
    const char *s = sval(v);
    size_t len = slen(v);
    if (len == 0) {
        err_at(c, &v->start_mark, "'%s' must not be empty", f->name);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)s[i];
        if (b < 0x20 || b == 0x7f) {
            err_at(c, &v->start_mark,
                   "'%s' must not contain control characters", f->name);
            return -1;
        }
    }
    if (f->max != 0 && len > f->max) {
        err_at(c, &v->start_mark, "'%s' is longer than %zu bytes", f->name,
               f->max);
        return -1;
    }
    char *p = dup_bytes(c, s, len);
    if (p == NULL) {
        return -1;
    }
    *(char **)((char *)obj + f->off) = p;
    return 0;
}

// digit+
static int set_u64(struct ctx *c, const struct field *f, const yaml_node_t *v,
                   void *obj)
{
    char sv[SHOW_BUF];

    if (!want_scalar(c, f, v, "a non-negative integer")) {
        return -1;
    }
    const char *s = sval(v);
    size_t len = slen(v);
    uint64_t x = 0;
    for (size_t i = 0; i < len || len == 0; i++) {
        if (len == 0 || s[i] < '0' || s[i] > '9') {
            err_at(c, &v->start_mark,
                   "'%s' must be a non-negative integer, got '%s'", f->name,
                   show_node(sv, v));
            return -1;
        }
        unsigned d = (unsigned)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10) {
            err_at(c, &v->start_mark,
                   "'%s' is too large (at most %llu), got '%s'", f->name,
                   (unsigned long long)UINT64_MAX, show_node(sv, v));
            return -1;
        }
        x = 10 * x + d;
    }
    *(uint64_t *)((char *)obj + f->off) = x;
    return 0;
}

// digit+, from 1 to f->max
static int parse_count(struct ctx *c, const struct field *f,
                       const yaml_node_t *v, uint64_t *out)
{
    char sv[SHOW_BUF];
    uint64_t x = 0;

    if (!want_scalar(c, f, v, "a positive integer")) {
        return -1;
    }
    const char *s = sval(v);
    size_t len = slen(v);
    for (size_t i = 0; i < len && x <= f->max; i++) {
        if (s[i] < '0' || s[i] > '9') {
            x = 0;
            break;
        }
        x = 10 * x + (unsigned)(s[i] - '0');
    }
    if (len == 0 || x < 1 || x > f->max) {
        err_at(c, &v->start_mark,
               "'%s' must be an integer from 1 to %zu, "
               "got '%s'",
               f->name, f->max, show_node(sv, v));
        return -1;
    }
    *out = x;
    return 0;
}

static int set_count(struct ctx *c, const struct field *f, const yaml_node_t *v,
                     void *obj)
{
    uint64_t x;

    if (parse_count(c, f, v, &x) != 0) {
        return -1;
    }
    *(uint64_t *)((char *)obj + f->off) = x;
    return 0;
}

/* set_count into a uint32_t (f->max fits one). */
static int set_count32(struct ctx *c, const struct field *f,
                       const yaml_node_t *v, void *obj)
{
    uint64_t x;

    if (parse_count(c, f, v, &x) != 0) {
        return -1;
    }
    *(uint32_t *)((char *)obj + f->off) = (uint32_t)x;
    return 0;
}

static int set_bool(struct ctx *c, const struct field *f, const yaml_node_t *v,
                    void *obj)
{
    static const char *const yes[] = {"true", "True", "TRUE"};
    static const char *const no[] = {"false", "False", "FALSE"};
    char sv[SHOW_BUF];

    if (!want_scalar(c, f, v, "true or false")) {
        return -1;
    }
    for (size_t i = 0; i < 3; i++) {
        if (config_seq_eq(sval(v), slen(v), yes[i]) ||
            config_seq_eq(sval(v), slen(v), no[i])) {
            *(bool *)((char *)obj + f->off) =
                config_seq_eq(sval(v), slen(v), yes[i]);
            return 0;
        }
    }
    err_at(c, &v->start_mark, "'%s' must be true or false, got '%s'", f->name,
           show_node(sv, v));
    return -1;
}

// digit+ ['.' digit+] unit
static int set_duration(struct ctx *c, const struct field *f,
                        const yaml_node_t *v, void *obj)
{
    char sv[SHOW_BUF];
    const char *why;
    uint64_t us;
    uint64_t max =
        f->max != 0 ? (uint64_t)f->max * 1000000 : RULES_DELAY_MAX_US;

    if (!want_scalar(c, f, v, "a duration such as 500ms")) {
        return -1;
    }
    if (config_parse_duration(sval(v), slen(v), &us, &why) != 0) {
        err_at(c, &v->start_mark, "bad duration '%s' in '%s': %s",
               show_node(sv, v), f->name, why);
        return -1;
    }
    if (us > max) {
        err_at(c, &v->start_mark, "'%s' must be at most %llus, got '%s'",
               f->name, (unsigned long long)(max / 1000000), show_node(sv, v));
        return -1;
    }
    *(uint64_t *)((char *)obj + f->off) = us;
    return 0;
}

static int set_probability(struct ctx *c, const struct field *f,
                           const yaml_node_t *v, void *obj)
{
    char sv[SHOW_BUF];
    const char *why;
    double p;

    if (!want_scalar(c, f, v, "a probability (0..1 or a percentage)")) {
        return -1;
    }
    if (config_parse_probability(sval(v), slen(v), &p, &why) != 0) {
        err_at(c, &v->start_mark,
               "'%s' must be between 0 and 1 or a percentage, got '%s'",
               f->name, show_node(sv, v));
        return -1;
    }
    *(double *)((char *)obj + f->off) = p;
    return 0;
}

static int set_action(struct ctx *c, const struct field *f,
                      const yaml_node_t *v, void *obj)
{
    char sv[SHOW_BUF];
    char names[128] = "";

    if (!want_scalar(c, f, v, "a string")) {
        return -1;
    }
    for (int a = 0; a < RULE__COUNT; a++) {
        const char *name = rule_action_name((enum rule_action)a);
        if (config_seq_eq(sval(v), slen(v), name)) {
            *(enum rule_action *)((char *)obj + f->off) = (enum rule_action)a;
            return 0;
        }
        size_t used = strlen(names);
        snprintf(names + used, sizeof(names) - used, "%s%s", a == 0 ? "" : ", ",
                 name);
    }
    err_at(c, &v->start_mark, "'%s' must be one of %s, got '%s'", f->name,
           names, show_node(sv, v));
    return -1;
}

static int set_message(struct ctx *c, const struct field *f,
                       const yaml_node_t *v, void *obj)
{
    struct rule *r = obj;

    if (!want_scalar(c, f, v, "a string")) {
        return -1;
    }
    if (slen(v) == 0) {
        err_at(c, &v->start_mark, "'%s' must not be empty", f->name);
        return -1;
    }
    for (size_t i = 0; i < slen(v); i++) {
        char b = sval(v)[i];
        if (b == '\r' || b == '\n' || b == '\0') {
            err_at(c, &v->start_mark,
                   "'%s' must be a single line (no CR, LF or NUL)", f->name);
            return -1;
        }
    }
    r->message = dup_bytes(c, sval(v), slen(v));
    if (r->message == NULL) {
        return -1;
    }
    r->message_len = slen(v);
    return 0;
}

// fin | reset
static int set_close(struct ctx *c, const struct field *f, const yaml_node_t *v,
                     void *obj)
{
    char sv[SHOW_BUF];
    struct rule *r = obj;

    if (!want_scalar(c, f, v, "fin or reset")) {
        return -1;
    }
    if (config_seq_eq(sval(v), slen(v), "fin")) {
        r->close = RULE_CLOSE_FIN;
    } else if (config_seq_eq(sval(v), slen(v), "reset")) {
        r->close = RULE_CLOSE_RESET;
    } else {
        err_at(c, &v->start_mark, "'%s' must be fin or reset, got '%s'",
               f->name, show_node(sv, v));
        return -1;
    }
    return 0;
}

// digit+ [unit] ['/s']
static int set_rate(struct ctx *c, const struct field *f, const yaml_node_t *v,
                    void *obj)
{
    char sv[SHOW_BUF];
    const char *why;
    uint64_t bps;

    if (!want_scalar(c, f, v, "a rate such as 10KiB/s")) {
        return -1;
    }
    if (config_parse_rate(sval(v), slen(v), &bps, &why) != 0) {
        err_at(c, &v->start_mark, "bad rate '%s' in '%s': %s", show_node(sv, v),
               f->name, why);
        return -1;
    }
    if (bps < 1 || bps > CONFIG_RATE_MAX) {
        err_at(c, &v->start_mark, "'%s' must be from 1B/s to 1GiB/s, got '%s'",
               f->name, show_node(sv, v));
        return -1;
    }
    *(uint64_t *)((char *)obj + f->off) = bps;
    return 0;
}

// digit+ [unit]
static int set_bytes(struct ctx *c, const struct field *f, const yaml_node_t *v,
                     void *obj)
{
    char sv[SHOW_BUF];
    const char *why;
    uint64_t n;

    if (!want_scalar(c, f, v, "a byte count such as 512KiB")) {
        return -1;
    }
    if (config_parse_size(sval(v), slen(v), &n, &why) != 0) {
        err_at(c, &v->start_mark, "bad byte count '%s' in '%s': %s",
               show_node(sv, v), f->name, why);
        return -1;
    }
    *(uint64_t *)((char *)obj + f->off) = n;
    return 0;
}

/* Parses one end of a 'size' range: 1..CONFIG_SLICE_MAX bytes. */
static int slice_end(struct ctx *c, const struct field *f, const yaml_node_t *v,
                     const char *s, size_t len, uint32_t *out)
{
    char sv[SHOW_BUF];
    const char *why;
    uint64_t n;

    if (config_parse_size(s, len, &n, &why) != 0) {
        err_at(c, &v->start_mark, "bad size '%s' in '%s': %s", show_node(sv, v),
               f->name, why);
        return -1;
    }
    if (n < 1 || n > CONFIG_SLICE_MAX) {
        err_at(c, &v->start_mark,
               "'%s' must be from 1 to %d bytes (1MiB), got '%s'", f->name,
               CONFIG_SLICE_MAX, show_node(sv, v));
        return -1;
    }
    *out = (uint32_t)n;
    return 0;
}

// bytes ['-' bytes]      bytes: digit+ [unit]
static int set_slice(struct ctx *c, const struct field *f, const yaml_node_t *v,
                     void *obj)
{
    char sv[SHOW_BUF];
    struct rule *r = obj;
    uint32_t lo;
    uint32_t hi;

    if (!want_scalar(c, f, v, "a size such as 16 or a range such as 1-16")) {
        return -1;
    }
    const char *s = sval(v);
    size_t len = slen(v);
    /* A '-' first is a sign, which the byte parser refuses by name. */
    const char *dash = len > 1 ? memchr(s + 1, '-', len - 1) : NULL;
    if (dash == NULL) {
        if (slice_end(c, f, v, s, len, &lo) != 0) {
            return -1;
        }
        hi = lo;
    } else if (slice_end(c, f, v, s, (size_t)(dash - s), &lo) != 0 ||
               slice_end(c, f, v, dash + 1, len - (size_t)(dash - s) - 1,
                         &hi) != 0) {
        return -1;
    }
    if (lo > hi) {
        err_at(c, &v->start_mark,
               "'%s' range '%s' is reversed: the first size must not exceed "
               "the second",
               f->name, show_node(sv, v));
        return -1;
    }
    r->slice_min = lo;
    r->slice_max = hi;
    return 0;
}

// bytes | number '%'
static int set_keep(struct ctx *c, const struct field *f, const yaml_node_t *v,
                    void *obj)
{
    char sv[SHOW_BUF];
    const char *why;
    struct rule *r = obj;

    if (!want_scalar(c, f, v, "a byte count such as 100 or a percentage")) {
        return -1;
    }
    const char *s = sval(v);
    size_t len = slen(v);
    if (len > 0 && s[len - 1] == '%') {
        if (config_parse_probability(s, len, &r->keep_fraction, &why) != 0) {
            err_at(c, &v->start_mark,
                   "'%s' must be a percentage from 0%% to 100%%, got '%s'",
                   f->name, show_node(sv, v));
            return -1;
        }
        r->keep_is_fraction = true;
        return 0;
    }
    if (config_parse_size(s, len, &r->keep_bytes, &why) != 0) {
        err_at(c, &v->start_mark,
               "bad byte count '%s' in '%s': %s; for a share write a "
               "percentage such as 50%%",
               show_node(sv, v), f->name, why);
        return -1;
    }
    r->keep_is_fraction = false;
    return 0;
}

// number in (0, 1] | number '%' in (0%, 100%]
static int set_share(struct ctx *c, const struct field *f, const yaml_node_t *v,
                     void *obj)
{
    char sv[SHOW_BUF];
    const char *why;
    double p;

    if (!want_scalar(c, f, v, "a share such as 25% or 0.25")) {
        return -1;
    }
    if (config_parse_probability(sval(v), slen(v), &p, &why) != 0 ||
        !(p > 0.0)) {
        err_at(c, &v->start_mark,
               "'%s' must be a share above 0 and at most 1 or 100%%, got '%s'",
               f->name, show_node(sv, v));
        return -1;
    }
    *(double *)((char *)obj + f->off) = p;
    return 0;
}

/* A value that is one string or a non-empty list of them: *n items.
 * Returns 0, or -1 after reporting what is wrong. */
static int items_count(struct ctx *c, const struct field *f,
                       const yaml_node_t *v, size_t *n)
{
    *n = 1;
    if (is_null(v)) {
        err_at(c, &v->start_mark, "missing value for '%s'", f->name);
        return -1;
    }
    if (v->type == YAML_SEQUENCE_NODE) {
        *n = seq_len(v);
        if (*n == 0) {
            err_at(c, &v->start_mark, "'%s' must not be an empty list",
                   f->name);
            return -1;
        }
    } else if (v->type != YAML_SCALAR_NODE) {
        err_at(c, &v->start_mark, "expected a string or a list of strings");
        return -1;
    }
    return 0;
}

/* Item i of such a value (the value itself when it is one string). */
static const yaml_node_t *items_at(struct ctx *c, const yaml_node_t *v,
                                   size_t i)
{
    return v->type == YAML_SCALAR_NODE
               ? v
               : node_at(c, v->data.sequence.items.start[i]);
}

/*
 * // ipv4 ['/' digit+] | ipv6 ['/' digit+]
 * One 'client' network into *out, IPv4 as ::ffff:a.b.c.d; bits past the
 * prefix are cleared, so the network is stored as the rule means it.
 */
static int parse_client(struct ctx *c, const struct field *f,
                        const yaml_node_t *n, struct rule_cidr *out)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};
    char sv[SHOW_BUF];
    char buf[CLIENT_MAX + 1];
    const char *why = "not an IPv4 or IPv6 address";
    unsigned max = 0;
    unsigned bits = 0;

    if (n->type != YAML_SCALAR_NODE) {
        err_at(c, &n->start_mark, "expected a string");
        return -1;
    }
    if (is_null(n)) {
        err_at(c, &n->start_mark, "missing value in '%s'", f->name);
        return -1;
    }
    size_t len = slen(n);
    if (len > CLIENT_MAX || memchr(sval(n), '\0', len) != NULL) {
        goto fail;
    }
    memcpy(buf, sval(n), len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr + 12) == 1) {
        memcpy(out->addr, mapped, sizeof(mapped));
        max = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        max = 128;
    } else {
        goto fail;
    }
    bits = max;
    if (slash != NULL) {
        const char *p = slash + 1;
        bits = 0;
        why = max == 32 ? "the prefix must be from 0 to 32"
                        : "the prefix must be from 0 to 128";
        if (*p == '\0' || strlen(p) > 3) {
            goto fail;
        }
        for (; *p != '\0'; p++) {
            if (*p < '0' || *p > '9') {
                goto fail;
            }
            bits = 10 * bits + (unsigned)(*p - '0');
        }
        if (bits > max) {
            goto fail;
        }
    }
    out->bits = (uint8_t)(bits + (128 - max));
    for (unsigned i = out->bits; i < 128; i++) {
        out->addr[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    }
    return 0;
fail:
    err_at(c, &n->start_mark, "bad address '%s' in '%s': %s", show_node(sv, n),
           f->name, why);
    return -1;
}

// network | [network, ...]
static int set_clients(struct ctx *c, const struct field *f,
                       const yaml_node_t *v, void *obj)
{
    struct rule *r = obj;
    size_t n;

    if (items_count(c, f, v, &n) != 0) {
        return -1;
    }
    struct rule_cidr *nets = calloc(n, sizeof(*nets));
    if (nets == NULL) {
        c->oom = true;
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = items_at(c, v, i);
        if (parse_client(c, f, item, &nets[i]) != 0) {
            rc = -1;
        }
    }
    if (rc != 0) {
        free(nets);
        return -1;
    }
    r->clients = nets;
    r->nclients = n;
    return 0;
}

enum { SF_START, SF_DURATION, SF_EVERY, SF__COUNT };

/* Schedules are for test runs: a month is the longest that makes sense. */
static const struct field schedule_fields[SF__COUNT] = {
    [SF_START] = {"start", set_duration,
                  offsetof(struct rule_schedule, start_us),
                  CONFIG_SCHEDULE_MAX_S},
    [SF_DURATION] = {"duration", set_duration,
                     offsetof(struct rule_schedule, duration_us),
                     CONFIG_SCHEDULE_MAX_S},
    [SF_EVERY] = {"every", set_duration,
                  offsetof(struct rule_schedule, every_us),
                  CONFIG_SCHEDULE_MAX_S},
};

static bool collect(struct ctx *c, const yaml_node_t *map,
                    const struct field *fields, size_t n, const char *where,
                    const yaml_node_t **keys, const yaml_node_t **vals);
static void set_fields(struct ctx *c, const struct field *fields, size_t n,
                       const yaml_node_t *const *vals, void *obj, bool *ok);

// {start: duration, duration: duration, every: duration}
static int set_schedule(struct ctx *c, const struct field *f,
                        const yaml_node_t *v, void *obj)
{
    const yaml_node_t *keys[SF__COUNT] = {0};
    const yaml_node_t *vals[SF__COUNT] = {0};
    bool ok[SF__COUNT] = {0};
    char sv[SHOW_BUF];
    char sv2[SHOW_BUF];
    struct rule *r = obj;
    struct rule_schedule sc = {0, 0, 0};
    size_t before = c->nerrs;

    if (is_null(v)) {
        err_at(c, &v->start_mark, "missing value for '%s'", f->name);
        return -1;
    }
    if (!collect(c, v, schedule_fields, SF__COUNT, "in schedule", keys, vals)) {
        return -1;
    }
    set_fields(c, schedule_fields, SF__COUNT, vals, &sc, ok);
    /* Windows repeat only when they have a length and fit the period. */
    if (ok[SF_EVERY] && sc.every_us > 0 && sc.duration_us == 0 &&
        (keys[SF_DURATION] == NULL || ok[SF_DURATION])) {
        err_at(c, &vals[SF_EVERY]->start_mark,
               "'every' needs a 'duration' above 0 in '%s'", f->name);
    }
    if (ok[SF_EVERY] && ok[SF_DURATION] && sc.every_us > 0 &&
        sc.duration_us > sc.every_us) {
        err_at(c, &vals[SF_DURATION]->start_mark,
               "'duration' (%s) must not exceed 'every' (%s)",
               show_node(sv, vals[SF_DURATION]),
               show_node(sv2, vals[SF_EVERY]));
    }
    if (c->nerrs != before || c->full || c->oom) {
        return -1;
    }
    r->schedule = sc;
    r->scheduled = true;
    return 0;
}

static unsigned char ascii_lower(unsigned char b)
{
    return (b >= 'A' && b <= 'Z') ? (unsigned char)(b + ('a' - 'A')) : b;
}

/* The command named s[0..len) (any ASCII case), or PROTO_OP_UNKNOWN. */
static enum proto_op op_by_name(const char *s, size_t len)
{
    for (int op = PROTO_OP_UNKNOWN + 1; op < PROTO_OP__COUNT; op++) {
        const char *name = proto_op_name((enum proto_op)op);
        size_t i = 0;
        if (strlen(name) != len) {
            continue;
        }
        while (i < len &&
               ascii_lower((unsigned char)s[i]) == (unsigned char)name[i]) {
            i++;
        }
        if (i == len) {
            return (enum proto_op)op;
        }
    }
    return PROTO_OP_UNKNOWN;
}

/* True for the word "connect" in any ASCII case: `command: connect`
 * makes a rule about new connections, not commands. */
static bool is_connect(const char *s, size_t len)
{
    static const char word[] = "connect";
    size_t i = 0;

    if (len != sizeof(word) - 1) {
        return false;
    }
    while (i < len &&
           ascii_lower((unsigned char)s[i]) == (unsigned char)word[i]) {
        i++;
    }
    return i == len;
}

/* A glob without wildcard or escape bytes matches only itself. */
static bool glob_is_literal(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '*' || s[i] == '?' || s[i] == '[' || s[i] == '\\') {
            return false;
        }
    }
    return true;
}

static void globs_free(struct rule_glob *g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(g[i].pat);
    }
    free(g);
}

/* Checks one glob of a 'command' or 'key' list. */
static bool glob_ok(struct ctx *c, const struct field *f, const yaml_node_t *n,
                    bool is_cmd)
{
    char sv[SHOW_BUF];
    size_t off;
    const char *why;

    if (n->type != YAML_SCALAR_NODE) {
        err_at(c, &n->start_mark, "expected a string");
        return false;
    }
    if (is_null(n)) {
        err_at(c, &n->start_mark, "missing value in '%s'", f->name);
        return false;
    }
    if (slen(n) > CONFIG_GLOB_MAX) {
        err_at(c, &n->start_mark, "glob in '%s' is longer than %d bytes",
               f->name, CONFIG_GLOB_MAX);
        return false;
    }
    if (glob_validate(sval(n), slen(n), &off, &why) != GLOB_OK) {
        err_at(c, &n->start_mark, "bad glob in '%s': %s at offset %zu", f->name,
               why, off);
        return false;
    }
    if (is_cmd && glob_is_literal(sval(n), slen(n)) &&
        op_by_name(sval(n), slen(n)) == PROTO_OP_UNKNOWN &&
        !is_connect(sval(n), slen(n))) {
        err_at(c, &n->start_mark, "unknown command '%s' in '%s'",
               show_node(sv, n), f->name);
        return false;
    }
    return true;
}

/*
 * // glob | [glob, ...]
 * Parses a 'command' or 'key' value into a new array. Returns 0, or -1
 * after reporting every bad glob.
 */
static int parse_globs(struct ctx *c, const struct field *f,
                       const yaml_node_t *v, bool is_cmd,
                       struct rule_glob **out, size_t *nout)
{
    size_t n;

    if (items_count(c, f, v, &n) != 0) {
        return -1;
    }
    struct rule_glob *g = calloc(n, sizeof(*g));
    if (g == NULL) {
        c->oom = true;
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = items_at(c, v, i);
        if (!glob_ok(c, f, item, is_cmd)) {
            rc = -1;
            continue;
        }
        g[i].pat = dup_bytes(c, sval(item), slen(item));
        g[i].len = slen(item);
        if (g[i].pat == NULL) {
            rc = -1;
        }
    }
    if (rc != 0) {
        globs_free(g, n);
        return -1;
    }
    *out = g;
    *nout = n;
    return 0;
}

static int set_cmds(struct ctx *c, const struct field *f, const yaml_node_t *v,
                    void *obj)
{
    struct rule *r = obj;
    return parse_globs(c, f, v, true, &r->cmds, &r->ncmds);
}

static int set_keys(struct ctx *c, const struct field *f, const yaml_node_t *v,
                    void *obj)
{
    struct rule *r = obj;
    return parse_globs(c, f, v, false, &r->keys, &r->nkeys);
}

enum {
    RF_NAME,
    RF_COMMAND,
    RF_KEY,
    RF_ACTION,
    RF_MESSAGE,
    RF_DELAY,
    RF_JITTER,
    RF_PROBABILITY,
    RF_AFTER,
    RF_LIMIT,
    RF_FORWARD,
    RF_ENABLED,
    RF_CLOSE,
    RF_RATE,
    RF_SIZE,
    RF_INTERVAL,
    RF_KEEP,
    RF_FLIPS,
    RF_CLIENT,
    RF_CONNECTIONS,
    RF_MIN_SIZE,
    RF_MAX_SIZE,
    RF_SCHEDULE,
    RF__COUNT
};

static const struct field rule_fields[RF__COUNT] = {
    [RF_NAME] = {"name", set_string, offsetof(struct rule, name),
                 CONFIG_NAME_MAX},
    [RF_COMMAND] = {"command", set_cmds, 0, 0},
    [RF_KEY] = {"key", set_keys, 0, 0},
    [RF_ACTION] = {"action", set_action, offsetof(struct rule, action), 0},
    [RF_MESSAGE] = {"message", set_message, 0, 0},
    [RF_DELAY] = {"delay", set_duration, offsetof(struct rule, delay_us), 0},
    [RF_JITTER] = {"jitter", set_duration, offsetof(struct rule, jitter_us), 0},
    [RF_PROBABILITY] = {"probability", set_probability,
                        offsetof(struct rule, probability), 0},
    [RF_AFTER] = {"after", set_u64, offsetof(struct rule, after), 0},
    [RF_LIMIT] = {"limit", set_u64, offsetof(struct rule, limit), 0},
    [RF_FORWARD] = {"forward", set_bool, offsetof(struct rule, forward), 0},
    [RF_ENABLED] = {"enabled", set_bool, offsetof(struct rule, enabled), 0},
    [RF_CLOSE] = {"close", set_close, 0, 0},
    [RF_RATE] = {"rate", set_rate, offsetof(struct rule, rate_bps), 0},
    [RF_SIZE] = {"size", set_slice, 0, 0},
    [RF_INTERVAL] = {"interval", set_duration,
                     offsetof(struct rule, interval_us), 0},
    [RF_KEEP] = {"keep", set_keep, 0, 0},
    [RF_FLIPS] = {"flips", set_count32, offsetof(struct rule, flips),
                  CONFIG_FLIPS_MAX},
    [RF_CLIENT] = {"client", set_clients, 0, 0},
    [RF_CONNECTIONS] = {"connections", set_share,
                        offsetof(struct rule, connections), 0},
    [RF_MIN_SIZE] = {"min_size", set_bytes, offsetof(struct rule, min_size), 0},
    [RF_MAX_SIZE] = {"max_size", set_bytes, offsetof(struct rule, max_size), 0},
    [RF_SCHEDULE] = {"schedule", set_schedule, 0, 0},
};

#define ACT(a) (1u << (a))

/* The keys that belong to some actions only; every other rule key applies
 * to every action. */
static const struct {
    int field;
    unsigned actions; /* ACT() of each */
} action_keys[] = {
    {RF_MESSAGE, ACT(RULE_ERROR)},
    {RF_DELAY, ACT(RULE_DELAY)},
    {RF_JITTER, ACT(RULE_DELAY)},
    {RF_CLOSE, ACT(RULE_DROP) | ACT(RULE_TRUNCATE)},
    {RF_RATE, ACT(RULE_THROTTLE)},
    {RF_SIZE, ACT(RULE_SLICE)},
    {RF_INTERVAL, ACT(RULE_SLICE)},
    {RF_KEEP, ACT(RULE_TRUNCATE)},
    {RF_FLIPS, ACT(RULE_CORRUPT)},
};

/* The key each of these actions cannot do without. */
static const struct {
    enum rule_action action;
    int field;
} action_needs[] = {
    {RULE_ERROR, RF_MESSAGE}, {RULE_DELAY, RF_DELAY},
    {RULE_THROTTLE, RF_RATE}, {RULE_SLICE, RF_SIZE},
    {RULE_TRUNCATE, RF_KEEP},
};

/* Actions that act on memcached's reply or the stored data: the command
 * always goes through, so 'forward' has nothing to say. */
static const unsigned forwarding_actions =
    ACT(RULE_THROTTLE) | ACT(RULE_SLICE) | ACT(RULE_TRUNCATE) |
    ACT(RULE_CORRUPT) | ACT(RULE_EVICT);

/* What a connection can be met with before it sends a command. */
static const unsigned connect_actions =
    ACT(RULE_DROP) | ACT(RULE_DELAY) | ACT(RULE_HANG) | ACT(RULE_ERROR);

/* Rule keys that make no sense for a connection, which has no key, no
 * data block and no reply to forward. */
static const int connect_refuses[] = {RF_KEY, RF_FORWARD, RF_MIN_SIZE,
                                      RF_MAX_SIZE};

enum { PF_NAME, PF_LISTEN, PF_UPSTREAM, PF_RULES, PF__COUNT };

static const struct field proxy_fields[PF__COUNT] = {
    [PF_NAME] = {"name", set_string, offsetof(struct config_proxy, name),
                 CONFIG_NAME_MAX},
    [PF_LISTEN] = {"listen", set_string, offsetof(struct config_proxy, listen),
                   0},
    [PF_UPSTREAM] = {"upstream", set_string,
                     offsetof(struct config_proxy, upstream), 0},
    [PF_RULES] = {"rules", NULL, 0, 0},
};

enum {
    TF_LISTEN,
    TF_UPSTREAM,
    TF_RULES,
    TF_PROXIES,
    TF_SEED,
    TF_ADMIN,
    TF_MAX_CONNECTIONS,
    TF_WATCH,
    TF__COUNT
};

/* listen, upstream and rules belong to the single proxy: handled apart. */
static const struct field top_fields[TF__COUNT] = {
    [TF_LISTEN] = {"listen", NULL, 0, 0},
    [TF_UPSTREAM] = {"upstream", NULL, 0, 0},
    [TF_RULES] = {"rules", NULL, 0, 0},
    [TF_PROXIES] = {"proxies", NULL, 0, 0},
    [TF_SEED] = {"seed", set_u64, offsetof(struct config, seed), 0},
    [TF_ADMIN] = {"admin", set_string, offsetof(struct config, admin), 0},
    [TF_MAX_CONNECTIONS] = {"max_connections", set_count,
                            offsetof(struct config, max_connections),
                            CONFIG_MAX_CONNECTIONS_MAX},
    [TF_WATCH] = {"watch", set_bool, offsetof(struct config, watch), 0},
};

/*
 * Pass 1, shape: map must be a mapping whose keys are among fields[0..n),
 * each at most once; where ("in rule") names it in messages. Fills keys[i]
 * and vals[i] for the fields present. Returns false when map is not a
 * mapping.
 */
static bool collect(struct ctx *c, const yaml_node_t *map,
                    const struct field *fields, size_t n, const char *where,
                    const yaml_node_t **keys, const yaml_node_t **vals)
{
    char known[512] = "";
    char sv[SHOW_BUF];

    if (map->type != YAML_MAPPING_NODE) {
        err_at(c, &map->start_mark, "expected a mapping");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(known);
        snprintf(known + used, sizeof(known) - used, "%s%s", i ? ", " : "",
                 fields[i].name);
    }
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start;
         p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = node_at(c, p->key);
        const yaml_node_t *v = node_at(c, p->value);
        size_t i = 0;
        if (k == NULL || v == NULL) {
            continue;
        }
        if (k->type != YAML_SCALAR_NODE) {
            err_at(c, &k->start_mark, "mapping keys must be strings");
            continue;
        }
        while (i < n && !config_seq_eq(sval(k), slen(k), fields[i].name)) {
            i++;
        }
        if (i == n) {
            err_at(c, &k->start_mark, "unknown key '%s' %s (known: %s)",
                   show_node(sv, k), where, known);
        } else if (keys[i] != NULL) {
            err_at(c, &k->start_mark, "duplicate key '%s' (first at line %zu)",
                   fields[i].name, keys[i]->start_mark.line + 1);
        } else {
            keys[i] = k;
            vals[i] = v;
        }
    }
    return true;
}

/* Pass 2, values: runs the setter of every field present. */
static void set_fields(struct ctx *c, const struct field *fields, size_t n,
                       const yaml_node_t *const *vals, void *obj, bool *ok)
{
    for (size_t i = 0; i < n; i++) {
        if (vals[i] != NULL && fields[i].set != NULL) {
            ok[i] = fields[i].set(c, &fields[i], vals[i], obj) == 0;
        }
    }
}

static int dupref_cmp(const void *a, const void *b)
{
    const struct dupref *x = a;
    const struct dupref *y = b;

    if (x->len != y->len) {
        return x->len < y->len ? -1 : 1;
    }
    int d = memcmp(x->s, y->s, x->len);
    if (d != 0) {
        return d;
    }
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Reports every refs[i] whose string an earlier entry already has. */
static void report_dups(struct ctx *c, struct dupref *refs, size_t n,
                        const char *what)
{
    char sv[SHOW_BUF];
    size_t first = 0;

    qsort(refs, n, sizeof(*refs), dupref_cmp);
    for (size_t i = 1; i < n; i++) {
        if (refs[i].len != refs[first].len ||
            memcmp(refs[i].s, refs[first].s, refs[i].len) != 0) {
            first = i;
            continue;
        }
        err_at(c, &refs[i].mark, "duplicate %s '%s' (first at line %zu)", what,
               show(sv, refs[i].s, refs[i].len), refs[first].mark.line + 1);
    }
}

/* Action miss answers retrievals only: a literal command that is not one
 * makes the rule dead for it. */
static void check_miss_cmds(struct ctx *c, const yaml_node_t *v)
{
    char sv[SHOW_BUF];
    char names[128] = "";
    size_t n = v->type == YAML_SEQUENCE_NODE ? seq_len(v) : 1;

    for (int op = PROTO_OP_UNKNOWN + 1; op < PROTO_OP__COUNT; op++) {
        if (rule_op_is_retrieval((enum proto_op)op)) {
            size_t used = strlen(names);
            snprintf(names + used, sizeof(names) - used, "%s%s",
                     used ? ", " : "", proto_op_name((enum proto_op)op));
        }
    }
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *it =
            v->type == YAML_SEQUENCE_NODE
                ? node_at(c, v->data.sequence.items.start[i])
                : v;
        if (!glob_is_literal(sval(it), slen(it)) ||
            rule_op_is_retrieval(op_by_name(sval(it), slen(it)))) {
            continue;
        }
        err_at(c, &it->start_mark,
               "action miss only applies to retrievals (%s), not '%s'", names,
               show_node(sv, it));
    }
}

/* The one-glob list "*", a rule's default for 'command' and 'key'. */
static int glob_star(struct ctx *c, struct rule_glob **out, size_t *n)
{
    struct rule_glob *g = calloc(1, sizeof(*g));
    if (g == NULL || (g->pat = dup_bytes(c, "*", 1)) == NULL) {
        free(g);
        c->oom = true;
        return -1;
    }
    g->len = 1;
    *out = g;
    *n = 1;
    return 0;
}

/* Writes the names of the actions in mask to names, ", "-separated. */
static void action_list(char *names, size_t size, unsigned mask)
{
    names[0] = '\0';
    for (int a = 0; a < RULE__COUNT; a++) {
        if (mask & ACT(a)) {
            size_t used = strlen(names);
            snprintf(names + used, size - used, "%s%s", used ? ", " : "",
                     rule_action_name((enum rule_action)a));
        }
    }
}

/* The value a connect rule has anyway (`key: "*"` or `["*"]`, `forward:
 * false`), as GET /rules reports it: accepted, so that a rule read back
 * can be sent again as it is. */
static bool connect_default(struct ctx *c, const struct rule *r, int f,
                            const yaml_node_t *v, bool ok)
{
    if (f == RF_FORWARD) {
        return ok && !r->forward;
    }
    if (f != RF_KEY) {
        return false;
    }
    if (v->type == YAML_SEQUENCE_NODE) {
        if (seq_len(v) != 1) {
            return false;
        }
        v = node_at(c, v->data.sequence.items.start[0]);
    }
    return v != NULL && v->type == YAML_SCALAR_NODE &&
           config_seq_eq(sval(v), slen(v), "*");
}

/*
 * Pass 3, `command: connect`: the word alone makes r a connect rule
 * (on_connect); beside other commands it is an error. Reports the keys a
 * connection has no use for. Returns whether r is a connect rule.
 */
static bool check_connect(struct ctx *c, struct rule *r,
                          const yaml_node_t *const *keys,
                          const yaml_node_t *const *vals, const bool *ok)
{
    const yaml_node_t *v = vals[RF_COMMAND];
    bool found = false;

    if (!ok[RF_COMMAND]) {
        return false;
    }
    size_t n = v->type == YAML_SEQUENCE_NODE ? seq_len(v) : 1;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *it =
            v->type == YAML_SEQUENCE_NODE
                ? node_at(c, v->data.sequence.items.start[i])
                : v;
        if (!is_connect(sval(it), slen(it))) {
            continue;
        }
        found = true;
        if (n > 1) {
            err_at(c, &it->start_mark,
                   "'connect' cannot be combined with other commands in "
                   "'command'");
        }
    }
    if (!found || n > 1) {
        return false;
    }
    r->on_connect = true;
    for (size_t i = 0; i < sizeof(connect_refuses) / sizeof(*connect_refuses);
         i++) {
        int f = connect_refuses[i];
        if (keys[f] != NULL && !connect_default(c, r, f, vals[f], ok[f])) {
            err_at(c, &keys[f]->start_mark,
                   "'%s' does not apply to command connect",
                   rule_fields[f].name);
        }
    }
    return true;
}

/* Pass 3 for a rule: what the keys mean together. */
static void check_rule(struct ctx *c, const yaml_node_t *map, struct rule *r,
                       const char *name, const yaml_node_t *const *keys,
                       const yaml_node_t *const *vals, const bool *ok)
{
    char nm[SHOW_BUF];
    char sv[SHOW_BUF];
    char sv2[SHOW_BUF];
    char names[128];
    const yaml_mark_t *at = &map->start_mark;

    show(nm, name, strlen(name));
    bool conn = check_connect(c, r, keys, vals, ok);
    if (ok[RF_MIN_SIZE] && ok[RF_MAX_SIZE] && r->min_size > r->max_size) {
        err_at(c, &vals[RF_MIN_SIZE]->start_mark,
               "'min_size' (%s) must not exceed 'max_size' (%s)",
               show_node(sv, vals[RF_MIN_SIZE]),
               show_node(sv2, vals[RF_MAX_SIZE]));
    }
    if (keys[RF_ACTION] == NULL) {
        err_at(c, at, "rule '%s': missing 'action'", nm);
        return;
    }
    if (!ok[RF_ACTION]) {
        return;
    }
    enum rule_action a = r->action;
    if (conn && !(connect_actions & ACT(a))) {
        action_list(names, sizeof(names), connect_actions);
        err_at(c, &vals[RF_ACTION]->start_mark,
               "action %s does not apply to command connect (use %s)",
               rule_action_name(a), names);
        return;
    }
    for (size_t i = 0; i < sizeof(action_needs) / sizeof(*action_needs); i++) {
        int f = action_needs[i].field;
        /* A connection refused with an error has memcached's words. */
        if (a == action_needs[i].action && keys[f] == NULL &&
            !(conn && a == RULE_ERROR)) {
            err_at(c, at, "rule '%s': action %s needs '%s'", nm,
                   rule_action_name(a), rule_fields[f].name);
        }
    }
    for (size_t i = 0; i < sizeof(action_keys) / sizeof(*action_keys); i++) {
        int f = action_keys[i].field;
        if (keys[f] != NULL && !(action_keys[i].actions & ACT(a))) {
            action_list(names, sizeof(names), action_keys[i].actions);
            err_at(c, &keys[f]->start_mark,
                   "'%s' does not apply to action %s (only to %s)",
                   rule_fields[f].name, rule_action_name(a), names);
        }
    }
    if (a == RULE_DELAY && ok[RF_DELAY] && ok[RF_JITTER] &&
        r->jitter_us > r->delay_us) {
        err_at(c, &vals[RF_JITTER]->start_mark,
               "'jitter' (%s) must not exceed 'delay' (%s)",
               show_node(sv, vals[RF_JITTER]), show_node(sv2, vals[RF_DELAY]));
    }
    /* forward: false, what these rules have anyway (and GET /rules
     * reports), is accepted on them. */
    bool forward_on = keys[RF_FORWARD] != NULL && ok[RF_FORWARD] && r->forward;
    if (a == RULE_MISS && forward_on) {
        err_at(c, &keys[RF_FORWARD]->start_mark,
               "'forward' cannot be used with action miss");
    }
    if ((forwarding_actions & ACT(a)) && forward_on) {
        err_at(c, &keys[RF_FORWARD]->start_mark,
               "'forward' does not apply to action %s: it always reaches "
               "memcached",
               rule_action_name(a));
    }
    if (a == RULE_MISS && ok[RF_COMMAND]) {
        check_miss_cmds(c, vals[RF_COMMAND]);
    }
    if (conn && a == RULE_ERROR && keys[RF_MESSAGE] == NULL) {
        r->message = dup_bytes(c, CONNECT_MESSAGE, strlen(CONNECT_MESSAGE));
        r->message_len = r->message != NULL ? strlen(CONNECT_MESSAGE) : 0;
    }
}

/*
 * Parses rule number i (0-based) of a list from map into r, which starts
 * with the defaults of rule_set_defaults. Sets *ref to the rule's name and
 * where it was written, or ref->s to NULL when the rule has no valid name.
 */
static void parse_rule(struct ctx *c, const yaml_node_t *map, size_t i,
                       struct rule *r, struct dupref *ref)
{
    const yaml_node_t *keys[RF__COUNT] = {0};
    const yaml_node_t *vals[RF__COUNT] = {0};
    bool ok[RF__COUNT] = {0};
    char dflt[32];

    snprintf(dflt, sizeof(dflt), "rule-%zu", c->rule_base + i + 1);
    rule_set_defaults(r);
    r->line = (uint32_t)(map->start_mark.line + 1);
    ref->s = NULL;
    ref->idx = i;
    ref->mark = map->start_mark;
    if (!collect(c, map, rule_fields, RF__COUNT, "in rule", keys, vals)) {
        return;
    }
    set_fields(c, rule_fields, RF__COUNT, vals, r, ok);
    r->sized = ok[RF_MIN_SIZE] || ok[RF_MAX_SIZE];
    if (keys[RF_NAME] == NULL) {
        r->name = dup_bytes(c, dflt, strlen(dflt));
    } else if (ok[RF_NAME]) {
        ref->mark = vals[RF_NAME]->start_mark;
    }
    if (r->name != NULL) {
        ref->s = r->name;
        ref->len = strlen(r->name);
    }
    check_rule(c, map, r, r->name != NULL ? r->name : dflt, keys, vals, ok);
    if (keys[RF_COMMAND] == NULL) {
        glob_star(c, &r->cmds, &r->ncmds);
    }
    if (keys[RF_KEY] == NULL) {
        glob_star(c, &r->keys, &r->nkeys);
    }
}

/*
 * // rules: [rule, ...]
 * Parses a rules list (v may be NULL: no rules) into p.
 */
static void parse_rules(struct ctx *c, const yaml_node_t *v,
                        struct config_proxy *p)
{
    if (v == NULL || is_null(v)) {
        return;
    }
    if (v->type != YAML_SEQUENCE_NODE) {
        err_at(c, &v->start_mark, "expected a list");
        return;
    }
    size_t n = seq_len(v);
    if (n == 0) {
        return;
    }
    if (n > RULES_MAX) {
        err_at(c, &v->start_mark, "too many rules (at most %d)", RULES_MAX);
        return;
    }
    struct dupref *refs = calloc(n, sizeof(*refs));
    p->rules = calloc(n, sizeof(*p->rules));
    if (refs == NULL || p->rules == NULL) {
        free(refs);
        c->oom = true;
        return;
    }
    p->nrules = n;
    size_t nrefs = 0;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = node_at(c, v->data.sequence.items.start[i]);
        parse_rule(c, item, i, &p->rules[i], &refs[nrefs]);
        if (refs[nrefs].s != NULL) {
            nrefs++;
        }
    }
    if (!c->adding) {
        report_dups(c, refs, nrefs, "rule name");
    }
    free(refs);
}

/* Parses proxy number i (0-based) of the proxies list into p. */
static void parse_proxy(struct ctx *c, const yaml_node_t *map, size_t i,
                        struct config_proxy *p, struct dupref *name,
                        struct dupref *listen)
{
    const yaml_node_t *keys[PF__COUNT] = {0};
    const yaml_node_t *vals[PF__COUNT] = {0};
    bool ok[PF__COUNT] = {0};
    char dflt[32];
    char sv[SHOW_BUF];

    snprintf(dflt, sizeof(dflt), "proxy-%zu", i + 1);
    p->line = (uint32_t)(map->start_mark.line + 1);
    name->s = NULL;
    name->idx = i;
    name->mark = map->start_mark;
    listen->s = NULL;
    listen->idx = i;
    if (!collect(c, map, proxy_fields, PF__COUNT, "in proxy", keys, vals)) {
        return;
    }
    set_fields(c, proxy_fields, PF__COUNT, vals, p, ok);
    if (keys[PF_NAME] == NULL) {
        p->name = dup_bytes(c, dflt, strlen(dflt));
    } else if (ok[PF_NAME]) {
        name->mark = vals[PF_NAME]->start_mark;
    }
    if (p->name != NULL) {
        name->s = p->name;
        name->len = strlen(p->name);
    }
    if (p->listen != NULL) {
        listen->s = p->listen;
        listen->len = strlen(p->listen);
        listen->mark = vals[PF_LISTEN]->start_mark;
    }
    show(sv, p->name != NULL ? p->name : dflt,
         strlen(p->name != NULL ? p->name : dflt));
    for (int f = PF_LISTEN; f <= PF_UPSTREAM; f++) {
        if (keys[f] == NULL) {
            err_at(c, &map->start_mark, "proxy '%s': missing '%s'", sv,
                   proxy_fields[f].name);
        }
    }
    parse_rules(c, vals[PF_RULES], p);
}

/*
 * // proxies: [{name, listen, upstream, rules}, ...]
 */
static void parse_proxies(struct ctx *c, const yaml_node_t *v,
                          struct config *cfg)
{
    if (is_null(v)) {
        err_at(c, &v->start_mark, "missing value for 'proxies'");
        return;
    }
    if (v->type != YAML_SEQUENCE_NODE) {
        err_at(c, &v->start_mark, "expected a list");
        return;
    }
    size_t n = seq_len(v);
    if (n == 0) {
        err_at(c, &v->start_mark, "'proxies' must not be an empty list");
        return;
    }
    struct dupref *names = calloc(n, sizeof(*names));
    struct dupref *listens = calloc(n, sizeof(*listens));
    cfg->proxies = calloc(n, sizeof(*cfg->proxies));
    if (names == NULL || listens == NULL || cfg->proxies == NULL) {
        c->oom = true;
        goto cleanup;
    }
    cfg->nproxies = n;
    size_t nn = 0;
    size_t nl = 0;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = node_at(c, v->data.sequence.items.start[i]);
        parse_proxy(c, item, i, &cfg->proxies[i], &names[nn], &listens[nl]);
        nn += names[nn].s != NULL;
        nl += listens[nl].s != NULL;
    }
    report_dups(c, names, nn, "proxy name");
    report_dups(c, listens, nl, "listen address");
cleanup:
    free(names);
    free(listens);
}

/* The one proxy, named "default", of a single-proxy document; NULL when
 * out of memory. */
static struct config_proxy *one_default_proxy(struct ctx *c, struct config *cfg)
{
    cfg->proxies = calloc(1, sizeof(*cfg->proxies));
    if (cfg->proxies == NULL) {
        c->oom = true;
        return NULL;
    }
    cfg->nproxies = 1;
    struct config_proxy *p = &cfg->proxies[0];
    p->name = dup_bytes(c, "default", strlen("default"));
    return p;
}

/* The single-proxy form: listen, upstream, rules at the top (each may be
 * NULL). */
static void parse_single(struct ctx *c, struct config *cfg,
                         const yaml_node_t *const *vals)
{
    struct config_proxy *p = one_default_proxy(c, cfg);
    if (p == NULL) {
        return;
    }
    if (vals[TF_LISTEN] != NULL) {
        set_string(c, &proxy_fields[PF_LISTEN], vals[TF_LISTEN], p);
    }
    if (vals[TF_UPSTREAM] != NULL) {
        set_string(c, &proxy_fields[PF_UPSTREAM], vals[TF_UPSTREAM], p);
    }
    parse_rules(c, vals[TF_RULES], p);
}

static void parse_top(struct ctx *c, struct config *cfg)
{
    const yaml_node_t *keys[TF__COUNT] = {0};
    const yaml_node_t *vals[TF__COUNT] = {0};
    bool ok[TF__COUNT] = {0};
    const yaml_node_t *root = yaml_document_get_root_node(c->doc);

    /* An empty file (or comments only) is a proxy without rules. */
    if (root != NULL && !is_null(root)) {
        if (!collect(c, root, top_fields, TF__COUNT, "at top level", keys,
                     vals)) {
            return;
        }
    }
    set_fields(c, top_fields, TF__COUNT, vals, cfg, ok);
    cfg->has_seed = ok[TF_SEED];
    if (keys[TF_PROXIES] == NULL) {
        parse_single(c, cfg, vals);
        return;
    }
    for (int f = TF_LISTEN; f <= TF_RULES; f++) {
        if (keys[f] != NULL) {
            err_at(c, &keys[f]->start_mark,
                   "'%s' and 'proxies' cannot be combined", top_fields[f].name);
        }
    }
    parse_proxies(c, vals[TF_PROXIES], cfg);
}

/* Reports the parser's error: syntax errors are not collected, one ends
 * the parse. */
static void yaml_error(struct ctx *c, const yaml_parser_t *p)
{
    yaml_mark_t m = p->problem_mark;
    const char *problem = p->problem != NULL ? p->problem : "syntax error";

    if (p->error == YAML_MEMORY_ERROR) {
        c->oom = true;
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        /* The reader knows only the byte offset. */
        m.line = 0;
        m.column = 0;
        for (size_t i = 0; i < p->problem_offset && i < c->len; i++) {
            m.column++;
            if (c->text[i] == '\n') {
                m.line++;
                m.column = 0;
            }
        }
        if (p->problem_value != -1) {
            err_at(c, &m, "%s (byte 0x%02x)", problem,
                   (unsigned)p->problem_value & 0xffu);
        } else {
            err_at(c, &m, "%s", problem);
        }
        return;
    }
    if (p->error == YAML_COMPOSER_ERROR && p->context != NULL &&
        strncmp(p->context, "found duplicate anchor", 22) == 0) {
        /* libyaml words this one back to front */
        err_at(c, &m, "duplicate anchor (first at line %zu, column %zu)",
               p->context_mark.line + 1, p->context_mark.column + 1);
    } else if (p->context != NULL) {
        err_at(c, &m, "%s (%s at line %zu, column %zu)", problem, p->context,
               p->context_mark.line + 1, p->context_mark.column + 1);
    } else {
        err_at(c, &m, "%s", problem);
    }
}

/*
 * Reads the event stream once before loading: reports a syntax error (and
 * stops), every alias (the loader would share nodes, so walking the tree
 * could take exponential time: "billion laughs"), and a second document.
 * Returns 0 when the text can be loaded.
 */
static int prescan(struct ctx *c)
{
    yaml_parser_t p;
    yaml_event_t ev;
    int docs = 0;
    int rc = 0;

    if (!yaml_parser_initialize(&p)) {
        c->oom = true;
        return -1;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)c->text, c->len);
    for (;;) {
        if (!yaml_parser_parse(&p, &ev)) {
            yaml_error(c, &p);
            rc = -1;
            break;
        }
        yaml_event_type_t type = ev.type;
        if (type == YAML_ALIAS_EVENT) {
            err_at(c, &ev.start_mark, "aliases are not supported");
            rc = -1;
        } else if (type == YAML_DOCUMENT_START_EVENT && ++docs == 2) {
            err_at(c, &ev.start_mark, "expected a single YAML document");
            rc = -1;
        }
        yaml_event_delete(&ev);
        if (type == YAML_STREAM_END_EVENT || docs == 2) {
            break;
        }
    }
    yaml_parser_delete(&p);
    return rc;
}

static int errs_cmp(const void *a, const void *b)
{
    const struct cerr *x = a;
    const struct cerr *y = b;

    if (x->line != y->line) {
        return x->line < y->line ? -1 : 1;
    }
    if (x->col != y->col) {
        return x->col < y->col ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Appends a message without a position (file-level problems). */
static void errs_add(struct config_errors *errs, char *msg)
{
    char **m = realloc(errs->msgs, (errs->n + 1) * sizeof(*m));
    if (m == NULL) {
        free(msg);
        return;
    }
    errs->msgs = m;
    errs->msgs[errs->n++] = msg;
}

void config_errors_addf(struct config_errors *errs, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    char *msg = strdup(buf);
    if (msg != NULL) {
        errs_add(errs, msg);
    }
}

size_t config_rule_count(const struct config *cfg)
{
    size_t n = 0;

    for (size_t i = 0; i < cfg->nproxies; i++) {
        n += cfg->proxies[i].nrules;
    }
    return n;
}

static char *fmt_msg(const char *a, const char *b)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);
    char *m = malloc(la + 2 + lb + 1);
    if (m != NULL) {
        memcpy(m, a, la);
        memcpy(m + la, ": ", 2);
        memcpy(m + la + 2, b, lb + 1);
    }
    return m;
}

/* Moves c's problems into errs in file order. Returns how many there
 * were (counting out-of-memory and the cap as one each). */
static size_t errs_flush(struct ctx *c, struct config_errors *errs)
{
    size_t total = c->nerrs + c->full + c->oom;
    char note[64];

    if (c->nerrs > 0) {
        qsort(c->errs, c->nerrs, sizeof(*c->errs), errs_cmp);
    }
    for (size_t i = 0; i < c->nerrs; i++) {
        errs_add(errs, c->errs[i].msg);
    }
    free(c->errs);
    c->errs = NULL;
    c->nerrs = 0;
    if (c->full) {
        snprintf(note, sizeof(note), "too many errors, stopped after %d",
                 CONFIG_ERRORS_MAX);
        char *m = fmt_msg(c->file, note);
        if (m != NULL) {
            errs_add(errs, m);
        }
    }
    if (c->oom) {
        char *m = fmt_msg(c->file, "out of memory");
        if (m != NULL) {
            errs_add(errs, m);
        }
    }
    return total;
}

/* Loads c's text and hands its tree to top; c->file, text and len are
 * set. Same contract as config_parse. */
static int parse_with(struct ctx *c, void (*top)(struct ctx *, struct config *),
                      struct config *cfg, struct config_errors *errs)
{
    struct config tmp = {0};

    memset(cfg, 0, sizeof(*cfg));
    if (prescan(c) == 0) {
        yaml_parser_t p;
        yaml_document_t doc;
        if (!yaml_parser_initialize(&p)) {
            c->oom = true;
        } else {
            yaml_parser_set_input_string(&p, (const unsigned char *)c->text,
                                         c->len);
            if (yaml_parser_load(&p, &doc)) {
                c->doc = &doc;
                top(c, &tmp);
                yaml_document_delete(&doc);
            } else {
                yaml_error(c, &p);
            }
            yaml_parser_delete(&p);
        }
    }
    if (errs_flush(c, errs) != 0) {
        config_free(&tmp);
        return -1;
    }
    *cfg = tmp;
    return 0;
}

int config_parse(const char *name, const char *text, size_t len,
                 struct config *cfg, struct config_errors *errs)
{
    struct ctx c = {0};

    c.file = name != NULL ? name : "<config>";
    c.text = text != NULL ? text : "";
    c.len = text != NULL ? len : 0;
    return parse_with(&c, parse_top, cfg, errs);
}

/* True when the mapping m has the key k. */
static bool map_has(struct ctx *c, const yaml_node_t *m, const char *k)
{
    for (const yaml_node_pair_t *p = m->data.mapping.pairs.start;
         p < m->data.mapping.pairs.top; p++) {
        const yaml_node_t *key = node_at(c, p->key);
        if (key != NULL && key->type == YAML_SCALAR_NODE &&
            config_seq_eq(sval(key), slen(key), k)) {
            return true;
        }
    }
    return false;
}

/*
 * // body = rule | [rule, ...] | {rules: [rule, ...], listen, upstream, seed}
 * Rules to add to one running proxy (POST /rules).
 */
static void parse_added(struct ctx *c, struct config *cfg)
{
    const yaml_node_t *root = yaml_document_get_root_node(c->doc);
    static const yaml_mark_t start = {0, 0, 0};

    if (root == NULL || is_null(root)) {
        err_at(c, root != NULL ? &root->start_mark : &start,
               "no rules: send a rule, a list of rules or a mapping with "
               "'rules'");
        return;
    }
    if (root->type == YAML_MAPPING_NODE &&
        (map_has(c, root, "rules") || map_has(c, root, "proxies"))) {
        parse_top(c, cfg);
        if (map_has(c, root, "proxies")) {
            err_at(c, &root->start_mark,
                   "'proxies' cannot be used here: rules are added to one "
                   "proxy (name it with ?proxy=NAME)");
        }
        return;
    }
    struct config_proxy *p = one_default_proxy(c, cfg);
    if (p == NULL) {
        return;
    }
    if (root->type == YAML_SEQUENCE_NODE) {
        parse_rules(c, root, p);
        return;
    }
    struct dupref ref;
    if ((p->rules = calloc(1, sizeof(*p->rules))) == NULL) {
        c->oom = true;
        return;
    }
    p->nrules = 1;
    parse_rule(c, root, 0, &p->rules[0], &ref);
}

int config_parse_rules(const char *name, const char *text, size_t len,
                       size_t before, struct config *cfg,
                       struct config_errors *errs)
{
    struct ctx c = {0};

    c.file = name != NULL ? name : "<config>";
    c.text = text != NULL ? text : "";
    c.len = text != NULL ? len : 0;
    c.rule_base = before;
    c.adding = true;
    return parse_with(&c, parse_added, cfg, errs);
}

int config_load_file(const char *path, struct config *cfg,
                     struct config_errors *errs)
{
    char *buf = NULL;
    size_t len = 0;
    size_t cap = 0;
    int rc = -1;
    int err = 0;

    memset(cfg, 0, sizeof(*cfg));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err = errno;
        goto cleanup;
    }
    for (;;) {
        if (len == cap) {
            /* One byte past the limit tells a file that is too large. */
            size_t ncap = cap == 0 ? 64 * 1024 : 2 * cap;
            if (ncap > (size_t)CONFIG_FILE_MAX + 1) {
                ncap = (size_t)CONFIG_FILE_MAX + 1;
            }
            if (ncap == cap) {
                break;
            }
            char *nbuf = realloc(buf, ncap);
            if (nbuf == NULL) {
                err = ENOMEM;
                goto cleanup;
            }
            buf = nbuf;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            err = errno;
            goto cleanup;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    if (len > CONFIG_FILE_MAX) {
        char note[64];
        snprintf(note, sizeof(note), "larger than %d bytes", CONFIG_FILE_MAX);
        char *m = fmt_msg(path, note);
        if (m != NULL) {
            errs_add(errs, m);
        }
        goto cleanup;
    }
    rc = config_parse(path, buf, len, cfg, errs);
cleanup:
    if (err != 0) {
        char *m = fmt_msg(path, strerror(err));
        if (m != NULL) {
            errs_add(errs, m);
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    return rc;
}

void config_free(struct config *cfg)
{
    for (size_t i = 0; i < cfg->nproxies; i++) {
        struct config_proxy *p = &cfg->proxies[i];
        for (size_t j = 0; j < p->nrules; j++) {
            rule_free(&p->rules[j]);
        }
        free(p->rules);
        free(p->name);
        free(p->listen);
        free(p->upstream);
    }
    free(cfg->proxies);
    free(cfg->admin);
    memset(cfg, 0, sizeof(*cfg));
}

void config_errors_free(struct config_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++) {
        free(errs->msgs[i]);
    }
    free(errs->msgs);
    errs->msgs = NULL;
    errs->n = 0;
}
