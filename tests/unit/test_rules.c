/*
 * Unit tests for the rule table: tables of rules and subjects with the rule
 * expected to fire, gate sequences, the PRNG, targeting (client, connection
 * share, size, schedule), connect rules, and a randomized comparison of
 * rules_decide (indexed) against a plain loop over every rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcfault/glob.h"
#include "mcfault/rules.h"

#define MAXG 4 /* globs per list in a rule spec */
#define MAXK 6 /* keys per subject spec */
#define MAXR 5 /* rules per table case */

/* A rule as written in a case; unset lists mean {"*"}. */
struct rspec {
    const char *name;
    const char *cmds[MAXG];
    const char *keys[MAXG];
    enum rule_action action;
    bool prob_set; /* probability 1 unless set */
    double prob;
    uint64_t after;
    uint64_t limit;
    bool disabled;
};

/* A command: op, name as typed, keys ("" an empty key); nokeys: none. */
struct sspec {
    enum proto_op op;
    const char *name;
    const char *keys[MAXK];
};

/* ---- helpers ---- */

static char *dup_bytes(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    assert_non_null(d);
    if (len > 0) {
        memcpy(d, s, len);
    }
    d[len] = '\0';
    return d;
}

static struct rule_glob *globs_make(const char *const *pats, const size_t *lens,
                                    size_t n)
{
    struct rule_glob *g = calloc(n, sizeof(*g));
    assert_non_null(g);
    for (size_t i = 0; i < n; i++) {
        g[i].pat = dup_bytes(pats[i], lens[i]);
        g[i].len = lens[i];
    }
    return g;
}

/* A rule with the defaults of rules.h and the given globs (binary). */
static void rule_init(struct rule *r, const char *name, const char *const *cmds,
                      const size_t *clens, size_t ncmds,
                      const char *const *keys, const size_t *klens,
                      size_t nkeys)
{
    rule_set_defaults(r);
    r->name = name != NULL ? dup_bytes(name, strlen(name)) : NULL;
    r->cmds = globs_make(cmds, clens, ncmds);
    r->ncmds = ncmds;
    r->keys = globs_make(keys, klens, nkeys);
    r->nkeys = nkeys;
    r->action = RULE_ERROR;
}

/* Fills a NUL-terminated list (none: {"*"}) as pointers and lengths. */
static size_t list_of(const char *const *in, const char **out, size_t *lens)
{
    size_t n = 0;
    while (n < MAXG && in[n] != NULL) {
        out[n] = in[n];
        lens[n] = strlen(in[n]);
        n++;
    }
    if (n == 0) {
        out[0] = "*";
        lens[0] = 1;
        n = 1;
    }
    return n;
}

static void rule_from_spec(struct rule *r, const struct rspec *sp)
{
    const char *c[MAXG];
    const char *k[MAXG];
    size_t cl[MAXG];
    size_t kl[MAXG];
    size_t nc = list_of(sp->cmds, c, cl);
    size_t nk = list_of(sp->keys, k, kl);

    rule_init(r, sp->name, c, cl, nc, k, kl, nk);
    r->action = sp->action;
    r->probability = sp->prob_set ? sp->prob : 1.0;
    r->after = sp->after;
    r->limit = sp->limit;
    r->enabled = !sp->disabled;
}

/* A table from specs up to the first without a name. */
static struct rules *table_from_specs(const struct rspec *specs, size_t max,
                                      uint64_t seed)
{
    size_t n = 0;
    while (n < max && specs[n].name != NULL) {
        n++;
    }
    struct rule *rs = n > 0 ? calloc(n, sizeof(*rs)) : NULL;
    for (size_t i = 0; i < n; i++) {
        rule_from_spec(&rs[i], &specs[i]);
    }
    struct rules *t = rules_create(rs, n, seed);
    assert_non_null(t);
    return t;
}

/* Storage behind a rules_subject. */
struct subj_buf {
    char base[4096];
    size_t used;
    struct proto_tok toks[512];
    struct rules_subject s;
};

static void subj_start(struct subj_buf *b, enum proto_op op, const char *name,
                       size_t name_len)
{
    memset(&b->s, 0, sizeof(b->s));
    b->used = 0;
    b->s.op = op;
    b->s.name = name;
    b->s.name_len = name_len;
    b->s.keys = b->toks;
    b->s.key_base = b->base;
}

static void subj_key(struct subj_buf *b, const char *key, size_t len)
{
    assert_true(b->s.nkeys < sizeof(b->toks) / sizeof(b->toks[0]));
    assert_true(b->used + len <= sizeof(b->base));
    memcpy(b->base + b->used, key, len);
    b->toks[b->s.nkeys].off = (uint32_t)b->used;
    b->toks[b->s.nkeys].len = (uint32_t)len;
    b->used += len;
    b->s.nkeys++;
}

static const struct rules_subject *subj_from_spec(struct subj_buf *b,
                                                  const struct sspec *sp)
{
    subj_start(b, sp->op, sp->name, strlen(sp->name));
    for (size_t i = 0; i < MAXK && sp->keys[i] != NULL; i++) {
        subj_key(b, sp->keys[i], strlen(sp->keys[i]));
    }
    return &b->s;
}

static const char *fired_name(struct rules *t, const struct sspec *sp)
{
    struct subj_buf b;
    struct rule *r = rules_decide(t, subj_from_spec(&b, sp));
    return r != NULL ? r->name : NULL;
}

