/*
 * Unit tests for the byte queue: tables of append/consume steps with the
 * length and block size expected after each (growth, compaction, freeing),
 * then long random runs checked against a reference model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcfault/buf.h"

/* Under AddressSanitizer malloc_usable_size is the size asked for, so the
 * block's real size can be compared with cap exactly. */
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_EXACT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_EXACT 1
#endif
#endif
#ifndef ASAN_EXACT
#define ASAN_EXACT 0
#endif

#define KIB 1024u

/* ---- the byte stream every test appends ---- */

/* Byte k of the stream: not periodic at any buffer size tested, so a
 * byte out of place shows. */
static char stream_byte(size_t k)
{
    return (char)((k * 131u) ^ (k >> 8) ^ (k >> 16));
}

/* A buffer and where it stands in the stream: it must hold exactly bytes
 * [taken, given). */
struct fixture {
    struct buf b;
    size_t given;
    size_t taken;
    char *scratch;
    size_t scratch_cap;
};

static void fx_append(struct fixture *f, size_t n)
{
    if (n > f->scratch_cap) {
        free(f->scratch);
        f->scratch = malloc(n);
        assert_non_null(f->scratch);
        f->scratch_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        f->scratch[i] = stream_byte(f->given + i);
    }
    assert_int_equal(buf_append(&f->b, f->scratch, n), 0);
    f->given += n;
}

static void fx_consume(struct fixture *f, size_t n)
{
    buf_consume(&f->b, n);
    f->taken += n;
}

/* Contents, the empty state, and cap against what malloc really gave. */
static void fx_check(const struct fixture *f)
{
    size_t len = f->given - f->taken;
    const struct buf *b = &f->b;

    assert_int_equal(buf_len(b), len);
    assert_true(b->cap >= len);
    if (len == 0) {
        assert_null(b->data);
        assert_int_equal(b->cap, 0);
        assert_int_equal(b->start, 0);
        assert_int_equal(b->end, 0);
        return;
    }
    assert_non_null(b->data);
    assert_true(b->end <= b->cap);
    size_t real = malloc_usable_size(b->data);
    assert_true(real >= b->cap);
    if (ASAN_EXACT) {
        assert_int_equal(real, b->cap);
    }
    /* Every byte of a small buffer; of a big one both ends (where a move
     * goes wrong first) and a sample between. */
    const char *p = buf_head(b);
    for (size_t i = 0; i < len; i += i < 2048 || len - i <= 2048 ? 1 : 97) {
        if (p[i] != stream_byte(f->taken + i)) {
            fail_msg("byte %zu of %zu (stream offset %zu) is wrong", i, len,
                     f->taken + i);
        }
    }
}

static void fx_free(struct fixture *f)
{
    buf_free(&f->b);
    free(f->scratch);
    memset(f, 0, sizeof(*f));
}

/* ---- table of step sequences ---- */

/* Whether the block may move: SAME is the block before the step (appended
 * in place or compacted), MOVED a new one (malloc'd while the old one was
 * still held, so the address differs). */
enum block { ANY = 0, SAME, MOVED };

struct step {
    char op; /* 'a' append n, 'c' consume n, 'f' buf_free; 0 ends */
    size_t n;
    size_t len; /* buf_len after the step */
    size_t cap; /* cap after the step */
    enum block block;
};

#define MAX_STEPS 8

struct buf_case {
    const char *name;
    struct step steps[MAX_STEPS];
};

