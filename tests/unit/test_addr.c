/*
 * Unit tests for address arguments: a table of "HOST:PORT" forms, good and
 * bad, then numeric resolution and formatting round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "mcfault/addr.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define H10 "hhhhhhhhhh"
#define H50 H10 H10 H10 H10 H10
#define H250 H50 H50 H50 H50 H50
#define HOST255 H250 "hhhhh"
#define HOST256 HOST255 "h"

struct parse_case {
    const char *in;
    const char *def; /* default port */
    int rc;
    const char *host; /* when rc == 0 */
    const char *port;
};

static const struct parse_case parse_cases[] = {
    {"127.0.0.1:11211", "11211", 0, "127.0.0.1", "11211"},
    {"0.0.0.0:1", "11211", 0, "0.0.0.0", "1"},
    {"10.1.2.3:65535", "11211", 0, "10.1.2.3", "65535"},
    {"[::1]:11211", "9", 0, "::1", "11211"},
    {"[::1]", "11211", 0, "::1", "11211"},
    {"[::ffff:127.0.0.1]:80", "11211", 0, "::ffff:127.0.0.1", "80"},
    {"[fe80::1%eth0]:11211", "1", 0, "fe80::1%eth0", "11211"},
    {"localhost", "11211", 0, "localhost", "11211"},
    {"localhost", "22122", 0, "localhost", "22122"},
    {"memcached:11211", "1", 0, "memcached", "11211"},
    {"cache-1.example.org:2000", "1", 0, "cache-1.example.org", "2000"},
    {HOST255 ":1", "11211", 0, HOST255, "1"},
    {HOST255, "11211", 0, HOST255, "11211"},

    {"", "11211", -1, NULL, NULL},
    {":11211", "11211", -1, NULL, NULL},
    {"host:", "11211", -1, NULL, NULL},
    {"host:0", "11211", -1, NULL, NULL},
    {"host:65536", "11211", -1, NULL, NULL},
    {"host:99999999", "11211", -1, NULL, NULL},
    {"host:abc", "11211", -1, NULL, NULL},
    {"host:80x", "11211", -1, NULL, NULL},
    {"host:+80", "11211", -1, NULL, NULL},
    {"host:-1", "11211", -1, NULL, NULL},
    {"host: 80", "11211", -1, NULL, NULL},
    {"::1:11211", "11211", -1, NULL, NULL},
    {"::1", "11211", -1, NULL, NULL},
    {"host:1:2", "11211", -1, NULL, NULL},
    {"[::1", "11211", -1, NULL, NULL},
    {"[::1]x", "11211", -1, NULL, NULL},
    {"[::1]]", "11211", -1, NULL, NULL},
    {"[::1]:", "11211", -1, NULL, NULL},
    {"[::1]:0", "11211", -1, NULL, NULL},
    {"[]:11211", "11211", -1, NULL, NULL},
    {"[]", "11211", -1, NULL, NULL},
    {HOST256 ":1", "11211", -1, NULL, NULL},
    {HOST256, "11211", -1, NULL, NULL},
    /* a bad default port is as bad as a bad written one */
    {"localhost", "0", -1, NULL, NULL},
    {"localhost", "", -1, NULL, NULL},
    {"[::1]", "http", -1, NULL, NULL},
};

static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(parse_cases); i++) {
        const struct parse_case *c = &parse_cases[i];
        struct addr_spec spec;
        int rc;

        memset(&spec, 0x5a, sizeof(spec));
        rc = addr_parse(c->in, c->def, &spec);
        if (rc != c->rc) {
            fail_msg("addr_parse(\"%s\", \"%s\") = %d, want %d", c->in, c->def,
                     rc, c->rc);
        }
        if (rc != 0) {
            continue;
        }
        if (strcmp(spec.host, c->host) != 0 ||
            strcmp(spec.port, c->port) != 0) {
            fail_msg("addr_parse(\"%s\"): host \"%s\" port \"%s\", "
                     "want \"%s\" \"%s\"",
                     c->in, spec.host, spec.port, c->host, c->port);
        }
    }
}

static void test_parse_null(void **state)
{
    struct addr_spec spec;
    (void)state;

    assert_int_equal(addr_parse(NULL, "11211", &spec), -1);
}

/* addr_format of an address filled in by hand. */
static void test_format(void **state)
{
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    struct sockaddr_storage none;
    char buf[64];
    (void)state;

    memset(&v4, 0, sizeof(v4));
    v4.sin_family = AF_INET;
    v4.sin_port = htons(11211);
    assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr), 1);
    assert_string_equal(addr_format((struct sockaddr *)&v4, buf, sizeof(buf)),
                        "127.0.0.1:11211");

    memset(&v6, 0, sizeof(v6));
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(11211);
    assert_int_equal(inet_pton(AF_INET6, "::1", &v6.sin6_addr), 1);
    assert_string_equal(addr_format((struct sockaddr *)&v6, buf, sizeof(buf)),
                        "[::1]:11211");

    v6.sin6_port = htons(1);
    assert_int_equal(inet_pton(AF_INET6, "fe80::a:b", &v6.sin6_addr), 1);
    assert_string_equal(addr_format((struct sockaddr *)&v6, buf, sizeof(buf)),
                        "[fe80::a:b]:1");

    memset(&none, 0, sizeof(none));
    none.ss_family = AF_UNIX;
    assert_string_equal(addr_format((struct sockaddr *)&none, buf, sizeof(buf)),
                        "unknown");

    /* a short buffer is cut, never overrun */
    memset(buf, '#', sizeof(buf));
    addr_format((struct sockaddr *)&v4, buf, 6);
    assert_string_equal(buf, "127.0");
    assert_int_equal(buf[6], '#');
}

struct round_case {
    const char *in;
    int family;
    const char *out;
};

static const struct round_case round_cases[] = {
    {"127.0.0.1:11211", AF_INET, "127.0.0.1:11211"},
    {"0.0.0.0:1", AF_INET, "0.0.0.0:1"},
    {"[::1]:11211", AF_INET6, "[::1]:11211"},
    {"[::1]", AF_INET6, "[::1]:22122"},
    {"[0:0::1]:80", AF_INET6, "[::1]:80"},
};

/* parse -> resolve (numeric hosts only: no DNS) -> format */
static void test_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(round_cases); i++) {
        const struct round_case *c = &round_cases[i];
        struct addr_spec spec;
        struct sockaddr_storage ss;
        socklen_t len = 0;
        char buf[128];

        assert_int_equal(addr_parse(c->in, "22122", &spec), 0);
        memset(&ss, 0, sizeof(ss));
        assert_int_equal(addr_resolve(&spec, 0, &ss, &len), 0);
        assert_int_equal(ss.ss_family, c->family);
        assert_int_equal(len, c->family == AF_INET
                                  ? sizeof(struct sockaddr_in)
                                  : sizeof(struct sockaddr_in6));
        assert_string_equal(
            addr_format((struct sockaddr *)&ss, buf, sizeof(buf)), c->out);
    }
}

static void test_resolve_bad_port(void **state)
{
    struct addr_spec spec;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    (void)state;

    /* addr_resolve takes numeric services only (AI_NUMERICSERV) */
    memset(&spec, 0, sizeof(spec));
    snprintf(spec.host, sizeof(spec.host), "127.0.0.1");
    snprintf(spec.port, sizeof(spec.port), "http");
    assert_int_not_equal(addr_resolve(&spec, 0, &ss, &len), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_null),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_resolve_bad_port),
    };
    return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
