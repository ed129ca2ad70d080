/*
 * Unit tests for the JSON string escaping behind the admin API and the
 * --event-log lines: well-formed UTF-8 kept, every other byte \u00HH.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "mcfault/log.h"

struct esc_case {
    const char *in;
    size_t len;
    const char *want;
};

#define B(s) s, sizeof(s) - 1

static const struct esc_case esc_cases[] = {
    /* ASCII: printable kept, quote and backslash escaped, control bytes
     * and DEL as \u00HH. */
    {B("plain text 123"), "plain text 123"},
    {B("a\"b\\c/"), "a\\\"b\\\\c/"},
    {B("\x00\x01\t\n\x1f\x7f"), "\\u0000\\u0001\\u0009\\u000a\\u001f\\u007f"},
    {B(""), ""},
    /* Well-formed UTF-8, 2 to 4 bytes, at the edges of each range. */
    {B("caf\xc3\xa9"), "caf\xc3\xa9"},
    {B("\xc2\x80\xdf\xbf"), "\xc2\x80\xdf\xbf"},
    {B("\xe0\xa0\x80\xef\xbf\xbf"), "\xe0\xa0\x80\xef\xbf\xbf"},
    {B("\xe2\x82\xac"), "\xe2\x82\xac"},
    {B("\xed\x9f\xbf\xee\x80\x80"), "\xed\x9f\xbf\xee\x80\x80"},
    {B("\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"), "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"},
    {B("\xf0\x9f\x98\x80!"), "\xf0\x9f\x98\x80!"},
    /* U+2028, U+FFFE: valid scalar values, kept. */
    {B("\xe2\x80\xa8\xef\xbf\xbe"), "\xe2\x80\xa8\xef\xbf\xbe"},
    /* Overlong forms: every byte escaped. */
    {B("\xc0\xaf"), "\\u00c0\\u00af"},
    {B("\xc1\xbf"), "\\u00c1\\u00bf"},
    {B("\xe0\x80\xaf"), "\\u00e0\\u0080\\u00af"},
    {B("\xe0\x9f\xbf"), "\\u00e0\\u009f\\u00bf"},
    {B("\xf0\x80\x80\xaf"), "\\u00f0\\u0080\\u0080\\u00af"},
    {B("\xf0\x8f\xbf\xbf"), "\\u00f0\\u008f\\u00bf\\u00bf"},
    /* Surrogates (U+D800, U+DFFF), and a CESU-8 pair. */
    {B("\xed\xa0\x80"), "\\u00ed\\u00a0\\u0080"},
    {B("\xed\xbf\xbf"), "\\u00ed\\u00bf\\u00bf"},
    {B("\xed\xa0\xbd\xed\xb8\x80"),
     "\\u00ed\\u00a0\\u00bd\\u00ed\\u00b8\\u0080"},
    /* Above U+10FFFF, and lead bytes that never start anything. */
    {B("\xf4\x90\x80\x80"), "\\u00f4\\u0090\\u0080\\u0080"},
    {B("\xf5\x80\x80\x80"), "\\u00f5\\u0080\\u0080\\u0080"},
    {B("\xf8\x88\x80\x80\x80"), "\\u00f8\\u0088\\u0080\\u0080\\u0080"},
    {B("\xfe\xff"), "\\u00fe\\u00ff"},
    {B("\xff"), "\\u00ff"},
    {B("a\xffz"), "a\\u00ffz"},
    /* Truncated sequences: at the end, and cut by an ASCII byte (which is
     * kept), by another lead byte (which starts over). */
    {B("\xc3"), "\\u00c3"},
    {B("\xe2\x82"), "\\u00e2\\u0082"},
    {B("\xf0\x9f\x98"), "\\u00f0\\u009f\\u0098"},
    {B("\xc3("), "\\u00c3("},
    {B("\xe2\x82x"), "\\u00e2\\u0082x"},
    {B("\xe2\xc3\xa9"), "\\u00e2\xc3\xa9"},
    {B("\xf0\x9f\xf0\x9f\x98\x80"), "\\u00f0\\u009f\xf0\x9f\x98\x80"},
    /* Lone continuation bytes. */
    {B("\x80"), "\\u0080"},
    {B("\xbf\xbf"), "\\u00bf\\u00bf"},
    {B("\xc3\xa9\xa9"), "\xc3\xa9\\u00a9"},
    /* Latin-1 text (not UTF-8): one escape per byte. */
    {B("caf\xe9"), "caf\\u00e9"},
    /* NUL inside a sequence. */
    {B("\xc3\x00"), "\\u00c3\\u0000"},
};

static void test_escape_table(void **state)
{
    char out[256];
    (void)state;

    for (size_t i = 0; i < sizeof(esc_cases) / sizeof(esc_cases[0]); i++) {
        const struct esc_case *c = &esc_cases[i];
        log_json_escape(c->in, c->len, out, sizeof(out));
        if (strcmp(out, c->want) != 0) {
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, out, c->want);
        }
    }
}

/*
 * A reference written differently from log.c (decode the code point, then
 * reject what is overlong, a surrogate or too big): the escape of s must
 * be its output.
 */
