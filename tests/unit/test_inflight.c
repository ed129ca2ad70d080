/*
 * Unit tests for the in-flight queue: FIFO order across growth past the
 * inline slots and wrap-around, tables of forward/fence/reply-end steps
 * with the queue expected after each, and random runs checked against a
 * plain array model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcfault/inflight.h"
#include "mcfault/proto.h"

/* ---- describing a queue as text ---- */

/*
 * One token per entry, oldest first, separated by spaces:
 *   O<k> ONE of kind k (a digit, enum proto_reply), o<k> the same swallowed
 *   G GROUP, g GROUP swallowed
 *   B BARRIER the proxy sent (strip), b a client's (no strip)
 *   L LOCAL, D DELAY, X DROP, H HANG
 */
static size_t describe(struct inflight *q, char *out, size_t cap)
{
    size_t n = 0;

    out[0] = '\0';
    for (uint32_t i = 0; i < q->len; i++) {
        const struct inflight_entry *e = inflight_at(q, i);
        char tok[4] = {0};
        switch (e->type) {
        case IF_ONE:
            tok[0] = e->swallow ? 'o' : 'O';
            tok[1] = (char)('0' + e->kind);
            break;
        case IF_GROUP:
            tok[0] = e->swallow ? 'g' : 'G';
            break;
        case IF_BARRIER:
            tok[0] = e->strip ? 'B' : 'b';
            break;
        case IF_LOCAL:
            tok[0] = 'L';
            break;
        case IF_DELAY:
            tok[0] = 'D';
            break;
        case IF_DROP:
            tok[0] = 'X';
            break;
        case IF_HANG:
            tok[0] = 'H';
            break;
        default:
            tok[0] = '?';
            break;
        }
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i > 0 ? " " : "", tok);
        assert_true(n < cap);
    }
    return n;
}

/* ---- FIFO mechanics ---- */

static struct inflight_entry local_entry(uint32_t id)
{
    struct inflight_entry e = {.type = IF_LOCAL, .len = id};
    return e;
}

/* Pops the head and checks it is the LOCAL numbered id. */
static void pop_expect(struct inflight *q, uint32_t id)
{
    struct inflight_entry *h = inflight_head(q);
    assert_non_null(h);
    assert_int_equal(h->type, IF_LOCAL);
    assert_int_equal(h->len, id);
    inflight_pop(q);
}

static void test_init_empty(void **state)
{
    struct inflight q;
    (void)state;

    inflight_init(&q);
    assert_null(inflight_head(&q));
    assert_int_equal(q.len, 0);
    assert_int_equal(q.cap, INFLIGHT_INLINE);
    assert_ptr_equal(q.slots, q.small);
    assert_false(q.group_open);
    inflight_deinit(&q);
    inflight_deinit(&q); /* twice is harmless */
    assert_ptr_equal(q.slots, q.small);
}

/* Four entries fit inline, wrapping around inside them; a fifth moves the
 * ring to the heap (doubling, order kept); emptied, it comes back. */
static void test_inline_wrap_and_growth(void **state)
{
    struct inflight q;
    uint32_t next = 0;
    uint32_t want = 0;
    (void)state;

    inflight_init(&q);
    /* Walk the head around the inline ring a few times. */
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 3; i++) {
            assert_int_equal(inflight_push(&q, local_entry(next++)), 0);
        }
        for (int i = 0; i < 3; i++) {
            pop_expect(&q, want++);
        }
        assert_ptr_equal(q.slots, q.small);
        assert_int_equal(q.cap, INFLIGHT_INLINE);
    }

    /* Head in the middle of the inline ring, then growth. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(inflight_push(&q, local_entry(next++)), 0);
    }
    pop_expect(&q, want++);
    pop_expect(&q, want++);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(inflight_push(&q, local_entry(next++)), 0);
    }
    assert_int_equal(q.len, 4);
    assert_ptr_equal(q.slots, q.small);
    assert_int_equal(inflight_push(&q, local_entry(next++)), 0);
    assert_true(q.slots != q.small);
    assert_int_equal(q.cap, 2 * INFLIGHT_INLINE);
    for (uint32_t i = 0; i < q.len; i++) {
        assert_int_equal(inflight_at(&q, i)->len, want + i);
    }
    /* Wrap around inside the heap ring, then double again. */
    for (int i = 0; i < 20; i++) {
        pop_expect(&q, want++);
        assert_int_equal(inflight_push(&q, local_entry(next++)), 0);
    }
    assert_int_equal(q.cap, 2 * INFLIGHT_INLINE);
    while (q.len < 100) {
        assert_int_equal(inflight_push(&q, local_entry(next++)), 0);
    }
    assert_int_equal(q.cap, 128);
    while (q.len > 1) {
        pop_expect(&q, want++);
        assert_true(q.slots != q.small); /* kept while anything is owed */
    }
    pop_expect(&q, want++);
    assert_int_equal(want, next);
    assert_ptr_equal(q.slots, q.small);
    assert_int_equal(q.cap, INFLIGHT_INLINE);
    assert_null(inflight_head(&q));
    inflight_deinit(&q);
}

