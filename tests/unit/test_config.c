/*
 * Unit tests for the config loader: tables for the duration and
 * probability helpers, good files checked field by field, and a table of
 * bad files with the exact messages (line:col) each must produce.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mcfault/config.h"

/* Messages expected from one bad file, at most this many. */
#define MAXMSG 12

/* ---- helpers ---- */

/* Parses a NUL-terminated text named "t.yaml". */
static int parse(const char *text, struct config *cfg,
                 struct config_errors *errs)
{
    return config_parse("t.yaml", text, strlen(text), cfg, errs);
}

/* Prints what came out, so a failing case shows all of it. */
static void dump_errors(const struct config_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++) {
        print_message("  got: %s\n", errs->msgs[i]);
    }
}

/* Parses text that must be valid; desc names it when it is not. */
static void parse_ok(const char *desc, const char *text, struct config *cfg)
{
    struct config_errors errs = {0};
    int rc = parse(text, cfg, &errs);
    if (rc != 0) {
        print_message("good: %s\n", desc);
        dump_errors(&errs);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(errs.n, 0);
    config_errors_free(&errs);
}

static void assert_glob(const struct rule_glob *g, const char *pat)
{
    assert_int_equal(g->len, strlen(pat));
    assert_memory_equal(g->pat, pat, g->len);
    assert_int_equal(g->pat[g->len], '\0');
}

/* The defaults every rule field has when its key is absent. */
static void assert_rule_defaults(const struct rule *r)
{
    assert_int_equal(r->ncmds, 1);
    assert_glob(&r->cmds[0], "*");
    assert_int_equal(r->nkeys, 1);
    assert_glob(&r->keys[0], "*");
    assert_null(r->message);
    assert_int_equal(r->message_len, 0);
    assert_int_equal(r->jitter_us, 0);
    assert_true(r->probability == 1.0);
    assert_int_equal(r->after, 0);
    assert_int_equal(r->limit, 0);
    assert_false(r->forward);
    assert_true(r->enabled);
    assert_int_equal(r->matched, 0);
    assert_int_equal(r->fired, 0);
}

/* ---- config_parse_duration ---- */

struct duration_case {
    const char *in;
    int rc;
    uint64_t us;
    const char *why; /* rc -1 */
};

static const struct duration_case duration_cases[] = {
    {"0s", 0, 0, NULL},
    {"0us", 0, 0, NULL},
    {"1us", 0, 1, NULL},
    {"250us", 0, 250, NULL},
    {"500ms", 0, 500000, NULL},
    {"1s", 0, 1000000, NULL},
    {"1.5s", 0, 1500000, NULL},
    {"0.5ms", 0, 500, NULL},
    {"0.001ms", 0, 1, NULL},
    {"1.000001s", 0, 1000001, NULL},
    {"2.50000000000s", 0, 2500000, NULL},
    {"3600s", 0, 3600000000ULL, NULL},
    {"007ms", 0, 7000, NULL},
    {"18446744073709551615us", 0, UINT64_MAX, NULL},
    {"18446744073709s", 0, 18446744073709000000ULL, NULL},
    {"500", -1, 0, "missing unit (us, ms, s)"},
    {"0", -1, 0, "missing unit (us, ms, s)"},
    {"1.5", -1, 0, "missing unit (us, ms, s)"},
    {"", -1, 0, "expected a number followed by a unit (us, ms, s)"},
    {"ms", -1, 0, "expected a number followed by a unit (us, ms, s)"},
    {".5s", -1, 0, "expected a number followed by a unit (us, ms, s)"},
    {"+5s", -1, 0, "expected a number followed by a unit (us, ms, s)"},
    {" 5s", -1, 0, "expected a number followed by a unit (us, ms, s)"},
    {"5.s", -1, 0, "expected digits after '.'"},
    {"-1ms", -1, 0, "negative durations are not allowed"},
    {"-0s", -1, 0, "negative durations are not allowed"},
    {"5 ms", -1, 0, "unknown unit (use us, ms or s)"},
    {"5ms ", -1, 0, "unknown unit (use us, ms or s)"},
    {"5m", -1, 0, "unknown unit (use us, ms or s)"},
    {"5h", -1, 0, "unknown unit (use us, ms or s)"},
    {"5MS", -1, 0, "unknown unit (use us, ms or s)"},
    {"5sec", -1, 0, "unknown unit (use us, ms or s)"},
    {"1e3ms", -1, 0, "unknown unit (use us, ms or s)"},
    {"1.5us", -1, 0, "finer than a microsecond"},
    {"0.0001ms", -1, 0, "finer than a microsecond"},
    {"18446744073709551616us", -1, 0, "too large"},
    {"18446744073710s", -1, 0, "too large"},
    {"99999999999999999999999999s", -1, 0, "too large"},
    {"18446744073709.551616s", -1, 0, "too large"},
};

static void test_duration_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(duration_cases) / sizeof(*duration_cases);
         i++) {
        const struct duration_case *c = &duration_cases[i];
        uint64_t us = 12345;
        const char *why = NULL;
        int rc = config_parse_duration(c->in, strlen(c->in), &us, &why);
        if (rc != c->rc || (rc == 0 && us != c->us)) {
            print_message("duration '%s'\n", c->in);
        }
        assert_int_equal(rc, c->rc);
        if (rc == 0) {
            assert_int_equal(us, c->us);
            assert_null(why);
        } else {
            assert_int_equal(us, 12345);
            assert_string_equal(why, c->why);
        }
    }
}

/* The length bounds the text: bytes after it are not read. */
static void test_duration_length(void **state)
{
    uint64_t us = 0;
    const char *why = NULL;
    (void)state;
    assert_int_equal(config_parse_duration("5msXYZ", 3, &us, NULL), 0);
    assert_int_equal(us, 5000);
    assert_int_equal(config_parse_duration("5ms", 2, &us, &why), -1);
    assert_string_equal(why, "unknown unit (use us, ms or s)");
    assert_int_equal(config_parse_duration("5\0s", 3, &us, &why), -1);
}

/* ---- config_parse_probability ---- */

struct prob_case {
    const char *in;
    int rc;
    double p;
    const char *why;
};

