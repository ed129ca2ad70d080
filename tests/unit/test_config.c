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
    /* the newer keys: a rule without them behaves as before they were */
    assert_int_equal(r->close, RULE_CLOSE_FIN);
    assert_int_equal(r->interval_us, 1000);
    assert_int_equal(r->flips, 1);
    assert_null(r->clients);
    assert_int_equal(r->nclients, 0);
    assert_true(r->connections == 1.0);
    assert_false(r->sized);
    assert_int_equal(r->min_size, 0);
    assert_true(r->max_size == UINT64_MAX);
    assert_false(r->scheduled);
    assert_false(r->on_connect);
    assert_false(r->targeted);
    assert_int_equal(r->epoch_us, 0);
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
    {"5m", 0, 300000000ULL, NULL},
    {"1.5m", 0, 90000000ULL, NULL},
    {"0.0000001m", 0, 6, NULL},
    {"1h", 0, 3600000000ULL, NULL},
    {"0.25h", 0, 900000000ULL, NULL},
    {"0.00000001h", 0, 36, NULL},
    {"1.00000001h", 0, 3600000036ULL, NULL},
    {"0.00000005m", 0, 3, NULL},
    {"0.000000005h", 0, 18, NULL},
    {"0.0000000025h", 0, 9, NULL},
    {"1.500000000000000000000000000s", 0, 1500000, NULL},
    {"0.0000000001h", -1, 0, "finer than a microsecond"},
    {"0.00000000001s", -1, 0, "finer than a microsecond"},
    {"0.00000000001000h", -1, 0, "finer than a microsecond"},
    {"720h", 0, 2592000000000ULL, NULL},
    {"5124095576h", 0, 18446744073600000000ULL, NULL},
    {"18446744073709551615us", 0, UINT64_MAX, NULL},
    {"18446744073709s", 0, 18446744073709000000ULL, NULL},
    {"500", -1, 0, "missing unit (us, ms, s, m, h)"},
    {"0", -1, 0, "missing unit (us, ms, s, m, h)"},
    {"1.5", -1, 0, "missing unit (us, ms, s, m, h)"},
    {"", -1, 0, "expected a number followed by a unit (us, ms, s, m, h)"},
    {"ms", -1, 0, "expected a number followed by a unit (us, ms, s, m, h)"},
    {".5s", -1, 0, "expected a number followed by a unit (us, ms, s, m, h)"},
    {"+5s", -1, 0, "expected a number followed by a unit (us, ms, s, m, h)"},
    {" 5s", -1, 0, "expected a number followed by a unit (us, ms, s, m, h)"},
    {"5.s", -1, 0, "expected digits after '.'"},
    {"-1ms", -1, 0, "negative durations are not allowed"},
    {"-0s", -1, 0, "negative durations are not allowed"},
    {"5 ms", -1, 0, "unknown unit (use us, ms, s, m or h)"},
    {"5ms ", -1, 0, "unknown unit (use us, ms, s, m or h)"},
    {"5min", -1, 0, "unknown unit (use us, ms, s, m or h)"},
    {"5H", -1, 0, "unknown unit (use us, ms, s, m or h)"},
    {"5d", -1, 0, "unknown unit (use us, ms, s, m or h)"},
    {"1.000000001h", -1, 0, "finer than a microsecond"},
    {"0.00000001m", -1, 0, "finer than a microsecond"},
    {"5124095577h", -1, 0, "too large"},
    {"5MS", -1, 0, "unknown unit (use us, ms, s, m or h)"},
    {"5sec", -1, 0, "unknown unit (use us, ms, s, m or h)"},
    {"1e3ms", -1, 0, "unknown unit (use us, ms, s, m or h)"},
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
    assert_int_equal(config_parse_duration("5ms", 2, &us, &why), 0);
    assert_int_equal(us, 300000000); /* "5m": five minutes */
    assert_int_equal(config_parse_duration("5us", 2, &us, &why), -1);
    assert_string_equal(why, "unknown unit (use us, ms, s, m or h)");
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
    {"1e-1", 0, 0.1, NULL},
    {"1e-05", 0, 0.00001, NULL},
    {"1E-5", 0, 0.00001, NULL},
    {"2.5e-1", 0, 0.25, NULL},
    {"25e-2", 0, 0.25, NULL},
    {".5e0", 0, 0.5, NULL},
    {"1e+0", 0, 1.0, NULL},
    {"0.01e2", 0, 1.0, NULL},
    {"1e2%", 0, 1.0, NULL},
    {"5e-1%", 0, 0.005, NULL},
    {"1e-17", 0, 1e-17, NULL},
    {"1e-18", 0, 1e-18, NULL},
    {"5e-300", 0, 5e-300, NULL},
    {"0e-400", 0, 0.0, NULL},
    {"0.09641453609309437", 0, 0.09641453609309437, NULL},
    {"1.5e-17", 0, 1.5e-17, NULL},
    {"1e-400", -1, 0, "too small"},
    {"0e99999999999999999999", 0, 0.0, NULL},
    {"3.3333333333333333e-1", 0, 0.33333333333333333, NULL},
    {"1e1", -1, 0, "out of range"},
    {"0.5e1", -1, 0, "out of range"},
    {"1e3%", -1, 0, "out of range"},
    {"1e99999999999999999999", -1, 0, "out of range"},
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
    {"1e", -1, 0, "not a number"},
    {"e5", -1, 0, "not a number"},
    {"1e-", -1, 0, "not a number"},
    {"1e+-1", -1, 0, "not a number"},
    {"1e1.5", -1, 0, "not a number"},
    {"1e-1 ", -1, 0, "not a number"},
    {".e1", -1, 0, "not a number"},
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