/* Going back to the inline slots keeps an open group open. */
static void test_shrink_keeps_group_open(void **state)
{
    struct inflight q;
    (void)state;

    inflight_init(&q);
    for (uint32_t i = 0; i < 9; i++) {
        assert_int_equal(inflight_push(&q, local_entry(i)), 0);
    }
    assert_int_equal(inflight_forward(&q, PROTO_REPLY_LINE, true, false, false),
                     0);
    assert_true(q.group_open);
    while (q.len > 0) {
        inflight_pop(&q);
    }
    assert_ptr_equal(q.slots, q.small);
    assert_true(q.group_open);
    inflight_deinit(&q);
    assert_false(q.group_open);
}

/* deinit of a heap ring frees it (the leak checker would tell). */
static void test_deinit_heap(void **state)
{
    struct inflight q;
    (void)state;

    inflight_init(&q);
    for (uint32_t i = 0; i < 50; i++) {
        assert_int_equal(inflight_push(&q, local_entry(i)), 0);
    }
    inflight_deinit(&q);
    assert_int_equal(q.len, 0);
    assert_ptr_equal(q.slots, q.small);
}

/* ---- tables of steps ---- */

enum op {
    END_OF_STEPS = 0,
    FWD,   /* inflight_forward(kind, noreply, mn, swallow): want rc 0 */
    FENCE, /* inflight_fence: want rc */
    REND,  /* inflight_reply_end(mn): want result */
    PUSH,  /* inflight_push of a proxy-made entry of type kind */
    POP    /* inflight_pop */
};

struct step {
    enum op op;
    uint8_t kind; /* FWD: enum proto_reply; PUSH: enum inflight_type */
    bool noreply;
    bool mn; /* FWD: the command is an mn; REND: the line was MN */
    bool swallow;
    int want;      /* FENCE: 0 or 1; REND: enum inflight_end */
    const char *q; /* the queue afterwards (describe) */
    bool open;     /* group_open afterwards */
};

#define MAX_STEPS 10

struct case_ {
    const char *name;
    struct step steps[MAX_STEPS];
};

/* Shorthands for the steps below. */
#define LINE PROTO_REPLY_LINE
#define VALS PROTO_REPLY_VALUES
#define META PROTO_REPLY_META
#define F(kind, q, open)                                                       \
    {                                                                          \
        FWD, kind, false, false, false, 0, q, open                             \
    }
#define FNR(kind, q, open)                                                     \
    {                                                                          \
        FWD, kind, true, false, false, 0, q, open                              \
    }
#define FMN(q, open)                                                           \
    {                                                                          \
        FWD, META, false, true, false, 0, q, open                              \
    }
#define FSW(kind, nr, q, open)                                                 \
    {                                                                          \
        FWD, kind, nr, false, true, 0, q, open                                 \
    }
#define FENCE_(want, q, open)                                                  \
    {                                                                          \
        FENCE, 0, false, false, false, want, q, open                           \
    }
#define END_(mn, want, q, open)                                                \
    {                                                                          \
        REND, 0, false, mn, false, want, q, open                               \
    }