static const struct buf_case cases[] = {
    {"nothing appended holds nothing", {{'a', 0, 0, 0, ANY}}},
    {"the first byte takes the smallest block", {{'a', 1, 1, 512, MOVED}}},
    {"a block fills to its last byte in place",
     {{'a', 1, 1, 512, MOVED},
      {'a', 510, 511, 512, SAME},
      {'a', 1, 512, 512, SAME},
      {'a', 0, 512, 512, SAME}}},
    {"one byte over doubles",
     {{'a', 512, 512, 512, MOVED}, {'a', 1, 513, 1 * KIB, MOVED}}},
    {"powers of two up to 64 KiB",
     {{'a', 513, 513, 1 * KIB, MOVED},
      {'a', 1 * KIB, 1537, 2 * KIB, MOVED},
      {'a', 3 * KIB, 4609, 8 * KIB, MOVED},
      {'a', 20 * KIB, 25089, 32 * KIB, MOVED},
      {'a', 65536 - 25089, 65536, 64 * KIB, MOVED}}},
    {"exactly 64 KiB at once", {{'a', 64 * KIB, 64 * KIB, 64 * KIB, MOVED}}},
    {"past 64 KiB in steps of 64 KiB",
     {{'a', 64 * KIB + 1, 64 * KIB + 1, 128 * KIB, MOVED},
      {'a', 64 * KIB - 1, 128 * KIB, 128 * KIB, SAME},
      {'a', 1, 128 * KIB + 1, 192 * KIB, MOVED},
      {'a', 100000, 231073, 256 * KIB, MOVED}}},
    {"one step past 64 KiB from a small block",
     {{'a', 100, 100, 512, MOVED}, {'a', 64 * KIB, 65636, 128 * KIB, MOVED}}},
    {"a large append is rounded to a step, not a power of two",
     {{'a', 1024 * KIB + 1, 1024 * KIB + 1, 1088 * KIB, MOVED},
      {'a', 3 * 1024 * KIB, 4096 * KIB + 1, 4160 * KIB, MOVED}}},
    {"emptied: the block is freed",
     {{'a', 100, 100, 512, MOVED},
      {'c', 40, 60, 512, SAME},
      {'c', 60, 0, 0, ANY},
      {'a', 10, 10, 512, MOVED}}},
    {"a big emptied buffer starts small again",
     {{'a', 300 * KIB, 300 * KIB, 320 * KIB, MOVED},
      {'c', 300 * KIB, 0, 0, ANY},
      {'a', 1, 1, 512, MOVED}}},
    {"consuming keeps the block, even a nearly empty one",
     {{'a', 70 * KIB, 70 * KIB, 128 * KIB, MOVED},
      {'c', 70 * KIB - 1, 1, 128 * KIB, SAME},
      {'a', 64 * KIB, 64 * KIB + 1, 128 * KIB, SAME}}},
    {"room left at the end is used without moving",
     {{'a', 100, 100, 512, MOVED},
      {'c', 50, 50, 512, SAME},
      {'a', 412, 462, 512, SAME}}},
    {"compaction in place when the free front is at least the bytes",
     {{'a', 400, 400, 512, MOVED},
      {'c', 300, 100, 512, SAME},
      {'a', 200, 300, 512, SAME}}},
    {"compaction at the boundary: front exactly the bytes held",
     {{'a', 512, 512, 512, MOVED},
      {'c', 256, 256, 512, SAME},
      {'a', 256, 512, 512, SAME}}},
    {"moving costs more than the room it frees: sized anew, same size",
     {{'a', 400, 400, 512, MOVED},
      {'c', 100, 300, 512, SAME},
      {'a', 200, 500, 512, ANY}}},
    {"growing when even a compacted block is too small",
     {{'a', 512, 512, 512, MOVED},
      {'c', 300, 212, 512, SAME},
      {'a', 400, 612, 1 * KIB, ANY}}},
    {"compaction in a stepped block",
     {{'a', 128 * KIB, 128 * KIB, 128 * KIB, MOVED},
      {'c', 96 * KIB, 32 * KIB, 128 * KIB, SAME},
      {'a', 96 * KIB, 128 * KIB, 128 * KIB, SAME},
      {'a', 1, 128 * KIB + 1, 192 * KIB, ANY}}},
    {"buf_free empties and the buffer is used again",
     {{'a', 5000, 5000, 8 * KIB, MOVED},
      {'f', 0, 0, 0, ANY},
      {'a', 5, 5, 512, MOVED},
      {'f', 0, 0, 0, ANY},
      {'f', 0, 0, 0, ANY}}},
};

static void run_case(const struct buf_case *c)
{
    struct fixture f = {0};

    for (size_t i = 0; i < MAX_STEPS && c->steps[i].op != 0; i++) {
        const struct step *s = &c->steps[i];
        const char *before = f.b.data;
        switch (s->op) {
        case 'a':
            fx_append(&f, s->n);
            break;
        case 'c':
            fx_consume(&f, s->n);
            break;
        case 'f':
            buf_free(&f.b);
            f.taken = f.given;
            break;
        default:
            fail_msg("bad step");
        }
        if (buf_len(&f.b) != s->len || f.b.cap != s->cap) {
            fail_msg("%s: step %zu: len %zu cap %zu, want len %zu cap %zu",
                     c->name, i, buf_len(&f.b), f.b.cap, s->len, s->cap);
        }
        if (s->block == SAME && f.b.data != before) {
            fail_msg("%s: step %zu: the block moved", c->name, i);
        }
        if (s->block == MOVED && (f.b.data == before || f.b.data == NULL)) {
            fail_msg("%s: step %zu: the block did not move", c->name, i);
        }
        fx_check(&f);
    }
    fx_free(&f);
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_case(&cases[i]);
    }
}

/* ---- the size rule on its own ---- */

/* Appends need bytes to an empty buffer: the block is the size rule of
 * buf.h for need. */
