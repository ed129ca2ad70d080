/*
 * Unit tests for the glob matcher: hand-written tables of patterns and
 * subjects (binary ones included), then pathological patterns and
 * glob_validate's error offsets.
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

/* A string literal as (pointer, length), so literals may hold NUL bytes. */
#define B(x) (x), (sizeof(x) - 1)

struct match_case {
    const char *pat;
    size_t plen;
    const char *s;
    size_t slen;
    bool nocase;
    bool want;
};

static const struct match_case match_cases[] = {
    /* literals and empty strings */
    {B(""), B(""), false, true},
    {B(""), B("a"), false, false},
    {B("a"), B(""), false, false},
    {B("abc"), B("abc"), false, true},
    {B("abc"), B("abd"), false, false},
    {B("abc"), B("ab"), false, false},
    {B("ab"), B("abc"), false, false},
    {B("user:42"), B("user:42"), false, true},
    {B("]"), B("]"), false, true},
    {B("a-b"), B("a-b"), false, true},

    /* '*' at start, middle, end; several stars */
    {B("*"), B(""), false, true},
    {B("*"), B("anything"), false, true},
    {B("**"), B(""), false, true},
    {B("*abc"), B("abc"), false, true},
    {B("*abc"), B("xxabc"), false, true},
    {B("*abc"), B("xxabd"), false, false},
    {B("abc*"), B("abc"), false, true},
    {B("abc*"), B("abcdef"), false, true},
    {B("abc*"), B("abdef"), false, false},
    {B("a*"), B(""), false, false},
    {B("a*c"), B("ac"), false, true},
    {B("a*c"), B("abbbc"), false, true},
    {B("a*c"), B("abbbcd"), false, false},
    {B("a*c"), B("acac"), false, true},
    {B("*a*b*"), B("xaxbx"), false, true},
    {B("*a*b*"), B("xbxax"), false, false},
    {B("a*b*c"), B("abc"), false, true},
    {B("a*b*c"), B("aXbYbZc"), false, true},
    {B("a*b*c"), B("acb"), false, false},
    {B("*:*:*"), B("user:1:name"), false, true},
    {B("*:*:*"), B("user:1"), false, false},
    {B("a***b"), B("ab"), false, true},
    {B("*ab"), B("aab"), false, true},
    {B("*aab"), B("aaab"), false, true},
    {B("*abcd"), B("abcabcd"), false, true},
    {B("*abcd"), B("abcabce"), false, false},
    {B("*x*yz"), B("xyxyxyz"), false, true},

    /* '?' */
    {B("?"), B("a"), false, true},
    {B("?"), B(""), false, false},
    {B("?"), B("ab"), false, false},
    {B("a?c"), B("abc"), false, true},
    {B("a?c"), B("ac"), false, false},
    {B("???"), B("abc"), false, true},
    {B("*?"), B(""), false, false},
    {B("*?"), B("x"), false, true},
    {B("?*?"), B("ab"), false, true},
    {B("?*?"), B("a"), false, false},

    /* classes, ranges, negation */
    {B("[abc]"), B("b"), false, true},
    {B("[abc]"), B("d"), false, false},
    {B("[abc]"), B(""), false, false},
    {B("[abc]"), B("ab"), false, false},
    {B("[a-z]"), B("m"), false, true},
    {B("[a-z]"), B("M"), false, false},
    {B("[a-z]"), B("-"), false, false},
    {B("[0-9][0-9]"), B("42"), false, true},
    {B("[a-cx-z]"), B("y"), false, true},
    {B("[a-cx-z]"), B("d"), false, false},
    {B("[^a-z]"), B("A"), false, true},
    {B("[^a-z]"), B("q"), false, false},
    {B("[!a-z]"), B("5"), false, true},
    {B("[!a-z]"), B("q"), false, false},
    {B("[^abc]"), B(""), false, false},
    {B("[]]"), B("]"), false, true},
    {B("[]a]"), B("a"), false, true},
    {B("[]a]"), B("b"), false, false},
    {B("[^]]"), B("]"), false, false},
    {B("[^]]"), B("x"), false, true},
    {B("[!]a]"), B("a"), false, false},
    {B("[]-a]"), B("_"), false, true},
    {B("[a-]"), B("-"), false, true},
    {B("[-a]"), B("-"), false, true},
    {B("[a-]"), B("b"), false, false},
    {B("[a-c-e]"), B("-"), false, true},
    {B("[a-c-e]"), B("d"), false, false},
    {B("[z-a]"), B("m"), false, true},
    {B("[*?]"), B("*"), false, true},
    {B("[*?]"), B("x"), false, false},
    {B("[[]"), B("["), false, true},
    {B("[^^]"), B("^"), false, false},
    {B("[\\]]"), B("]"), false, true},
    {B("[\\]a]"), B("a"), false, true},
    {B("[a\\-z]"), B("-"), false, true},
    {B("[a\\-z]"), B("m"), false, false},
    {B("[\\^a]"), B("^"), false, true},
    {B("[a-\\z]"), B("q"), false, true},

    /* an unterminated class is a literal '[' */
    {B("[abc"), B("[abc"), false, true},
    {B("[abc"), B("a"), false, false},
    {B("["), B("["), false, true},
    {B("[]"), B("[]"), false, true},
    {B("[]"), B("]"), false, false},
    {B("[^]"), B("[^]"), false, true},
    {B("[a\\]"), B("[a]"), false, true},
    {B("[a-z*"), B("[a-zzz"), false, true},
    {B("x["), B("x["), false, true},

    /* escapes */
    {B("\\*"), B("*"), false, true},
    {B("\\*"), B("a"), false, false},
    {B("\\?"), B("?"), false, true},
    {B("\\?"), B("x"), false, false},
    {B("\\[a]"), B("[a]"), false, true},
    {B("\\[a]"), B("a"), false, false},
    {B("\\\\"), B("\\"), false, true},
    {B("\\a"), B("a"), false, true},
    {B("a\\"), B("a\\"), false, true},
    {B("\\"), B("\\"), false, true},
    {B("\\"), B(""), false, false},
    {B("*\\*"), B("abc*"), false, true},
    {B("*\\*"), B("abc"), false, false},

    /* binary: NUL and high bytes are ordinary */
    {B("a\0b"), B("a\0b"), false, true},
    {B("a\0b"), B("a\0c"), false, false},
    {B("a\0b"), B("a"), false, false},
    {B("a?b"), B("a\0b"), false, true},
    {B("*\0"), B("xyz\0"), false, true},
    {B("*\0*"), B("ab"), false, false},
    {B("[\0-\x1f]"), B("\t"), false, true},
    {B("[\0-\x1f]"), B(" "), false, false},
    {B("[^\0]"), B("\0"), false, false},
    {B("[^\0]"), B("x"), false, true},
    {B("\\\0"), B("\0"), false, true},
    {B("\xff*"), B("\xff\xfe"), false, true},
    {B("[\x80-\xff]"), B("\xc3"), false, true},
    {B("[\x80-\xff]"), B("a"), false, false},
    {B("?"), B("\0"), false, true},
    {B("a*"), B("a\0\0\0"), false, true},
    {B("a"), B("a\0"), false, false},

    /* case-insensitivity only when asked, ASCII only */
    {B("GET"), B("get"), true, true},
    {B("GET"), B("get"), false, false},
    {B("get"), B("GeT"), true, true},
    {B("g?t"), B("GAT"), true, true},
    {B("[a-z]"), B("Q"), true, true},
    {B("[A-Z]"), B("q"), true, true},
    {B("[A-Z]"), B("q"), false, false},
    {B("[^a]"), B("A"), true, false},
    {B("[^a]"), B("A"), false, true},
    {B("[^a]"), B("b"), true, true},
    {B("*SET"), B("xset"), true, true},
    {B("\\A"), B("a"), true, true},
    {B("[Z-a]"), B("z"), true, true},
    {B("[Z-a]"), B("b"), true, false},
    {B("*[^H-%-c]"), B("xd"), true, false},
    {B("*[^H-%-c]"), B("xd"), false, true},
    {B("\xc3"), B("\xe3"), true, false},
    {B("@"), B("`"), true, false},
    {B("[@]"), B("`"), true, false},
    {B("["), B("{"), true, false},
    {B("1*"), B("1X"), true, true},

    /* memcached keys */
    {B("user:*:session"), B("user:42:session"), false, true},
    {B("user:*:session"), B("user:42:sessions"), false, false},
    {B("cache_[0-9][0-9]*"), B("cache_12345"), false, true},
    {B("cache_[0-9][0-9]*"), B("cache_1x"), false, false},
    {B("*/v[0-9]/*"), B("api/v2/users"), false, true},

    /* small pathological shapes */
    {B("a*a*a*a*a*a*a*a*b"), B("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), false,
     false},
    {B("*a*a*a*a*a*a*"), B("aaaaaa"), false, true},
    {B("*a*a*a*a*a*a*"), B("aaaaa"), false, false},
    {B("*?*?*?*?"), B("abc"), false, false},
    {B("*?*?*?*?"), B("abcd"), false, true},
};

/* Prints a byte string with escapes so failures are readable. */
static void print_bytes(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
            fputc(c, stderr);
        } else {
            fprintf(stderr, "\\x%02x", c);
        }
    }
}