static const struct prob_case prob_cases[] = {
    {"0", 0, 0.0, NULL},
    {"1", 0, 1.0, NULL},
    {"0.25", 0, 0.25, NULL},
    {"0.1", 0, 0.1, NULL},
    {".5", 0, 0.5, NULL},
    {"1.", 0, 1.0, NULL},
    {"1.0000", 0, 1.0, NULL},
    {"0.000001", 0, 0.000001, NULL},
    {"000.5", 0, 0.5, NULL},
    {"25%", 0, 0.25, NULL},
    {"100%", 0, 1.0, NULL},
    {"0%", 0, 0.0, NULL},
    {"0.5%", 0, 0.005, NULL},
    {"12.5%", 0, 0.125, NULL},
    {"100.000%", 0, 1.0, NULL},
    /* digits past 17 decimals are below a double's step near 1 */
    {"0.33333333333333333333333", 0, 0.33333333333333333, NULL},
    {"1.5", -1, 0, "out of range"},
    {"1.0000000000000001", -1, 0, "out of range"},
    {"2", -1, 0, "out of range"},
    {"101", -1, 0, "out of range"},
    {"99999999999999999999999", -1, 0, "out of range"},
    {"101%", -1, 0, "out of range"},
    {"100.1%", -1, 0, "out of range"},
    {"-0.1", -1, 0, "negative"},
    {"-0", -1, 0, "negative"},
    {"", -1, 0, "not a number"},
    {".", -1, 0, "not a number"},
    {"%", -1, 0, "not a number"},
    {"nan", -1, 0, "not a number"},
    {"inf", -1, 0, "not a number"},
    {"1e-1", -1, 0, "not a number"},
    {"0,5", -1, 0, "not a number"},
    {" 0.5", -1, 0, "not a number"},
    {"0.5 ", -1, 0, "not a number"},
    {"50 %", -1, 0, "not a number"},
    {"50%%", -1, 0, "not a number"},
    {"0x1", -1, 0, "not a number"},
    {"+0.5", -1, 0, "not a number"},
};

static void test_probability_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(prob_cases) / sizeof(*prob_cases); i++) {
        const struct prob_case *c = &prob_cases[i];
        double p = -7;
        const char *why = NULL;
        int rc = config_parse_probability(c->in, strlen(c->in), &p, &why);
        if (rc != c->rc || (rc == 0 && p != c->p)) {
            print_message("probability '%s'\n", c->in);
        }
        assert_int_equal(rc, c->rc);
        if (rc == 0) {
            assert_true(p == c->p);
            assert_null(why);
        } else {
            assert_true(p == -7);
            assert_string_equal(why, c->why);
        }
    }
}

/* ---- good files ---- */

/* The example from docs/config.md, every key of a rule used once. */
static void test_single_proxy_every_key(void **state)
{
    static const char text[] =
        "listen: 0.0.0.0:11211\n"
        "upstream: memcached:11211\n"
        "seed: 42\n"
        "admin: 127.0.0.1:8080\n"
        "rules:\n"
        "  - name: oom-on-session-writes\n"
        "    command: set\n"
        "    key: \"session:*\"\n"
        "    action: error\n"
        "    message: SERVER_ERROR out of memory storing object\n"
        "    probability: 0.25\n"
        "    after: 10\n"
        "    limit: 3\n"
        "    forward: true\n"
        "    enabled: false\n"
        "  - name: slow-gets\n"
        "    command: [get, gets, MG]\n"
        "    action: delay\n"
        "    delay: 500ms\n"
        "    jitter: 100ms\n"
        "  - name: cache-partitioned\n"
        "    action: drop\n"
        "  - action: hang\n"
        "    key: [\"a*\", 'b?', \"[xyz]*\"]\n"
        "    probability: \"12.5%\"\n"
        "  - action: miss\n"
        "    command: \"g*\"\n";
    struct config cfg;
    (void)state;

    parse_ok(__func__, text, &cfg);
    assert_true(cfg.has_seed);
    assert_int_equal(cfg.seed, 42);
    assert_string_equal(cfg.admin, "127.0.0.1:8080");
    assert_int_equal(cfg.nproxies, 1);
    struct config_proxy *p = &cfg.proxies[0];
    assert_string_equal(p->name, "default");
    assert_string_equal(p->listen, "0.0.0.0:11211");
    assert_string_equal(p->upstream, "memcached:11211");
    assert_int_equal(p->line, 0);
    assert_int_equal(p->nrules, 5);

    struct rule *r = &p->rules[0];
    assert_string_equal(r->name, "oom-on-session-writes");
    assert_int_equal(r->line, 6);
    assert_int_equal(r->ncmds, 1);
    assert_glob(&r->cmds[0], "set");
    assert_int_equal(r->nkeys, 1);
    assert_glob(&r->keys[0], "session:*");
    assert_int_equal(r->action, RULE_ERROR);
    assert_int_equal(r->message_len,
                     strlen("SERVER_ERROR out of memory storing object"));
    assert_memory_equal(r->message, "SERVER_ERROR out of memory storing object",
                        r->message_len);
    assert_true(r->probability == 0.25);
    assert_int_equal(r->after, 10);
    assert_int_equal(r->limit, 3);
    assert_true(r->forward);
    assert_false(r->enabled);

    r = &p->rules[1];
    assert_string_equal(r->name, "slow-gets");
    assert_int_equal(r->line, 16);
    assert_int_equal(r->ncmds, 3);
    assert_glob(&r->cmds[0], "get");
    assert_glob(&r->cmds[1], "gets");
    assert_glob(&r->cmds[2], "MG"); /* stored as written */
    assert_int_equal(r->action, RULE_DELAY);
    assert_int_equal(r->delay_us, 500000);
    assert_int_equal(r->jitter_us, 100000);
    assert_true(r->enabled);

    r = &p->rules[2];
    assert_string_equal(r->name, "cache-partitioned");
    assert_int_equal(r->action, RULE_DROP);
    assert_int_equal(r->delay_us, 0);
    assert_rule_defaults(r);

    r = &p->rules[3];
    assert_string_equal(r->name, "rule-4");
    assert_int_equal(r->line, 23);
    assert_int_equal(r->action, RULE_HANG);
    assert_int_equal(r->nkeys, 3);
    assert_glob(&r->keys[0], "a*");
    assert_glob(&r->keys[1], "b?");
    assert_glob(&r->keys[2], "[xyz]*");
    assert_true(r->probability == 0.125);

    r = &p->rules[4];
    assert_string_equal(r->name, "rule-5");
    assert_int_equal(r->action, RULE_MISS);
    assert_glob(&r->cmds[0], "g*");

    config_free(&cfg);
    assert_null(cfg.proxies);
    assert_int_equal(cfg.nproxies, 0);
    config_free(&cfg); /* an emptied config may be freed again */
}