static size_t ref_escape(const unsigned char *s, size_t n, char *out)
{
    size_t o = 0;
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;
        static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
        bool ok = len > 1 && i + len <= n;
        unsigned cp = len > 1 ? c & (0x7f >> len) : c;
        for (size_t k = 1; ok && k < len; k++) {
            ok = (s[i + k] & 0xc0) == 0x80;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        ok = ok && cp >= min[len] && cp <= 0x10ffff &&
             !(cp >= 0xd800 && cp <= 0xdfff);
        if (ok) {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        } else if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
            i++;
        } else if (c >= 0x20 && c < 0x7f) {
            out[o++] = (char)c;
            i++;
        } else {
            o += (size_t)sprintf(out + o, "\\u%04x", c);
            i++;
        }
    }
    out[o] = '\0';
    return o;
}

static void check_against_ref(const unsigned char *s, size_t n)
{
    char got[64];
    char want[64];

    log_json_escape((const char *)s, n, got, sizeof(got));
    ref_escape(s, n, want);
    if (strcmp(got, want) != 0) {
        fail_msg("bytes %02x %02x %02x %02x (n %zu): got \"%s\", want \"%s\"",
                 n > 0 ? s[0] : 0, n > 1 ? s[1] : 0, n > 2 ? s[2] : 0,
                 n > 3 ? s[3] : 0, n, got, want);
    }
    assert_true(strlen(got) <= 6 * n);
}

/* Bytes at the edges of the ranges the UTF-8 grammar cares about (ASCII,
 * continuation, each kind of lead byte) and just outside them. */
static const unsigned char edges[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f,
                                      0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed,
                                      0xef, 0xf0, 0xf4, 0xf5, 0xff};

#define NEDGES (sizeof(edges) / sizeof(edges[0]))

/* Every string of one and two bytes; three bytes: every first two, the
 * third from the edges. */
static void test_short_strings(void **state)
{
    unsigned char s[3];
    (void)state;

    for (unsigned a = 0; a < 256; a++) {
        s[0] = (unsigned char)a;
        check_against_ref(s, 1);
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (unsigned char)b;
            check_against_ref(s, 2);
            for (size_t c = 0; c < NEDGES; c++) {
                s[2] = edges[c];
                check_against_ref(s, 3);
            }
        }
    }
}

/* Four bytes: every second byte after every four-byte lead (and a few
 * others), the last two from the edges. */
static void test_four_byte_strings(void **state)
{
    static const unsigned char leads[] = {0x41, 0x80, 0xc3, 0xe2, 0xed, 0xf0,
                                          0xf1, 0xf3, 0xf4, 0xf5, 0xf7, 0xff};
    unsigned char s[4];
    (void)state;

    for (size_t a = 0; a < sizeof(leads); a++) {
        for (unsigned b = 0; b < 256; b++) {
            for (size_t c = 0; c < NEDGES; c++) {
                for (size_t d = 0; d < NEDGES; d++) {
                    s[0] = leads[a];
                    s[1] = (unsigned char)b;
                    s[2] = edges[c];
                    s[3] = edges[d];
                    check_against_ref(s, 4);
                }
            }
        }
    }
}

/* A buffer too small cuts before a whole character, never inside one,
 * and is always NUL-terminated. */
static void test_cut_at_character(void **state)
{
    static const char in[] = "a\xc3\xa9\xf0\x9f\x98\x80\xff\"z";
    char full[64];
    (void)state;

    log_json_escape(in, sizeof(in) - 1, full, sizeof(full));
    assert_string_equal(full, "a\xc3\xa9\xf0\x9f\x98\x80\\u00ff\\\"z");
    for (size_t cap = 1; cap <= sizeof(full); cap++) {
        char out[64];
        memset(out, 'X', sizeof(out));
        log_json_escape(in, sizeof(in) - 1, out, cap);
        size_t n = strlen(out);
        assert_true(n < cap);
        /* A prefix of the whole escape, ending where a character's
         * escape ends. */
        assert_memory_equal(out, full, n);
        static const size_t ends[] = {0, 1, 3, 7, 13, 15, 16};
        bool at_end = false;
        for (size_t k = 0; k < sizeof(ends) / sizeof(ends[0]); k++) {
            at_end = at_end || ends[k] == n;
        }
        if (!at_end) {
            fail_msg("cap %zu: cut inside a character: \"%s\"", cap, out);
        }
    }
    /* 6 * n + 1 bytes always suffice. */
    char out[6 * 3 + 1];
    log_json_escape("\xff\xfe\x01", 3, out, sizeof(out));
    assert_string_equal(out, "\\u00ff\\u00fe\\u0001");
}

/* log_json_char says how many input bytes each output stands for. */
static void test_char_used(void **state)
{
    char out[LOG_JSON_CHAR_MAX];
    size_t used;
    (void)state;

    assert_int_equal(log_json_char("\xf0\x9f\x98\x80", 4, &used, out), 4);
    assert_int_equal(used, 4);
    assert_int_equal(log_json_char("\xf0\x9f\x98\x80", 3, &used, out), 6);
    assert_int_equal(used, 1);
    assert_memory_equal(out, "\\u00f0", 6);
    assert_int_equal(log_json_char("\xc3\xa9", 2, &used, out), 2);
    assert_int_equal(used, 2);
    assert_int_equal(log_json_char("\"", 1, &used, out), 2);
    assert_int_equal(used, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_table),
        cmocka_unit_test(test_short_strings),
        cmocka_unit_test(test_four_byte_strings),
        cmocka_unit_test(test_cut_at_character),
        cmocka_unit_test(test_char_used),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