#define PUSH_(type, q, open)                                                   \
    {                                                                          \
        PUSH, type, false, false, false, 0, q, open                            \
    }
#define POP_(q, open)                                                          \
    {                                                                          \
        POP, 0, false, false, false, 0, q, open                                \
    }

static const struct case_ cases[] = {
    {"a command with a reply is one entry of its kind",
     {F(LINE, "O0", false), F(VALS, "O0 O1", false), F(META, "O0 O1 O3", false),
      END_(false, INFLIGHT_NEXT, "O1 O3", false),
      END_(false, INFLIGHT_NEXT, "O3", false),
      END_(false, INFLIGHT_NEXT, "", false)}},
    {"a reply with nothing owed",
     {END_(false, INFLIGHT_NEXT, "", false),
      END_(true, INFLIGHT_NEXT, "", false)}},
    {"noreply opens a group; later commands join it",
     {FNR(LINE, "G", true), F(VALS, "G", true), FNR(META, "G", true),
      F(LINE, "G", true)}},
    {"a group's lines go on; an MN with no barrier too",
     {FNR(LINE, "G", true), END_(false, INFLIGHT_GOES_ON, "G", true),
      END_(true, INFLIGHT_GOES_ON, "G", true)}},
    {"a client's mn closes the group; its MN reaches the client",
     {FNR(LINE, "G", true), F(LINE, "G", true), FMN("G b", false),
      END_(false, INFLIGHT_GOES_ON, "G b", false),
      END_(true, INFLIGHT_GROUP_MN, "", false)}},
    {"an mn with no group open is a command like others",
     {FMN("O3", false), F(LINE, "O3 O0", false),
      END_(true, INFLIGHT_NEXT, "O0", false)}},
    {"commands after a closed group get their own entries",
     {FNR(LINE, "G", true), FMN("G b", false), F(VALS, "G b O1", false),
      FNR(LINE, "G b O1 G", true), END_(true, INFLIGHT_GROUP_MN, "O1 G", true),
      END_(false, INFLIGHT_NEXT, "G", true)}},
    {"fence with no group open adds nothing",
     {FENCE_(0, "", false), F(LINE, "O0", false), FENCE_(0, "O0", false)}},
    {"fence closes an open group with a stripping barrier, once",
     {F(LINE, "O0", false), FNR(LINE, "O0 G", true), FENCE_(1, "O0 G B", false),
      FENCE_(0, "O0 G B", false), END_(false, INFLIGHT_NEXT, "G B", false),
      END_(false, INFLIGHT_GOES_ON, "G B", false),
      END_(true, INFLIGHT_STRIP_MN, "", false)}},
    {"a proxy-made entry placed behind a fenced group",
     {FNR(META, "G", true), FENCE_(1, "G B", false),
      PUSH_(IF_LOCAL, "G B L", false), F(LINE, "G B L O0", false),
      END_(true, INFLIGHT_STRIP_MN, "L O0", false),
      END_(false, INFLIGHT_GOES_ON, "L O0", false), POP_("O0", false)}},
    {"a group after a fenced group",
     {FNR(LINE, "G", true), FENCE_(1, "G B", false), FNR(LINE, "G B G", true),
      FMN("G B G b", false), END_(true, INFLIGHT_STRIP_MN, "G b", false),
      END_(true, INFLIGHT_GROUP_MN, "", false)}},
    {"swallow is recorded on ONE and GROUP",
     {FSW(LINE, false, "o0", false), FSW(VALS, true, "o0 g", true),
      FENCE_(1, "o0 g B", false)}},
    {"a command joining a group adds no entry, swallowed or not",
     {FNR(LINE, "G", true), FSW(LINE, false, "G", true),
      FSW(LINE, true, "G", true)}},
    {"proxy-made entries keep their order and are not ended by replies",
     {PUSH_(IF_DELAY, "D", false), PUSH_(IF_DROP, "D X", false),
      PUSH_(IF_HANG, "D X H", false),
      END_(false, INFLIGHT_GOES_ON, "D X H", false), POP_("X H", false),
      POP_("H", false), POP_("", false)}},
    {"a group whose next entry is not a barrier is not ended by MN",
     {FNR(LINE, "G", true), PUSH_(IF_LOCAL, "G L", true),
      END_(true, INFLIGHT_GOES_ON, "G L", true)}},
};