static void test_first_block_sizes(void **state)
{
    static const struct {
        size_t need;
        size_t cap;
    } sizes[] = {
        {1, 512},
        {511, 512},
        {512, 512},
        {513, 1024},
        {1024, 1024},
        {1025, 2048},
        {4096, 4096},
        {4097, 8192},
        {32768, 32768},
        {32769, 65536},
        {65535, 65536},
        {65536, 65536},
        {65537, 131072},
        {131072, 131072},
        {131073, 196608},
        {1000000, 1048576},
        {1048576, 1048576},
        {1048577, 1114112},
        {5 * 1024 * 1024 + 7, 5 * 1024 * 1024 + 65536},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct fixture f = {0};
        fx_append(&f, sizes[i].need);
        if (f.b.cap != sizes[i].cap) {
            fail_msg("%zu bytes: cap %zu, want %zu", sizes[i].need, f.b.cap,
                     sizes[i].cap);
        }
        fx_check(&f);
        fx_free(&f);
    }
}

/* Byte-at-a-time appends cross every power of two once, then grow one
 * step at a time; bytes consumed one by one free the block at the end. */
static void test_byte_at_a_time(void **state)
{
    struct fixture f = {0};
    size_t grew = 0;
    size_t last = 0;
    (void)state;

    for (size_t i = 0; i < 200 * KIB; i++) {
        fx_append(&f, 1);
        if (f.b.cap != last) {
            grew++;
            last = f.b.cap;
        }
    }
    /* 512, 1K, ..., 64K (8 sizes), then 128K, 192K, 256K. */
    assert_int_equal(grew, 11);
    assert_int_equal(f.b.cap, 256 * KIB);
    fx_check(&f);
    while (buf_len(&f.b) > 1) {
        fx_consume(&f, 1);
        assert_int_equal(f.b.cap, 256 * KIB);
    }
    fx_check(&f);
    fx_consume(&f, 1);
    fx_check(&f);
    fx_free(&f);
}

/* ---- random runs against a model ---- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* The block rule of buf.h, written out from its description. */
static size_t model_size_for(size_t need)
{
    if (need > BUF_STEP) {
        return (need / BUF_STEP + (need % BUF_STEP != 0)) * BUF_STEP;
    }
    size_t cap = 512;
    while (cap < need) {
        cap <<= 1;
    }
    return cap;
}

/* Where the bytes sit in the block: what decides whether an append fits,
 * compacts or grows. */
struct model {
    size_t start;
    size_t end;
    size_t cap;
};

static void model_append(struct model *m, size_t n)
{
    size_t len = m->end - m->start;

    if (n == 0) {
        return;
    }
    if (m->end + n <= m->cap) {
        m->end += n;
        return;
    }
    /* Compact only when the free front is at least the bytes moved. */
    if (len + n > m->cap || m->start < len) {
        m->cap = model_size_for(len + n);
    }
    m->start = 0;
    m->end = len + n;
}

static void model_consume(struct model *m, size_t n)
{
    m->start += n;
    if (m->start == m->end) {
        memset(m, 0, sizeof(*m));
    }
}

/* A size drawn from a mix: mostly lines and small values, some reads of
 * a few KiB, now and then a value past the step size. */
static size_t draw_size(uint64_t *rng)
{
    uint64_t r = rng_next(rng);

    switch (r % 32) {
    case 0:
        return 0;
    case 1:
    case 2:
    case 3:
    case 4:
        return (size_t)(r >> 8) % 8192;
    case 5:
        return (size_t)(r >> 8) % (300 * KIB);
    default:
        return (size_t)(r >> 8) % 120;
    }
}

static void random_run(uint64_t seed, size_t ops)
{
    struct fixture f = {0};
    struct model m = {0};
    uint64_t rng = seed;

    for (size_t i = 0; i < ops; i++) {
        uint64_t r = rng_next(&rng);
        size_t len = buf_len(&f.b);
        if (r % 3 != 0 || len == 0) {
            size_t n = draw_size(&rng);
            fx_append(&f, n);
            model_append(&m, n);
        } else {
            size_t n = (r >> 8) % 4 == 0 ? len : (size_t)(r >> 16) % (len + 1);
            fx_consume(&f, n);
            model_consume(&m, n);
        }
        if (f.b.cap != m.cap || f.b.start != m.start || f.b.end != m.end) {
            fail_msg("seed %llu op %zu: start %zu end %zu cap %zu, model "
                     "%zu %zu %zu",
                     (unsigned long long)seed, i, f.b.start, f.b.end, f.b.cap,
                     m.start, m.end, m.cap);
        }
        fx_check(&f);
    }
    fx_free(&f);
}

static void test_random_vs_model(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 24; seed++) {
        random_run(seed * 0x9e3779b97f4a7c15ULL, 2000);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_first_block_sizes),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_random_vs_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