static void test_match_table(void **state)
{
    (void)state;
    size_t n = sizeof(match_cases) / sizeof(match_cases[0]);
    int failures = 0;

    assert_true(n >= 80);
    for (size_t i = 0; i < n; i++) {
        const struct match_case *c = &match_cases[i];
        bool got = glob_match(c->pat, c->plen, c->s, c->slen, c->nocase);
        if (got != c->want) {
            fprintf(stderr, "case %zu: pattern \"", i);
            print_bytes(c->pat, c->plen);
            fprintf(stderr, "\" subject \"");
            print_bytes(c->s, c->slen);
            fprintf(stderr, "\" nocase %d: got %d, want %d\n", c->nocase, got,
                    c->want);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* Zero lengths never touch the pointers. */
static void test_null_pointers(void **state)
{
    (void)state;
    assert_true(glob_match(NULL, 0, NULL, 0, false));
    assert_false(glob_match(NULL, 0, "a", 1, false));
    assert_true(glob_match("*", 1, NULL, 0, false));
    assert_false(glob_match("?", 1, NULL, 0, true));
    assert_int_equal(glob_validate(NULL, 0, NULL, NULL), GLOB_OK);
}

/* "\c" matches c and nothing else, for every byte. */
static void test_escape_every_byte(void **state)
{
    (void)state;
    for (unsigned c = 0; c < 256; c++) {
        char pat[2] = {'\\', (char)c};
        char lit[1] = {(char)c};
        char cls[4] = {'[', '\\', (char)c, ']'};
        assert_int_equal(glob_validate(pat, 2, NULL, NULL), GLOB_OK);
        assert_int_equal(glob_validate(cls, 4, NULL, NULL), GLOB_OK);
        for (unsigned d = 0; d < 256; d++) {
            char s[1] = {(char)d};
            assert_int_equal(glob_match(pat, 2, s, 1, false), c == d);
            assert_int_equal(glob_match(cls, 4, s, 1, false), c == d);
            if (c != '*' && c != '?' && c != '[' && c != '\\') {
                assert_int_equal(glob_match(lit, 1, s, 1, false), c == d);
            }
        }
    }
}

/* A 10 KB subject of 'a' with an 'x' spliced in at 'at' (none if past). */
static char *make_subject(size_t len, size_t at)
{
    char *s = malloc(len);
    assert_non_null(s);
    memset(s, 'a', len);
    if (at < len) {
        s[at] = 'x';
    }
    return s;
}

/* These must finish; the matcher has no recursion and no step cap, so
 * finishing at all is the assertion (no timing is measured). */
static void test_pathological(void **state)
{
    (void)state;
    const size_t n = 10 * 1024;
    char *s = make_subject(n, n);

    const char *p1 = "a*a*a*a*a*a*a*a*b";
    assert_false(glob_match(p1, strlen(p1), s, n, false));
    const char *p2 = "a*a*a*a*a*a*a*a*a";
    assert_true(glob_match(p2, strlen(p2), s, n, false));
    const char *p3 = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b*";
    assert_false(glob_match(p3, strlen(p3), s, n, false));
    const char *p4 = "*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?b";
    assert_false(glob_match(p4, strlen(p4), s, n, true));
    const char *p5 = "*[a]*[^b]*[a-a]*\\a*[!x]*";
    assert_true(glob_match(p5, strlen(p5), s, n, false));

    /* "*aaa...ab": the O(plen * slen) worst case, with a 1 KB pattern. */
    size_t plen = 1024;
    char *p6 = malloc(plen);
    assert_non_null(p6);
    p6[0] = '*';
    memset(p6 + 1, 'a', plen - 2);
    p6[plen - 1] = 'b';
    assert_false(glob_match(p6, plen, s, n, false));
    p6[plen - 1] = 'a';
    assert_true(glob_match(p6, plen, s, n, false));
    free(p6);
    free(s);

    /* The one 'x' sits near the end: stars must move past many 'a's. */
    s = make_subject(n, n - 3);
    const char *p7 = "*a*a*a*x*a";
    assert_true(glob_match(p7, strlen(p7), s, n, false));
    const char *p8 = "*a*a*a*x*a*a*a";
    assert_false(glob_match(p8, strlen(p8), s, n, false));
    const char *p9 = "a*a*a*a*a*a*a*a*xaa";
    assert_true(glob_match(p9, strlen(p9), s, n, false));
    free(s);
}

struct validate_case {
    const char *pat;
    size_t plen;
    int want_rc;
    size_t want_off;
    const char *want_msg;
};

#define MSG_TRAILING "trailing backslash"
#define MSG_UNTERMINATED "unterminated character class"
#define MSG_LEAD_CLOSE                                                         \
    "unterminated character class (a ']' right after '[' or '[^' is a "        \
    "member)"
#define MSG_RANGE "character class range out of order"

static const struct validate_case validate_cases[] = {
    {B(""), GLOB_OK, 0, NULL},
    {B("abc"), GLOB_OK, 0, NULL},
    {B("*?[a-z]\\*"), GLOB_OK, 0, NULL},
    {B("]"), GLOB_OK, 0, NULL},
    {B("\\["), GLOB_OK, 0, NULL},
    {B("a\\\\"), GLOB_OK, 0, NULL},
    {B("[]]"), GLOB_OK, 0, NULL},
    {B("[^]]"), GLOB_OK, 0, NULL},
    {B("[!]]"), GLOB_OK, 0, NULL},
    {B("[]-a]"), GLOB_OK, 0, NULL},
    {B("[a-]"), GLOB_OK, 0, NULL},
    {B("[a-a]"), GLOB_OK, 0, NULL},
    {B("[\\]-\\^]"), GLOB_OK, 0, NULL},
    {B("\\[z-a]"), GLOB_OK, 0, NULL},
    {B("a\0b"), GLOB_OK, 0, NULL},
    {B("[\0]"), GLOB_OK, 0, NULL},
    {B("\\"), GLOB_EPATTERN, 0, MSG_TRAILING},
    {B("abc\\"), GLOB_EPATTERN, 3, MSG_TRAILING},
    {B("a\\\\\\"), GLOB_EPATTERN, 3, MSG_TRAILING},
    {B("[a]\\"), GLOB_EPATTERN, 3, MSG_TRAILING},
    {B("["), GLOB_EPATTERN, 0, MSG_UNTERMINATED},
    {B("ab[cd"), GLOB_EPATTERN, 2, MSG_UNTERMINATED},
    {B("[a\\]"), GLOB_EPATTERN, 0, MSG_UNTERMINATED},
    {B("[a\\"), GLOB_EPATTERN, 0, MSG_UNTERMINATED},
    {B("x[a-"), GLOB_EPATTERN, 1, MSG_UNTERMINATED},
    {B("[^"), GLOB_EPATTERN, 0, MSG_UNTERMINATED},
    {B("[\0"), GLOB_EPATTERN, 0, MSG_UNTERMINATED},
    {B("[a]["), GLOB_EPATTERN, 3, MSG_UNTERMINATED},
    {B("[]"), GLOB_EPATTERN, 0, MSG_LEAD_CLOSE},
    {B("[^]"), GLOB_EPATTERN, 0, MSG_LEAD_CLOSE},
    {B("[!]"), GLOB_EPATTERN, 0, MSG_LEAD_CLOSE},
    {B("key:[]abc"), GLOB_EPATTERN, 4, MSG_LEAD_CLOSE},
    {B("[z-a]"), GLOB_EPATTERN, 1, MSG_RANGE},
    {B("ab[a-cz-x]"), GLOB_EPATTERN, 6, MSG_RANGE},
    {B("[\\z-a]"), GLOB_EPATTERN, 1, MSG_RANGE},
    {B("[\xff-\x80]"), GLOB_EPATTERN, 1, MSG_RANGE},
    {B("[z-a]["), GLOB_EPATTERN, 1, MSG_RANGE},
    {B("\\*[b-a"), GLOB_EPATTERN, 2, MSG_UNTERMINATED},
};

static void test_validate_table(void **state)
{
    (void)state;
    size_t n = sizeof(validate_cases) / sizeof(validate_cases[0]);
    int failures = 0;

    for (size_t i = 0; i < n; i++) {
        const struct validate_case *c = &validate_cases[i];
        size_t off = 12345;
        const char *msg = "untouched";
        int rc = glob_validate(c->pat, c->plen, &off, &msg);
        bool ok;
        if (c->want_rc == GLOB_OK) {
            /* Success leaves the outputs alone. */
            ok = rc == GLOB_OK && off == 12345 && strcmp(msg, "untouched") == 0;
        } else {
            ok = rc == c->want_rc && off == c->want_off &&
                 strcmp(msg, c->want_msg) == 0;
        }
        if (!ok) {
            fprintf(stderr, "case %zu: pattern \"", i);
            print_bytes(c->pat, c->plen);
            fprintf(stderr, "\": got %d at %zu (%s)\n", rc, off, msg);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_validate_null_outputs(void **state)
{
    (void)state;
    size_t off = 99;
    const char *msg = NULL;

    assert_int_equal(glob_validate("ab\\", 3, NULL, NULL), GLOB_EPATTERN);
    assert_int_equal(glob_validate("ab[", 3, &off, NULL), GLOB_EPATTERN);
    assert_int_equal(off, 2);
    assert_int_equal(glob_validate("[]", 2, NULL, &msg), GLOB_EPATTERN);
    assert_string_equal(msg, MSG_LEAD_CLOSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_null_pointers),
        cmocka_unit_test(test_escape_every_byte),
        cmocka_unit_test(test_pathological),
        cmocka_unit_test(test_validate_table),
        cmocka_unit_test(test_validate_null_outputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