static int run_step(struct inflight *q, const struct step *s)
{
    switch (s->op) {
    case FWD:
        return inflight_forward(q, s->kind, s->noreply, s->mn, s->swallow);
    case FENCE:
        return inflight_fence(q);
    case REND:
        return (int)inflight_reply_end(q, s->mn);
    case PUSH: {
        struct inflight_entry e = {.type = s->kind, .len = 1};
        return inflight_push(q, e);
    }
    case POP:
        inflight_pop(q);
        return 0;
    case END_OF_STEPS:
        break;
    }
    return -99;
}

static void test_table(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct inflight q;
        inflight_init(&q);
        for (size_t i = 0; i < MAX_STEPS && cases[c].steps[i].op != 0; i++) {
            const struct step *s = &cases[c].steps[i];
            char got[256];
            int rc = run_step(&q, s);
            describe(&q, got, sizeof(got));
            if (rc != s->want || strcmp(got, s->q) != 0 ||
                q.group_open != s->open) {
                fail_msg("%s: step %zu: rc %d queue \"%s\" open %d; want rc "
                         "%d queue \"%s\" open %d",
                         cases[c].name, i, rc, got, q.group_open, s->want, s->q,
                         s->open);
            }
        }
        inflight_deinit(&q);
    }
}

/* ---- random runs against a model ---- */

#define MODEL_MAX 512

/* The queue as a plain array, its rules written out from inflight.h. */
struct model {
    struct inflight_entry e[MODEL_MAX];
    uint32_t len;
    bool open;
};

static void model_push(struct model *m, struct inflight_entry e)
{
    assert_true(m->len < MODEL_MAX);
    m->e[m->len++] = e;
}

static void model_pop(struct model *m)
{
    memmove(&m->e[0], &m->e[1], sizeof(m->e[0]) * (m->len - 1));
    m->len--;
}

static void model_forward(struct model *m, uint8_t kind, bool noreply, bool mn,
                          bool swallow)
{
    if (m->open) {
        if (mn) {
            struct inflight_entry b = {.type = IF_BARRIER, .strip = 0};
            model_push(m, b);
            m->open = false;
        }
        return;
    }
    struct inflight_entry e = {.type = noreply ? IF_GROUP : IF_ONE,
                               .kind = noreply ? 0 : kind,
                               .swallow = swallow};
    model_push(m, e);
    m->open = noreply;
}

static int model_fence(struct model *m)
{
    if (!m->open) {
        return 0;
    }
    struct inflight_entry b = {.type = IF_BARRIER, .strip = 1};
    model_push(m, b);
    m->open = false;
    return 1;
}