/* Test-local PRNG so random cases are the same on every libc. */
static uint64_t trand(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t trand_below(uint64_t *x, size_t n)
{
    return (size_t)(trand(x) % n);
}

/* ---- small contracts ---- */

static void test_action_names(void **state)
{
    (void)state;
    static const struct {
        enum rule_action a;
        const char *want;
    } cases[] = {
        {RULE_ERROR, "error"},     {RULE_DELAY, "delay"},
        {RULE_DROP, "drop"},       {RULE_HANG, "hang"},
        {RULE_MISS, "miss"},       {RULE_THROTTLE, "throttle"},
        {RULE_SLICE, "slice"},     {RULE_TRUNCATE, "truncate"},
        {RULE_CORRUPT, "corrupt"}, {RULE_EVICT, "evict"},
        {RULE__COUNT, "unknown"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_string_equal(rule_action_name(cases[i].a), cases[i].want);
    }
}

static void test_op_is_retrieval(void **state)
{
    (void)state;
    for (int op = 0; op < PROTO_OP__COUNT; op++) {
        bool want = op == PROTO_OP_GET || op == PROTO_OP_GETS ||
                    op == PROTO_OP_GAT || op == PROTO_OP_GATS ||
                    op == PROTO_OP_MG;
        assert_int_equal(rule_op_is_retrieval((enum proto_op)op), want);
    }
}

static void test_key_match(void **state)
{
    (void)state;
    static const struct rspec sp = {.name = "k", .keys = {"a*", "[0-9]x"}};
    static const struct {
        const char *key;
        bool want;
    } cases[] = {
        {"a", true},   {"abc", true}, {"A", false},  {"5x", true},
        {"5y", false}, {"", false},   {"x5", false},
    };
    struct rule r;
    rule_from_spec(&r, &sp);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(rule_key_match(&r, cases[i].key, strlen(cases[i].key)),
                         cases[i].want);
    }
    rule_free(&r);
    rule_free(&r); /* twice is harmless: pointers were cleared */
}

static void test_empty_table(void **state)
{
    (void)state;
    struct rules *t = rules_create(NULL, 0, 1);
    struct sspec sp = {PROTO_OP_GET, "get", {"k"}};
    assert_non_null(t);
    assert_int_equal(rules_count(t), 0);
    assert_null(rules_at(t, 0));
    assert_null(rules_find(t, "x"));
    assert_null(fired_name(t, &sp));
    assert_int_equal(rules_set_enabled(t, "x", false), -1);
    rules_destroy(t);
    rules_destroy(NULL);
}

static void test_too_many_rules(void **state)
{
    (void)state;
    /* Refused, and the array is freed (ASan reports a leak otherwise). */
    struct rule *rs = calloc(RULES_MAX + 1, sizeof(*rs));
    assert_non_null(rs);
    assert_null(rules_create(rs, RULES_MAX + 1, 1));
}

static void test_count_at_find(void **state)
{
    (void)state;
    static const struct rspec specs[] = {
        {.name = "a"}, {.name = "b"}, {.name = "c"}, {.name = "b"}};
    struct rules *t = table_from_specs(specs, 4, 1);
    assert_int_equal(rules_count(t), 4);
    assert_string_equal(rules_at(t, 2)->name, "c");
    assert_null(rules_at(t, 4));
    assert_ptr_equal(rules_find(t, "a"), rules_at(t, 0));
    assert_ptr_equal(rules_find(t, "b"), rules_at(t, 1)); /* the first */
    assert_ptr_equal(rules_find(t, "c"), rules_at(t, 2));
    assert_null(rules_find(t, "d"));
    assert_null(rules_find(t, ""));
    assert_null(rules_find(t, NULL));
    rules_destroy(t);
}

/* ---- decisions ---- */

struct decide_case {
    const char *what;
    struct rspec rules[MAXR];
    struct sspec subj;
    const char *want; /* name of the rule that fires, NULL none */
};

/* 80 bytes: more than the index keeps of a prefix or suffix. */
#define A80                                                                    \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"                                 \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
/* clang-format off */
#define GET(...) {PROTO_OP_GET, "get", {__VA_ARGS__}}
#define SET(k) {PROTO_OP_SET, "set", {k}}
/* clang-format on */

static const struct decide_case decide_cases[] = {
    /* file order */
    {"first match wins",
     {{.name = "a", .keys = {"k*"}}, {.name = "b"}},
     GET("k1"),
     "a"},
    {"first match wins (swapped)",
     {{.name = "b", .keys = {"k1"}}, {.name = "a", .keys = {"k*"}}},
     GET("k1"),
     "b"},
    {"non-matching key skipped",
     {{.name = "a", .keys = {"x*"}}, {.name = "b", .keys = {"k*"}}},
     GET("k1"),
     "b"},
    {"non-matching command skipped",
     {{.name = "a", .cmds = {"set"}}, {.name = "b", .cmds = {"get"}}},
     GET("k1"),
     "b"},
    {"no rule matches", {{.name = "a", .keys = {"x*"}}}, GET("k1"), NULL},

    /* command globs: case-insensitive, whole name */
    {"command upper case", {{.name = "a", .cmds = {"GET"}}}, GET("k"), "a"},
    {"command glob nocase", {{.name = "a", .cmds = {"G?T"}}}, GET("k"), "a"},
    {"command class nocase",
     {{.name = "a", .cmds = {"[GS]ET"}}},
     SET("k"),
     "a"},
    {"command list", {{.name = "a", .cmds = {"get", "set"}}}, SET("k"), "a"},
    {"command list, other op",
     {{.name = "a", .cmds = {"get", "set"}}},
     {PROTO_OP_DELETE, "delete", {"k"}},
     NULL},
    {"command glob is anchored",
     {{.name = "a", .cmds = {"get"}}},
     {PROTO_OP_GETS, "gets", {"k"}},
     NULL},
    {"command star suffix",
     {{.name = "a", .cmds = {"get*"}}},
     {PROTO_OP_GETS, "gets", {"k"}},
     "a"},
    {"meta command",
     {{.name = "a", .cmds = {"m?"}}},
     {PROTO_OP_MS, "ms", {"k"}},
     "a"},

    /* key globs: bytes, case-sensitive */
    {"key case differs",
     {{.name = "a", .keys = {"User:*"}}},
     GET("user:1"),
     NULL},
    {"key case equal", {{.name = "a", .keys = {"User:*"}}}, GET("User:1"), "a"},
    {"key class", {{.name = "a", .keys = {"[0-9]*"}}}, GET("5x"), "a"},
    {"key class miss", {{.name = "a", .keys = {"[0-9]*"}}}, GET("x5"), NULL},
    {"key negated class", {{.name = "a", .keys = {"[^a]*"}}}, GET("b"), "a"},
    {"key negated class miss",
     {{.name = "a", .keys = {"[^a]*"}}},
     GET("a"),
     NULL},
    {"key class after byte",
     {{.name = "a", .keys = {"u[0-9]"}}},
     GET("u7"),
     "a"},
    {"key escape", {{.name = "a", .keys = {"\\*x"}}}, GET("*x"), "a"},
    {"key escape miss", {{.name = "a", .keys = {"\\*x"}}}, GET("ax"), NULL},
    {"key unterminated class is literal",
     {{.name = "a", .keys = {"[ab"}}},
     GET("[ab"),
     "a"},
    {"key question mark", {{.name = "a", .keys = {"?1"}}}, GET("z1"), "a"},
    {"key second glob", {{.name = "a", .keys = {"x*", "y*"}}}, GET("y1"), "a"},
    {"key prefix is the whole key",
     {{.name = "a", .keys = {"ab*"}}},
     GET("ab"),
     "a"},
    {"key suffix", {{.name = "a", .keys = {"*:lock"}}}, GET("x:lock"), "a"},
    {"key suffix is the whole key",
     {{.name = "a", .keys = {"*:lock"}}},
     GET(":lock"),
     "a"},
    {"key suffix miss",
     {{.name = "a", .keys = {"*:lock"}}},
     GET("x:lockx"),
     NULL},
    {"key suffix after ?",
     {{.name = "a", .keys = {"?:lock"}}},
     GET("x:lock"),
     "a"},
    {"key suffix after class",
     {{.name = "a", .keys = {"*[0-9]:lock"}}},
     GET("x1:lock"),
     "a"},
    {"key suffix escaped", {{.name = "a", .keys = {"*\\*"}}}, GET("ab*"), "a"},
    {"key suffix unterminated class",
     {{.name = "a", .keys = {"*a["}}},
     GET("xa["),
     "a"},
    {"key ends with class", {{.name = "a", .keys = {"*[xy]"}}}, GET("ay"), "a"},
    {"key suffix and prefix rules",
     {{.name = "a", .keys = {"b*"}}, {.name = "b", .keys = {"*b"}}},
     GET("xb"),
     "b"},
    {"key prefix longer than indexed",
     {{.name = "a", .keys = {A80 "b*"}}},
     GET(A80 "bc"),
     "a"},
    {"key prefix longer than indexed, miss",
     {{.name = "a", .keys = {A80 "b*"}}},
     GET(A80 "c"),
     NULL},
    {"key suffix longer than indexed",
     {{.name = "a", .keys = {"*b" A80}}},
     GET("cb" A80),
     "a"},
    {"key suffix longer than indexed, miss",
     {{.name = "a", .keys = {"*b" A80}}},
     GET("c" A80),
     NULL},
    {"key suffix after class, literal before it",
     {{.name = "a", .keys = {"*a[0-9]b"}}},
     GET("xa5b"),
     "a"},
    {"empty key vs ?", {{.name = "a", .keys = {"?*"}}}, GET(""), NULL},
    {"empty key vs *",
     {{.name = "a", .keys = {"?*"}}, {.name = "b"}},
     GET(""),
     "b"},

    /* multi-key retrievals: any key */
    {"multi-key last matches",
     {{.name = "a", .keys = {"hot:*"}}},
     GET("a", "b", "hot:1"),
     "a"},
    {"multi-key none matches",
     {{.name = "a", .keys = {"hot:*"}}},
     GET("a", "b", "c"),
     NULL},
    {"multi-key file order, not key order",
     {{.name = "a", .keys = {"b*"}}, {.name = "b", .keys = {"a*"}}},
     GET("a1", "b1"),
     "a"},
    {"multi-key same first byte",
     {{.name = "a", .keys = {"kz"}}, {.name = "b", .keys = {"k*"}}},
     GET("k1", "kz"),
     "a"},

    /* commands without a key: the empty key */
    {"keyless vs *",
     {{.name = "a", .keys = {"x*"}}, {.name = "b"}},
     {PROTO_OP_STATS, "stats", {NULL}},
     "b"},
    {"keyless vs x*",
     {{.name = "a", .keys = {"x*"}}},
     {PROTO_OP_STATS, "stats", {NULL}},
     NULL},
    {"keyless vs empty glob",
     {{.name = "a", .keys = {""}}},
     {PROTO_OP_VERSION, "version", {NULL}},
     "a"},
    {"keyless vs ?",
     {{.name = "a", .keys = {"?"}}},
     {PROTO_OP_VERSION, "version", {NULL}},
     NULL},

    /* miss rules: retrievals only */
    {"miss skipped for set",
     {{.name = "a", .action = RULE_MISS}, {.name = "b"}},
     SET("k"),
     "b"},
    {"miss skipped for delete",
     {{.name = "a", .action = RULE_MISS}},
     {PROTO_OP_DELETE, "delete", {"k"}},
     NULL},
    {"miss tried for get",
     {{.name = "a", .action = RULE_MISS}, {.name = "b"}},
     GET("k"),
     "a"},
    {"miss tried for gets",
     {{.name = "a", .action = RULE_MISS}},
     {PROTO_OP_GETS, "gets", {"k"}},
     "a"},
    {"miss tried for gat",
     {{.name = "a", .action = RULE_MISS}},
     {PROTO_OP_GAT, "gat", {"k"}},
     "a"},
    {"miss tried for gats",
     {{.name = "a", .action = RULE_MISS}},
     {PROTO_OP_GATS, "gats", {"k"}},
     "a"},
    {"miss tried for mg",
     {{.name = "a", .action = RULE_MISS}},
     {PROTO_OP_MG, "mg", {"k"}},
     "a"},
    {"miss skipped for ms",
     {{.name = "a", .action = RULE_MISS}},
     {PROTO_OP_MS, "ms", {"k"}},
     NULL},
    {"miss skipped for a keyless get (memcached says ERROR)",
     {{.name = "a", .action = RULE_MISS}, {.name = "b"}},
     {PROTO_OP_GET, "get", {NULL}},
     "b"},
    {"miss skipped for unknown",
     {{.name = "a", .action = RULE_MISS}, {.name = "b"}},
     {PROTO_OP_UNKNOWN, "GET", {"k"}},
     "b"},

    /* disabled rules */
    {"disabled skipped",
     {{.name = "a", .disabled = true}, {.name = "b"}},
     GET("k"),
     "b"},
    {"disabled only", {{.name = "a", .disabled = true}}, GET("k"), NULL},

    /* unknown ops: matched by the name as typed */
    {"upper-case GET is unknown",
     {{.name = "a", .cmds = {"get"}}},
     {PROTO_OP_UNKNOWN, "GET", {"k"}},
     "a"},
    {"unknown name",
     {{.name = "a", .cmds = {"get"}}},
     {PROTO_OP_UNKNOWN, "foo", {"k"}},
     NULL},
    {"unknown name vs *",
     {{.name = "a", .keys = {"*"}}},
     {PROTO_OP_UNKNOWN, "foo", {NULL}},
     "a"},
    {"unknown is not the name 'unknown'",
     {{.name = "a", .cmds = {"unknown"}}},
     {PROTO_OP_UNKNOWN, "foo", {"k"}},
     NULL},
    {"unknown typed as 'unknown'",
     {{.name = "a", .cmds = {"unknown"}}},
     {PROTO_OP_UNKNOWN, "unknown", {"k"}},
     "a"},
    {"unknown op, key still checked",
     {{.name = "a", .keys = {"x*"}}},
     {PROTO_OP_UNKNOWN, "foo", {"k"}},
     NULL},
    {"op and name disagree: the name decides",
     {{.name = "a", .cmds = {"set"}}, {.name = "b", .cmds = {"get"}}},
     {PROTO_OP_SET, "get", {"k"}},
     "b"},
    {"op known, name upper case",
     {{.name = "a", .cmds = {"get"}}},
     {PROTO_OP_GET, "GET", {"k"}},
     "a"},
};

static void test_decide_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(decide_cases) / sizeof(decide_cases[0]);
         i++) {
        const struct decide_case *c = &decide_cases[i];
        struct rules *t = table_from_specs(c->rules, MAXR, 42);
        const char *got = fired_name(t, &c->subj);
        if ((got == NULL) != (c->want == NULL) ||
            (got != NULL && strcmp(got, c->want) != 0)) {
            fail_msg("%s: got %s, want %s", c->what, got ? got : "(none)",
                     c->want ? c->want : "(none)");
        }
        rules_destroy(t);
    }
}