/* ---- config_parse_size and config_parse_rate ---- */

struct bytes_case {
    const char *in;
    int rc;
    uint64_t n;
    const char *why; /* rc -1 */
};

#define UNITS "B, KiB, MiB, GiB, KB, MB or GB"

static const struct bytes_case size_cases[] = {
    {"0", 0, 0, NULL},
    {"512", 0, 512, NULL},
    {"512B", 0, 512, NULL},
    {"4KiB", 0, 4096, NULL},
    {"1MiB", 0, 1048576, NULL},
    {"2GiB", 0, 2147483648ULL, NULL},
    {"3KB", 0, 3000, NULL},
    {"3kB", 0, 3000, NULL},
    {"2MB", 0, 2000000, NULL},
    {"1GB", 0, 1000000000, NULL},
    {"007", 0, 7, NULL},
    {"18446744073709551615", 0, UINT64_MAX, NULL},
    {"", -1, 0, "expected a number of bytes such as 512 or 4KiB"},
    {"KiB", -1, 0, "expected a number of bytes such as 512 or 4KiB"},
    {"+5", -1, 0, "expected a number of bytes such as 512 or 4KiB"},
    {"-1", -1, 0, "negative sizes are not allowed"},
    {"1.5KiB", -1, 0, "a byte count is a whole number (use a smaller unit)"},
    {"1k", -1, 0, "unknown unit (use " UNITS ")"},
    {"1kib", -1, 0, "unknown unit (use " UNITS ")"},
    {"1 KiB", -1, 0, "unknown unit (use " UNITS ")"},
    {"1KiB/s", -1, 0, "unknown unit (use " UNITS ")"},
    {"18446744073709551616", -1, 0, "too large"},
    {"18014398509481984KiB", -1, 0, "too large"},
};

static const struct bytes_case rate_cases[] = {
    {"10KiB/s", 0, 10240, NULL},
    {"512B/s", 0, 512, NULL},
    {"1MiB/s", 0, 1048576, NULL},
    {"1MB/s", 0, 1000000, NULL},
    {"100/s", 0, 100, NULL},
    {"4096", 0, 4096, NULL},
    {"10KiB", 0, 10240, NULL},
    {"0/s", 0, 0, NULL}, /* parsed; set_rate refuses it */
    {"/s", -1, 0, "expected bytes per second such as 10KiB/s"},
    {"fast", -1, 0, "expected bytes per second such as 10KiB/s"},
    {"10kb/s", -1, 0, "unknown unit (use " UNITS ", then /s)"},
    {"10KiB/ms", -1, 0, "unknown unit (use " UNITS ", then /s)"},
    {"10KiB/s/s", -1, 0, "unknown unit (use " UNITS ", then /s)"},
    {"-1KiB/s", -1, 0, "negative sizes are not allowed"},
};

static void check_bytes_table(const struct bytes_case *cases, size_t n,
                              int (*fn)(const char *, size_t, uint64_t *,
                                        const char **))
{
    for (size_t i = 0; i < n; i++) {
        const struct bytes_case *c = &cases[i];
        uint64_t got = 12345;
        const char *why = NULL;
        int rc = fn(c->in, strlen(c->in), &got, &why);
        if (rc != c->rc || (rc == 0 && got != c->n)) {
            print_message("bytes '%s'\n", c->in);
        }
        assert_int_equal(rc, c->rc);
        if (rc == 0) {
            assert_true(got == c->n);
            assert_null(why);
        } else {
            assert_int_equal(got, 12345);
            assert_string_equal(why, c->why);
        }
    }
}