static enum inflight_end model_reply_end(struct model *m, bool mn)
{
    if (m->len == 0) {
        return INFLIGHT_NEXT;
    }
    if (m->e[0].type == IF_ONE) {
        model_pop(m);
        return INFLIGHT_NEXT;
    }
    if (m->e[0].type == IF_GROUP && mn && m->len >= 2 &&
        m->e[1].type == IF_BARRIER) {
        bool strip = m->e[1].strip;
        model_pop(m);
        model_pop(m);
        return strip ? INFLIGHT_STRIP_MN : INFLIGHT_GROUP_MN;
    }
    return INFLIGHT_GOES_ON;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static bool same_entry(const struct inflight_entry *a,
                       const struct inflight_entry *b)
{
    /* kind is only meaningful for ONE. */
    return a->type == b->type && a->strip == b->strip &&
           a->swallow == b->swallow && a->shape == b->shape &&
           a->rst == b->rst && a->len == b->len && a->until == b->until &&
           (a->type != IF_ONE || a->kind == b->kind);
}

static void compare(struct inflight *q, const struct model *m, uint64_t seed,
                    size_t op)
{
    bool ok = q->len == m->len && q->group_open == m->open;
    uint32_t marked = 0;
    for (uint32_t i = 0; ok && i < m->len; i++) {
        ok = same_entry(inflight_at(q, i), &m->e[i]);
        marked += m->e[i].marks != 0;
    }
    /* The fast path's count: the entries with a mark, no more, no less. */
    ok = ok && q->marked == marked;
    if (!ok) {
        char got[512];
        describe(q, got, sizeof(got));
        fail_msg("seed %llu op %zu: queue \"%.400s\" (len %u open %d), model "
                 "len %u open %d",
                 (unsigned long long)seed, op, got, q->len, q->group_open,
                 m->len, m->open);
    }
    /* The ring: a power of two at least INFLIGHT_INLINE holding len; the
     * inline slots exactly when the cap is theirs; inline when empty. */
    assert_true(q->cap >= INFLIGHT_INLINE && (q->cap & (q->cap - 1)) == 0);
    assert_true(q->len <= q->cap);
    assert_int_equal(q->slots == q->small, q->cap == INFLIGHT_INLINE);
    if (q->len == 0) {
        assert_ptr_equal(q->slots, q->small);
    }
}

/*
 * Random operations in the proportions of a connection: mostly forwards
 * and reply ends, sometimes fences and proxy-made entries. bias tilts the
 * run toward filling (pipelines past the inline slots) or draining.
 */
static void random_run(uint64_t seed, size_t ops, unsigned bias)
{
    static struct model m;
    struct inflight q;
    uint64_t rng = seed;

    memset(&m, 0, sizeof(m));
    inflight_init(&q);
    for (size_t i = 0; i < ops; i++) {
        uint64_t r = rng_next(&rng);
        unsigned pick = (unsigned)(r % 100);
        bool fill = m.len < MODEL_MAX - 8 && pick < bias;
        if (fill || m.len == 0) {
            unsigned what = (unsigned)((r >> 8) % 16);
            if (what < 10) {
                uint8_t kind = (uint8_t)((r >> 16) % PROTO_REPLY_NONE);
                bool noreply = (r >> 24) % 4 == 0;
                bool mn = (r >> 28) % 6 == 0;
                bool swallow = (r >> 32) % 5 == 0;
                bool pushed = !m.open && !noreply;
                assert_int_equal(
                    inflight_forward(&q, kind, noreply, mn, swallow), 0);
                model_forward(&m, kind, noreply, mn, swallow);
                if (pushed && (r >> 44) % 4 == 0) {
                    /* apply.c's shaped reply: the ONE just forwarded. */
                    inflight_mark_shape(&q);
                    m.e[m.len - 1].shape = 1;
                }
            } else if (what < 13) {
                int want = model_fence(&m);
                assert_int_equal(inflight_fence(&q), want);
            } else {
                struct inflight_entry e = {
                    .type = (uint8_t)(IF_LOCAL + (r >> 36) % 4),
                    .len = (uint32_t)(r >> 40),
                    .until = r >> 20};
                e.rst = e.type == IF_DROP && (r >> 50) % 2 == 0;
                assert_int_equal(inflight_push(&q, e), 0);
                model_push(&m, e);
            }
        } else if ((r >> 8) % 8 == 0) {
            /* What conn.c does with proxy-made heads: pop them. */
            inflight_pop(&q);
            model_pop(&m);
        } else {
            bool mn = (r >> 12) % 3 == 0;
            enum inflight_end want = model_reply_end(&m, mn);
            assert_int_equal(inflight_reply_end(&q, mn), want);
        }
        compare(&q, &m, seed, i);
    }
    inflight_deinit(&q);
}

static void test_random_vs_model(void **state)
{
    static const unsigned biases[] = {30, 50, 60, 75};
    (void)state;

    for (uint64_t seed = 1; seed <= 32; seed++) {
        random_run(seed * 0x9e3779b97f4a7c15ULL, 3000, biases[seed % 4]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_empty),
        cmocka_unit_test(test_inline_wrap_and_growth),
        cmocka_unit_test(test_shrink_keeps_group_open),
        cmocka_unit_test(test_deinit_heap),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_random_vs_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