/* ---- gates ---- */

struct seq_case {
    const char *what;
    struct rspec rules[MAXR];
    /* Per "get k": the first letter of the rule that fires, '-' none. */
    const char *want;
    uint64_t want_matched[MAXR];
};

static const struct seq_case seq_cases[] = {
    {"after 2 limit 3",
     {{.name = "a", .after = 2, .limit = 3}},
     "--aaa-----",
     {10}},
    {"limit 1", {{.name = "a", .limit = 1}}, "a---------", {10}},
    {"after 3", {{.name = "a", .after = 3}}, "---aaaaaaa", {10}},
    {"limit passes to the next rule",
     {{.name = "a", .limit = 2}, {.name = "b"}},
     "aabbbbbbbb",
     {10, 8}},
    {"after passes to the next rule",
     {{.name = "a", .after = 1}, {.name = "b"}},
     "baaaaaaaaa",
     {10, 1}},
    {"three rules",
     {{.name = "a", .after = 2, .limit = 1},
      {.name = "b", .limit = 3},
      {.name = "c"}},
     "bbabcccccc",
     {10, 9, 6}},
    {"probability 0 counts matches, never fires",
     {{.name = "a", .prob_set = true, .prob = 0.0}, {.name = "b"}},
     "bbbbbbbbbb",
     {10, 10}},
    {"non-matching rule is not counted",
     {{.name = "a", .keys = {"x"}}, {.name = "b", .limit = 4}},
     "bbbb------",
     {0, 10}},
};

static void test_gate_sequences(void **state)
{
    (void)state;
    const struct sspec get = GET("k");
    for (size_t i = 0; i < sizeof(seq_cases) / sizeof(seq_cases[0]); i++) {
        const struct seq_case *c = &seq_cases[i];
        struct rules *t = table_from_specs(c->rules, MAXR, 1);
        char got[64];
        size_t n = strlen(c->want);
        for (size_t j = 0; j < n; j++) {
            const char *name = fired_name(t, &get);
            got[j] = name != NULL ? name[0] : '-';
        }
        got[n] = '\0';
        if (strcmp(got, c->want) != 0) {
            fail_msg("%s: got %s, want %s", c->what, got, c->want);
        }
        for (size_t j = 0; j < rules_count(t); j++) {
            const struct rule *r = rules_at(t, j);
            uint64_t fired = 0;
            for (size_t k = 0; k < n; k++) {
                fired += got[k] == r->name[0];
            }
            if (r->matched != c->want_matched[j] || r->fired != fired) {
                fail_msg("%s: rule %s matched %llu fired %llu, want %llu %llu",
                         c->what, r->name, (unsigned long long)r->matched,
                         (unsigned long long)r->fired,
                         (unsigned long long)c->want_matched[j],
                         (unsigned long long)fired);
            }
        }
        rules_destroy(t);
    }
}

/* ---- probability and PRNG ---- */

static struct rules *one_rule_table(double prob, uint64_t seed)
{
    struct rspec specs[] = {{.name = "p", .prob_set = true, .prob = prob}};
    return table_from_specs(specs, 1, seed);
}

static void test_probability_edges_draw_nothing(void **state)
{
    (void)state;
    const struct sspec get = GET("k");
    static const struct {
        double prob;
        bool fires;
    } cases[] = {{1.0, true}, {0.0, false}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rules *t = one_rule_table(cases[i].prob, 7);
        struct rules *fresh = one_rule_table(cases[i].prob, 7);
        for (int j = 0; j < 1000; j++) {
            assert_int_equal(fired_name(t, &get) != NULL, cases[i].fires);
        }
        assert_int_equal(rules_at(t, 0)->matched, 1000);
        assert_int_equal(rules_at(t, 0)->fired, cases[i].fires ? 1000 : 0);
        /* No draw was taken: the PRNG is where a fresh one starts. */
        assert_true(rules_random(t) == rules_random(fresh));
        rules_destroy(t);
        rules_destroy(fresh);
    }
}

#define DRAWS 10000

/* Fires of a probability-0.25 rule over DRAWS commands, as a 0/1 array. */
static size_t quarter_pattern(uint64_t seed, unsigned char *out)
{
    const struct sspec get = GET("k");
    struct rules *t = one_rule_table(0.25, seed);
    size_t fired = 0;
    for (size_t i = 0; i < DRAWS; i++) {
        out[i] = fired_name(t, &get) != NULL;
        fired += out[i];
    }
    assert_int_equal(rules_at(t, 0)->fired, fired);
    assert_int_equal(rules_at(t, 0)->matched, DRAWS);
    rules_destroy(t);
    return fired;
}

static void test_probability_quarter(void **state)
{
    (void)state;
    static unsigned char a[DRAWS];
    static unsigned char b[DRAWS];
    static unsigned char c[DRAWS];
    static const uint64_t seeds[] = {0, 1, 12345, 0xdeadbeefULL};

    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        size_t na = quarter_pattern(seeds[i], a);
        /* sd = sqrt(10000 * 0.25 * 0.75) ~ 43: 150 is 3.5 sd. */
        if (na < 2350 || na > 2650) {
            fail_msg("seed %llu: %zu fires of %d", (unsigned long long)seeds[i],
                     na, DRAWS);
        }
        size_t nb = quarter_pattern(seeds[i], b);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, DRAWS);
        quarter_pattern(seeds[i] + 1, c);
        assert_memory_not_equal(a, c, DRAWS);
    }
}

static void test_random_seeded(void **state)
{
    (void)state;
    struct rules *a = rules_create(NULL, 0, 99);
    struct rules *b = rules_create(NULL, 0, 99);
    struct rules *c = rules_create(NULL, 0, 100);
    bool differs = false;
    uint64_t or_bits = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = rules_random(a);
        assert_true(x == rules_random(b));
        differs |= x != rules_random(c);
        or_bits |= x;
    }
    assert_true(differs);
    assert_true(or_bits == UINT64_MAX); /* all 64 bits are used */
    rules_destroy(a);
    rules_destroy(b);
    rules_destroy(c);
}

/* ---- enable, carry ---- */