static void test_size_and_rate_tables(void **state)
{
    (void)state;
    check_bytes_table(size_cases, sizeof(size_cases) / sizeof(*size_cases),
                      config_parse_size);
    check_bytes_table(rate_cases, sizeof(rate_cases) / sizeof(*rate_cases),
                      config_parse_rate);
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
    {"edges of the newer keys",
     "rules:\n  - {action: throttle, rate: 1GiB/s}\n"
     "  - {action: throttle, rate: 1}\n"
     "  - {action: slice, size: 1-1MiB, interval: 0s}\n"
     "  - {action: slice, size: 1048576, interval: 3600s}\n"
     "  - {action: truncate, keep: 0}\n"
     "  - {action: truncate, keep: 0%, close: fin}\n"
     "  - {action: truncate, keep: 100%}\n"
     "  - {action: corrupt, flips: 1024}\n"
     "  - {action: drop, connections: 100%, client: \"0.0.0.0/0\"}\n"
     "  - {action: drop, connections: 0.000001, client: \"::/0\"}\n"
     "  - {action: drop, client: \"::ffff:10.0.0.0/104\"}\n"
     "  - {action: drop, min_size: 0, max_size: 0}\n"
     "  - {action: drop, min_size: 18446744073709551615}\n"
     "  - {action: drop, schedule: {start: 720h, duration: 1s, every: "
     "1s}}\n"
     "  - {action: drop, schedule: {every: 0s}}\n",
     15, NULL},
    {"connect rules as GET /rules reports them (key \"*\", forward false)",
     "rules:\n  - {command: connect, key: \"*\", forward: false, action: "
     "drop}\n"
     "  - {command: [connect], key: [\"*\"], action: hang}\n",
     2, NULL},
    {"forward: false where forward does not apply (GET /rules reports it)",
     "rules:\n  - {action: miss, forward: false}\n"
     "  - {action: throttle, rate: 1, forward: false}\n"
     "  - {action: evict, forward: FALSE}\n",
     3, NULL},
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

/* Every key of the newer actions and of targeting, parsed. */
static void test_new_keys(void **state)
{
    static const char text[] =
        "rules:\n"
        "  - name: slow-reads\n"
        "    command: [get, mg]\n"
        "    action: throttle\n"
        "    rate: 10KiB/s\n"
        "  - {name: pieces, action: slice, size: 1-16, interval: 5ms}\n"
        "  - {name: bytewise, action: slice, size: 1}\n"
        "  - {name: cut, action: truncate, keep: 100, close: reset}\n"
        "  - {name: cut-share, action: truncate, keep: 12.5%}\n"
        "  - {name: flip, action: corrupt, flips: 3}\n"
        "  - {name: flip-one, action: corrupt}\n"
        "  - {name: evict, command: get, action: evict}\n"
        "  - {name: reset, action: drop, close: reset}\n"
        "  - name: targeted\n"
        "    action: delay\n"
        "    delay: 1ms\n"
        "    client: [127.0.0.2, 10.1.2.3/8, \"::1\", \"fd00::/8\"]\n"
        "    connections: 25%\n"
        "    min_size: 512KiB\n"
        "    max_size: 1MiB\n"
        "    schedule: {start: 10s, duration: 5s, every: 1m}\n"
        "  - name: once\n"
        "    action: hang\n"
        "    client: 192.168.1.7/32\n"
        "    connections: 0.5\n"
        "    max_size: 100\n"
        "    schedule: {start: 1.5s}\n"
        "  - {name: always, action: drop, schedule: {}}\n";
    struct config cfg;
    (void)state;

    parse_ok(__func__, text, &cfg);
    const struct rule *r = cfg.proxies[0].rules;
    assert_int_equal(cfg.proxies[0].nrules, 12);

    assert_int_equal(r[0].action, RULE_THROTTLE);
    assert_int_equal(r[0].rate_bps, 10240);
    assert_false(r[0].forward);

    assert_int_equal(r[1].action, RULE_SLICE);
    assert_int_equal(r[1].slice_min, 1);
    assert_int_equal(r[1].slice_max, 16);
    assert_int_equal(r[1].interval_us, 5000);
    assert_int_equal(r[2].slice_min, 1);
    assert_int_equal(r[2].slice_max, 1);
    assert_int_equal(r[2].interval_us, 1000);

    assert_int_equal(r[3].action, RULE_TRUNCATE);
    assert_false(r[3].keep_is_fraction);
    assert_int_equal(r[3].keep_bytes, 100);
    assert_int_equal(r[3].close, RULE_CLOSE_RESET);
    assert_true(r[4].keep_is_fraction);
    assert_true(r[4].keep_fraction == 0.125);
    assert_int_equal(r[4].close, RULE_CLOSE_FIN);

    assert_int_equal(r[5].action, RULE_CORRUPT);
    assert_int_equal(r[5].flips, 3);
    assert_int_equal(r[6].flips, 1);
    assert_int_equal(r[7].action, RULE_EVICT);
    assert_int_equal(r[8].action, RULE_DROP);
    assert_int_equal(r[8].close, RULE_CLOSE_RESET);

    /* targeting: IPv4 as ::ffff:a.b.c.d, bits past the prefix cleared */
    static const uint8_t v4_2[16] = {0, 0, 0,    0,    0,   0, 0, 0,
                                     0, 0, 0xff, 0xff, 127, 0, 0, 2};
    static const uint8_t v4_10[16] = {0, 0, 0,    0,    0,  0, 0, 0,
                                      0, 0, 0xff, 0xff, 10, 0, 0, 0};
    static const uint8_t v6_1[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                     0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t v6_fd[16] = {0xfd};
    const struct rule *t = &r[9];
    assert_int_equal(t->nclients, 4);
    assert_memory_equal(t->clients[0].addr, v4_2, 16);
    assert_int_equal(t->clients[0].bits, 128);
    assert_memory_equal(t->clients[1].addr, v4_10, 16);
    assert_int_equal(t->clients[1].bits, 104);
    assert_memory_equal(t->clients[2].addr, v6_1, 16);
    assert_int_equal(t->clients[2].bits, 128);
    assert_memory_equal(t->clients[3].addr, v6_fd, 16);
    assert_int_equal(t->clients[3].bits, 8);
    assert_true(t->connections == 0.25);
    assert_true(t->sized);
    assert_int_equal(t->min_size, 512 * 1024);
    assert_int_equal(t->max_size, 1024 * 1024);
    assert_true(t->scheduled);
    assert_int_equal(t->schedule.start_us, 10000000);
    assert_int_equal(t->schedule.duration_us, 5000000);
    assert_int_equal(t->schedule.every_us, 60000000);
    assert_false(t->on_connect);

    t = &r[10];
    assert_int_equal(t->nclients, 1);
    assert_int_equal(t->clients[0].bits, 128);
    assert_int_equal(t->clients[0].addr[12], 192);
    assert_true(t->connections == 0.5);
    assert_true(t->sized);
    assert_int_equal(t->min_size, 0);
    assert_int_equal(t->max_size, 100);
    assert_int_equal(t->schedule.start_us, 1500000);
    assert_int_equal(t->schedule.duration_us, 0);
    assert_int_equal(t->schedule.every_us, 0);

    /* an empty schedule is in force from the start, for good */
    assert_true(r[11].scheduled);
    assert_int_equal(r[11].schedule.start_us, 0);
    config_free(&cfg);
}

/* `command: connect` alone makes a connect rule; globs never do. */
static void test_connect_rules(void **state)
{
    static const char text[] =
        "rules:\n"
        "  - {name: refuse, command: connect, action: error}\n"
        "  - {name: said, command: [Connect], action: error, message: "
        "SERVER_ERROR busy}\n"
        "  - name: rst\n"
        "    command: CONNECT\n"
        "    action: drop\n"
        "    close: reset\n"
        "    client: 127.0.0.1\n"
        "    connections: 10%\n"
        "    schedule: {duration: 1s}\n"
        "    probability: 0.5\n"
        "    limit: 2\n"
        "  - {name: slow, command: connect, action: delay, delay: 2s}\n"
        "  - {name: wait, command: connect, action: hang}\n"
        "  - {name: star, command: \"*\", action: drop}\n"
        "  - {name: glob, command: \"conn*\", action: drop}\n";
    static const char want[] = "ERROR Too many open connections";
    struct config cfg;
    (void)state;

    parse_ok(__func__, text, &cfg);
    const struct rule *r = cfg.proxies[0].rules;
    assert_int_equal(cfg.proxies[0].nrules, 7);
    for (size_t i = 0; i < 5; i++) {
        assert_true(r[i].on_connect);
        assert_int_equal(r[i].nkeys, 1);
        assert_glob(&r[i].keys[0], "*");
    }
    assert_glob(&r[0].cmds[0], "connect");
    assert_int_equal(r[0].message_len, strlen(want));
    assert_memory_equal(r[0].message, want, sizeof(want));
    assert_string_equal(r[1].message, "SERVER_ERROR busy");
    assert_glob(&r[2].cmds[0], "CONNECT");
    assert_int_equal(r[2].close, RULE_CLOSE_RESET);
    assert_int_equal(r[2].nclients, 1);
    assert_true(r[2].connections == 0.1);
    assert_true(r[2].scheduled);
    assert_int_equal(r[3].delay_us, 2000000);
    assert_int_equal(r[4].action, RULE_HANG);
    assert_false(r[5].on_connect);
    assert_false(r[6].on_connect);
    config_free(&cfg);
}

/* POST /rules goes through the same rule parser: same keys, defaults. */
static void test_parse_rules_new_keys(void **state)
{
    static const char text[] =
        "- {name: a, action: drop}\n"
        "- {name: b, action: throttle, rate: 1KiB/s, connections: 50%}\n"
        "- {name: c, command: connect, action: error}\n";
    struct config cfg;
    struct config_errors errs = {0};
    (void)state;

    assert_int_equal(
        config_parse_rules("b", text, strlen(text), 0, &cfg, &errs), 0);
    const struct rule *r = cfg.proxies[0].rules;
    assert_rule_defaults(&r[0]);
    assert_int_equal(r[1].rate_bps, 1024);
    assert_true(r[1].connections == 0.5);
    assert_true(r[1].max_size == UINT64_MAX);
    assert_true(r[2].on_connect);
    assert_non_null(r[2].message);
    config_free(&cfg);

    static const char bad[] = "name: a\naction: slice\nrate: 1\n";
    assert_int_equal(config_parse_rules("b", bad, strlen(bad), 0, &cfg, &errs),
                     -1);
    assert_int_equal(errs.n, 2);
    assert_string_equal(errs.msgs[0], "b:1:1: rule 'a': action slice needs "
                                      "'size'");
    assert_string_equal(errs.msgs[1], "b:3:1: 'rate' does not apply to action "
                                      "slice (only to throttle)");
    config_errors_free(&errs);
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
      "throttle, slice, truncate, corrupt, evict, got 'boom'"}},

    /* rules: shape */
    {"rule not a mapping",
     "rules:\n  - drop\n  - [a]\n",
     {"t.yaml:2:5: expected a mapping", "t.yaml:3:5: expected a mapping"}},
    {"unknown rule key",
     "rules:\n  - action: delay\n    delya: 5ms\n",
     {"t.yaml:2:5: rule 'rule-1': action delay needs 'delay'",
      "t.yaml:3:5: unknown key 'delya' in rule (known: name, command, key, "
      "action, message, delay, jitter, probability, after, limit, forward, "
      "enabled, close, rate, size, interval, keep, flips, client, "
      "connections, min_size, max_size, schedule)"}},
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
      "throttle, slice, truncate, corrupt, evict, got 'explode'",
      "t.yaml:3:13: 'action' must be one of error, delay, drop, hang, miss, "
      "throttle, slice, truncate, corrupt, evict, got 'Drop'",
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
     {"t.yaml:2:20: 'message' does not apply to action drop (only to error)"}},

    /* delay and jitter */
    {"delay without delay",
     "rules:\n  - {name: d, action: delay}\n",
     {"t.yaml:2:5: rule 'd': action delay needs 'delay'"}},
    {"delay keys with another action",
     "rules:\n  - action: error\n    message: x\n    delay: 1s\n    jitter: "
     "1ms\n",
     {"t.yaml:4:5: 'delay' does not apply to action error (only to delay)",
      "t.yaml:5:5: 'jitter' does not apply to action error (only to delay)"}},
    {"bad durations",
     "rules:\n  - {action: delay, delay: 500}\n"
     "  - {action: delay, delay: 1d}\n"
     "  - {action: delay, delay: -5ms}\n"
     "  - {action: delay, delay: 61m}\n"
     "  - {action: delay, delay: 1s, jitter: 1.5us}\n"
     "  - {action: delay, delay: [1s]}\n",
     {"t.yaml:2:28: bad duration '500' in 'delay': missing unit (us, ms, s, m, "
      "h)",
      "t.yaml:3:28: bad duration '1d' in 'delay': unknown unit (use us, ms, "
      "s, m or h)",
      "t.yaml:4:28: bad duration '-5ms' in 'delay': negative durations are not "
      "allowed",
      "t.yaml:5:28: 'delay' must be at most 3600s, got '61m'",
      "t.yaml:6:40: bad duration '1.5us' in 'jitter': finer than a microsecond",
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
     "rules:\n  - action: miss\n    forward: true\n",
     {"t.yaml:3:5: 'forward' cannot be used with action miss"}},
    {"miss on commands that are not retrievals",
     "rules:\n  - action: miss\n    command: [get, set, \"m*\", DELETE]\n",
     {"t.yaml:3:20: action miss only applies to retrievals (get, gets, gat, "
      "gats, mg), not 'set'",
      "t.yaml:3:31: action miss only applies to retrievals (get, gets, gat, "
      "gats, mg), not 'DELETE'"}},

    /* the newer actions' keys */
    {"close on actions that do not close",
     "rules:\n  - {action: delay, delay: 1ms, close: reset}\n"
     "  - {action: throttle, rate: 1KiB/s, close: fin}\n"
     "  - {action: drop, close: rst}\n"
     "  - {action: truncate, keep: 1, close: [fin]}\n",
     {"t.yaml:2:33: 'close' does not apply to action delay (only to drop, "
      "truncate)",
      "t.yaml:3:38: 'close' does not apply to action throttle (only to drop, "
      "truncate)",
      "t.yaml:4:27: 'close' must be fin or reset, got 'rst'",
      "t.yaml:5:40: expected fin or reset"}},
    {"keys of other actions",
     "rules:\n  - action: drop\n    rate: 1KiB/s\n    size: 1-2\n"
     "    interval: 1ms\n    keep: 50%\n    flips: 2\n"
     "  - action: slice\n    size: 4\n    rate: 1B/s\n    message: x\n",
     {"t.yaml:3:5: 'rate' does not apply to action drop (only to throttle)",
      "t.yaml:4:5: 'size' does not apply to action drop (only to slice)",
      "t.yaml:5:5: 'interval' does not apply to action drop (only to slice)",
      "t.yaml:6:5: 'keep' does not apply to action drop (only to truncate)",
      "t.yaml:7:5: 'flips' does not apply to action drop (only to corrupt)",
      "t.yaml:10:5: 'rate' does not apply to action slice (only to throttle)",
      "t.yaml:11:5: 'message' does not apply to action slice (only to error)"}},
    {"actions without their keys",
     "rules:\n  - {name: t, action: throttle}\n  - {name: s, action: slice}\n"
     "  - {name: k, action: truncate}\n  - {name: c, action: corrupt}\n"
     "  - {name: e, action: evict}\n",
     {"t.yaml:2:5: rule 't': action throttle needs 'rate'",
      "t.yaml:3:5: rule 's': action slice needs 'size'",
      "t.yaml:4:5: rule 'k': action truncate needs 'keep'"}},
    {"forward with actions that always forward",
     "rules:\n  - {action: throttle, rate: 1, forward: true}\n"
     "  - {action: slice, size: 1, forward: true}\n"
     "  - {action: truncate, keep: 1, forward: true}\n"
     "  - {action: corrupt, forward: true}\n"
     "  - {action: evict, forward: True}\n",
     {"t.yaml:2:33: 'forward' does not apply to action throttle: it always "
      "reaches memcached",
      "t.yaml:3:30: 'forward' does not apply to action slice: it always "
      "reaches memcached",
      "t.yaml:4:33: 'forward' does not apply to action truncate: it always "
      "reaches memcached",
      "t.yaml:5:23: 'forward' does not apply to action corrupt: it always "
      "reaches memcached",
      "t.yaml:6:21: 'forward' does not apply to action evict: it always "
      "reaches memcached"}},
    {"bad rates",
     "rules:\n  - {action: throttle, rate: 0}\n"
     "  - {action: throttle, rate: 10kb/s}\n"
     "  - {action: throttle, rate: 2GiB/s}\n"
     "  - {action: throttle, rate: fast}\n"
     "  - {action: throttle, rate: -1KiB/s}\n"
     "  - {action: throttle, rate: 1.5KiB/s}\n"
     "  - {action: throttle, rate: [1]}\n"
     "  - {action: throttle, rate: 1073741825}\n",
     {"t.yaml:2:30: 'rate' must be from 1B/s to 1GiB/s, got '0'",
      "t.yaml:3:30: bad rate '10kb/s' in 'rate': unknown unit (use B, KiB, "
      "MiB, GiB, KB, MB or GB, then /s)",
      "t.yaml:4:30: 'rate' must be from 1B/s to 1GiB/s, got '2GiB/s'",
      "t.yaml:5:30: bad rate 'fast' in 'rate': expected bytes per second such "
      "as 10KiB/s",
      "t.yaml:6:30: bad rate '-1KiB/s' in 'rate': negative sizes are not "
      "allowed",
      "t.yaml:7:30: bad rate '1.5KiB/s' in 'rate': a byte count is a whole "
      "number (use a smaller unit)",
      "t.yaml:8:30: expected a rate such as 10KiB/s",
      "t.yaml:9:30: 'rate' must be from 1B/s to 1GiB/s, got '1073741825'"}},
    {"bad slice sizes",
     "rules:\n  - {action: slice, size: 0}\n"
     "  - {action: slice, size: 16-1}\n"
     "  - {action: slice, size: 1-2MiB}\n"
     "  - {action: slice, size: a-b}\n"
     "  - {action: slice, size: -5}\n"
     "  - {action: slice, size: 1-}\n"
     "  - {action: slice, size: 2, interval: 2h}\n"
     "  - {action: slice, size: 2, interval: 3601s}\n",
     {"t.yaml:2:27: 'size' must be from 1 to 1048576 bytes (1MiB), got '0'",
      "t.yaml:3:27: 'size' range '16-1' is reversed: the first size must not "
      "exceed the second",
      "t.yaml:4:27: 'size' must be from 1 to 1048576 bytes (1MiB), got "
      "'1-2MiB'",
      "t.yaml:5:27: bad size 'a-b' in 'size': expected a number of bytes such "
      "as 512 or 4KiB",
      "t.yaml:6:27: bad size '-5' in 'size': negative sizes are not allowed",
      "t.yaml:7:27: bad size '1-' in 'size': expected a number of bytes such "
      "as 512 or 4KiB",
      "t.yaml:8:40: 'interval' must be at most 3600s, got '2h'",
      "t.yaml:9:40: 'interval' must be at most 3600s, got '3601s'"}},
    {"bad keeps",
     "rules:\n  - {action: truncate, keep: 101%}\n"
     "  - {action: truncate, keep: 0.5}\n"
     "  - {action: truncate, keep: lots}\n"
     "  - {action: truncate, keep: -1}\n"
     "  - {action: truncate, keep: \"%\"}\n",
     {"t.yaml:2:30: 'keep' must be a percentage from 0% to 100%, got '101%'",
      "t.yaml:3:30: bad byte count '0.5' in 'keep': a byte count is a whole "
      "number (use a smaller unit); for a share write a percentage such as 50%",
      "t.yaml:4:30: bad byte count 'lots' in 'keep': expected a number of "
      "bytes such as 512 or 4KiB; for a share write a percentage such as 50%",
      "t.yaml:5:30: bad byte count '-1' in 'keep': negative sizes are not "
      "allowed; for a share write a percentage such as 50%",
      "t.yaml:6:30: 'keep' must be a percentage from 0% to 100%, got '%'"}},
    {"bad flips",
     "rules:\n  - {action: corrupt, flips: 0}\n"
     "  - {action: corrupt, flips: 1025}\n"
     "  - {action: corrupt, flips: x}\n",
     {"t.yaml:2:30: 'flips' must be an integer from 1 to 1024, got '0'",
      "t.yaml:3:30: 'flips' must be an integer from 1 to 1024, got '1025'",
      "t.yaml:4:30: 'flips' must be an integer from 1 to 1024, got 'x'"}},

    /* targeting */
    {"bad clients",
     "rules:\n  - action: drop\n    client: [127.0.0.1/33, \"::1/129\", "
     "localhost, 10.0.0.0/, 1.2.3.4/x, \"[::1]\", ~, 127.1]\n"
     "  - {action: drop, client: []}\n"
     "  - {action: drop, client: {a: 1}}\n"
     "  - {action: drop, client: [[1]]}\n"
     "  - {action: drop, client: ~}\n",
     {"t.yaml:3:14: bad address '127.0.0.1/33' in 'client': the prefix must be "
      "from 0 to 32",
      "t.yaml:3:28: bad address '::1/129' in 'client': the prefix must be from "
      "0 to 128",
      "t.yaml:3:39: bad address 'localhost' in 'client': not an IPv4 or IPv6 "
      "address",
      "t.yaml:3:50: bad address '10.0.0.0/' in 'client': the prefix must be "
      "from 0 to 32",
      "t.yaml:3:61: bad address '1.2.3.4/x' in 'client': the prefix must be "
      "from 0 to 32",
      "t.yaml:3:72: bad address '[::1]' in 'client': not an IPv4 or IPv6 "
      "address",
      "t.yaml:3:81: missing value in 'client'",
      "t.yaml:3:84: bad address '127.1' in 'client': not an IPv4 or IPv6 "
      "address",
      "t.yaml:4:28: 'client' must not be an empty list",
      "t.yaml:5:28: expected a string or a list of strings",
      "t.yaml:6:29: expected a string",
      "t.yaml:7:28: missing value for 'client'"}},
    {"bad connections",
     "rules:\n  - {action: drop, connections: 0}\n"
     "  - {action: drop, connections: 0%}\n"
     "  - {action: drop, connections: 150%}\n"
     "  - {action: drop, connections: 2}\n"
     "  - {action: drop, connections: half}\n",
     {"t.yaml:2:33: 'connections' must be a share above 0 and at most 1 or "
      "100%, got '0'",
      "t.yaml:3:33: 'connections' must be a share above 0 and at most 1 or "
      "100%, got '0%'",
      "t.yaml:4:33: 'connections' must be a share above 0 and at most 1 or "
      "100%, got '150%'",
      "t.yaml:5:33: 'connections' must be a share above 0 and at most 1 or "
      "100%, got '2'",
      "t.yaml:6:33: 'connections' must be a share above 0 and at most 1 or "
      "100%, got 'half'"}},
    {"bad sizes",
     "rules:\n  - {action: drop, min_size: 2KiB, max_size: 1KiB}\n"
     "  - {action: drop, min_size: 1k}\n"
     "  - {action: drop, max_size: 1.5MiB}\n"
     "  - {action: drop, min_size: -1}\n",
     {"t.yaml:2:30: 'min_size' (2KiB) must not exceed 'max_size' (1KiB)",
      "t.yaml:3:30: bad byte count '1k' in 'min_size': unknown unit (use B, "
      "KiB, MiB, GiB, KB, MB or GB)",
      "t.yaml:4:30: bad byte count '1.5MiB' in 'max_size': a byte count is a "
      "whole number (use a smaller unit)",
      "t.yaml:5:30: bad byte count '-1' in 'min_size': negative sizes are not "
      "allowed"}},
    {"bad schedules",
     "rules:\n  - action: drop\n    schedule: {start: 1s, every: 10s}\n"
     "  - action: drop\n    schedule: {duration: 20s, every: 10s}\n"
     "  - action: drop\n    schedule: {start: 2592001s}\n"
     "  - action: drop\n    schedule: {begin: 1s, duration: 5d}\n"
     "  - action: drop\n    schedule: 10s\n"
     "  - action: drop\n    schedule:\n"
     "  - action: drop\n    schedule: {duration: 1s, start: 1s, start: 2s}\n",
     {"t.yaml:3:34: 'every' needs a 'duration' above 0 in 'schedule'",
      "t.yaml:5:26: 'duration' (20s) must not exceed 'every' (10s)",
      "t.yaml:7:23: 'start' must be at most 2592000s, got '2592001s'",
      "t.yaml:9:16: unknown key 'begin' in schedule (known: start, duration, "
      "every)",
      "t.yaml:9:37: bad duration '5d' in 'duration': unknown unit (use us, "
      "ms, s, m or h)",
      "t.yaml:11:15: expected a mapping",
      "t.yaml:13:14: missing value for 'schedule'",
      "t.yaml:15:41: duplicate key 'start' (first at line 15)"}},

    /* connect rules */
    {"connect rules",
     "rules:\n  - {command: [connect, get], action: drop}\n"
     "  - {command: connect, key: a, action: drop, forward: true, "
     "min_size: 1, max_size: 2}\n"
     "  - {command: connect, action: miss}\n"
     "  - {command: connect, action: throttle, rate: 1}\n"
     "  - {command: connect, action: delay}\n"
     "  - {command: connect, action: hang, close: reset}\n"
     "  - {command: connect, key: [\"*\", a], forward: true, action: drop}\n"
     "  - {command: connect, key: \"a*\", action: drop}\n",
     {"t.yaml:2:16: 'connect' cannot be combined with other commands in "
      "'command'",
      "t.yaml:3:24: 'key' does not apply to command connect",
      "t.yaml:3:46: 'forward' does not apply to command connect",
      "t.yaml:3:61: 'min_size' does not apply to command connect",
      "t.yaml:3:74: 'max_size' does not apply to command connect",
      "t.yaml:4:32: action miss does not apply to command connect (use error, "
      "delay, drop, hang)",
      "t.yaml:5:32: action throttle does not apply to command connect (use "
      "error, delay, drop, hang)",
      "t.yaml:6:5: rule 'rule-5': action delay needs 'delay'",
      "t.yaml:7:38: 'close' does not apply to action hang (only to drop, "
      "truncate)",
      "t.yaml:8:24: 'key' does not apply to command connect",
      "t.yaml:8:39: 'forward' does not apply to command connect",
      "t.yaml:9:24: 'key' does not apply to command connect"}},

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
      "t.yaml:5:5: 'delay' does not apply to action error (only to delay)",
      "t.yaml:5:12: bad duration '5' in 'delay': missing unit (us, ms, s, m, "
      "h)",
      "t.yaml:6:11: duplicate rule name 'a' (first at line 3)",
      "t.yaml:9:13: 'jitter' (2s) must not exceed 'delay' (1s)",
      "t.yaml:10:5: unknown key 'bogus' in rule (known: name, command, key, "
      "action, message, delay, jitter, probability, after, limit, forward, "
      "enabled, close, rate, size, interval, keep, flips, client, "
      "connections, min_size, max_size, schedule)",
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
             "miss, throttle, slice, truncate, corrupt, evict, got 'nope'",
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
      "enabled, close, rate, size, interval, keep, flips, client, "
      "connections, min_size, max_size, schedule)"}},
    {"in a list",
     "- name: a\n  action: drop\n- action: nope\n",
     0,
     {NULL},
     {"b:3:11: 'action' must be one of error, delay, drop, hang, miss, "
      "throttle, slice, truncate, corrupt, evict, got 'nope'"}},
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
        cmocka_unit_test(test_size_and_rate_tables),
        cmocka_unit_test(test_single_proxy_every_key),
        cmocka_unit_test(test_multi_proxy),
        cmocka_unit_test(test_good_table),
        cmocka_unit_test(test_good_details),
        cmocka_unit_test(test_new_keys),
        cmocka_unit_test(test_connect_rules),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_bad_table),
        cmocka_unit_test(test_nul_in_input),
        cmocka_unit_test(test_errors_append),
        cmocka_unit_test(test_error_cap),
        cmocka_unit_test(test_rules_max),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_parse_rules_table),
        cmocka_unit_test(test_parse_rules_new_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
