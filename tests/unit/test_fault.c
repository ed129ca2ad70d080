/*
 * Unit tests for fault.c: the replies error and miss rules make for each
 * kind of command (expected bytes observed from memcached 1.6.18), and the
 * base64 key decoder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcfault/fault.h"
#include "mcfault/proto.h"

/* Parses one command line (with its \r\n) into *cmd; the parser must stay
 * alive while cmd is used. */
static void parse_line(struct proto_parser *p, const char *line,
                       struct proto_cmd *cmd)
{
    size_t used;

    proto_init(p);
    enum proto_status st = proto_parse(p, line, strlen(line), &used, cmd);
    assert_int_equal(st, PROTO_CMD);
}

struct render_case {
    const char *line; /* request line */
    const char *msg;  /* rule message, classic form */
    const char *want; /* reply bytes; "" for none */
};

/* Meta replies: the flag order and echo are memcached 1.6.18's, e.g.
 * "ms foo 2 MA k O7" answered "HD kfoo O7", "mg bWlzcw== b k O9 v" missing
 * answered "EN kbWlzcw== b O9", "md nope q O3 k" answered "NF O3 knope". */
static const struct render_case error_cases[] = {
    {"set k 0 0 1\r\n", "SERVER_ERROR out of memory storing object",
     "SERVER_ERROR out of memory storing object\r\n"},
    {"set k 0 0 1 noreply\r\n", "SERVER_ERROR out of memory storing object",
     ""},
    {"add k 0 0 1\r\n", "NOT_STORED", "NOT_STORED\r\n"},
    {"cas k 0 0 1 5\r\n", "EXISTS", "EXISTS\r\n"},
    {"get a b\r\n", "SERVER_ERROR busy", "SERVER_ERROR busy\r\n"},
    {"delete k noreply\r\n", "NOT_FOUND", ""},
    {"incr k 1\r\n", "NOT_FOUND", "NOT_FOUND\r\n"},
    {"ms foo 2 MA k O7\r\n", "NOT_STORED", "NS kfoo O7\r\n"},
    {"ms foo 2 I O5 k\r\n", "STORED", "HD O5 kfoo\r\n"},
    {"ms foo 2 C1 O8 k\r\n", "EXISTS", "EX O8 kfoo\r\n"},
    {"ms foo 2 q\r\n", "STORED", ""},
    {"ms foo 2 q O1\r\n", "EXISTS", "EX O1\r\n"},
    {"ms foo 2 q\r\n", "SERVER_ERROR out of memory storing object",
     "SERVER_ERROR out of memory storing object\r\n"},
    {"md nope O3 k\r\n", "NOT_FOUND", "NF O3 knope\r\n"},
    {"md nope q O3 k\r\n", "NOT_FOUND", "NF O3 knope\r\n"},
    {"md nope q O3 k\r\n", "DELETED", ""},
    {"ma nope O4 k\r\n", "NF", "NF O4 knope\r\n"},
    {"mg missing k O123 v\r\n", "END", "EN kmissing O123\r\n"},
    {"mg missing q k v\r\n", "END", ""},
    {"mg bWlzcw== b k O9 v\r\n", "EN", "EN kbWlzcw== b O9\r\n"},
    {"mg foo v\r\n", "SERVER_ERROR busy", "SERVER_ERROR busy\r\n"},
    {"mg foo v\r\n", "CLIENT_ERROR bad command line format",
     "CLIENT_ERROR bad command line format\r\n"},
    {"mn\r\n", "SERVER_ERROR x", "SERVER_ERROR x\r\n"},
    {"version\r\n", "SERVER_ERROR x", "SERVER_ERROR x\r\n"},
};

static void test_render_error(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]);
         i++) {
        const struct render_case *tc = &error_cases[i];
        struct proto_parser p;
        struct proto_cmd cmd;
        char out[512];
        parse_line(&p, tc->line, &cmd);
        size_t n;
        enum fault_outcome o = fault_render_error(
            &cmd, tc->msg, strlen(tc->msg), out, sizeof(out), &n);
        assert_int_equal(o, tc->want[0] ? FAULT_REPLY : FAULT_SILENT);
        if (n != strlen(tc->want) || memcmp(out, tc->want, n) != 0) {
            fail_msg("case %zu: %s with '%s': got '%.*s', want '%s'", i,
                     tc->line, tc->msg, (int)n, out, tc->want);
        }
        proto_deinit(&p);
    }
}