static void test_set_enabled(void **state)
{
    (void)state;
    static const struct rspec specs[] = {
        {.name = "a", .keys = {"k*"}},
        {.name = "b", .keys = {"*"}},
        {.name = "dup", .cmds = {"set"}},
        {.name = "dup", .cmds = {"set"}},
        {.name = "c", .cmds = {"set"}, .disabled = true},
    };
    const struct sspec get = GET("k1");
    const struct sspec set = SET("k1");
    struct rules *t = table_from_specs(specs, 5, 1);

    static const struct {
        const char *name; /* NULL: no call, just decide */
        bool enabled;
        int rc;
        const char *get; /* rule firing for get, then set */
        const char *set;
    } steps[] = {
        {NULL, false, 0, "a", "a"},     {"a", false, 0, "b", "b"},
        {"a", false, 0, "b", "b"},      {"nope", false, -1, "b", "b"},
        {"b", false, 0, NULL, "dup"},   {"dup", false, 0, NULL, NULL},
        {"c", true, 0, NULL, "c"},      {"a", true, 0, "a", "a"},
        {"dup", true, 0, "a", "a"},     {"a", false, 0, NULL, "dup"},
        {NULL, false, -1, NULL, "dup"},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        if (steps[i].name != NULL) {
            assert_int_equal(
                rules_set_enabled(t, steps[i].name, steps[i].enabled),
                steps[i].rc);
        } else if (steps[i].rc != 0) {
            assert_int_equal(rules_set_enabled(t, NULL, true), -1);
        }
        const char *g = fired_name(t, &get);
        const char *s = fired_name(t, &set);
        if ((g == NULL) != (steps[i].get == NULL) ||
            (g != NULL && strcmp(g, steps[i].get) != 0) ||
            (s == NULL) != (steps[i].set == NULL) ||
            (s != NULL && strcmp(s, steps[i].set) != 0)) {
            fail_msg("step %zu: got %s/%s", i, g ? g : "-", s ? s : "-");
        }
    }
    /* Both rules named dup were toggled together. */
    assert_true(rules_at(t, 2)->enabled);
    assert_true(rules_at(t, 3)->enabled);
    rules_destroy(t);
}

static void test_carry_counters(void **state)
{
    (void)state;
    static const struct rspec old_specs[] = {
        {.name = "x", .keys = {"x*"}},
        {.name = "y", .keys = {"y*"}, .after = 1},
        {.name = "z", .keys = {"z*"}},
    };
    static const struct rspec new_specs[] = {
        {.name = "y", .keys = {"y*"}},
        {.name = "w", .keys = {"*"}},
        {.name = "x", .keys = {"other"}},
    };
    struct rules *from = table_from_specs(old_specs, 3, 1);
    struct rules *to = table_from_specs(new_specs, 3, 1);
    static const struct sspec cmds[] = {GET("x1"), GET("y1"), GET("y2"),
                                        GET("y3"), GET("z1"), GET("z2")};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        fired_name(from, &cmds[i]); /* y2 and y3 fire; y1 passes (after) */
    }
    rules_carry_counters(to, from);

    static const struct {
        size_t at;
        uint64_t matched;
        uint64_t fired;
    } want[] = {{0, 3, 2}, {1, 0, 0}, {2, 1, 1}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const struct rule *r = rules_at(to, want[i].at);
        assert_int_equal(r->matched, want[i].matched);
        assert_int_equal(r->fired, want[i].fired);
    }
    rules_destroy(from);
    rules_destroy(to);
}

/* A name given twice: the k-th such rule takes the k-th one's counters. */
static void test_carry_counters_duplicate_names(void **state)
{
    (void)state;
    static const struct rspec old_specs[] = {
        {.name = "dup", .keys = {"x*"}},
        {.name = "dup", .keys = {"y*"}},
        {.name = "solo", .keys = {"z*"}},
    };
    static const struct rspec new_specs[] = {
        {.name = "dup"}, {.name = "solo"}, {.name = "dup"}, {.name = "dup"}};
    struct rules *from = table_from_specs(old_specs, 3, 1);
    struct rules *to = table_from_specs(new_specs, 4, 1);
    static const struct sspec cmds[] = {GET("x1"), GET("y1"), GET("y2"),
                                        GET("z1"), GET("z2"), GET("z3")};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        assert_non_null(fired_name(from, &cmds[i]));
    }
    rules_carry_counters(to, from);

    static const uint64_t want[] = {1, 3, 2, 0};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(rules_at(to, i)->matched, want[i]);
        assert_int_equal(rules_at(to, i)->fired, want[i]);
    }
    rules_destroy(from);
    rules_destroy(to);
}

/* ---- defaults and copies ---- */

static void test_defaults_and_clone(void **state)
{
    (void)state;
    struct rule r;
    struct rule c;
    static const struct rspec sp = {.name = "n", .keys = {"k*"}};

    rule_set_defaults(&r);
    assert_true(r.probability == 1.0);
    assert_true(r.enabled);
    assert_true(r.connections == 1.0);
    assert_true(r.max_size == UINT64_MAX);
    assert_int_equal(r.flips, 1);
    assert_int_equal(r.interval_us, RULES_INTERVAL_DEFAULT_US);
    assert_int_equal(r.close, RULE_CLOSE_FIN);
    assert_null(r.clients);
    assert_false(r.sized || r.scheduled || r.on_connect || r.targeted);

    /* a deep copy: freeing one leaves the other whole (ASan checks) */
    rule_from_spec(&r, &sp);
    r.message = dup_bytes("ERROR x", 7);
    r.message_len = 7;
    r.clients = calloc(2, sizeof(*r.clients));
    assert_non_null(r.clients);
    r.clients[1].bits = 104;
    r.nclients = 2;
    r.matched = 5;
    r.epoch_us = 9;
    assert_int_equal(rule_clone(&c, &r), 0);
    rule_free(&r);
    assert_string_equal(c.name, "n");
    assert_int_equal(c.nkeys, 1);
    assert_string_equal(c.keys[0].pat, "k*");
    assert_string_equal(c.cmds[0].pat, "*");
    assert_int_equal(c.message_len, 7);
    assert_string_equal(c.message, "ERROR x");
    assert_int_equal(c.nclients, 2);
    assert_int_equal(c.clients[1].bits, 104);
    assert_int_equal(c.matched, 5);
    assert_int_equal(c.epoch_us, 9);
    rule_free(&c);
    assert_null(c.clients);
    assert_int_equal(c.nclients, 0);
}

/* ---- targeting ---- */

/* 16 bytes of an IPv4 address as the table sees it: ::ffff:a.b.c.d */
static void v4(uint8_t *out, uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    memset(out, 0, 16);
    out[10] = 0xff;
    out[11] = 0xff;
    out[12] = a;
    out[13] = b;
    out[14] = c;
    out[15] = d;
}

/* Gives r the one client network addr/bits. */
static void rule_client(struct rule *r, const uint8_t *addr, uint8_t bits)
{
    r->clients = realloc(r->clients, (r->nclients + 1) * sizeof(*r->clients));
    assert_non_null(r->clients);
    memcpy(r->clients[r->nclients].addr, addr, 16);
    r->clients[r->nclients].bits = bits;
    r->nclients++;
}

static void test_client_match(void **state)
{
    (void)state;
    static const struct rspec sp = {.name = "c"};
    struct rule r;
    uint8_t net[16];
    uint8_t a[16];

    rule_from_spec(&r, &sp);
    v4(net, 10, 128, 0, 0);
    rule_client(&r, net, 96 + 9); /* 10.128.0.0/9 */
    static const struct {
        uint8_t b;
        bool want;
    } cases[] = {{128, true}, {255, true}, {127, false}, {0, false}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        v4(a, 10, cases[i].b, 7, 7);
        assert_int_equal(rule_client_match(&r, a), cases[i].want);
    }
    v4(a, 11, 128, 0, 0);
    assert_false(rule_client_match(&r, a));

    /* a second network, IPv6 /7 (fc00::/7), and any address (/0) */
    uint8_t v6[16] = {0xfc};
    rule_client(&r, v6, 7);
    uint8_t fd[16] = {0xfd, 1, 2};
    uint8_t fe[16] = {0xfe};
    assert_true(rule_client_match(&r, fd));
    assert_false(rule_client_match(&r, fe));
    memset(v6, 0, sizeof(v6));
    rule_client(&r, v6, 0);
    assert_true(rule_client_match(&r, fe));
    rule_free(&r);

    /* /128: every bit */
    rule_from_spec(&r, &sp);
    v4(net, 127, 0, 0, 1);
    rule_client(&r, net, 128);
    v4(a, 127, 0, 0, 1);
    assert_true(rule_client_match(&r, a));
    a[15] = 3;
    assert_false(rule_client_match(&r, a));
    rule_free(&r);
}

/* One table of a targeting rule "t" (set up by fn) before a catch-all
 * "any", and the subject a "set k" of a connection. */
struct target_case {
    const char *what;
    int64_t data_len;
    int client; /* 0: none (unix socket), 1: 127.0.0.2, 2: 10.0.0.1 */
    uint32_t conn_pick;
    const char *want; /* the rule that fires */
};