static void test_multi_proxy(void **state)
{
    static const char text[] =
        "seed: 0\n"
        "proxies:\n"
        "  - name: sessions\n"
        "    listen: 127.0.0.1:22122\n"
        "    upstream: 127.0.0.1:11211\n"
        "    rules:\n"
        "      - {name: slow, action: delay, delay: 1.5s}\n"
        "  - listen: 127.0.0.1:22123\n"
        "    upstream: \"[::1]:11212\"\n"
        "  - listen: 127.0.0.1:22124\n"
        "    upstream: cache\n"
        "    rules: []\n"
        "  - {listen: \"127.0.0.1:22125\", upstream: x:1,\n"
        "     rules: [{action: drop}, {action: drop, key: a}]}\n";
    struct config cfg;
    (void)state;

    parse_ok(__func__, text, &cfg);
    assert_true(cfg.has_seed);
    assert_int_equal(cfg.seed, 0);
    assert_null(cfg.admin);
    assert_int_equal(cfg.nproxies, 4);

    assert_string_equal(cfg.proxies[0].name, "sessions");
    assert_string_equal(cfg.proxies[0].listen, "127.0.0.1:22122");
    assert_string_equal(cfg.proxies[0].upstream, "127.0.0.1:11211");
    assert_int_equal(cfg.proxies[0].line, 3);
    assert_int_equal(cfg.proxies[0].nrules, 1);
    assert_string_equal(cfg.proxies[0].rules[0].name, "slow");
    assert_int_equal(cfg.proxies[0].rules[0].delay_us, 1500000);
    assert_int_equal(cfg.proxies[0].rules[0].line, 7);

    assert_string_equal(cfg.proxies[1].name, "proxy-2");
    assert_string_equal(cfg.proxies[1].upstream, "[::1]:11212");
    assert_int_equal(cfg.proxies[1].line, 8);
    assert_int_equal(cfg.proxies[1].nrules, 0);
    assert_null(cfg.proxies[1].rules);

    assert_string_equal(cfg.proxies[2].name, "proxy-3");
    assert_int_equal(cfg.proxies[2].nrules, 0);

    assert_string_equal(cfg.proxies[3].name, "proxy-4");
    assert_int_equal(cfg.proxies[3].line, 13);
    assert_int_equal(cfg.proxies[3].nrules, 2);
    /* rule names count within their own list */
    assert_string_equal(cfg.proxies[3].rules[0].name, "rule-1");
    assert_string_equal(cfg.proxies[3].rules[1].name, "rule-2");
    assert_glob(&cfg.proxies[3].rules[1].keys[0], "a");
    assert_rule_defaults(&cfg.proxies[3].rules[0]);
    config_free(&cfg);
}

/* Files that are valid, with what must hold of the result. */
struct good_case {
    const char *desc;
    const char *text;
    size_t nrules;
    const char *listen; /* NULL: absent */
};

static const struct good_case good_cases[] = {
    {"empty file", "", 0, NULL},
    {"comments only", "# nothing yet\n\n", 0, NULL},
    {"empty document", "---\n", 0, NULL},
    {"explicit document", "---\nlisten: a:1\n...\n", 0, "a:1"},
    {"rules null", "rules:\n", 0, NULL},
    {"rules empty", "rules: []\n", 0, NULL},
    {"flow top level", "{listen: 'a:1', rules: [{action: drop}]}", 1, "a:1"},
    {"CRLF lines", "listen: a:1\r\nrules:\r\n  - action: drop\r\n", 1, "a:1"},
    {"quoted numbers",
     "rules:\n  - {action: drop, after: \"5\", limit: '7', probability: "
     "'0.5'}\n",
     1, NULL},
    {"anchors without aliases", "rules:\n  - &r {action: drop}\n", 1, NULL},
    {"tags ignored", "rules:\n  - action: !!str drop\n", 1, NULL},
    {"names that look like defaults",
     "rules:\n  - {name: rule-2, action: drop}\n  - {name: x, action: "
     "drop}\n",
     2, NULL},
    {"bool spellings",
     "rules:\n  - {action: drop, enabled: True, forward: FALSE}\n"
     "  - {action: drop, enabled: TRUE, forward: False}\n",
     2, NULL},
    {"empty key glob", "rules:\n  - {action: drop, key: \"\"}\n", 1, NULL},
    {"command case and escapes",
     "rules:\n  - {action: drop, command: [SET, Gets, \"\\\\set\", "
     "\"[sg]et\"]}\n",
     1, NULL},
    {"every command name",
     "rules:\n  - action: drop\n    command: [get, gets, gat, gats, set, "
     "add, replace, append, prepend, cas, delete, incr, decr, touch, mg, "
     "ms, md, ma, mn, me, stats, flush_all, version, verbosity, quit, "
     "shutdown, cache_memlimit, slabs, lru, lru_crawler, watch, "
     "misbehave, bget]\n",
     1, NULL},
    {"miss on retrievals and globs",
     "rules:\n  - {action: miss, command: [get, GETS, gat, gats, mg, "
     "\"s*\"]}\n",
     1, NULL},
    {"delay edge values",
     "rules:\n  - {action: delay, delay: 3600s, jitter: 3600s}\n"
     "  - {action: delay, delay: 0s}\n",
     2, NULL},
    {"probability edges",
     "rules:\n  - {action: drop, probability: 0}\n"
     "  - {action: drop, probability: 100%}\n",
     2, NULL},
    {"forward with every allowed action",
     "rules:\n  - {action: error, message: ERROR, forward: true}\n"
     "  - {action: delay, delay: 1ms, forward: true}\n"
     "  - {action: drop, forward: true}\n"
     "  - {action: hang, forward: false}\n",
     4, NULL},
    {"max integers",
     "seed: 18446744073709551615\nrules:\n  - {action: drop, after: "
     "18446744073709551615, limit: 0}\n",
     1, NULL},
    {"message with tab and UTF-8",
     "rules:\n  - {action: error, message: \"SERVER_ERROR \\t \xc3\xa9\"}\n", 1,
     NULL},
    {"128-byte name",
     "rules:\n  - {action: drop, name: "
     "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}"
     "\n",
     1, NULL},
};

static void test_good_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(good_cases) / sizeof(*good_cases); i++) {
        const struct good_case *c = &good_cases[i];
        struct config cfg;
        parse_ok(c->desc, c->text, &cfg);
        assert_int_equal(cfg.nproxies, 1);
        assert_string_equal(cfg.proxies[0].name, "default");
        assert_int_equal(cfg.proxies[0].nrules, c->nrules);
        if (c->listen != NULL) {
            assert_string_equal(cfg.proxies[0].listen, c->listen);
        } else {
            assert_null(cfg.proxies[0].listen);
        }
        assert_null(cfg.proxies[0].upstream);
        for (size_t j = 0; j < cfg.proxies[0].nrules; j++) {
            const struct rule *r = &cfg.proxies[0].rules[j];
            assert_non_null(r->name);
            assert_true(r->ncmds >= 1);
            assert_true(r->nkeys >= 1);
        }
        config_free(&cfg);
    }
}

/* Values that need a closer look than the table gives. */
static void test_good_details(void **state)
{
    struct config cfg;
    (void)state;

    /* a message keeps its bytes: no trimming, no terminator */
    parse_ok(__func__,
             "rules:\n  - {action: error, message: \"  SERVER_ERROR x  \"}\n",
             &cfg);
    assert_int_equal(cfg.proxies[0].rules[0].message_len, 18);
    assert_memory_equal(cfg.proxies[0].rules[0].message, "  SERVER_ERROR x  ",
                        18);
    assert_false(cfg.has_seed);
    config_free(&cfg);

    /* a key glob may hold a NUL byte; len counts it */
    parse_ok(__func__, "rules:\n  - {action: drop, key: \"a\\0*\"}\n", &cfg);
    assert_int_equal(cfg.proxies[0].rules[0].keys[0].len, 3);
    assert_memory_equal(cfg.proxies[0].rules[0].keys[0].pat, "a\0*", 4);
    config_free(&cfg);

    /* percentages and fractions */
    parse_ok(__func__,
             "rules:\n  - {action: drop, probability: 25%}\n"
             "  - {action: drop, probability: 0.75}\n",
             &cfg);
    assert_true(cfg.proxies[0].rules[0].probability == 0.25);
    assert_true(cfg.proxies[0].rules[1].probability == 0.75);
    config_free(&cfg);

    /* a scalar and a one-item list give the same globs */
    parse_ok(__func__,
             "rules:\n  - {action: drop, command: get, key: k}\n"
             "  - {action: drop, command: [get], key: [k]}\n",
             &cfg);
    for (size_t j = 0; j < 2; j++) {
        assert_int_equal(cfg.proxies[0].rules[j].ncmds, 1);
        assert_glob(&cfg.proxies[0].rules[j].cmds[0], "get");
        assert_int_equal(cfg.proxies[0].rules[j].nkeys, 1);
        assert_glob(&cfg.proxies[0].rules[j].keys[0], "k");
    }
    config_free(&cfg);
}

