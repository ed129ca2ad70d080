/*
 * Unit tests for the request parser: a hand-written table of request streams
 * and what memcached 1.6.18 makes of them, each stream fed whole, byte by
 * byte, split at every point and in random pieces; then the number parsers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcfault/proto.h"

#include "chunker.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Inputs longer than this are split at a sample of points, not all. */
#define SPLIT_ALL_MAX 8192
/* Random chunkings per case (fewer for the megabyte inputs). */
#define RANDOM_ROUNDS 48
#define RANDOM_ROUNDS_BIG 6
#define RANDOM_SEED 0x6d6366617566ULL

/* ---- long literals, built by concatenation (each stays under 4095) ---- */

#define A10 "aaaaaaaaaa"
#define A50 A10 A10 A10 A10 A10
#define KEY250 A50 A50 A50 A50 A50
#define KEY251 KEY250 "a"

#define X1 "x"
#define X2 X1 X1
#define X4 X2 X2
#define X8 X4 X4
#define X16 X8 X8
#define X32 X16 X16
#define X64 X32 X32
#define X128 X64 X64
#define X256 X128 X128
#define X512 X256 X256
#define X1024 X512 X512
#define X2048 X1024 X1024
#define X2047 X1024 X512 X256 X128 X64 X32 X16 X8 X4 X2 X1

#define SP10 "          "
#define SP100 SP10 SP10 SP10 SP10 SP10 SP10 SP10 SP10 SP10 SP10

/* 1000 keys "ab", one space apart: 2999 bytes. */
#define AB1 "ab "
#define AB9 AB1 AB1 AB1 AB1 AB1 AB1 AB1 AB1 AB1
#define AB10 AB9 AB1
#define AB90 AB10 AB10 AB10 AB10 AB10 AB10 AB10 AB10 AB10
#define AB100 AB90 AB10
#define AB900 AB100 AB100 AB100 AB100 AB100 AB100 AB100 AB100 AB100
#define KEYS_AB1000 AB900 AB90 AB9 "ab"

#define K22                                                                    \
    "k01 k02 k03 k04 k05 k06 k07 k08 k09 k10 k11 k12 k13 k14 k15 k16 k17 "     \
    "k18 k19 k20 k21 k22"
#define K23 K22 " k23"
#define K30 K23 " k24 k25 k26 k27 k28 k29 k30"

/* 16 and 17 meta flags: "ms k 2" plus these is 19 / 20 tokens. */
#define FLAGS16 "T0 T1 T2 T3 T4 T5 T6 T7 T8 T9 Ta Tb Tc Td Te Tf"
#define FLAGS17 FLAGS16 " Tg"

/* ---- the table ---- */

/* One command as memcached sees it. */
struct exp_cmd {
    enum proto_op op;
    enum proto_reply reply;
    bool noreply;
    uint64_t data_len;
    uint32_t nkeys;
    const char *keys; /* every key, joined by one space; NULL: generated */
    bool key_base64;
    const char *opaque; /* the O token, "" for none */
    bool meta_k;
};

/* Inputs too long for a literal: pre, then nkeys copies of key one space
 * apart, then spaces up to pad_to bytes, then post. */
struct gen {
    const char *pre;
    const char *key;
    size_t nkeys;
    size_t pad_to;
    const char *post;
};

#define MAX_CMDS 12

struct proto_case {
    const char *name;
    const char *in;
    size_t in_len;
    const struct gen *gen;
    struct exp_cmd cmd[MAX_CMDS];
    size_t ncmd;
    enum proto_status stop; /* PROTO_AGAIN: every byte is consumed */
    uint64_t data_left;     /* proto_data_left() after the last byte */
    /* Not 0: a read that ends at this offset (a line's "\r" read, its "\n"
     * not yet) leaves too many bytes without a newline, as in memcached:
     * then only the first cut_ncmd commands come, and PROTO_TOO_LONG. */
    size_t cut_at;
    size_t cut_ncmd;
};

/* A string literal as (pointer, length), so inputs may hold NUL bytes. */
#define IN(x) .in = (x), .in_len = sizeof(x) - 1