static void target_rule(struct rule *r)
{
    uint8_t net[16];

    v4(net, 127, 0, 0, 0);
    rule_client(r, net, 96 + 8);
    r->connections = 0.25;
    r->sized = true;
    r->min_size = 10;
    r->max_size = 20;
}

static const struct target_case target_cases[] = {
    {"all say yes", 10, 1, 0, "t"},
    {"largest size", 20, 1, 0, "t"},
    {"last pick of the share", 15, 1, (1u << 30) - 1, "t"},
    {"first pick past the share", 15, 1, 1u << 30, "any"},
    {"last pick", 15, 1, UINT32_MAX, "any"},
    {"too small", 9, 1, 0, "any"},
    {"too large", 21, 1, 0, "any"},
    {"no data block", -1, 1, 0, "any"},
    {"other network", 15, 2, 0, "any"},
    {"unix socket client", 15, 0, 0, "any"},
};

static void test_targeting(void **state)
{
    (void)state;
    static const struct rspec specs[] = {{.name = "t"}, {.name = "any"}};
    struct rule *rs = calloc(2, sizeof(*rs));
    uint8_t addrs[3][16];

    assert_non_null(rs);
    rule_from_spec(&rs[0], &specs[0]);
    rule_from_spec(&rs[1], &specs[1]);
    target_rule(&rs[0]);
    struct rules *t = rules_create(rs, 2, 1);
    assert_non_null(t);
    assert_true(rules_at(t, 0)->targeted);
    assert_false(rules_at(t, 1)->targeted);
    v4(addrs[1], 127, 0, 0, 2);
    v4(addrs[2], 10, 0, 0, 1);

    uint64_t want_t = 0;
    uint64_t want_any = 0;
    for (size_t i = 0; i < sizeof(target_cases) / sizeof(target_cases[0]);
         i++) {
        const struct target_case *c = &target_cases[i];
        struct subj_buf b;
        subj_start(&b, PROTO_OP_SET, "set", 3);
        subj_key(&b, "k", 1);
        b.s.data_len = c->data_len;
        b.s.client_addr = c->client != 0 ? addrs[c->client] : NULL;
        b.s.conn_pick = c->conn_pick;
        struct rule *r = rules_decide(t, &b.s);
        assert_non_null(r);
        if (strcmp(r->name, c->want) != 0) {
            fail_msg("%s: got %s, want %s", c->what, r->name, c->want);
        }
        want_t += strcmp(c->want, "t") == 0;
        want_any += strcmp(c->want, "any") == 0;
        /* a command targeting turns away is not counted as a match */
        assert_int_equal(rules_at(t, 0)->matched, want_t);
        assert_int_equal(rules_at(t, 0)->fired, want_t);
        assert_int_equal(rules_at(t, 1)->matched, want_any);
    }
    rules_destroy(t);
}

/* Which rules target: only what narrows counts, and a rule built with
 * calloc (connections 0) does not. */
static void test_targeted_flag(void **state)
{
    (void)state;
    struct rule *rs = calloc(7, sizeof(*rs));
    static const struct rspec sp = {.name = "x"};
    uint8_t net[16] = {0};

    assert_non_null(rs);
    for (size_t i = 0; i < 7; i++) {
        rule_from_spec(&rs[i], &sp);
    }
    rs[1].connections = 0.5;
    rs[2].sized = true;
    rs[3].scheduled = true;
    rule_client(&rs[4], net, 0);
    rs[5].connections = 0.0; /* calloc: every connection */
    rs[6].connections = 1.0;
    rs[6].max_size = 5;    /* ignored: not sized */
    rs[6].targeted = true; /* recomputed by rules_create */
    struct rules *t = rules_create(rs, 7, 1);
    static const bool want[] = {false, true, true, true, true, false, false};
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(rules_at(t, i)->targeted, want[i]);
    }

    /* connections 0 takes every connection, as 1 does */
    struct sspec get = GET("k");
    struct subj_buf b;
    rules_set_enabled(t, "x", true);
    subj_from_spec(&b, &get);
    b.s.conn_pick = UINT32_MAX;
    b.s.data_len = -1;
    b.s.now_us = 1;
    assert_ptr_equal(rules_decide(t, &b.s), rules_at(t, 0));
    rules_destroy(t);
}

/* The per-connection draw is shared: the connections a 10% rule takes are
 * among those a 25% rule takes. */
static void test_connection_shares_nest(void **state)
{
    (void)state;
    static const struct rspec specs[] = {{.name = "ten"}, {.name = "quarter"}};
    struct rule *rs = calloc(2, sizeof(*rs));
    assert_non_null(rs);
    rule_from_spec(&rs[0], &specs[0]);
    rule_from_spec(&rs[1], &specs[1]);
    rs[0].connections = 0.10;
    rs[1].connections = 0.25;
    struct rules *t = rules_create(rs, 2, 1);
    uint64_t rng = 7;
    size_t ten = 0;
    size_t quarter = 0;

    for (size_t i = 0; i < 4000; i++) {
        struct sspec get = GET("k");
        struct subj_buf b;
        subj_from_spec(&b, &get);
        b.s.conn_pick = (uint32_t)trand(&rng);
        struct rule *r = rules_decide(t, &b.s);
        bool in_ten = (double)b.s.conn_pick < 0.10 * 4294967296.0;
        bool in_quarter = (double)b.s.conn_pick < 0.25 * 4294967296.0;
        assert_ptr_equal(r, in_ten       ? rules_at(t, 0)
                            : in_quarter ? rules_at(t, 1)
                                         : NULL);
        ten += in_ten;
        quarter += in_quarter;
    }
    /* about 400 and 1000 */
    assert_true(ten > 300 && ten < 500);
    assert_true(quarter > 850 && quarter < 1150);
    rules_destroy(t);
}

/* ---- schedules ---- */

struct force_case {
    uint64_t now;
    bool on;
    uint64_t next;
};

struct sched_case {
    const char *what;
    uint64_t epoch;
    struct rule_schedule sc;
    struct force_case at[8];
    size_t n;
};

#define NEVER UINT64_MAX

static const struct sched_case sched_cases[] = {
    {"from start on, once",
     1000,
     {500, 0, 0},
     {{1000, false, 1500},
      {1499, false, 1500},
      {1500, true, NEVER},
      {NEVER, true, NEVER}},
     4},
    {"a window, once",
     1000,
     {500, 100, 0},
     {{1499, false, 1500},
      {1500, true, 1600},
      {1599, true, 1600},
      {1600, false, NEVER},
      {5000, false, NEVER}},
     5},
    {"at once for a while",
     1000,
     {0, 100, 0},
     {{999, false, 1000}, {1000, true, 1100}, {1100, false, NEVER}},
     3},
    {"every 100 for 10",
     1000,
     {0, 10, 100},
     {{1000, true, 1010},
      {1009, true, 1010},
      {1010, false, 1100},
      {1099, false, 1100},
      {1100, true, 1110},
      {1110, false, 1200},
      {1000000, true, 1000010}},
     7},
    {"every 100 for 10, from 50",
     1000,
     {50, 10, 100},
     {{1049, false, 1050},
      {1050, true, 1060},
      {1060, false, 1150},
      {1150, true, 1160},
      {1159, true, 1160}},
     5},
    {"windows that touch",
     1000,
     {10, 100, 100},
     {{1009, false, 1010}, {1010, true, NEVER}, {9999, true, NEVER}},
     3},
    {"clock not started, start 0: in force",
     0,
     {0, 100, 0},
     {{5000, true, 5100}, {7000, true, 7100}},
     2},
    {"clock not started, start 5: not yet",
     0,
     {5, 0, 0},
     {{5000, false, 5005}, {7000, false, 7005}},
     2},
    {"no room to overflow",
     NEVER - 10,
     {100, 0, 0},
     {{NEVER - 10, false, NEVER}, {NEVER, false, NEVER}},
     2},
};

static void test_in_force(void **state)
{
    (void)state;
    static const struct rspec sp = {.name = "s"};
    struct rule r;
    uint64_t next = 0;

    /* no schedule: always, and nothing ever changes */
    rule_from_spec(&r, &sp);
    assert_true(rule_in_force(&r, 0, &next));
    assert_true(next == NEVER);
    assert_true(rule_in_force(&r, 12345, NULL));

    r.scheduled = true;
    for (size_t i = 0; i < sizeof(sched_cases) / sizeof(sched_cases[0]); i++) {
        const struct sched_case *c = &sched_cases[i];
        r.epoch_us = c->epoch;
        r.schedule = c->sc;
        for (size_t j = 0; j < c->n; j++) {
            const struct force_case *f = &c->at[j];
            next = 0;
            bool on = rule_in_force(&r, f->now, &next);
            if (on != f->on || next != f->next) {
                fail_msg("%s at %llu: got %d next %llu, want %d next %llu",
                         c->what, (unsigned long long)f->now, on,
                         (unsigned long long)next, f->on,
                         (unsigned long long)f->next);
            }
        }
    }
    rule_free(&r);
}