/* ---- watch ---- */

static const struct {
    const char *text;
    int rc;
    bool watch;
    const char *error; /* rc -1: the one message */
} watch_cases[] = {
    {"rules: []\n", 0, false, NULL},
    {"watch: true\n", 0, true, NULL},
    {"watch: false\n", 0, false, NULL},
    {"watch: True\nrules: []\n", 0, true, NULL},
    {"watch: maybe\n", -1, false,
     "t.yaml:1:8: 'watch' must be true or false, got 'maybe'"},
    {"watch: [true]\n", -1, false, "t.yaml:1:8: expected true or false"},
};

/* watch: turns on --watch-config from the file. */
static void test_watch(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(watch_cases) / sizeof(*watch_cases); i++) {
        struct config cfg;
        struct config_errors errs = {0};
        int rc = parse(watch_cases[i].text, &cfg, &errs);
        if (rc != watch_cases[i].rc) {
            print_message("case %zu: %s", i, watch_cases[i].text);
            dump_errors(&errs);
        }
        assert_int_equal(rc, watch_cases[i].rc);
        if (rc == 0) {
            assert_int_equal(cfg.watch, watch_cases[i].watch);
            config_free(&cfg);
        } else {
            assert_int_equal(errs.n, 1);
            assert_string_equal(errs.msgs[0], watch_cases[i].error);
        }
        config_errors_free(&errs);
    }
}

/* ---- max_connections ---- */

struct count_case {
    const char *value; /* as written after "max_connections: " */
    uint64_t want;     /* 0: refused */
};

static const struct count_case count_cases[] = {
    {"1", 1},    {"1024", 1024}, {"500000", 500000},
    {"007", 7},  {"\"64\"", 64}, {"0", 0},
    {"000", 0},  {"500001", 0},  {"18446744073709551617", 0},
    {"-1", 0},   {"+5", 0},      {"1.5", 0},
    {"1e3", 0},  {"0x10", 0},    {"ten", 0},
    {"\"\"", 0}, {"' 5'", 0},
};

/* Each value alone at the top level: taken as the number, or refused
 * with the value quoted as YAML read it. */
static void test_max_connections(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(count_cases) / sizeof(*count_cases); i++) {
        const struct count_case *c = &count_cases[i];
        char text[128];
        char want[256];
        char shown[64];
        struct config cfg;
        struct config_errors errs = {0};

        snprintf(text, sizeof(text), "max_connections: %s\n", c->value);
        int rc = parse(text, &cfg, &errs);
        if (c->want != 0) {
            if (rc != 0) {
                print_message("good: %s\n", text);
                dump_errors(&errs);
            }
            assert_int_equal(rc, 0);
            assert_int_equal(cfg.max_connections, c->want);
            config_free(&cfg);
            continue;
        }
        /* the scalar's text: quotes stripped */
        size_t n = strlen(c->value);
        bool quoted = c->value[0] == '"' || c->value[0] == '\'';
        snprintf(shown, sizeof(shown), "%.*s", (int)(quoted ? n - 2 : n),
                 c->value + quoted);
        snprintf(want, sizeof(want),
                 "t.yaml:1:18: 'max_connections' must be an integer from 1 "
                 "to %d, got '%s'",
                 CONFIG_MAX_CONNECTIONS_MAX, shown);
        if (rc != -1 || errs.n != 1 || strcmp(errs.msgs[0], want) != 0) {
            print_message("bad: %s\n  want: %s\n", text, want);
            dump_errors(&errs);
        }
        assert_int_equal(rc, -1);
        assert_int_equal(errs.n, 1);
        assert_string_equal(errs.msgs[0], want);
        config_errors_free(&errs);
    }

    /* absent: 0, and the proxies form takes it too */
    struct config cfg;
    parse_ok(__func__, "seed: 1\n", &cfg);
    assert_int_equal(cfg.max_connections, 0);
    config_free(&cfg);
    parse_ok(__func__,
             "max_connections: 3\nproxies:\n  - {listen: a, upstream: b}\n",
             &cfg);
    assert_int_equal(cfg.max_connections, 3);
    assert_int_equal(cfg.nproxies, 1);
    config_free(&cfg);
}

/* ---- bad files ---- */

struct bad_case {
    const char *desc;
    const char *text;
    const char *msgs[MAXMSG]; /* NULL-terminated, in order */
};