static const struct render_case miss_cases[] = {
    {"get a\r\n", NULL, "END\r\n"},
    {"gets a b c\r\n", NULL, "END\r\n"},
    {"gat 10 a\r\n", NULL, "END\r\n"},
    {"mg missing k O123 v\r\n", NULL, "EN kmissing O123\r\n"},
    {"mg missing v\r\n", NULL, "EN\r\n"},
    {"mg missing q k v\r\n", NULL, ""},
    {"mg bWlzcw== b k O9 v\r\n", NULL, "EN kbWlzcw== b O9\r\n"},
};

static void test_render_miss(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(miss_cases) / sizeof(miss_cases[0]); i++) {
        const struct render_case *tc = &miss_cases[i];
        struct proto_parser p;
        struct proto_cmd cmd;
        char out[512];
        parse_line(&p, tc->line, &cmd);
        size_t n;
        enum fault_outcome o = fault_render_miss(&cmd, out, sizeof(out), &n);
        assert_int_equal(o, tc->want[0] ? FAULT_REPLY : FAULT_SILENT);
        if (n != strlen(tc->want) || memcmp(out, tc->want, n) != 0) {
            fail_msg("case %zu: %s: got '%.*s', want '%s'", i, tc->line,
                     (int)n, out, tc->want);
        }
        proto_deinit(&p);
    }
}

/* A reply that does not fit says how much room it needs, and fits
 * there. */
static void test_render_small_buffer(void **state)
{
    struct proto_parser p;
    struct proto_cmd cmd;
    char out[8];
    char big[64];
    size_t n;
    size_t m;
    (void)state;

    parse_line(&p, "mg somekey k O123456789 v\r\n", &cmd);
    assert_int_equal(fault_render_miss(&cmd, out, sizeof(out), &n),
                     FAULT_NO_ROOM);
    assert_int_equal(fault_render_miss(&cmd, big, n, &m), FAULT_REPLY);
    assert_int_equal(m, n);
    assert_memory_equal(big, "EN ksomekey O123456789\r\n", m);
    assert_int_equal(fault_render_error(&cmd, "SERVER_ERROR too long", 21,
                                        out, sizeof(out), &n),
                     FAULT_NO_ROOM);
    assert_int_equal(n, 23);
    proto_deinit(&p);
}

/* Commands memcached refuses on its own are left to it. */
static void test_refused_by_memcached(void **state)
{
    static const struct {
        const char *line;
        bool refused;
    } cases[] = {
        {"mg k v O1234567890123456789012345678901\r\n", false},
        {"mg k v O12345678901234567890123456789012\r\n", true},
        {"md k q O12345678901234567890123456789012\r\n", true},
        {"get k O12345678901234567890123456789012\r\n", false},
        {"mn\r\n", false},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct proto_parser p;
        struct proto_cmd cmd;
        parse_line(&p, cases[i].line, &cmd);
        if (fault_refused_by_memcached(&cmd) != cases[i].refused) {
            fail_msg("case %zu: %s", i, cases[i].line);
        }
        proto_deinit(&p);
    }
}

struct b64_case {
    const char *in;
    const char *want; /* NULL: invalid */
    size_t want_len;
};

static const struct b64_case b64_cases[] = {
    {"", "", 0},
    {"YQ==", "a", 1},
    {"YWI=", "ab", 2},
    {"YWJj", "abc", 3},
    {"YWIKY2Q=", "ab\ncd", 5},
    {"AAE=", "\0\1", 2},
    {"bWlzcw==", "miss", 4},
    {"+/+/", "\xfb\xff\xbf", 3},
    {"YQ=", NULL, 0},
    {"YQ", NULL, 0},
    {"Y===", NULL, 0},
    {"=YQ=", NULL, 0},
    {"YQ==YQ==", NULL, 0},
    {"Y*Q=", NULL, 0},
};

static void test_b64(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(b64_cases) / sizeof(b64_cases[0]); i++) {
        const struct b64_case *tc = &b64_cases[i];
        char out[16];
        size_t n = 99;
        bool ok = fault_b64_decode(tc->in, strlen(tc->in), out, sizeof(out),
                                   &n);
        if (tc->want == NULL) {
            if (ok) {
                fail_msg("case %zu: '%s' accepted", i, tc->in);
            }
            continue;
        }
        if (!ok || n != tc->want_len || memcmp(out, tc->want, n) != 0) {
            fail_msg("case %zu: '%s' decoded wrong", i, tc->in);
        }
    }
    /* The decoded key must fit. */
    char small[2];
    size_t n;
    assert_false(fault_b64_decode("YWJj", 4, small, sizeof(small), &n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_error),
        cmocka_unit_test(test_render_miss),
        cmocka_unit_test(test_render_small_buffer),
        cmocka_unit_test(test_refused_by_memcached),
        cmocka_unit_test(test_b64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