/* A scheduled rule matches only while in force; outside it is not counted
 * and the next rule decides. */
static void test_schedule_in_decide(void **state)
{
    (void)state;
    static const struct rspec specs[] = {{.name = "s"}, {.name = "any"}};
    struct rule *rs = calloc(2, sizeof(*rs));
    assert_non_null(rs);
    rule_from_spec(&rs[0], &specs[0]);
    rule_from_spec(&rs[1], &specs[1]);
    rs[0].scheduled = true;
    rs[0].schedule.start_us = 100;
    rs[0].schedule.duration_us = 50;
    struct rules *t = rules_create(rs, 2, 1);
    rules_start_clocks(t, 1000);
    assert_int_equal(rules_at(t, 0)->epoch_us, 1000);

    static const struct {
        uint64_t now;
        const char *want;
    } steps[] = {{1000, "any"}, {1099, "any"}, {1100, "s"},
                 {1149, "s"},   {1150, "any"}, {99999, "any"}};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        struct sspec get = GET("k");
        struct subj_buf b;
        subj_from_spec(&b, &get);
        b.s.now_us = steps[i].now;
        assert_string_equal(rules_decide(t, &b.s)->name, steps[i].want);
    }
    assert_int_equal(rules_at(t, 0)->matched, 2);
    assert_int_equal(rules_at(t, 1)->matched, 4);
    rules_destroy(t);
}

/* Clocks start once and a reload carries them by name. */
static void test_clocks_carry(void **state)
{
    (void)state;
    static const struct rspec old_specs[] = {{.name = "kept"},
                                             {.name = "gone"}};
    static const struct rspec new_specs[] = {{.name = "new"}, {.name = "kept"}};
    struct rules *from = table_from_specs(old_specs, 2, 1);
    struct rules *to = table_from_specs(new_specs, 2, 1);

    rules_start_clocks(from, 777);
    rules_start_clocks(from, 888); /* started already: unchanged */
    assert_int_equal(rules_at(from, 0)->epoch_us, 777);
    assert_int_equal(rules_at(from, 1)->epoch_us, 777);
    rules_carry_counters(to, from);
    assert_int_equal(rules_at(to, 0)->epoch_us, 0);
    assert_int_equal(rules_at(to, 1)->epoch_us, 777);
    rules_start_clocks(to, 999);
    assert_int_equal(rules_at(to, 0)->epoch_us, 999);
    assert_int_equal(rules_at(to, 1)->epoch_us, 777);
    rules_start_clocks(NULL, 1);
    rules_destroy(from);
    rules_destroy(to);
}

/* ---- connect rules ---- */

static void test_connect_rules(void **state)
{
    (void)state;
    /* "*" globs on purpose: no bucket, bucket 0 included, may hold them */
    static const struct rspec specs[] = {{.name = "c1", .limit = 1},
                                         {.name = "any"},
                                         {.name = "c2"},
                                         {.name = "c3"}};
    struct rule *rs = calloc(4, sizeof(*rs));
    uint8_t lo[16];
    uint8_t other[16];

    assert_non_null(rs);
    for (size_t i = 0; i < 4; i++) {
        rule_from_spec(&rs[i], &specs[i]);
        rs[i].on_connect = i != 1;
    }
    v4(lo, 127, 0, 0, 1);
    v4(other, 10, 0, 0, 1);
    rule_client(&rs[2], lo, 128);
    struct rules *t = rules_create(rs, 4, 1);
    assert_true(rules_have_connect(t));

    /* commands never see connect rules, whatever their name or op */
    static const struct sspec cmds[] = {GET("k"),
                                        {PROTO_OP_UNKNOWN, "connect", {NULL}},
                                        {PROTO_OP_UNKNOWN, "CONNECT", {"k"}},
                                        {PROTO_OP_STATS, "stats", {NULL}},
                                        {PROTO_OP_GET, "GET", {"k"}}};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        assert_string_equal(fired_name(t, &cmds[i]), "any");
    }
    assert_int_equal(rules_at(t, 0)->matched, 0);

    /* connections see them in file order, with targeting and gates */
    struct rules_subject s;
    memset(&s, 0, sizeof(s));
    s.op = PROTO_OP_UNKNOWN;
    s.name = "connect";
    s.name_len = 7;
    s.data_len = -1;
    s.client_addr = lo;
    assert_string_equal(rules_decide_connect(t, &s)->name, "c1");
    assert_string_equal(rules_decide_connect(t, &s)->name, "c2"); /* limit */
    s.client_addr = other;
    assert_string_equal(rules_decide_connect(t, &s)->name, "c3");
    s.client_addr = NULL;
    assert_string_equal(rules_decide_connect(t, &s)->name, "c3");
    assert_int_equal(rules_at(t, 0)->matched, 4);
    assert_int_equal(rules_at(t, 0)->fired, 1);
    assert_int_equal(rules_at(t, 2)->matched, 1);
    assert_int_equal(rules_at(t, 3)->matched, 2);

    /* disabling them all empties the list; enabling brings them back */
    assert_int_equal(rules_set_enabled(t, "c1", false), 0);
    assert_int_equal(rules_set_enabled(t, "c2", false), 0);
    assert_true(rules_have_connect(t));
    assert_int_equal(rules_set_enabled(t, "c3", false), 0);
    assert_false(rules_have_connect(t));
    assert_null(rules_decide_connect(t, &s));
    assert_int_equal(rules_set_enabled(t, "c3", true), 0);
    assert_true(rules_have_connect(t));
    assert_string_equal(rules_decide_connect(t, &s)->name, "c3");
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        assert_string_equal(fired_name(t, &cmds[i]), "any");
    }
    rules_destroy(t);

    /* a table without connect rules */
    static const struct rspec plain[] = {{.name = "p"}};
    t = table_from_specs(plain, 1, 1);
    assert_false(rules_have_connect(t));
    assert_null(rules_decide_connect(t, &s));
    rules_destroy(t);
    assert_false(rules_have_connect(NULL));
}

/* ---- the index against a plain loop ---- */

/* Targeting as rules.h words it, written apart from rules.c: the client
 * bit by bit, the share as a product, the size as a range (no
 * schedules here). */
static bool ref_targets(const struct rule *r, const struct rules_subject *s)
{
    bool in = r->nclients == 0;
    for (size_t c = 0; c < r->nclients && s->client_addr != NULL; c++) {
        bool same = true;
        for (unsigned b = 0; b < r->clients[c].bits; b++) {
            unsigned x = (r->clients[c].addr[b / 8] >> (7 - b % 8)) & 1;
            unsigned y = (s->client_addr[b / 8] >> (7 - b % 8)) & 1;
            same = same && x == y;
        }
        in = in || same;
    }
    if (r->connections > 0 && r->connections < 1) {
        in = in && (double)s->conn_pick < r->connections * 4294967296.0;
    }
    if (r->sized) {
        in = in && s->data_len >= 0 && (uint64_t)s->data_len >= r->min_size &&
             (uint64_t)s->data_len <= r->max_size;
    }
    return in;
}

/* What rules_decide must do, one rule after the other; counters are kept
 * in matched[] and fired[], not in the rules. Probability is 0 or 1. */
static long ref_decide(struct rules *t, const struct rules_subject *s,
                       uint64_t *matched, uint64_t *fired)
{
    for (size_t i = 0; i < rules_count(t); i++) {
        const struct rule *r = rules_at(t, i);
        bool hit = false;
        if (!r->enabled || r->on_connect ||
            (r->action == RULE_MISS &&
             (!rule_op_is_retrieval(s->op) || s->nkeys == 0))) {
            continue;
        }
        for (size_t c = 0; c < r->ncmds && !hit; c++) {
            hit = glob_match(r->cmds[c].pat, r->cmds[c].len, s->name,
                             s->name_len, true);
        }
        if (!hit) {
            continue;
        }
        hit = false;
        for (size_t k = 0; k < r->nkeys && !hit; k++) {
            if (s->nkeys == 0) {
                hit = glob_match(r->keys[k].pat, r->keys[k].len, "", 0, false);
            }
            for (size_t j = 0; j < s->nkeys && !hit; j++) {
                hit = glob_match(r->keys[k].pat, r->keys[k].len,
                                 s->key_base + s->keys[j].off, s->keys[j].len,
                                 false);
            }
        }
        if (!hit || !ref_targets(r, s)) {
            continue;
        }
        matched[i]++;
        if (matched[i] <= r->after || (r->limit > 0 && fired[i] >= r->limit) ||
            r->probability < 1.0) {
            continue;
        }
        fired[i]++;
        return (long)i;
    }
    return -1;
}