static const struct bad_case bad_cases[] = {
    /* YAML itself */
    {"syntax error",
     "listen: a\n  bad: indent\n",
     {"t.yaml:2:6: mapping values are not allowed in this context"}},
    {"syntax error with context",
     "rules: [a, b\n",
     {"t.yaml:2:1: did not find expected ',' or ']' (while parsing a flow "
      "sequence at line 1, column 8)"}},
    {"syntax error stops before schema errors",
     "bogus: 1\nrules: [\n",
     {"t.yaml:3:1: did not find expected node content (while parsing a "
      "flow node at line 3, column 1)"}},
    {"invalid UTF-8",
     "listen: a\nname: \x80\n",
     {"t.yaml:2:7: invalid leading UTF-8 octet (byte 0x80)"}},
    {"control character",
     "listen: \"a\x01\"\n",
     {"t.yaml:1:11: control characters are not allowed (byte 0x01)"}},
    {"aliases",
     "a: &x [1, 2]\nb: *x\nc: [*x, *x]\n",
     {"t.yaml:2:4: aliases are not supported",
      "t.yaml:3:5: aliases are not supported",
      "t.yaml:3:9: aliases are not supported"}},
    {"billion laughs",
     "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: [*c, *c]\n",
     {"t.yaml:2:8: aliases are not supported",
      "t.yaml:2:12: aliases are not supported",
      "t.yaml:3:8: aliases are not supported",
      "t.yaml:3:12: aliases are not supported",
      "t.yaml:4:5: aliases are not supported",
      "t.yaml:4:9: aliases are not supported"}},
    {"recursive alias",
     "a: &a [*a]\n",
     {"t.yaml:1:8: aliases are not supported"}},
    {"duplicate anchor",
     "a: &x 1\nb: &x 2\n",
     {"t.yaml:2:4: duplicate anchor (first at line 1, column 4)"}},
    {"two documents",
     "listen: a\n---\nlisten: b\n",
     {"t.yaml:2:1: expected a single YAML document"}},

    /* top level */
    {"top level not a mapping", "[1, 2]\n", {"t.yaml:1:1: expected a mapping"}},
    {"top level scalar", "hello\n", {"t.yaml:1:1: expected a mapping"}},
    {"unknown top-level key",
     "listen: a\nrule: []\n",
     {"t.yaml:2:1: unknown key 'rule' at top level (known: listen, "
      "upstream, rules, proxies, seed, admin, max_connections, watch)"}},
    {"max_connections not a number",
     "proxies:\n  - {listen: a, upstream: b}\nmax_connections: 1k\n",
     {"t.yaml:3:18: 'max_connections' must be an integer from 1 to 500000, "
      "got '1k'"}},
    {"max_connections missing or not a scalar",
     "max_connections:\n",
     {"t.yaml:1:17: missing value for 'max_connections'"}},
    {"max_connections a list",
     "max_connections: [5]\n",
     {"t.yaml:1:18: expected a positive integer"}},
    {"max_connections inside a proxy",
     "proxies:\n  - {listen: a, upstream: b, max_connections: 5}\n",
     {"t.yaml:2:30: unknown key 'max_connections' in proxy (known: name, "
      "listen, upstream, rules)"}},
    {"duplicate top-level key",
     "listen: a\nupstream: b\nlisten: c\n",
     {"t.yaml:3:1: duplicate key 'listen' (first at line 1)"}},
    {"non-scalar key",
     "? [a]\n: 1\n",
     {"t.yaml:1:3: mapping keys must be strings"}},
    {"listen not a string",
     "listen: {a: 1}\nupstream: [b]\n",
     {"t.yaml:1:9: expected a string", "t.yaml:2:11: expected a string"}},
    {"listen empty or null",
     "listen: ''\nupstream:\nadmin: ~\n",
     {"t.yaml:1:9: 'listen' must not be empty",
      "t.yaml:2:10: missing value for 'upstream'",
      "t.yaml:3:8: missing value for 'admin'"}},
    {"listen with a newline",
     "listen: \"a\\n\"\n",
     {"t.yaml:1:9: 'listen' must not contain control characters"}},
    {"bad seeds",
     "seed: -1\n",
     {"t.yaml:1:7: 'seed' must be a non-negative integer, got '-1'"}},
    {"seed float",
     "seed: 1.5\n",
     {"t.yaml:1:7: 'seed' must be a non-negative integer, got '1.5'"}},
    {"seed hex",
     "seed: 0x10\n",
     {"t.yaml:1:7: 'seed' must be a non-negative integer, got '0x10'"}},
    {"seed empty string",
     "seed: \"\"\n",
     {"t.yaml:1:7: 'seed' must be a non-negative integer, got ''"}},
    {"seed overflow",
     "seed: 18446744073709551616\n",
     {"t.yaml:1:7: 'seed' is too large (at most 18446744073709551615), got "
      "'18446744073709551616'"}},
    {"seed list",
     "seed: [1]\n",
     {"t.yaml:1:7: expected a non-negative integer"}},
    {"rules not a list",
     "rules: {action: drop}\n",
     {"t.yaml:1:8: expected a list"}},
    {"rules a string", "rules: drop\n", {"t.yaml:1:8: expected a list"}},

    /* proxies */
    {"proxies combined with single-proxy keys",
     "listen: a\nupstream: b\nrules: []\nproxies:\n  - {listen: c, upstream: "
     "d}\n",
     {"t.yaml:1:1: 'listen' and 'proxies' cannot be combined",
      "t.yaml:2:1: 'upstream' and 'proxies' cannot be combined",
      "t.yaml:3:1: 'rules' and 'proxies' cannot be combined"}},
    {"proxies empty",
     "proxies: []\n",
     {"t.yaml:1:10: 'proxies' must not be an empty list"}},
    {"proxies null", "proxies:\n", {"t.yaml:1:9: missing value for 'proxies'"}},
    {"proxies a mapping",
     "proxies: {a: 1}\n",
     {"t.yaml:1:10: expected a list"}},
    {"proxy problems",
     "proxies:\n"
     "  - name: a\n"
     "    listen: x:1\n"
     "    upstream: m:1\n"
     "  - name: a\n"
     "    listen: x:1\n"
     "    upstream: m:1\n"
     "  - listen: y:1\n"
     "  - 7\n"
     "  - upstream: m\n"
     "    seed: 1\n"
     "  - name: proxy-3\n"
     "    listen: z:1\n"
     "    upstream: m\n",
     {"t.yaml:5:11: duplicate proxy name 'a' (first at line 2)",
      "t.yaml:6:13: duplicate listen address 'x:1' (first at line 3)",
      "t.yaml:8:5: proxy 'proxy-3': missing 'upstream'",
      "t.yaml:9:5: expected a mapping",
      "t.yaml:10:5: proxy 'proxy-5': missing 'listen'",
      "t.yaml:11:5: unknown key 'seed' in proxy (known: name, listen, "
      "upstream, rules)",
      "t.yaml:12:11: duplicate proxy name 'proxy-3' (first at line 8)"}},
    {"rules inside a proxy are checked",
     "proxies:\n  - listen: a\n    upstream: b\n    rules:\n      - action: "
     "boom\n",
     {"t.yaml:5:17: 'action' must be one of error, delay, drop, hang, miss, "
      "got 'boom'"}},

    /* rules: shape */
    {"rule not a mapping",
     "rules:\n  - drop\n  - [a]\n",
     {"t.yaml:2:5: expected a mapping", "t.yaml:3:5: expected a mapping"}},
    {"unknown rule key",
     "rules:\n  - action: delay\n    delya: 5ms\n",
     {"t.yaml:2:5: rule 'rule-1': action delay needs 'delay'",
      "t.yaml:3:5: unknown key 'delya' in rule (known: name, command, key, "
      "action, message, delay, jitter, probability, after, limit, forward, "
      "enabled)"}},
    {"duplicate rule key",
     "rules:\n  - action: drop\n    key: a\n    key: b\n",
     {"t.yaml:4:5: duplicate key 'key' (first at line 3)"}},
    {"missing action",
     "rules:\n  - name: x\n  - {}\n",
     {"t.yaml:2:5: rule 'x': missing 'action'",
      "t.yaml:3:5: rule 'rule-2': missing 'action'"}},
    {"bad action",
     "rules:\n  - action: explode\n  - action: Drop\n  - action: [drop]\n"
     "  - action:\n",
     {"t.yaml:2:13: 'action' must be one of error, delay, drop, hang, miss, "
      "got 'explode'",
      "t.yaml:3:13: 'action' must be one of error, delay, drop, hang, miss, "
      "got 'Drop'",
      "t.yaml:4:13: expected a string",
      "t.yaml:5:12: missing value for 'action'"}},

    /* names */
    {"duplicate rule names",
     "rules:\n  - name: x\n    action: drop\n  - {name: y, action: drop}\n"
     "  - {name: x, action: drop}\n  - {name: rule-5, action: drop}\n"
     "  - {action: drop}\n  - {name: x, action: drop}\n",
     {"t.yaml:5:12: duplicate rule name 'x' (first at line 2)",
      "t.yaml:7:5: duplicate rule name 'rule-5' (first at line 6)",
      "t.yaml:8:12: duplicate rule name 'x' (first at line 2)"}},
    {"bad names",
     "rules:\n  - {name: '', action: drop}\n  - {name: \"a\\tb\", action: "
     "drop}\n  - {name: [a], action: drop}\n",
     {"t.yaml:2:12: 'name' must not be empty",
      "t.yaml:3:12: 'name' must not contain control characters",
      "t.yaml:4:12: expected a string"}},
    {"name too long",
     "rules:\n  - {action: drop, name: "
     "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxy\"}"
     "\n",
     {"t.yaml:2:26: 'name' is longer than 128 bytes"}},

    /* command and key */
    {"unknown command",
     "rules:\n  - action: drop\n    command: [get, sett, \"\", \"s*\", "
     "flush-all]\n",
     {"t.yaml:3:20: unknown command 'sett' in 'command'",
      "t.yaml:3:26: unknown command '' in 'command'",
      "t.yaml:3:36: unknown command 'flush-all' in 'command'"}},
    {"bad globs",
     "rules:\n  - action: drop\n    key: \"abc[\"\n    command: \"g[]\"\n"
     "  - action: drop\n    key: [ok, 'x\\', \"[z-a]\"]\n",
     {"t.yaml:3:10: bad glob in 'key': unterminated character class at "
      "offset 3",
      "t.yaml:4:14: bad glob in 'command': unterminated character class (a "
      "']' right after '[' or '[^' is a member) at offset 1",
      "t.yaml:6:15: bad glob in 'key': trailing backslash at offset 1",
      "t.yaml:6:21: bad glob in 'key': character class range out of order "
      "at offset 1"}},
    {"glob lists: empty, nested, null",
     "rules:\n  - action: drop\n    command: []\n    key: [a, [b], ~]\n"
     "  - action: drop\n    key: {a: b}\n    command:\n",
     {"t.yaml:3:14: 'command' must not be an empty list",
      "t.yaml:4:14: expected a string", "t.yaml:4:19: missing value in 'key'",
      "t.yaml:6:10: expected a string or a list of strings",
      "t.yaml:7:13: missing value for 'command'"}},

    /* message */
    {"error without message",
     "rules:\n  - name: x\n    action: error\n",
     {"t.yaml:2:5: rule 'x': action error needs 'message'"}},
    {"bad messages",
     "rules:\n  - {action: error, message: \"\"}\n"
     "  - {action: error, message: \"a\\r\\nb\"}\n"
     "  - {action: error, message: \"a\\0b\"}\n"
     "  - {action: error, message: [a]}\n",
     {"t.yaml:2:30: 'message' must not be empty",
      "t.yaml:3:30: 'message' must be a single line (no CR, LF or NUL)",
      "t.yaml:4:30: 'message' must be a single line (no CR, LF or NUL)",
      "t.yaml:5:30: expected a string"}},
    {"multi-line block scalar message",
     "rules:\n  - action: error\n    message: |\n      SERVER_ERROR x\n",
     {"t.yaml:3:14: 'message' must be a single line (no CR, LF or NUL)"}},
    {"message with another action",
     "rules:\n  - {action: drop, message: x}\n",
     {"t.yaml:2:20: 'message' only applies to action error"}},

    /* delay and jitter */
    {"delay without delay",
     "rules:\n  - {name: d, action: delay}\n",
     {"t.yaml:2:5: rule 'd': action delay needs 'delay'"}},
    {"delay keys with another action",
     "rules:\n  - action: error\n    message: x\n    delay: 1s\n    jitter: "
     "1ms\n",
     {"t.yaml:4:5: 'delay' only applies to action delay",
      "t.yaml:5:5: 'jitter' only applies to action delay"}},
    {"bad durations",
     "rules:\n  - {action: delay, delay: 500}\n"
     "  - {action: delay, delay: 1h}\n"
     "  - {action: delay, delay: -5ms}\n"
     "  - {action: delay, delay: 3601s}\n"
     "  - {action: delay, delay: 1s, jitter: 1.5us}\n"
     "  - {action: delay, delay: [1s]}\n",
     {"t.yaml:2:28: bad duration '500': missing unit (us, ms, s)",
      "t.yaml:3:28: bad duration '1h': unknown unit (use us, ms or s)",
      "t.yaml:4:28: bad duration '-5ms': negative durations are not allowed",
      "t.yaml:5:28: 'delay' must be at most 3600s, got '3601s'",
      "t.yaml:6:40: bad duration '1.5us': finer than a microsecond",
      "t.yaml:7:28: expected a duration such as 500ms"}},
    {"jitter over delay",
     "rules:\n  - action: delay\n    delay: 100ms\n    jitter: 100001us\n",
     {"t.yaml:4:13: 'jitter' (100001us) must not exceed 'delay' (100ms)"}},

    /* probability, after, limit, booleans */
    {"bad probabilities",
     "rules:\n  - {action: drop, probability: 1.5}\n"
     "  - {action: drop, probability: 101%}\n"
     "  - {action: drop, probability: -0.5}\n"
     "  - {action: drop, probability: .nan}\n"
     "  - {action: drop, probability: {p: 1}}\n",
     {"t.yaml:2:33: 'probability' must be between 0 and 1 or a percentage, "
      "got '1.5'",
      "t.yaml:3:33: 'probability' must be between 0 and 1 or a percentage, "
      "got '101%'",
      "t.yaml:4:33: 'probability' must be between 0 and 1 or a percentage, "
      "got '-0.5'",
      "t.yaml:5:33: 'probability' must be between 0 and 1 or a percentage, "
      "got '.nan'",
      "t.yaml:6:33: expected a probability (0..1 or a percentage)"}},
    {"bad counters",
     "rules:\n  - {action: drop, after: -1, limit: 2.0}\n"
     "  - {action: drop, after: 1e3, limit: 99999999999999999999}\n",
     {"t.yaml:2:27: 'after' must be a non-negative integer, got '-1'",
      "t.yaml:2:38: 'limit' must be a non-negative integer, got '2.0'",
      "t.yaml:3:27: 'after' must be a non-negative integer, got '1e3'",
      "t.yaml:3:39: 'limit' is too large (at most 18446744073709551615), "
      "got '99999999999999999999'"}},
    {"bad booleans",
     "rules:\n  - {action: drop, forward: yes, enabled: 1}\n"
     "  - {action: drop, enabled: \"\"}\n",
     {"t.yaml:2:29: 'forward' must be true or false, got 'yes'",
      "t.yaml:2:43: 'enabled' must be true or false, got '1'",
      "t.yaml:3:29: 'enabled' must be true or false, got ''"}},
    {"forward with miss",
     "rules:\n  - action: miss\n    forward: false\n",
     {"t.yaml:3:5: 'forward' cannot be used with action miss"}},
    {"miss on commands that are not retrievals",
     "rules:\n  - action: miss\n    command: [get, set, \"m*\", DELETE]\n",
     {"t.yaml:3:20: action miss only applies to retrievals (get, gets, gat, "
      "gats, mg), not 'set'",
      "t.yaml:3:31: action miss only applies to retrievals (get, gets, gat, "
      "gats, mg), not 'DELETE'"}},

    /* values are quoted safely in messages */
    {"control bytes and long values in messages",
     "rules:\n  - {action: drop, probability: \"\\t\\0\\x7f\"}\n"
     "  - {action: drop, after: "
     "123456789012345678901234567890123456789012345678901234567890}\n",
     {"t.yaml:2:33: 'probability' must be between 0 and 1 or a percentage, "
      "got '\\t\\0\\x7f'",
      "t.yaml:3:27: 'after' is too large (at most 18446744073709551615), got "
      "'1234567890123456789012345678901234567890...'"}},

    /* several problems, reported in file order across passes */
    {"many errors in file order",
     "seed: x\n"
     "rules:\n"
     "  - name: a\n"
     "    action: error\n"
     "    delay: 5\n"
     "  - name: a\n"
     "    action: delay\n"
     "    delay: 1s\n"
     "    jitter: 2s\n"
     "    bogus: 1\n"
     "admin: [x]\n",
     {"t.yaml:1:7: 'seed' must be a non-negative integer, got 'x'",
      "t.yaml:3:5: rule 'a': action error needs 'message'",
      "t.yaml:5:5: 'delay' only applies to action delay",
      "t.yaml:5:12: bad duration '5': missing unit (us, ms, s)",
      "t.yaml:6:11: duplicate rule name 'a' (first at line 3)",
      "t.yaml:9:13: 'jitter' (2s) must not exceed 'delay' (1s)",
      "t.yaml:10:5: unknown key 'bogus' in rule (known: name, command, key, "
      "action, message, delay, jitter, probability, after, limit, forward, "
      "enabled)",
      "t.yaml:11:8: expected a string"}},
};