/* clang-format off */
/* classic command: op, reply, noreply, data_len, nkeys, keys */
#define CL(o, r, nr, dl, nk, ks)                                             \
    {PROTO_OP_##o, PROTO_REPLY_##r, (nr), (dl), (nk), (ks), false, "", false}
/* meta command: op, noreply, data_len, nkeys, keys, base64, opaque, k */
#define MT(o, nr, dl, nk, ks, b, op, k)                                      \
    {PROTO_OP_##o, PROTO_REPLY_META, (nr), (dl), (nk), (ks), (b), (op), (k)}
/* a line memcached answers with ERROR */
#define UNK CL(UNKNOWN, LINE, false, 0, 0, "")

#define CMDS(...)                                                            \
    .cmd = {__VA_ARGS__},                                                    \
    .ncmd = sizeof((struct exp_cmd[]){__VA_ARGS__}) / sizeof(struct exp_cmd)
/* clang-format on */

static const struct gen gen_getline_max = {
    /* 1048575 bytes + "\r": exactly PROTO_GETLINE_MAX before the "\n" */
    "get ", "ab", 300000, PROTO_GETLINE_MAX - 1, "\r\n"};
static const struct gen gen_getline_max_crlf = {
    /* PROTO_GETLINE_MAX bytes, then "\r\n" */
    "get ", "ab", 300000, PROTO_GETLINE_MAX, "\r\n"};
static const struct gen gen_getline_over = {
    /* 1050003 bytes of a get line and no newline */
    "get ", "ab", 350000, 0, ""};

static const struct proto_case cases[] = {
    /* ---- storage commands ---- */
    {"set", IN("set foo 0 0 5\r\nhello\r\n"),
     CMDS(CL(SET, LINE, false, 7, 1, "foo"))},
    {"add", IN("add foo 1 100 3\r\nabc\r\n"),
     CMDS(CL(ADD, LINE, false, 5, 1, "foo"))},
    {"replace", IN("replace foo 0 0 1\r\nx\r\n"),
     CMDS(CL(REPLACE, LINE, false, 3, 1, "foo"))},
    {"append", IN("append foo 0 0 2\r\nab\r\n"),
     CMDS(CL(APPEND, LINE, false, 4, 1, "foo"))},
    {"prepend", IN("prepend foo 0 0 2\r\nab\r\n"),
     CMDS(CL(PREPEND, LINE, false, 4, 1, "foo"))},
    {"cas", IN("cas foo 0 0 5 12345\r\nhello\r\n"),
     CMDS(CL(CAS, LINE, false, 7, 1, "foo"))},
    {"storage noreply",
     IN("set a 0 0 1 noreply\r\nx\r\n"
        "add b 0 0 1 noreply\r\nx\r\n"
        "replace c 0 0 1 noreply\r\nx\r\n"
        "append d 0 0 1 noreply\r\nx\r\n"
        "prepend e 0 0 1 noreply\r\nx\r\n"
        "cas f 0 0 1 99 noreply\r\nx\r\n"),
     CMDS(CL(SET, LINE, true, 3, 1, "a"), CL(ADD, LINE, true, 3, 1, "b"),
          CL(REPLACE, LINE, true, 3, 1, "c"), CL(APPEND, LINE, true, 3, 1, "d"),
          CL(PREPEND, LINE, true, 3, 1, "e"), CL(CAS, LINE, true, 3, 1, "f"))},
    {"set 0-byte value", IN("set foo 0 0 0\r\n\r\nget foo\r\n"),
     CMDS(CL(SET, LINE, false, 2, 1, "foo"),
          CL(GET, VALUES, false, 0, 1, "foo"))},
    {"set value holding \\r\\nEND\\r\\n",
     IN("set foo 0 0 8\r\na\r\nEND\r\n\r\nget foo\r\n"),
     CMDS(CL(SET, LINE, false, 10, 1, "foo"),
          CL(GET, VALUES, false, 0, 1, "foo"))},
    {"set value holding \\n", IN("set foo 0 0 3\r\na\nb\r\nget foo\r\n"),
     CMDS(CL(SET, LINE, false, 5, 1, "foo"),
          CL(GET, VALUES, false, 0, 1, "foo"))},
    {"set value that looks like commands",
     IN("set foo 0 0 15\r\ndelete foo\r\nx\r\n\r\nversion\r\n"),
     CMDS(CL(SET, LINE, false, 17, 1, "foo"),
          CL(VERSION, LINE, false, 0, 0, ""))},
    {"set bytes +1", IN("set foo 0 0 +1\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 3, 1, "foo"))},
    {"set bytes 4294967297 is 1", IN("set foo 0 0 4294967297\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 3, 1, "foo"))},
    {"set bytes -4294967295 is 1", IN("set foo 0 0 -4294967295\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 3, 1, "foo"))},
    {"set bytes 2147483648 is negative: no data",
     IN("set foo 0 0 2147483648\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 0, 1, "foo"), UNK)},
    {"set bytes 2147483645: largest block", IN("set foo 0 0 2147483645\r\nabc"),
     CMDS(CL(SET, LINE, false, 2147483647, 1, "foo")),
     .data_left = 2147483647 - 3},
    {"set bytes 2147483646: over INT_MAX - 2",
     IN("set foo 0 0 2147483646\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 0, 1, "foo"), UNK)},
    {"set bytes 2^63: out of range",
     IN("set foo 0 0 9223372036854775808\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 0, 1, "foo"), UNK)},
    {"set bytes -1", IN("set foo 0 0 -1\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 0, 1, "foo"), UNK)},
    {"set bytes 1x", IN("set foo 0 0 1x\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 0, 1, "foo"), UNK)},
    {"set bytes not a number", IN("set foo 0 0 abc\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 0, 1, "foo"), UNK)},
    {"set flags not a number", IN("set foo abc 0 1\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 0, 1, "foo"), UNK)},
    {"set flags negative", IN("set foo -1 0 1\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 0, 1, "foo"), UNK)},
    {"set flags 4294967296 truncated to 0",
     IN("set foo 4294967296 0 1\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 3, 1, "foo"))},
    {"set exptime not a number", IN("set foo 0 abc 1\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 0, 1, "foo"), UNK)},
    {"set exptime negative is fine", IN("set foo 0 -1 1\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 3, 1, "foo"))},
    {"set too few tokens", IN("set foo 0 0\r\nX\r\nset foo\r\nset\r\n"),
     CMDS(CL(SET, LINE, false, 0, 1, "foo"), UNK,
          CL(SET, LINE, false, 0, 1, "foo"), CL(SET, LINE, false, 0, 0, ""))},
    {"set too many tokens",
     IN("set foo 0 0 1 2 3\r\nX\r\nset foo 0 0 1 noreply x\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 0, 1, "foo"), UNK,
          CL(SET, LINE, false, 0, 1, "foo"), UNK)},
    {"set noreply in the bytes slot: silent error",
     IN("set foo 0 0 noreply\r\n"), CMDS(CL(SET, LINE, true, 0, 1, "foo"))},
    {"set key of 250 bytes", IN("set " KEY250 " 0 0 1\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 3, 1, KEY250))},
    {"set key of 251 bytes: no data", IN("set " KEY251 " 0 0 1\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 0, 1, KEY251), UNK)},
    {"set key of 251 bytes noreply",
     IN("set " KEY251 " 0 0 1 noreply\r\nX\r\n"),
     CMDS(CL(SET, LINE, true, 0, 1, KEY251), UNK)},
    {"cas without its cas token", IN("cas foo 0 0 1\r\nX\r\n"),
     CMDS(CL(CAS, LINE, false, 0, 1, "foo"), UNK)},
    {"cas token not a number", IN("cas foo 0 0 1 abc\r\nX\r\n"),
     CMDS(CL(CAS, LINE, false, 0, 1, "foo"), UNK)},
    {"cas token -1", IN("cas foo 0 0 1 -1\r\nX\r\n"),
     CMDS(CL(CAS, LINE, false, 0, 1, "foo"), UNK)},
    {"cas token -0", IN("cas foo 0 0 1 -0\r\nX\r\n"),
     CMDS(CL(CAS, LINE, false, 3, 1, "foo"))},
    {"cas token 2^64-1", IN("cas foo 0 0 1 18446744073709551615\r\nX\r\n"),
     CMDS(CL(CAS, LINE, false, 3, 1, "foo"))},
    {"cas token 2^64", IN("cas foo 0 0 1 18446744073709551616\r\nX\r\n"),
     CMDS(CL(CAS, LINE, false, 0, 1, "foo"), UNK)},
    {"cas noreply in the cas slot", IN("cas foo 0 0 1 noreply\r\nX\r\n"),
     CMDS(CL(CAS, LINE, true, 0, 1, "foo"), UNK)},
    {"NUL ends the command line", IN("set foo 0 0 1\0junk 9\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 3, 1, "foo"))},
    {"tab before the length", IN("set foo 0 0 \t1\r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 3, 1, "foo"))},
    {"extra spaces between tokens", IN("set  foo   0 0  1 \r\nX\r\n"),
     CMDS(CL(SET, LINE, false, 3, 1, "foo"))},
    {"bare \\n ends lines", IN("set foo 0 0 1\nX\r\nget foo\n"),
     CMDS(CL(SET, LINE, false, 3, 1, "foo"),
          CL(GET, VALUES, false, 0, 1, "foo"))},
    {"data block is counted, not delimited", IN("set foo 0 0 1\nX\nget foo\n"),
     CMDS(CL(SET, LINE, false, 3, 1, "foo"), UNK)},
    {"input ends inside a data block", IN("set foo 0 0 10\r\nabc"),
     CMDS(CL(SET, LINE, false, 12, 1, "foo")), .data_left = 9},
    {"pipeline", IN("get a\r\nset b 0 0 1\r\nX\r\ndelete b\r\nget c"),
     CMDS(CL(GET, VALUES, false, 0, 1, "a"), CL(SET, LINE, false, 3, 1, "b"),
          CL(DELETE, LINE, false, 0, 1, "b"))},

    /* ---- retrieval ---- */
    {"get", IN("get foo\r\n"), CMDS(CL(GET, VALUES, false, 0, 1, "foo"))},
    {"gets", IN("gets a b c\r\n"),
     CMDS(CL(GETS, VALUES, false, 0, 3, "a b c"))},
    {"gat", IN("gat 100 foo bar\r\n"),
     CMDS(CL(GAT, VALUES, false, 0, 2, "foo bar"))},
    {"gats", IN("gats 100 foo\r\n"),
     CMDS(CL(GATS, VALUES, false, 0, 1, "foo"))},
    {"bget", IN("bget foo\r\n"), CMDS(CL(BGET, VALUES, false, 0, 1, "foo"))},
    /* memcached answers ERROR, which also ends a VALUES reply */
    {"get without keys", IN("get\r\ngat 100\r\n"),
     CMDS(CL(GET, VALUES, false, 0, 0, ""), CL(GAT, VALUES, false, 0, 0, ""))},
    {"get with runs of spaces", IN("get  a   b  \r\n"),
     CMDS(CL(GET, VALUES, false, 0, 2, "a b"))},
    {"get keys holding \\r and \\t", IN("get a\rb c\td\r\n"),
     CMDS(CL(GET, VALUES, false, 0, 2, "a\rb c\td"))},
    {"get 22 keys (23 tokens)", IN("get " K22 "\r\n"),
     CMDS(CL(GET, VALUES, false, 0, 22, K22))},
    {"get 23 keys (24 tokens)", IN("get " K23 "\r\n"),
     CMDS(CL(GET, VALUES, false, 0, 23, K23))},
    {"get 30 keys", IN("get " K30 "\r\n"),
     CMDS(CL(GET, VALUES, false, 0, 30, K30))},
    {"gets 30 keys, trailing space", IN("gets " K30 " \r\n"),
     CMDS(CL(GETS, VALUES, false, 0, 30, K30))},
    {"gat 30 keys", IN("gat 100 " K30 "\r\n"),
     CMDS(CL(GAT, VALUES, false, 0, 30, K30))},
    {"get key of 251 bytes", IN("get " KEY251 "\r\n"),
     CMDS(CL(GET, VALUES, false, 0, 1, KEY251))},
    {"get is lower case only", IN("GET foo\r\nGets foo\r\n"), CMDS(UNK, UNK)},

    /* ---- delete, incr, decr, touch ---- */
    {"delete", IN("delete foo\r\ndelete foo noreply\r\n"),
     CMDS(CL(DELETE, LINE, false, 0, 1, "foo"),
          CL(DELETE, LINE, true, 0, 1, "foo"))},
    {"delete with hold time 0", IN("delete foo 0\r\ndelete foo 0 noreply\r\n"),
     CMDS(CL(DELETE, LINE, false, 0, 1, "foo"),
          CL(DELETE, LINE, true, 0, 1, "foo"))},
    {"incr and decr",
     IN("incr foo 1\r\nincr foo 1 noreply\r\n"
        "decr foo 5\r\ndecr foo 5 noreply\r\n"),
     CMDS(CL(INCR, LINE, false, 0, 1, "foo"), CL(INCR, LINE, true, 0, 1, "foo"),
          CL(DECR, LINE, false, 0, 1, "foo"),
          CL(DECR, LINE, true, 0, 1, "foo"))},
    /* memcached parses "noreply" first, then fails the delta silently */
    {"incr noreply in the delta slot", IN("incr foo noreply\r\n"),
     CMDS(CL(INCR, LINE, true, 0, 1, "foo"))},
    {"touch", IN("touch foo 100\r\ntouch foo 100 noreply\r\n"),
     CMDS(CL(TOUCH, LINE, false, 0, 1, "foo"),
          CL(TOUCH, LINE, true, 0, 1, "foo"))},
    /* "delete noreply" deletes the key "noreply": memcached
     * 1.6.18 calls set_noreply_maybe only with more than 3 tokens and
     * answers NOT_FOUND/DELETED; the parser sets noreply. */
    {"delete of the key named noreply", IN("delete noreply\r\n"),
     CMDS(CL(DELETE, LINE, false, 0, 1, "noreply"))},
    /* wrong token count: memcached answers ERROR (WANT_TOKENS)
     * before looking at noreply; the parser sets noreply from the last
     * token. */
    {"incr with too few tokens and noreply", IN("incr noreply\r\n"),
     CMDS(CL(INCR, LINE, false, 0, 1, "noreply"))},
    /* same, too many tokens: memcached answers ERROR. */
    {"touch with too many tokens and noreply", IN("touch a b c noreply\r\n"),
     CMDS(CL(TOUCH, LINE, false, 0, 1, "a"))},

    /* ---- meta commands ---- */
    {"mg", IN("mg foo v\r\n"),
     CMDS(MT(MG, false, 0, 1, "foo", false, "", false))},
    {"mg q k O", IN("mg foo v k O123 q\r\n"),
     CMDS(MT(MG, true, 0, 1, "foo", false, "O123", true))},
    {"mg all flags", IN("mg foo s t c f h l v O9 k q\r\n"),
     CMDS(MT(MG, true, 0, 1, "foo", false, "O9", true))},
    {"mg base64 key", IN("mg Zm9v b v\r\n"),
     CMDS(MT(MG, false, 0, 1, "Zm9v", true, "", false))},
    {"mg key starting with q is no flag", IN("mg qux v\r\n"),
     CMDS(MT(MG, false, 0, 1, "qux", false, "", false))},
    {"mg bare O", IN("mg foo O\r\n"),
     CMDS(MT(MG, false, 0, 1, "foo", false, "O", false))},
    {"mg without key", IN("mg\r\n"),
     CMDS(MT(MG, false, 0, 0, "", false, "", false))},
    {"ms", IN("ms foo 5\r\nhello\r\n"),
     CMDS(MT(MS, false, 7, 1, "foo", false, "", false))},
    {"ms with flags", IN("ms foo 5 T0 F1 q O9 k c\r\nhello\r\n"),
     CMDS(MT(MS, true, 7, 1, "foo", false, "O9", true))},
    {"ms base64 key", IN("ms Zm9v 2 b\r\nhi\r\n"),
     CMDS(MT(MS, false, 4, 1, "Zm9v", true, "", false))},
    {"ms 0-byte value", IN("ms foo 0\r\n\r\nmn\r\n"),
     CMDS(MT(MS, false, 2, 1, "foo", false, "", false),
          MT(MN, false, 0, 0, "", false, "", false))},
    {"ms value holding \\r\\nHD\\r\\n", IN("ms foo 6\r\n\r\nHD\r\n\r\n"),
     CMDS(MT(MS, false, 8, 1, "foo", false, "", false))},
    /* errors found after <datalen> was read: memcached swallows the data */
    {"ms bad mode swallows the data", IN("ms foo 2 MZ\r\nhi\r\nmn\r\n"),
     CMDS(MT(MS, false, 4, 1, "foo", false, "", false),
          MT(MN, false, 0, 0, "", false, "", false))},
    {"ms bad base64 swallows the data", IN("ms foo 2 b\r\nhi\r\nmn\r\n"),
     CMDS(MT(MS, false, 4, 1, "foo", true, "", false),
          MT(MN, false, 0, 0, "", false, "", false))},
    {"ms datalen truncated to 32 bits", IN("ms foo 4294967298 q\r\nhi\r\n"),
     CMDS(MT(MS, true, 4, 1, "foo", false, "", false))},
    /* 19 tokens: the duplicate T flag is an error after <datalen> */
    {"ms 19 tokens", IN("ms k 2 " FLAGS16 "\r\nhi\r\n"),
     CMDS(MT(MS, false, 4, 1, "k", false, "", false))},
    /* errors before <datalen> was read: no data block */
    {"ms without datalen", IN("ms foo\r\nhi\r\n"),
     CMDS(MT(MS, false, 0, 1, "foo", false, "", false), UNK)},
    {"ms datalen -1", IN("ms foo -1\r\nhi\r\n"),
     CMDS(MT(MS, false, 0, 1, "foo", false, "", false), UNK)},
    {"ms datalen not a number", IN("ms foo abc\r\nhi\r\n"),
     CMDS(MT(MS, false, 0, 1, "foo", false, "", false), UNK)},
    {"ms q in the datalen slot", IN("ms foo q\r\nhi\r\n"),
     CMDS(MT(MS, false, 0, 1, "foo", false, "", false), UNK)},
    {"ms datalen over INT_MAX - 2", IN("ms foo 2147483646\r\nhi\r\n"),
     CMDS(MT(MS, false, 0, 1, "foo", false, "", false), UNK)},
    {"ms key of 251 bytes", IN("ms " KEY251 " 2\r\nhi\r\n"),
     CMDS(MT(MS, false, 0, 1, KEY251, false, "", false), UNK)},
    /* MFLAG_MAX_OPT_LENGTH: 20 tokens and the terminal one are too many */
    {"ms 20 tokens", IN("ms k 2 " FLAGS17 "\r\nhi\r\n"),
     CMDS(MT(MS, false, 0, 1, "k", false, "", false), UNK)},
    {"ms without key", IN("ms\r\n"),
     CMDS(MT(MS, false, 0, 0, "", false, "", false))},
    {"md", IN("md foo\r\nmd foo q O1 k\r\nmd Zm9v b\r\n"),
     CMDS(MT(MD, false, 0, 1, "foo", false, "", false),
          MT(MD, true, 0, 1, "foo", false, "O1", true),
          MT(MD, false, 0, 1, "Zm9v", true, "", false))},
    {"ma", IN("ma foo\r\nma foo q v N0 J5\r\nma foo O99 k\r\n"),
     CMDS(MT(MA, false, 0, 1, "foo", false, "", false),
          MT(MA, true, 0, 1, "foo", false, "", false),
          MT(MA, false, 0, 1, "foo", false, "O99", true))},
    {"mn", IN("mn\r\nmn foo\r\n"),
     CMDS(MT(MN, false, 0, 0, "", false, "", false),
          MT(MN, false, 0, 0, "", false, "", false))},
    /* me takes no flags but b; q and k mean nothing to it */
    {"me", IN("me foo\r\nme Zm9v b\r\nme foo q k\r\n"),
     CMDS(MT(ME, false, 0, 1, "foo", false, "", false),
          MT(ME, false, 0, 1, "Zm9v", true, "", false),
          MT(ME, false, 0, 1, "foo", false, "", false))},
    {"quiet meta pipeline", IN("mg a v q\r\nmg b v q\r\nmn\r\n"),
     CMDS(MT(MG, true, 0, 1, "a", false, "", false),
          MT(MG, true, 0, 1, "b", false, "", false),
          MT(MN, false, 0, 0, "", false, "", false))},
    {"unknown two-letter m command", IN("mz foo\r\n"), CMDS(UNK)},

    /* ---- other commands ---- */
    {"stats and subcommands",
     IN("stats\r\nstats items\r\nstats slabs\r\nstats settings\r\n"
        "stats sizes\r\nstats conns\r\nstats detail dump\r\n"
        "stats cachedump 1 0\r\nstats reset\r\nstats detail on\r\n"),
     CMDS(CL(STATS, LIST, false, 0, 0, ""), CL(STATS, LIST, false, 0, 0, ""),
          CL(STATS, LIST, false, 0, 0, ""), CL(STATS, LIST, false, 0, 0, ""),
          CL(STATS, LIST, false, 0, 0, ""), CL(STATS, LIST, false, 0, 0, ""),
          CL(STATS, LIST, false, 0, 0, ""), CL(STATS, LIST, false, 0, 0, ""),
          CL(STATS, LIST, false, 0, 0, ""), CL(STATS, LIST, false, 0, 0, ""))},
    {"flush_all",
     IN("flush_all\r\nflush_all 10\r\nflush_all noreply\r\n"
        "flush_all 10 noreply\r\n"),
     CMDS(CL(FLUSH_ALL, LINE, false, 0, 0, ""),
          CL(FLUSH_ALL, LINE, false, 0, 0, ""),
          CL(FLUSH_ALL, LINE, true, 0, 0, ""),
          CL(FLUSH_ALL, LINE, true, 0, 0, ""))},
    {"version", IN("version\r\n"), CMDS(CL(VERSION, LINE, false, 0, 0, ""))},
    {"verbosity",
     IN("verbosity 1\r\nverbosity 1 noreply\r\nverbosity noreply\r\n"),
     CMDS(CL(VERBOSITY, LINE, false, 0, 0, ""),
          CL(VERBOSITY, LINE, true, 0, 0, ""),
          CL(VERBOSITY, LINE, true, 0, 0, ""))},
    /* too many tokens: memcached answers ERROR (WANT_TOKENS)
     * before set_noreply_maybe; the parser sets noreply. */
    {"verbosity with too many tokens and noreply",
     IN("verbosity 1 2 noreply\r\n"),
     CMDS(CL(VERBOSITY, LINE, false, 0, 0, ""))},
    {"quit", IN("quit\r\nget foo\r\n"),
     CMDS(CL(QUIT, NONE, false, 0, 0, ""),
          CL(GET, VALUES, false, 0, 1, "foo"))},
    {"shutdown", IN("shutdown\r\nshutdown graceful\r\n"),
     CMDS(CL(SHUTDOWN, LINE, false, 0, 0, ""),
          CL(SHUTDOWN, LINE, false, 0, 0, ""))},
    {"cache_memlimit",
     IN("cache_memlimit 100\r\ncache_memlimit 100 noreply\r\n"),
     CMDS(CL(CACHE_MEMLIMIT, LINE, false, 0, 0, ""),
          CL(CACHE_MEMLIMIT, LINE, true, 0, 0, ""))},
    {"slabs",
     IN("slabs reassign 1 2\r\nslabs automove 1\r\n"
        "slabs automove 1 noreply\r\n"),
     CMDS(CL(SLABS, LINE, false, 0, 0, ""), CL(SLABS, LINE, false, 0, 0, ""),
          CL(SLABS, LINE, true, 0, 0, ""))},
    /* "slabs reassign" never reads noreply: with 5 arguments
     * memcached answers ERROR; the parser sets noreply. */
    {"slabs reassign with noreply", IN("slabs reassign 1 2 noreply\r\n"),
     CMDS(CL(SLABS, LINE, false, 0, 0, ""))},
    {"lru",
     IN("lru tune 10 20 0.1 2\r\nlru mode flat\r\nlru temp_ttl 10\r\n"
        "lru mode flat noreply\r\n"),
     CMDS(CL(LRU, LINE, false, 0, 0, ""), CL(LRU, LINE, false, 0, 0, ""),
          CL(LRU, LINE, false, 0, 0, ""), CL(LRU, LINE, true, 0, 0, ""))},
    {"lru_crawler",
     IN("lru_crawler crawl all\r\nlru_crawler enable\r\n"
        "lru_crawler sleep 10\r\nlru_crawler tocrawl 10\r\n"
        "lru_crawler metadump all\r\nlru_crawler metadump 1,2\r\n"
        "lru_crawler metadump hash\r\nlru_crawler metadump\r\n"
        "lru_crawler metadump all x\r\n"),
     CMDS(CL(LRU_CRAWLER, LINE, false, 0, 0, ""),
          CL(LRU_CRAWLER, LINE, false, 0, 0, ""),
          CL(LRU_CRAWLER, LINE, false, 0, 0, ""),
          CL(LRU_CRAWLER, LINE, false, 0, 0, ""),
          CL(LRU_CRAWLER, LIST, false, 0, 0, ""),
          CL(LRU_CRAWLER, LIST, false, 0, 0, ""),
          CL(LRU_CRAWLER, LIST, false, 0, 0, ""),
          CL(LRU_CRAWLER, LINE, false, 0, 0, ""),
          CL(LRU_CRAWLER, LINE, false, 0, 0, ""))},
    {"watch", IN("watch\r\nwatch fetchers mutations\r\n"),
     CMDS(CL(WATCH, WATCH, false, 0, 0, ""),
          CL(WATCH, WATCH, false, 0, 0, ""))},
    /* process_watch_command calls set_noreply_maybe, then
     * answers ERROR for the unknown "noreply" argument, suppressed:
     * memcached sends nothing at all, but the parser says a reply comes. */
    {"watch noreply", IN("watch noreply\r\n"),
     CMDS(CL(WATCH, WATCH, true, 0, 0, ""))},
    {"misbehave", IN("misbehave\r\n"),
     CMDS(CL(MISBEHAVE, LINE, false, 0, 0, ""))},

    /* ---- unknown commands and empty lines ---- */
    {"unknown command", IN("foo bar\r\n"), CMDS(UNK)},
    {"one-letter command", IN("g foo\r\n"), CMDS(UNK)},
    {"empty lines", IN("\r\n\n   \r\n\r\r\n"), CMDS(UNK, UNK, UNK, UNK)},
    {"partial line at the end", IN("get foo"), .ncmd = 0},
    {"empty input", IN(""), .ncmd = 0},
    /* An unknown command whose last token starts with "HTTP/" makes
     * memcached close the connection without a reply
     * (process_command_ascii). */
    {"HTTP request line", IN("GET / HTTP/1.1\r\n"),
     CMDS(CL(UNKNOWN, NONE, false, 0, 0, ""))},

    /* ---- binary protocol ---- */
    {"binary first byte",
     IN("\x80\x01\x00\x03\x00\x00\x00\x00\x00\x00\x00\x03"
        "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        "foo"),
     .ncmd = 0, .stop = PROTO_BINARY},
    {"binary byte alone", IN("\x80"), .ncmd = 0, .stop = PROTO_BINARY},
    {"0x80 later is text", IN("get a\r\n\x80\r\n"),
     CMDS(CL(GET, VALUES, false, 0, 1, "a"), UNK)},

    /* ---- long lines ---- */
    {"2048 bytes without newline", IN(X2048), .ncmd = 0},
    {"2049 bytes without newline", IN(X2048 "x"), .ncmd = 0,
     .stop = PROTO_TOO_LONG},
    {"2047 bytes and \\r\\n", IN(X2047 "\r\n"), CMDS(UNK)},
    {"2047 bytes and \\r", IN(X2047 "\r"), .ncmd = 0},
    /* memcached closes when it holds more than 2048 bytes without a
     * newline, a "\r" among them. A "\r\n" that arrives with the line's
     * last bytes leaves 2048 bytes and a newline: a command. So 2048 bytes
     * and "\r\n" are a command unless a read ends between "\r" and "\n".
     * 2049 bytes are too long however they come. */
    {"2048 bytes and \\r\\n", IN(X2048 "\r\n"), CMDS(UNK), .cut_at = 2049},
    {"2048 bytes and \\r", IN(X2048 "\r"), .ncmd = 0, .stop = PROTO_TOO_LONG},
    {"2047 bytes and \\r\\r\\n", IN(X2047 "\r\r\n"), CMDS(UNK), .cut_at = 2049},
    {"a command, then 2048 bytes and \\r\\n", IN("mn\r\n" X2048 "\r\n"),
     CMDS(MT(MN, false, 0, 0, "", false, "", false), UNK), .cut_at = 4 + 2049,
     .cut_ncmd = 1},
    {"2048 bytes, \\r and more", IN(X2048 "\rx\r\n"), .ncmd = 0,
     .stop = PROTO_TOO_LONG},
    {"2049 bytes and \\r\\n", IN(X2048 "x\r\n"), .ncmd = 0,
     .stop = PROTO_TOO_LONG},
    /* The "get " test looks at the line's first bytes however they were
     * split into reads. */
    {"long get line without newline", IN("get " KEYS_AB1000), .ncmd = 0},
    {"long get line", IN("get " KEYS_AB1000 "\r\n"),
     CMDS(CL(GET, VALUES, false, 0, 1000, KEYS_AB1000))},
    {"long gets line after 100 spaces", IN(SP100 "gets " KEYS_AB1000),
     .ncmd = 0},
    {"long get line after 101 spaces", IN(SP100 " get " KEYS_AB1000), .ncmd = 0,
     .stop = PROTO_TOO_LONG},
    {"long gat line", IN("gat 0 " KEYS_AB1000), .ncmd = 0,
     .stop = PROTO_TOO_LONG},
    {"get line of PROTO_GETLINE_MAX bytes", .gen = &gen_getline_max,
     CMDS(CL(GET, VALUES, false, 0, 300000, NULL))},
    {"get line of PROTO_GETLINE_MAX bytes and \\r\\n",
     .gen = &gen_getline_max_crlf,
     CMDS(CL(GET, VALUES, false, 0, 300000, NULL)),
     .cut_at = PROTO_GETLINE_MAX + 1},
    {"get line over PROTO_GETLINE_MAX", .gen = &gen_getline_over, .ncmd = 0,
     .stop = PROTO_TOO_LONG},
};

/* ---- what a run saw ---- */

struct got_cmd {
    enum proto_op op;
    enum proto_reply reply;
    bool noreply;
    uint64_t data_len;
    uint32_t nkeys;
    bool key_base64;
    bool meta_k;
    char *keys; /* joined by one space */
    size_t keys_len;
    size_t keys_walked;
    char *opaque;
    size_t opaque_len;
    uint64_t data_seen;
};

struct run {
    struct got_cmd *cmd;
    size_t n;
    size_t cap;
    enum proto_status stop;
    size_t used;       /* bytes consumed */
    bool cut;          /* a read ended at the case's cut_at */
    size_t line_start; /* stream offset where the current line starts */
    uint64_t data_left;
    char err[512]; /* first broken contract, "" if none */
};

static void run_clear(struct run *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->cmd[i].keys);
        free(r->cmd[i].opaque);
    }
    r->n = 0;
    r->stop = PROTO_AGAIN;
    r->cut = false;
    r->used = 0;
    r->line_start = 0;
    r->data_left = 0;
    r->err[0] = '\0';
}

static void run_free(struct run *r)
{
    run_clear(r);
    free(r->cmd);
    memset(r, 0, sizeof(*r));
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* Escapes bytes for messages. */
static const char *esc(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r') {
            o += (size_t)snprintf(out + o, cap - o, "\\r");
        } else if (c == '\n') {
            o += (size_t)snprintf(out + o, cap - o, "\\n");
        } else if (c < 0x20 || c >= 0x7f || c == '\\') {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    if (o + 8 >= cap && o >= 3) {
        memcpy(out + o - 3, "...", 3);
    }
    out[o] = '\0';
    return out;
}

static bool run_err(struct run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records the first broken contract; returns false to stop the run. */
static bool run_err(struct run *r, const char *fmt, ...)
{
    if (r->err[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err, sizeof(r->err), fmt, ap);
        va_end(ap);
    }
    return false;
}

/* What the line of a command must be: the bytes from line_start up to the
 * "\n", less one "\r" when another byte precedes it, cut at a NUL. */
static size_t expected_line_len(const char *in, size_t start, size_t nl)
{
    size_t n = nl - start;
    if (n > 1 && in[start + n - 1] == '\r') {
        n--;
    }
    const char *nul = memchr(in + start, '\0', n);
    return nul ? (size_t)(nul - (in + start)) : n;
}

/* Copies what cmd says and checks the line contract. */
static bool record_cmd(struct run *r, const struct proto_parser *p,
                       const char *in, size_t end, const struct proto_cmd *cmd)
{
    size_t want = expected_line_len(in, r->line_start, end - 1);
    if (cmd->line_len != want ||
        memcmp(cmd->line, in + r->line_start, want) != 0) {
        return run_err(r, "line at %zu: got %zu bytes, want %zu", r->line_start,
                       cmd->line_len, want);
    }
    if (proto_data_left(p) != cmd->data_len) {
        return run_err(r, "data_left %llu after a command of data_len %llu",
                       (unsigned long long)proto_data_left(p),
                       (unsigned long long)cmd->data_len);
    }
    if (cmd->ntokens > PROTO_MAX_TOKENS - 1) {
        return run_err(r, "%u tokens", cmd->ntokens);
    }
    for (uint32_t i = 0; i < cmd->ntokens; i++) {
        if ((uint64_t)cmd->tok[i].off + cmd->tok[i].len > cmd->line_len) {
            return run_err(r, "token %u outside the line", i);
        }
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->cmd = realloc(r->cmd, r->cap * sizeof(*r->cmd));
        assert_non_null(r->cmd);
    }
    struct got_cmd *g = &r->cmd[r->n++];
    memset(g, 0, sizeof(*g));
    g->op = cmd->op;
    g->reply = cmd->reply;
    g->noreply = cmd->noreply;
    g->data_len = cmd->data_len;
    g->nkeys = cmd->nkeys;
    g->key_base64 = cmd->key_base64;
    g->meta_k = cmd->meta_k;
    g->keys = xmalloc(cmd->line_len + 1);

    size_t pos = 0;
    struct proto_tok k;
    while (proto_cmd_next_key(cmd, &pos, &k)) {
        if ((uint64_t)k.off + k.len > cmd->line_len || k.len == 0 ||
            memchr(cmd->line + k.off, ' ', k.len) != NULL) {
            return run_err(r, "key %zu: bad token %u+%u in a line of %zu",
                           g->keys_walked, k.off, k.len, cmd->line_len);
        }
        if (++g->keys_walked > cmd->line_len) {
            return run_err(r, "proto_cmd_next_key does not end");
        }
        if (g->keys_len > 0) {
            g->keys[g->keys_len++] = ' ';
        }
        memcpy(g->keys + g->keys_len, cmd->line + k.off, k.len);
        g->keys_len += k.len;
    }
    if (proto_cmd_next_key(cmd, &pos, &k)) {
        return run_err(r, "proto_cmd_next_key goes on after false");
    }
    g->keys[g->keys_len] = '\0';

    const struct proto_tok *o = &cmd->opaque;
    if ((uint64_t)o->off + o->len > cmd->line_len ||
        (o->len > 0 && cmd->line[o->off] != 'O')) {
        return run_err(r, "opaque token %u+%u", o->off, o->len);
    }
    g->opaque = xmalloc(o->len + 1);
    memcpy(g->opaque, cmd->line + o->off, o->len);
    g->opaque[o->len] = '\0';
    g->opaque_len = o->len;
    r->line_start = end;
    return true;
}

/* Feeds in[pos..end) until it is used up; false when the run is over. */
static bool feed_piece(struct proto_parser *p, const char *in, size_t pos,
                       size_t end, struct run *r)
{
    while (pos < end) {
        struct proto_cmd cmd;
        size_t avail = end - pos;
        size_t consumed = (size_t)-1;
        uint64_t left = proto_data_left(p);
        enum proto_status st = proto_parse(p, in + pos, avail, &consumed, &cmd);

        if (consumed > avail) {
            return run_err(r, "consumed %zu of %zu at %zu", consumed, avail,
                           pos);
        }
        switch (st) {
        case PROTO_AGAIN:
            if (consumed != avail || left != 0) {
                return run_err(r,
                               "AGAIN consumed %zu of %zu at %zu, "
                               "data_left %llu",
                               consumed, avail, pos, (unsigned long long)left);
            }
            break;
        case PROTO_CMD:
            if (left != 0 || consumed == 0 || in[pos + consumed - 1] != '\n') {
                return run_err(r, "CMD consumed %zu at %zu, data_left %llu",
                               consumed, pos, (unsigned long long)left);
            }
            if (!record_cmd(r, p, in, pos + consumed, &cmd)) {
                return false;
            }
            break;
        case PROTO_DATA:
            if (consumed == 0 || consumed > left || r->n == 0 ||
                proto_data_left(p) != left - consumed) {
                return run_err(r,
                               "DATA consumed %zu at %zu, data_left "
                               "%llu -> %llu",
                               consumed, pos, (unsigned long long)left,
                               (unsigned long long)proto_data_left(p));
            }
            r->cmd[r->n - 1].data_seen += consumed;
            r->line_start = pos + consumed;
            break;
        case PROTO_BINARY:
        case PROTO_TOO_LONG:
            if (consumed != 0) {
                return run_err(r, "status %d consumed %zu", (int)st, consumed);
            }
            r->stop = st;
            return false;
        default:
            return run_err(r, "unknown status %d", (int)st);
        }
        pos += consumed;
        r->used = pos;
    }
    return true;
}

static void run_stream(const char *in, size_t len, size_t cut_at,
                       struct chunker *ch, struct run *r)
{
    struct proto_parser p;
    size_t pos = 0;

    run_clear(r);
    proto_init(&p);
    while (pos < len) {
        size_t end = pos + chunk_next(ch, pos, len);
        r->cut |= cut_at > 0 && end == cut_at;
        if (!feed_piece(&p, in, pos, end, r)) {
            break;
        }
        pos = end;
    }
    r->data_left = proto_data_left(&p);
    proto_deinit(&p);
}

/* ---- checking a run against the table ---- */

struct expect {
    const struct proto_case *c;
    const char *keys[MAX_CMDS];
    size_t keys_len[MAX_CMDS];
};

static bool check_run(const struct expect *e, size_t len, const struct run *r,
                      char *why, size_t cap)
{
    const struct proto_case *c = e->c;
    char b1[256];
    char b2[256];
    /* A read that ended at cut_at stops the stream there. */
    size_t ncmd = r->cut ? c->cut_ncmd : c->ncmd;
    enum proto_status stop = r->cut ? PROTO_TOO_LONG : c->stop;
    uint64_t data_left = r->cut ? 0 : c->data_left;

    if (r->err[0] != '\0') {
        snprintf(why, cap, "contract: %s", r->err);
        return false;
    }
    for (size_t i = 0; i < ncmd && i < r->n; i++) {
        const struct exp_cmd *x = &c->cmd[i];
        const struct got_cmd *g = &r->cmd[i];
        uint64_t seen = x->data_len;
        if (i + 1 == ncmd) {
            seen -= data_left;
        }
        if (g->op != x->op) {
            snprintf(why, cap, "cmd %zu: op %s, want %s", i,
                     proto_op_name(g->op), proto_op_name(x->op));
        } else if (g->reply != x->reply) {
            snprintf(why, cap, "cmd %zu: reply %d, want %d", i, (int)g->reply,
                     (int)x->reply);
        } else if (g->noreply != x->noreply) {
            snprintf(why, cap, "cmd %zu: noreply %d, want %d", i, g->noreply,
                     x->noreply);
        } else if (g->data_len != x->data_len) {
            snprintf(why, cap, "cmd %zu: data_len %llu, want %llu", i,
                     (unsigned long long)g->data_len,
                     (unsigned long long)x->data_len);
        } else if (g->data_seen != seen) {
            snprintf(why, cap, "cmd %zu: %llu data bytes, want %llu", i,
                     (unsigned long long)g->data_seen,
                     (unsigned long long)seen);
        } else if (g->nkeys != x->nkeys || g->keys_walked != x->nkeys) {
            snprintf(why, cap, "cmd %zu: nkeys %u, walked %zu, want %u", i,
                     g->nkeys, g->keys_walked, x->nkeys);
        } else if (g->keys_len != e->keys_len[i] ||
                   memcmp(g->keys, e->keys[i], g->keys_len) != 0) {
            snprintf(why, cap, "cmd %zu: keys \"%s\", want \"%s\"", i,
                     esc(g->keys, g->keys_len, b1, sizeof(b1)),
                     esc(e->keys[i], e->keys_len[i], b2, sizeof(b2)));
        } else if (g->key_base64 != x->key_base64) {
            snprintf(why, cap, "cmd %zu: key_base64 %d, want %d", i,
                     g->key_base64, x->key_base64);
        } else if (strcmp(g->opaque, x->opaque) != 0) {
            snprintf(why, cap, "cmd %zu: opaque \"%s\", want \"%s\"", i,
                     g->opaque, x->opaque);
        } else if (g->meta_k != x->meta_k) {
            snprintf(why, cap, "cmd %zu: meta_k %d, want %d", i, g->meta_k,
                     x->meta_k);
        } else {
            continue;
        }
        return false;
    }
    if (r->n != ncmd) {
        snprintf(why, cap, "%zu commands, want %zu%s", r->n, ncmd,
                 r->cut ? " (a read ended at cut_at)" : "");
        return false;
    }
    if (r->stop != stop) {
        snprintf(why, cap, "stopped with status %d, want %d%s", (int)r->stop,
                 (int)stop, r->cut ? " (a read ended at cut_at)" : "");
        return false;
    }
    if (stop == PROTO_AGAIN && r->used != len) {
        snprintf(why, cap, "consumed %zu of %zu bytes", r->used, len);
        return false;
    }
    if (r->data_left != data_left) {
        snprintf(why, cap, "data_left %llu at the end, want %llu",
                 (unsigned long long)r->data_left,
                 (unsigned long long)data_left);
        return false;
    }
    return true;
}

static void run_and_check(const struct expect *e, const char *in, size_t len,
                          struct chunker *ch, struct run *r)
{
    char why[1024];

    run_stream(in, len, e->c->cut_at, ch, r);
    if (!check_run(e, len, r, why, sizeof(why))) {
        fail_msg("\"%s\" fed %s: %s", e->c->name, ch->desc, why);
    }
}

/* Builds a generated input; the keys it holds go to *keys. */
static char *gen_build(const struct gen *g, size_t *len, char **keys,
                       size_t *keys_len)
{
    size_t klen = strlen(g->key);
    size_t pre = strlen(g->pre);
    size_t post = strlen(g->post);
    size_t body = g->nkeys ? g->nkeys * (klen + 1) - 1 : 0;
    size_t line = pre + body < g->pad_to ? g->pad_to : pre + body;
    char *s = xmalloc(line + post);
    char *k = xmalloc(body + 1);

    memcpy(s, g->pre, pre);
    for (size_t i = 0; i < g->nkeys; i++) {
        memcpy(k + i * (klen + 1), g->key, klen);
        if (i + 1 < g->nkeys) {
            k[i * (klen + 1) + klen] = ' ';
        }
    }
    k[body] = '\0';
    memcpy(s + pre, k, body);
    memset(s + pre + body, ' ', line - pre - body);
    memcpy(s + line, g->post, post);
    *len = line + post;
    *keys = k;
    *keys_len = body;
    return s;
}

static size_t case_index[ARRAY_LEN(cases)];

/* What a case owns, freed by case_teardown even when a check fails. */
static struct {
    struct run r;
    char *built;
    char *gen_keys;
} cs;

static int case_teardown(void **state)
{
    (void)state;
    run_free(&cs.r);
    free(cs.built);
    free(cs.gen_keys);
    memset(&cs, 0, sizeof(cs));
    return 0;
}

/* Split points for long inputs: both ends, a sample between, the limits. */
static bool split_wanted(size_t k, size_t len)
{
    if (len <= SPLIT_ALL_MAX || k <= 64 || k + 64 >= len ||
        k % (len / 97) == 0) {
        return true;
    }
    return (k + 3 >= PROTO_LINE_MAX && k <= PROTO_LINE_MAX + 3) ||
           (k + 3 >= PROTO_GETLINE_MAX && k <= PROTO_GETLINE_MAX + 3);
}

static void test_case(void **state)
{
    static const size_t maxes[] = {2, 3, 5, 8, 16, 64, 300, 2100, 5000};
    const struct proto_case *c = &cases[*(const size_t *)*state];
    struct expect e;
    struct chunker ch;
    const char *in = c->in;
    size_t len = c->in_len;
    size_t gen_keys_len = 0;

    memset(&e, 0, sizeof(e));
    e.c = c;
    if (c->gen != NULL) {
        cs.built = gen_build(c->gen, &len, &cs.gen_keys, &gen_keys_len);
        in = cs.built;
    }
    for (size_t i = 0; i < c->ncmd; i++) {
        e.keys[i] = c->cmd[i].keys ? c->cmd[i].keys : cs.gen_keys;
        e.keys_len[i] = c->cmd[i].keys ? strlen(c->cmd[i].keys) : gen_keys_len;
    }

    memset(&ch, 0, sizeof(ch));
    ch.kind = CH_WHOLE;
    snprintf(ch.desc, sizeof(ch.desc), "whole");
    run_and_check(&e, in, len, &ch, &cs.r);

    ch.kind = CH_BYTES;
    snprintf(ch.desc, sizeof(ch.desc), "byte by byte");
    run_and_check(&e, in, len, &ch, &cs.r);

    ch.kind = CH_SPLIT;
    for (size_t k = 1; k < len; k++) {
        if (!split_wanted(k, len)) {
            continue;
        }
        ch.split = k;
        snprintf(ch.desc, sizeof(ch.desc), "split at %zu", k);
        run_and_check(&e, in, len, &ch, &cs.r);
    }

    size_t rounds = len > SPLIT_ALL_MAX ? RANDOM_ROUNDS_BIG : RANDOM_ROUNDS;
    ch.kind = CH_RANDOM;
    for (size_t i = 0; i < rounds; i++) {
        ch.max = maxes[i % ARRAY_LEN(maxes)];
        if (len > SPLIT_ALL_MAX) {
            ch.max *= 64;
        }
        ch.rng = RANDOM_SEED + i;
        snprintf(ch.desc, sizeof(ch.desc), "at random, round %zu (max %zu)", i,
                 ch.max);
        run_and_check(&e, in, len, &ch, &cs.r);
    }
}

/* ---- the parser API outside the table ---- */

static void test_zero_length_read(void **state)
{
    struct proto_parser p;
    struct proto_cmd cmd;
    size_t consumed = 99;
    (void)state;

    proto_init(&p);
    assert_int_equal(proto_parse(&p, "x", 0, &consumed, &cmd), PROTO_AGAIN);
    assert_int_equal(consumed, 0);
    /* An empty read is no first byte: 0x80 still means binary. */
    assert_int_equal(proto_parse(&p, "\x80", 1, &consumed, &cmd), PROTO_BINARY);
    assert_int_equal(consumed, 0);
    proto_deinit(&p);
}

static void test_reinit_after_deinit(void **state)
{
    struct proto_parser p;
    struct proto_cmd cmd;
    size_t consumed;
    (void)state;

    proto_init(&p);
    assert_int_equal(proto_parse(&p, "get fo", 6, &consumed, &cmd),
                     PROTO_AGAIN);
    proto_deinit(&p);
    proto_init(&p);
    /* Nothing of the old partial line may survive. */
    assert_int_equal(proto_parse(&p, "o\r\n", 3, &consumed, &cmd), PROTO_CMD);
    assert_int_equal(consumed, 3);
    assert_int_equal(cmd.op, PROTO_OP_UNKNOWN);
    assert_int_equal(cmd.line_len, 1);
    proto_deinit(&p);
}

static void test_data_left_between_commands(void **state)
{
    struct proto_parser p;
    struct proto_cmd cmd;
    size_t consumed;
    const char *in = "set k 0 0 3\r\nabc\r\nget k\r\n";
    (void)state;

    proto_init(&p);
    assert_int_equal(proto_data_left(&p), 0);
    assert_int_equal(proto_parse(&p, in, strlen(in), &consumed, &cmd),
                     PROTO_CMD);
    assert_int_equal(consumed, 13);
    assert_int_equal(proto_data_left(&p), 5);
    assert_int_equal(proto_parse(&p, in + 13, 2, &consumed, &cmd), PROTO_DATA);
    assert_int_equal(consumed, 2);
    assert_int_equal(proto_data_left(&p), 3);
    /* A data block ends at its length even when more bytes follow. */
    assert_int_equal(proto_parse(&p, in + 15, strlen(in) - 15, &consumed, &cmd),
                     PROTO_DATA);
    assert_int_equal(consumed, 3);
    assert_int_equal(proto_data_left(&p), 0);
    assert_int_equal(proto_parse(&p, in + 18, strlen(in) - 18, &consumed, &cmd),
                     PROTO_CMD);
    assert_int_equal(cmd.op, PROTO_OP_GET);
    assert_int_equal(proto_data_left(&p), 0);
    proto_deinit(&p);
}

static void test_next_key_without_keys(void **state)
{
    struct proto_parser p;
    struct proto_cmd cmd;
    struct proto_tok k;
    size_t consumed;
    size_t pos = 0;
    (void)state;

    proto_init(&p);
    assert_int_equal(proto_parse(&p, "version\r\n", 9, &consumed, &cmd),
                     PROTO_CMD);
    assert_false(proto_cmd_next_key(&cmd, &pos, &k));
    pos = 0;
    assert_int_equal(proto_parse(&p, "delete k\r\n", 10, &consumed, &cmd),
                     PROTO_CMD);
    assert_true(proto_cmd_next_key(&cmd, &pos, &k));
    assert_int_equal(k.off, 7);
    assert_int_equal(k.len, 1);
    assert_false(proto_cmd_next_key(&cmd, &pos, &k));
    proto_deinit(&p);
}

/* ---- number parsers ---- */

struct num_case {
    const char *s;
    size_t len;
    bool ok;
    int64_t v; /* the int32_t / uint32_t / uint64_t value */
};

#define NUM(x, ok, v)                                                          \
    {                                                                          \
        (x), sizeof(x) - 1, (ok), (int64_t)(v)                                 \
    }

static const struct num_case strtol32_cases[] = {
    NUM("0", true, 0),
    NUM("1", true, 1),
    NUM("+1", true, 1),
    NUM("-1", true, -1),
    NUM("00012", true, 12),
    NUM(" 5", true, 5),
    NUM("\t5", true, 5),
    NUM("5 ", true, 5),
    NUM("5\tjunk", true, 5),
    NUM("5\r", true, 5),
    NUM("2147483647", true, 2147483647),
    NUM("-2147483648", true, -2147483647 - 1),
    /* memcached stores the long into an int32_t: low 32 bits */
    NUM("2147483648", true, -2147483647 - 1),
    NUM("4294967295", true, -1),
    NUM("4294967297", true, 1),
    NUM("-4294967295", true, 1),
    NUM("-2147483649", true, 2147483647),
    NUM("9223372036854775807", true, -1),
    NUM("-9223372036854775808", true, 0),
    /* out of strtol's range: ERANGE */
    NUM("9223372036854775808", false, 0),
    NUM("-9223372036854775809", false, 0),
    NUM("18446744073709551616", false, 0),
    NUM("", false, 0),
    NUM(" ", false, 0),
    NUM("+", false, 0),
    NUM("-", false, 0),
    NUM("+-1", false, 0),
    NUM("abc", false, 0),
    NUM("1x", false, 0),
    NUM("0x10", false, 0),
    NUM("1.5", false, 0),
    NUM("1 x", true, 1),
};

static const struct num_case strtoul32_cases[] = {
    NUM("0", true, 0),
    NUM("-0", true, 0),
    NUM("+7", true, 7),
    NUM(" 7", true, 7),
    NUM("7\t", true, 7),
    NUM("4294967295", true, 4294967295u),
    NUM("4294967296", true, 0),
    NUM("4294967297", true, 1),
    NUM("18446744073709551615", true, 4294967295u),
    NUM("9223372036854775808", true, 0),
    /* a '-' refuses values that look negative as signed longs */
    NUM("-1", false, 0),
    NUM("-5", false, 0),
    NUM("-9223372036854775808", false, 0),
    /* ... but "-(2^64 - 1)" wraps to 1, which is not */
    NUM("-18446744073709551615", true, 1),
    NUM("18446744073709551616", false, 0),
    NUM("", false, 0),
    NUM("abc", false, 0),
    NUM("12a", false, 0),
};

static const struct num_case strtoull_cases[] = {
    NUM("0", true, 0),
    NUM("-0", true, 0),
    NUM("42", true, 42),
    NUM(" 42 ", true, 42),
    NUM("+42", true, 42),
    NUM("42\t-", true, 42),
    NUM("18446744073709551615", true, UINT64_MAX),
    NUM("9223372036854775808", true, 9223372036854775808ULL),
    NUM("-9223372036854775809", true, 9223372036854775807ULL),
    NUM("-18446744073709551615", true, 1),
    NUM("18446744073709551616", false, 0),
    NUM("99999999999999999999", false, 0),
    NUM("-1", false, 0),
    /* the '-' is looked for in the whole token, as memcached does */
    NUM("18446744073709551615\t-", false, 0),
    NUM("", false, 0),
    NUM("-", false, 0),
    NUM("1-", false, 0),
};

static void test_strtol32(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(strtol32_cases); i++) {
        const struct num_case *c = &strtol32_cases[i];
        char b[64];
        int32_t v = 12345;
        bool ok = proto_strtol32(c->s, c->len, &v);
        if (ok != c->ok || (ok && v != (int32_t)c->v)) {
            fail_msg("proto_strtol32(\"%s\"): %d %d, want %d %d",
                     esc(c->s, c->len, b, sizeof(b)), ok, v, c->ok,
                     (int32_t)c->v);
        }
    }
}

static void test_strtoul32(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(strtoul32_cases); i++) {
        const struct num_case *c = &strtoul32_cases[i];
        char b[64];
        uint32_t v = 12345;
        bool ok = proto_strtoul32(c->s, c->len, &v);
        if (ok != c->ok || (ok && v != (uint32_t)c->v)) {
            fail_msg("proto_strtoul32(\"%s\"): %d %u, want %d %u",
                     esc(c->s, c->len, b, sizeof(b)), ok, v, c->ok,
                     (uint32_t)c->v);
        }
    }
}

static void test_strtoull(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(strtoull_cases); i++) {
        const struct num_case *c = &strtoull_cases[i];
        char b[64];
        uint64_t v = 12345;
        bool ok = proto_strtoull(c->s, c->len, &v);
        if (ok != c->ok || (ok && v != (uint64_t)c->v)) {
            fail_msg("proto_strtoull(\"%s\"): %d %llu, want %d %llu",
                     esc(c->s, c->len, b, sizeof(b)), ok, (unsigned long long)v,
                     c->ok, (unsigned long long)(uint64_t)c->v);
        }
    }
}

/* The parsers must stop at len, not at a NUL. */
static void test_number_stops_at_len(void **state)
{
    int32_t i32;
    uint32_t u32;
    uint64_t u64;
    (void)state;

    assert_true(proto_strtol32("1234", 2, &i32));
    assert_int_equal(i32, 12);
    assert_true(proto_strtoul32("98x", 2, &u32));
    assert_int_equal(u32, 98);
    assert_true(proto_strtoull("77-", 2, &u64));
    assert_int_equal(u64, 77);
    assert_false(proto_strtoull("5", 0, &u64));
}

static void test_op_name(void **state)
{
    static const struct {
        enum proto_op op;
        const char *name;
    } names[] = {
        {PROTO_OP_UNKNOWN, "unknown"},
        {PROTO_OP_GET, "get"},
        {PROTO_OP_GETS, "gets"},
        {PROTO_OP_GAT, "gat"},
        {PROTO_OP_GATS, "gats"},
        {PROTO_OP_SET, "set"},
        {PROTO_OP_ADD, "add"},
        {PROTO_OP_REPLACE, "replace"},
        {PROTO_OP_APPEND, "append"},
        {PROTO_OP_PREPEND, "prepend"},
        {PROTO_OP_CAS, "cas"},
        {PROTO_OP_DELETE, "delete"},
        {PROTO_OP_INCR, "incr"},
        {PROTO_OP_DECR, "decr"},
        {PROTO_OP_TOUCH, "touch"},
        {PROTO_OP_MG, "mg"},
        {PROTO_OP_MS, "ms"},
        {PROTO_OP_MD, "md"},
        {PROTO_OP_MA, "ma"},
        {PROTO_OP_MN, "mn"},
        {PROTO_OP_ME, "me"},
        {PROTO_OP_STATS, "stats"},
        {PROTO_OP_FLUSH_ALL, "flush_all"},
        {PROTO_OP_VERSION, "version"},
        {PROTO_OP_VERBOSITY, "verbosity"},
        {PROTO_OP_QUIT, "quit"},
        {PROTO_OP_SHUTDOWN, "shutdown"},
        {PROTO_OP_CACHE_MEMLIMIT, "cache_memlimit"},
        {PROTO_OP_SLABS, "slabs"},
        {PROTO_OP_LRU, "lru"},
        {PROTO_OP_LRU_CRAWLER, "lru_crawler"},
        {PROTO_OP_WATCH, "watch"},
        {PROTO_OP_MISBEHAVE, "misbehave"},
        {PROTO_OP_BGET, "bget"},
        {PROTO_OP__COUNT, "unknown"},
        {(enum proto_op)(PROTO_OP__COUNT + 1), "unknown"},
    };
    (void)state;

    /* every op but __COUNT is named here */
    assert_int_equal(ARRAY_LEN(names), PROTO_OP__COUNT + 2);
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        assert_non_null(proto_op_name(names[i].op));
        assert_string_equal(proto_op_name(names[i].op), names[i].name);
    }
}

static const struct CMUnitTest api_tests[] = {
    cmocka_unit_test(test_zero_length_read),
    cmocka_unit_test(test_reinit_after_deinit),
    cmocka_unit_test(test_data_left_between_commands),
    cmocka_unit_test(test_next_key_without_keys),
    cmocka_unit_test(test_strtol32),
    cmocka_unit_test(test_strtoul32),
    cmocka_unit_test(test_strtoull),
    cmocka_unit_test(test_number_stops_at_len),
    cmocka_unit_test(test_op_name),
};

int main(void)
{
    static struct CMUnitTest tests[ARRAY_LEN(cases) + ARRAY_LEN(api_tests)];

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        case_index[i] = i;
        tests[i].name = cases[i].name;
        tests[i].test_func = test_case;
        tests[i].teardown_func = case_teardown;
        tests[i].initial_state = &case_index[i];
    }
    for (size_t i = 0; i < ARRAY_LEN(api_tests); i++) {
        tests[ARRAY_LEN(cases) + i] = api_tests[i];
    }
    return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