/* A random pattern or key from alphabet, sometimes with any byte. */
static size_t random_bytes(uint64_t *rng, char *out, size_t maxlen,
                           const char *alphabet)
{
    size_t len = trand_below(rng, maxlen + 1);
    size_t na = strlen(alphabet);
    for (size_t i = 0; i < len; i++) {
        if (trand_below(rng, 16) == 0) {
            out[i] = (char)trand_below(rng, 256);
        } else {
            out[i] = alphabet[trand_below(rng, na)];
        }
    }
    return len;
}

static const char *const cmd_globs[] = {
    "*",   "get", "GET",     "g*",      "[gs]et", "?et",   "m?",
    "set", "s*",  "*t",      "gets",    "[!s]et", "MG",    "\\get",
    "",    "*e*", "unknown", "g[a-f]t", "[]",     "stats",
};

static const struct {
    enum proto_op op;
    const char *name;
} subj_ops[] = {
    {PROTO_OP_GET, "get"},       {PROTO_OP_GETS, "gets"},
    {PROTO_OP_GAT, "gat"},       {PROTO_OP_SET, "set"},
    {PROTO_OP_MG, "mg"},         {PROTO_OP_MS, "ms"},
    {PROTO_OP_DELETE, "delete"}, {PROTO_OP_STATS, "stats"},
    {PROTO_OP_BGET, "bget"},     {PROTO_OP_UNKNOWN, "GET"},
    {PROTO_OP_UNKNOWN, "Set"},   {PROTO_OP_UNKNOWN, "foo"},
    {PROTO_OP_UNKNOWN, ""},      {PROTO_OP_UNKNOWN, "unknown"},
    {PROTO_OP_GET, "GET"},       {PROTO_OP_VERSION, "version"},
};

/* Client addresses of random subjects and rules: 127.0.0.x, 10.x. */
static void random_addr(uint64_t *rng, uint8_t *out)
{
    memset(out, 0, 16);
    out[10] = 0xff;
    out[11] = 0xff;
    out[12] = trand_below(rng, 2) == 0 ? 127 : 10;
    out[15] = (uint8_t)trand_below(rng, 4);
}

/* Sometimes targeting (client, share, size), sometimes a connect rule. */
static void random_targeting(uint64_t *rng, struct rule *r)
{
    switch (trand_below(rng, 8)) {
    case 0:
        r->nclients = 1 + trand_below(rng, 2);
        r->clients = calloc(r->nclients, sizeof(*r->clients));
        assert_non_null(r->clients);
        for (size_t c = 0; c < r->nclients; c++) {
            random_addr(rng, r->clients[c].addr);
            r->clients[c].bits = (uint8_t)(96 + 8 * trand_below(rng, 5));
        }
        break;
    case 1:
        r->connections = (double)(1 + trand_below(rng, 3)) / 4;
        break;
    case 2:
        r->sized = true;
        r->min_size = trand_below(rng, 3);
        r->max_size = r->min_size + trand_below(rng, 3);
        break;
    case 3:
        r->on_connect = trand_below(rng, 2) == 0;
        break;
    default:
        break;
    }
}

/* Random rules over a small alphabet: ASCII globs with classes, escapes
 * and malformed bits, sometimes a random byte; gates deterministic. */
static struct rules *random_table(uint64_t *rng, size_t n, uint64_t seed)
{
    struct rule *rs = n > 0 ? calloc(n, sizeof(*rs)) : NULL;
    for (size_t i = 0; i < n; i++) {
        const char *c[3];
        size_t cl[3];
        size_t nc = 1 + trand_below(rng, 3);
        char kbuf[3][8];
        const char *k[3];
        size_t kl[3];
        size_t nk = 1 + trand_below(rng, 3);
        char name[32];

        for (size_t j = 0; j < nc; j++) {
            c[j] = cmd_globs[trand_below(rng, sizeof(cmd_globs) /
                                                  sizeof(cmd_globs[0]))];
            cl[j] = strlen(c[j]);
        }
        for (size_t j = 0; j < nk; j++) {
            kl[j] = random_bytes(rng, kbuf[j], 5, "ab:ab:*?[]^!-\\");
            k[j] = kbuf[j];
        }
        snprintf(name, sizeof(name), "r%zu", i);
        rule_init(&rs[i], name, c, cl, nc, k, kl, nk);
        rs[i].action = trand_below(rng, 5) == 0
                           ? RULE_MISS
                           : (enum rule_action)trand_below(rng, RULE__COUNT);
        random_targeting(rng, &rs[i]);
        rs[i].after = trand_below(rng, 4) == 0 ? trand_below(rng, 3) : 0;
        rs[i].limit = trand_below(rng, 4) == 0 ? trand_below(rng, 4) : 0;
        rs[i].probability = trand_below(rng, 10) == 0 ? 0.0 : 1.0;
        rs[i].enabled = trand_below(rng, 10) != 0;
    }
    struct rules *t = rules_create(rs, n, seed);
    assert_non_null(t);
    return t;
}

static void random_subject(uint64_t *rng, struct subj_buf *b, size_t maxkeys,
                           const char *alphabet)
{
    size_t o = trand_below(rng, sizeof(subj_ops) / sizeof(subj_ops[0]));
    size_t nk = trand_below(rng, maxkeys + 1);
    subj_start(b, subj_ops[o].op, subj_ops[o].name, strlen(subj_ops[o].name));
    for (size_t j = 0; j < nk; j++) {
        char key[8];
        size_t len = random_bytes(rng, key, 4, alphabet);
        subj_key(b, key, len);
    }
    static uint8_t addr[16];
    random_addr(rng, addr);
    b->s.client_addr = trand_below(rng, 8) == 0 ? NULL : addr;
    b->s.conn_pick = (uint32_t)trand(rng);
    b->s.data_len = (int64_t)trand_below(rng, 6) - 1;
}

/* Runs subjects through t and the reference; fails on the first
 * difference in the rule fired or, at the end, in any counter. */
static void compare_with_ref(struct rules *t, uint64_t *rng, size_t nsubj,
                             size_t maxkeys, const char *alphabet, bool toggle)
{
    size_t n = rules_count(t);
    uint64_t *matched = calloc(n + 1, sizeof(*matched));
    uint64_t *fired = calloc(n + 1, sizeof(*fired));
    struct subj_buf b;

    assert_non_null(matched);
    assert_non_null(fired);
    for (size_t i = 0; i < nsubj; i++) {
        if (toggle && n > 0 && trand_below(rng, 50) == 0) {
            char name[32];
            size_t r = trand_below(rng, n);
            snprintf(name, sizeof(name), "r%zu", r);
            assert_int_equal(
                rules_set_enabled(t, name, !rules_at(t, r)->enabled), 0);
        }
        random_subject(rng, &b, maxkeys, alphabet);
        long want = ref_decide(t, &b.s, matched, fired);
        struct rule *got = rules_decide(t, &b.s);
        long g = got != NULL ? (long)(got - rules_at(t, 0)) : -1;
        if (g != want) {
            fail_msg("subject %zu (%s, %zu keys): got rule %ld, want %ld", i,
                     b.s.name, b.s.nkeys, g, want);
        }
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rules_at(t, i)->matched, matched[i]);
        assert_int_equal(rules_at(t, i)->fired, fired[i]);
    }
    free(matched);
    free(fired);
}

static void test_index_differential(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 3, 20, 300, 300, 300, 300};
    uint64_t rng = 20261121;
    for (size_t round = 0; round < sizeof(sizes) / sizeof(sizes[0]); round++) {
        struct rules *t = random_table(&rng, sizes[round], round);
        compare_with_ref(t, &rng, 3000, 4, "ab:[]-\\^!*?", round % 2 == 1);
        rules_destroy(t);
    }
}

/*
 * One key glob behind 300 filler rules, so that the slot table is large
 * and a rule indexed under the wrong prefix or suffix is not found by
 * luck (a small table puts most anchors in one slot).
 */
static void test_index_anchor_table(void **state)
{
    (void)state;
    static const struct {
        const char *glob;
        const char *key;
        bool want;
    } cases[] = {
        {"abc*", "abcd", true},       {"abc*", "abc", true},
        {"abc", "abc", true},         {"abc", "abcd", false},
        {"abc", "ab", false},         {"abc*", "abd", false},
        {"a\\*c*", "a*cd", true},     {"a[bc]d*", "acde", true},
        {"[xy]z", "yz", true},        {"[^x]z", "yz", true},
        {"[^x]z", "xz", false},       {"*:lock", "x:lock", true},
        {"*:lock", "x:locks", false}, {"?x\\*", "ax*", true},
        {"*a[0-9]b", "xa5b", true},   {"*a[0-9]b", "xab", false},
        {"*a[b", "za[b", true},       {"*?ab", "xab", true},
        {"*ab*", "zzabzz", true},     {A80 "b*", A80 "bc", true},
        {A80 "b*", A80 "c", false},   {"*b" A80, "cb" A80, true},
        {"*b" A80, "c" A80, false},   {"x" A80 A80 "*", "x" A80 A80, true},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        size_t n = 301;
        struct rule *rs = calloc(n, sizeof(*rs));
        const char *star = "*";
        size_t one = 1;
        assert_non_null(rs);
        for (size_t i = 0; i < n; i++) {
            char pat[300];
            const char *k = pat;
            size_t kl;
            if (i < n - 1) {
                kl = (size_t)snprintf(pat, sizeof(pat), "filler%zu:*", i);
            } else {
                kl = (size_t)snprintf(pat, sizeof(pat), "%s", cases[c].glob);
            }
            rule_init(&rs[i], i < n - 1 ? "filler" : "target", &star, &one, 1,
                      &k, &kl, 1);
        }
        struct rules *t = rules_create(rs, n, 1);
        assert_non_null(t);
        struct sspec sp = {PROTO_OP_GET, "get", {cases[c].key}};
        const char *got = fired_name(t, &sp);
        bool hit = got != NULL && strcmp(got, "target") == 0;
        if (hit != cases[c].want || (got != NULL && !hit)) {
            fail_msg("glob %s key %s: got %s", cases[c].glob, cases[c].key,
                     got ? got : "(none)");
        }
        rules_destroy(t);
    }
}