static void check_bad(const char *desc, const char *text, size_t len,
                      const char *const *want)
{
    struct config cfg;
    struct config_errors errs = {0};
    size_t nwant = 0;

    while (nwant < MAXMSG && want[nwant] != NULL) {
        nwant++;
    }
    int rc = config_parse("t.yaml", text, len, &cfg, &errs);
    bool same = rc == -1 && errs.n == nwant;
    for (size_t i = 0; same && i < nwant; i++) {
        same = strcmp(errs.msgs[i], want[i]) == 0;
    }
    if (!same) {
        print_message("bad: %s\n", desc);
        dump_errors(&errs);
    }
    assert_int_equal(rc, -1);
    assert_null(cfg.proxies);
    assert_int_equal(cfg.nproxies, 0);
    assert_null(cfg.admin);
    assert_false(cfg.has_seed);
    assert_int_equal(errs.n, nwant);
    for (size_t i = 0; i < nwant; i++) {
        assert_string_equal(errs.msgs[i], want[i]);
    }
    config_errors_free(&errs);
    assert_null(errs.msgs);
    assert_int_equal(errs.n, 0);
}

static void test_bad_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(*bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        check_bad(c->desc, c->text, strlen(c->text), c->msgs);
    }
}

/* Input with a NUL byte: the length, not the NUL, ends the text. */
static void test_nul_in_input(void **state)
{
    static const char text[] = "listen: a\0b\n";
    static const char *const want[] = {
        "t.yaml:1:10: control characters are not allowed (byte 0x00)", NULL};
    (void)state;
    check_bad("NUL byte", text, sizeof(text) - 1, want);
}