/* Adds rule i ("r<i>", any command) with the given key globs. */
static void rule_with_keys(struct rule *rs, size_t i, const char *const *keys,
                           const size_t *lens, size_t n)
{
    const char *star = "*";
    size_t one = 1;
    char name[32];

    snprintf(name, sizeof(name), "r%zu", i);
    rule_init(&rs[i], name, &star, &one, 1, keys, lens, n);
}

/* Rules on every first byte, and multi-gets whose keys hit more lists
 * than rules_decide keeps cursors for; wild rules at both ends so that
 * lists span many words of the fallback bitmap. */
static void test_index_many_first_bytes(void **state)
{
    (void)state;
    uint64_t rng = 77;
    size_t n = 1 + 256 + 100 + 1 + 3;
    struct rule *rs = calloc(n, sizeof(*rs));
    size_t at = 0;

    assert_non_null(rs);
    {
        const char *k = "?*nomatch?"; /* wild, never matches */
        size_t kl = 10;
        rule_with_keys(rs, at++, &k, &kl, 1);
    }
    for (size_t i = 0; i < 256; i++) {
        /* "\<byte>x[a]*": anchored on "<byte>x" (escaped, so '*', '?',
         * '[', '\' are literal); keys "<byte>x<not a>" are candidates that
         * do not match. */
        char pat[7] = {'\\', (char)(255 - i), 'x', '[', 'a', ']', '*'};
        const char *k = pat;
        size_t kl = 7;
        rule_with_keys(rs, at++, &k, &kl, 1);
    }
    for (size_t i = 0; i < 100; i++) {
        char pat[16];
        const char *k = pat;
        size_t kl = (size_t)snprintf(pat, sizeof(pat), "never%zu", i);
        rule_with_keys(rs, at++, &k, &kl, 1);
    }
    {
        /* More anchors than the index keeps per rule: wild. */
        char pats[20][3];
        const char *k[20];
        size_t kl[20];
        for (size_t i = 0; i < 20; i++) {
            pats[i][0] = (char)('a' + i);
            pats[i][1] = 'y';
            pats[i][2] = '?';
            k[i] = pats[i];
            kl[i] = 3;
        }
        rule_with_keys(rs, at++, k, kl, 20);
    }
    static const char *const tail[] = {"[a-z0-9]y?", "?z?", "[^q]q?"};
    for (size_t i = 0; i < 3; i++) {
        const char *k = tail[i];
        size_t kl = strlen(k);
        rule_with_keys(rs, at++, &k, &kl, 1);
    }
    assert_int_equal(at, n);
    struct rules *t = rules_create(rs, n, 1);
    assert_non_null(t);

    /* Keys: up to 200, each "<any byte>" + one of x y z q w + one of
     * abc; for half the subjects not 'a', so that many lists are walked
     * and only the wild rules at the end can fire. */
    uint64_t *matched = calloc(n, sizeof(*matched));
    uint64_t *fired = calloc(n, sizeof(*fired));
    struct subj_buf b;
    assert_non_null(matched);
    assert_non_null(fired);
    for (size_t i = 0; i < 3000; i++) {
        subj_start(&b, PROTO_OP_GET, "get", 3);
        size_t nk = trand_below(&rng, 200);
        const char *third = i % 2 == 0 ? "abc" : "bc";
        for (size_t j = 0; j < nk; j++) {
            char key[3] = {(char)trand_below(&rng, 256),
                           "xyzqw"[trand_below(&rng, 5)],
                           third[trand_below(&rng, strlen(third))]};
            subj_key(&b, key, 3);
        }
        long want = ref_decide(t, &b.s, matched, fired);
        struct rule *got = rules_decide(t, &b.s);
        long g = got != NULL ? (long)(got - rules_at(t, 0)) : -1;
        if (g != want) {
            fail_msg("subject %zu (%zu keys): got rule %ld, want %ld", i,
                     b.s.nkeys, g, want);
        }
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rules_at(t, i)->matched, matched[i]);
        assert_int_equal(rules_at(t, i)->fired, fired[i]);
    }
    free(matched);
    free(fired);
    rules_destroy(t);
}

/* 1,000 rules that never match a command, then one that does. */
static void test_thousand_then_one(void **state)
{
    (void)state;
    size_t n = 1002;
    struct rule *rs = calloc(n, sizeof(*rs));
    const char *cmds[] = {"get", "set"};
    size_t cl[] = {3, 3};
    const char *del = "delete";
    size_t del_len = 6;

    assert_non_null(rs);
    for (size_t i = 0; i < n; i++) {
        char key[32];
        char name[32];
        const char *k = key;
        size_t kl;
        if (i < 1000) {
            kl = (size_t)snprintf(key, sizeof(key), "nomatch-%zu:*", i);
        } else {
            kl = (size_t)snprintf(key, sizeof(key), "key:*");
        }
        snprintf(name, sizeof(name), "r%zu", i);
        /* r1001 sets delete apart from incr only far past rule 64. */
        if (i == 1001) {
            rule_init(&rs[i], name, &del, &del_len, 1, &k, &kl, 1);
        } else {
            rule_init(&rs[i], name, cmds, cl, 2, &k, &kl, 1);
        }
    }
    struct rules *t = rules_create(rs, n, 1);
    assert_non_null(t);

    static const struct {
        struct sspec s;
        const char *want;
    } cases[] = {
        {GET("key:12345"), "r1000"},
        {SET("key:1"), "r1000"},
        {GET("nomatch-7:x"), "r7"},
        {GET("nomatch-999:"), "r999"},
        {GET("nomatch-1000:x"), NULL},
        {GET("zzz", "nomatch-3:a", "key:2"), "r3"},
        {{PROTO_OP_DELETE, "delete", {"key:1"}}, "r1001"},
        {{PROTO_OP_INCR, "incr", {"key:1"}}, NULL},
        {{PROTO_OP_DECR, "decr", {"key:1"}}, NULL},
        {{PROTO_OP_STATS, "stats", {NULL}}, NULL},
        {{PROTO_OP_UNKNOWN, "GET", {"key:1"}}, "r1000"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = fired_name(t, &cases[i].s);
        if ((got == NULL) != (cases[i].want == NULL) ||
            (got != NULL && strcmp(got, cases[i].want) != 0)) {
            fail_msg("case %zu: got %s, want %s", i, got ? got : "(none)",
                     cases[i].want ? cases[i].want : "(none)");
        }
    }
    assert_int_equal(rules_at(t, 1000)->matched, 3);
    assert_int_equal(rules_at(t, 500)->matched, 0);
    rules_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_action_names),
        cmocka_unit_test(test_op_is_retrieval),
        cmocka_unit_test(test_key_match),
        cmocka_unit_test(test_empty_table),
        cmocka_unit_test(test_too_many_rules),
        cmocka_unit_test(test_count_at_find),
        cmocka_unit_test(test_decide_table),
        cmocka_unit_test(test_gate_sequences),
        cmocka_unit_test(test_probability_edges_draw_nothing),
        cmocka_unit_test(test_probability_quarter),
        cmocka_unit_test(test_random_seeded),
        cmocka_unit_test(test_set_enabled),
        cmocka_unit_test(test_carry_counters),
        cmocka_unit_test(test_carry_counters_duplicate_names),
        cmocka_unit_test(test_defaults_and_clone),
        cmocka_unit_test(test_client_match),
        cmocka_unit_test(test_targeting),
        cmocka_unit_test(test_targeted_flag),
        cmocka_unit_test(test_connection_shares_nest),
        cmocka_unit_test(test_in_force),
        cmocka_unit_test(test_schedule_in_decide),
        cmocka_unit_test(test_clocks_carry),
        cmocka_unit_test(test_connect_rules),
        cmocka_unit_test(test_index_differential),
        cmocka_unit_test(test_index_anchor_table),
        cmocka_unit_test(test_index_many_first_bytes),
        cmocka_unit_test(test_thousand_then_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