/* Errors are appended: what errs held before stays, in front. */
static void test_errors_append(void **state)
{
    struct config cfg;
    struct config_errors errs = {0};
    (void)state;

    assert_int_equal(parse("seed: a\n", &cfg, &errs), -1);
    assert_int_equal(parse("bogus: 1\nseed: b\n", &cfg, &errs), -1);
    assert_int_equal(errs.n, 3);
    assert_string_equal(errs.msgs[0],
                        "t.yaml:1:7: 'seed' must be a non-negative integer, "
                        "got 'a'");
    assert_string_equal(errs.msgs[1],
                        "t.yaml:1:1: unknown key 'bogus' at top level (known: "
                        "listen, upstream, rules, proxies, seed, admin, "
                        "max_connections, watch)");
    assert_string_equal(errs.msgs[2],
                        "t.yaml:2:7: 'seed' must be a non-negative integer, "
                        "got 'b'");
    /* a good parse adds nothing */
    assert_int_equal(parse("seed: 1\n", &cfg, &errs), 0);
    assert_int_equal(errs.n, 3);
    config_free(&cfg);
    config_errors_free(&errs);
}

/* A flood of mistakes is cut at 100 messages plus a note. */
static void test_error_cap(void **state)
{
    char *text = malloc(200 * 16);
    size_t len = 0;
    struct config cfg;
    struct config_errors errs = {0};
    (void)state;

    assert_non_null(text);
    for (int i = 0; i < 200; i++) {
        len += (size_t)sprintf(text + len, "k%d: 1\n", i);
    }
    assert_int_equal(config_parse("t.yaml", text, len, &cfg, &errs), -1);
    assert_int_equal(errs.n, 101);
    assert_string_equal(errs.msgs[0],
                        "t.yaml:1:1: unknown key 'k0' at top level (known: "
                        "listen, upstream, rules, proxies, seed, admin, "
                        "max_connections, watch)");
    assert_string_equal(errs.msgs[100],
                        "t.yaml: too many errors, stopped after 100");
    config_errors_free(&errs);
    free(text);
}

/* RULES_MAX rules load; one more is refused without parsing them. */
static void test_rules_max(void **state)
{
    static const char head[] = "rules:\n";
    static const char item[] = "- {action: drop}\n";
    size_t n = RULES_MAX + 1;
    char *text = malloc(sizeof(head) + n * (sizeof(item) - 1));
    struct config cfg;
    struct config_errors errs = {0};
    (void)state;

    assert_non_null(text);
    memcpy(text, head, sizeof(head) - 1);
    for (size_t i = 0; i < n; i++) {
        memcpy(text + sizeof(head) - 1 + i * (sizeof(item) - 1), item,
               sizeof(item) - 1);
    }
    size_t len = sizeof(head) - 1 + n * (sizeof(item) - 1);
    assert_int_equal(config_parse("t.yaml", text, len, &cfg, &errs), -1);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.msgs[0],
                        "t.yaml:2:1: too many rules (at most 100000)");
    config_errors_free(&errs);

    len -= sizeof(item) - 1;
    assert_int_equal(config_parse("t.yaml", text, len, &cfg, &errs), 0);
    assert_int_equal(cfg.proxies[0].nrules, RULES_MAX);
    assert_string_equal(cfg.proxies[0].rules[RULES_MAX - 1].name,
                        "rule-100000");
    config_free(&cfg);
    free(text);
}

/* ---- config_load_file ---- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static void test_load_file(void **state)
{
    char dir[] = "/tmp/mcfault-test-config.XXXXXX";
    char path[64];
    struct config cfg;
    struct config_errors errs = {0};
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/good.yaml", dir);
    write_file(path, "listen: a:1\nrules:\n  - action: drop\n");
    assert_int_equal(config_load_file(path, &cfg, &errs), 0);
    assert_int_equal(errs.n, 0);
    assert_string_equal(cfg.proxies[0].listen, "a:1");
    assert_int_equal(cfg.proxies[0].nrules, 1);
    config_free(&cfg);

    /* the path names the file in messages */
    write_file(path, "rules:\n  - action: nope\n");
    assert_int_equal(config_load_file(path, &cfg, &errs), -1);
    assert_int_equal(errs.n, 1);
    char want[256];
    snprintf(want, sizeof(want),
             "%s:2:13: 'action' must be one of error, delay, drop, hang, "
             "miss, got 'nope'",
             path);
    assert_string_equal(errs.msgs[0], want);
    config_errors_free(&errs);

    /* a file over CONFIG_FILE_MAX, even of blanks, is refused */
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)CONFIG_FILE_MAX + 1), 0);
    close(fd);
    assert_int_equal(config_load_file(path, &cfg, &errs), -1);
    assert_int_equal(errs.n, 1);
    snprintf(want, sizeof(want), "%s: larger than %d bytes", path,
             CONFIG_FILE_MAX);
    assert_string_equal(errs.msgs[0], want);
    config_errors_free(&errs);
    assert_int_equal(unlink(path), 0);

    /* unreadable: missing, a directory */
    assert_int_equal(config_load_file(path, &cfg, &errs), -1);
    assert_int_equal(errs.n, 1);
    snprintf(want, sizeof(want), "%s: No such file or directory", path);
    assert_string_equal(errs.msgs[0], want);
    assert_null(cfg.proxies);
    config_errors_free(&errs);

    assert_int_equal(config_load_file(dir, &cfg, &errs), -1);
    assert_int_equal(errs.n, 1);
    snprintf(want, sizeof(want), "%s: Is a directory", dir);
    assert_string_equal(errs.msgs[0], want);
    config_errors_free(&errs);
    assert_int_equal(rmdir(dir), 0);
}

/* A body of POST /rules and what config_parse_rules makes of it. */
struct added_case {
    const char *desc;
    const char *text;
    size_t before;
    /* good: the names of the rules, in order (NULL-terminated) */
    const char *names[4];
    /* bad: the messages, exactly */
    const char *msgs[4];
};

static const struct added_case added_cases[] = {
    {"one rule", "name: a\naction: drop\n", 0, {"a"}, {NULL}},
    {"one rule, JSON",
     "{\"name\":\"a\",\"action\":\"hang\"}",
     0,
     {"a"},
     {NULL}},
    {"a list",
     "- name: a\n  action: drop\n- name: b\n  action: hang\n",
     0,
     {"a", "b"},
     {NULL}},
    {"a list, JSON",
     "[{\"name\":\"a\",\"action\":\"drop\"}]",
     0,
     {"a"},
     {NULL}},
    {"a document", "rules:\n  - name: a\n    action: drop\n", 0, {"a"}, {NULL}},
    {"an empty list", "[]", 0, {NULL}, {NULL}},
    {"unnamed rules numbered after those in force",
     "- action: drop\n- action: hang\n",
     3,
     {"rule-4", "rule-5"},
     {NULL}},
    {"a name twice is the caller's to report",
     "- name: a\n  action: drop\n- name: a\n  action: hang\n",
     0,
     {"a", "a"},
     {NULL}},
    {"a name twice in a document too",
     "rules:\n- {name: a, action: drop}\n- {name: a, action: drop}\n",
     0,
     {"a", "a"},
     {NULL}},
    {"problems at line:col",
     "name: a\naction: delay\ndelya: 1s\n",
     0,
     {NULL},
     {"b:1:1: rule 'a': action delay needs 'delay'",
      "b:3:1: unknown key 'delya' in rule (known: name, command, key, "
      "action, message, delay, jitter, probability, after, limit, forward, "
      "enabled)"}},
    {"in a list",
     "- name: a\n  action: drop\n- action: nope\n",
     0,
     {NULL},
     {"b:3:11: 'action' must be one of error, delay, drop, hang, miss, got "
      "'nope'"}},
    {"a scalar", "drop\n", 0, {NULL}, {"b:1:1: expected a mapping"}},
    {"nothing",
     "# nothing\n",
     0,
     {NULL},
     {"b:1:1: no rules: send a rule, a list of rules or a mapping with "
      "'rules'"}},
    {"proxies refused",
     "proxies:\n  - {name: p, listen: a:1, upstream: b:2}\n",
     0,
     {NULL},
     {"b:1:1: 'proxies' cannot be used here: rules are added to one proxy "
      "(name it with ?proxy=NAME)"}},
    {"a syntax error",
     "- name: [\n",
     0,
     {NULL},
     {"b:2:1: did not find expected node content (while parsing a flow node "
      "at line 2, column 1)"}},
};

static void test_parse_rules_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(added_cases) / sizeof(added_cases[0]); i++) {
        const struct added_case *tc = &added_cases[i];
        struct config cfg;
        struct config_errors errs = {0};
        size_t nmsgs = 0;
        size_t nnames = 0;
        while (nmsgs < 4 && tc->msgs[nmsgs] != NULL) {
            nmsgs++;
        }
        while (nnames < 4 && tc->names[nnames] != NULL) {
            nnames++;
        }
        int rc = config_parse_rules("b", tc->text, strlen(tc->text), tc->before,
                                    &cfg, &errs);
        print_message("case: %s\n", tc->desc);
        dump_errors(&errs);
        if (nmsgs > 0) {
            assert_int_equal(rc, -1);
            assert_int_equal(errs.n, nmsgs);
            for (size_t j = 0; j < nmsgs; j++) {
                assert_string_equal(errs.msgs[j], tc->msgs[j]);
            }
            assert_null(cfg.proxies);
            config_errors_free(&errs);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(cfg.nproxies, 1);
        assert_int_equal(cfg.proxies[0].line, 0);
        assert_int_equal(cfg.proxies[0].nrules, nnames);
        for (size_t j = 0; j < nnames; j++) {
            assert_string_equal(cfg.proxies[0].rules[j].name, tc->names[j]);
        }
        config_free(&cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_table),
        cmocka_unit_test(test_duration_length),
        cmocka_unit_test(test_probability_table),
        cmocka_unit_test(test_single_proxy_every_key),
        cmocka_unit_test(test_multi_proxy),
        cmocka_unit_test(test_good_table),
        cmocka_unit_test(test_good_details),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_bad_table),
        cmocka_unit_test(test_nul_in_input),
        cmocka_unit_test(test_errors_append),
        cmocka_unit_test(test_error_cap),
        cmocka_unit_test(test_rules_max),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_parse_rules_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
