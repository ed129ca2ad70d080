/*
 * throttle, slice, truncate and corrupt: the bytes of one command's reply
 * (or of its stored data block) shaped like a sick network's or a bad
 * memory's. See shape.h.
 */
#include "shape.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "conn_int.h"
#include "mcfault/reply.h"

/* A throttled reply is released at least this often, and not in smaller
 * steps: 100 steps a second (10 ms), like a token bucket refilled each
 * step. */
#define SHAPE_STEPS_PER_S 100u
/* Bits flipped per value at most (the config's bound on `flips`). */
#define SHAPE_FLIPS_MAX 1024u
/* A truncate by percentage keeps the reply until its length is known, at
 * most this much of it: the share is taken of the whole length, the bytes
 * from what was kept (a reply over 4 MiB keeps at most 4 MiB). */
#define SHAPE_CAPTURE_MAX (4u * 1024 * 1024)

/* ---- randomness: splitmix64, seeded from the rule table's PRNG ---- */

static uint64_t next_random(struct fx *f)
{
    uint64_t z = (f->prng += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* ---- the fx ---- */

static struct fx *fx_get(struct conn *c)
{
    if (c->fx == NULL) {
        c->fx = calloc(1, sizeof(*c->fx));
        if (c->fx != NULL) {
            /* Seeded from the table: a seeded run shapes alike. */
            c->fx->prng = c->px->rules != NULL ? rules_random(c->px->rules)
                                               : (uint64_t)(uintptr_t)c;
        }
    }
    return c->fx;
}

static void spec_free(struct shape_spec *s)
{
    free(s->keys);
    s->keys = NULL;
}

void shape_free(struct conn *c)
{
    struct fx *f = c->fx;

    if (f == NULL) {
        return;
    }
    for (uint32_t i = 0; i < f->qlen; i++) {
        spec_free(&f->q[(f->qhead + i) & (f->qcap - 1)]);
    }
    free(f->q);
    spec_free(&f->cur);
    buf_free(&f->out);
    buf_free(&f->cap);
    free(f->flip);
    if (f->timer != NULL) {
        event_free(f->timer);
    }
    free(f);
    c->fx = NULL;
}

/* Nothing queued, nothing held, no timer to come: back to no fx. */
static void fx_maybe_free(struct conn *c)
{
    struct fx *f = c->fx;

    if (f != NULL && f->qlen == 0 && !f->active && buf_len(&f->out) == 0 &&
        buf_len(&f->cap) == 0 && f->nflip == 0 &&
        (f->timer == NULL || !evtimer_pending(f->timer, NULL))) {
        shape_free(c);
    }
}

void shape_spec_from_rule(struct shape_spec *spec, const struct rule *r)
{
    memset(spec, 0, sizeof(*spec));
    switch (r->action) {
    case RULE_THROTTLE:
        spec->kind = SHAPE_THROTTLE;
        break;
    case RULE_SLICE:
        spec->kind = SHAPE_SLICE;
        break;
    case RULE_TRUNCATE:
        spec->kind = SHAPE_TRUNCATE;
        break;
    default:
        spec->kind = SHAPE_CORRUPT;
        break;
    }
    spec->rate_bps = r->rate_bps > 0 ? r->rate_bps : 1;
    spec->slice_min = r->slice_min > 0 ? r->slice_min : 1;
    spec->slice_max =
        r->slice_max >= spec->slice_min ? r->slice_max : spec->slice_min;
    spec->interval_us = r->interval_us;
    spec->keep_bytes = r->keep_bytes;
    spec->keep_fraction = r->keep_fraction;
    spec->keep_is_fraction = r->keep_is_fraction;
    spec->flips = r->flips > 0 ? r->flips : 1;
}

int shape_push(struct conn *c, struct shape_spec *spec)
{
    struct fx *f = fx_get(c);

    if (f == NULL) {
        spec_free(spec);
        return -1;
    }
    if (f->qlen == f->qcap) {
        uint32_t cap = f->qcap > 0 ? f->qcap * 2 : 4;
        struct shape_spec *q = malloc(cap * sizeof(*q));
        if (q == NULL) {
            spec_free(spec);
            return -1;
        }
        for (uint32_t i = 0; i < f->qlen; i++) {
            q[i] = f->q[(f->qhead + i) & (f->qcap - 1)];
        }
        free(f->q);
        f->q = q;
        f->qcap = cap;
        f->qhead = 0;
    }
    f->q[(f->qhead + f->qlen) & (f->qcap - 1)] = *spec;
    f->qlen++;
    f->keys_held += spec->keys_len;
    spec->keys = NULL; /* the queue owns them now */
    return 0;
}

/* The head's shaped reply begins: its spec becomes cur. */
static void activate(struct fx *f)
{
    if (f->active) {
        return;
    }
    spec_free(&f->cur);
    if (f->qlen > 0) {
        f->cur = f->q[f->qhead];
        f->qhead = (f->qhead + 1) & (f->qcap - 1);
        f->qlen--;
        f->keys_held -= f->cur.keys_len;
    } else {
        /* Cannot happen (specs and shape bits go together); shape
         * nothing rather than crash. */
        memset(&f->cur, 0, sizeof(f->cur));
        f->cur.kind = SHAPE_CORRUPT;
    }
    f->active = true;
    f->started_us = conn_now_us();
    f->released = 0;
    f->next_us = 0;
    f->total = 0;
    f->passed = 0;
}

int shape_take(struct conn *c, const char *p, size_t n)
{
    struct fx *f = fx_get(c);

    if (f == NULL) {
        return -1;
    }
    activate(f);
    f->total += n;
    switch (f->cur.kind) {
    case SHAPE_THROTTLE:
        if (buf_len(&f->out) == 0 && f->released > 0) {
            /* Bytes came late: the pace goes on from now, no burst for
             * the time nothing was there to send. */
            f->started_us =
                conn_now_us() - f->released * 1000000u / f->cur.rate_bps;
        }
        return buf_append(&f->out, p, n);
    case SHAPE_SLICE:
        return buf_append(&f->out, p, n);
    case SHAPE_TRUNCATE:
        if (!f->cur.keep_is_fraction) {
            /* A count: the first bytes go on as they come, the rest
             * nowhere. */
            uint64_t left = f->cur.keep_bytes - f->passed;
            size_t m = left < n ? (size_t)left : n;
            f->passed += m;
            return m > 0 ? conn_client_add(c, p, m) : 0;
        }
        /* A share of a length known at the end: kept up to a bound. */
        if (buf_len(&f->cap) >= SHAPE_CAPTURE_MAX) {
            return 0;
        }
        if (n > SHAPE_CAPTURE_MAX - buf_len(&f->cap)) {
            n = SHAPE_CAPTURE_MAX - buf_len(&f->cap);
        }
        return buf_append(&f->cap, p, n);
    default:
        return buf_append(&f->cap, p, n); /* corrupt: until a line ends */
    }
}

/* ---- corrupt ---- */

/* Flips `flips` distinct bits of v[0..n) (all of them when there are no
 * more). */
static void flip_bits(struct fx *f, char *v, size_t n, uint32_t flips)
{
    uint64_t bits = (uint64_t)n * 8;

    if (bits == 0) {
        return;
    }
    if (flips >= bits) {
        for (size_t i = 0; i < n; i++) {
            v[i] = (char)~v[i];
        }
        return;
    }
    /* Distinct positions: a bit flipped twice would be no flip. */
    static uint64_t taken[SHAPE_FLIPS_MAX];
    uint32_t ntaken = flips < SHAPE_FLIPS_MAX ? flips : SHAPE_FLIPS_MAX;
    for (uint32_t k = 0; k < ntaken; k++) {
        bool again;
        do {
            taken[k] = next_random(f) % bits;
            again = false;
            for (uint32_t j = 0; j < k; j++) {
                again = again || taken[j] == taken[k];
            }
        } while (again);
        uint64_t b = taken[k];
        v[b / 8] = (char)(v[b / 8] ^ (1u << (b % 8)));
    }
}

/* Whether the spec's key filter lets the value of key[0..len) be hit. */
static bool key_wanted(const struct shape_spec *s, const char *key, size_t len)
{
    if (s->keys == NULL) {
        return true;
    }
    for (uint32_t i = 0; i < s->keys_len;) {
        size_t kl = (unsigned char)s->keys[i];
        if (kl == len && memcmp(s->keys + i + 1, key, len) == 0) {
            return true;
        }
        i += 1 + (uint32_t)kl;
    }
    return false;
}

/* Flips bits in every value of the whole reply b[0..n): the data blocks
 * after "VALUE <key> <flags> <bytes>" and "VA <bytes>" lines. */
static void corrupt_reply(struct fx *f, char *b, size_t n)
{
    size_t i = 0;

    while (i < n) {
        char *nl = memchr(b + i, '\n', n - i);
        if (nl == NULL) {
            return;
        }
        size_t end = (size_t)(nl - b) + 1;
        size_t ll = end - i >= 2 ? end - i - 2 : 0; /* without \r\n */
        const char *line = b + i;
        uint64_t vlen = 0;
        enum reply_line kind = reply_line_block(line, ll, &vlen);
        bool value = kind != REPLY_LINE_OTHER;
        bool wanted = true;
        if (kind == REPLY_LINE_VALUE) {
            /* "VALUE <key> ...": the key ends at the next space. */
            const char *key = line + 6;
            const char *sp = memchr(key, ' ', ll - 6);
            wanted = key_wanted(&f->cur, key,
                                sp != NULL ? (size_t)(sp - key) : ll - 6);
        }
        i = end;
        if (value) {
            if (vlen > n - i) {
                return; /* cannot happen with a framed reply */
            }
            if (wanted) {
                flip_bits(f, b + i, (size_t)vlen, f->cur.flips);
            }
            i += (size_t)vlen + 2;
        }
    }
}

/* ---- the end of a shaped reply ---- */

int shape_reply_done(struct conn *c)
{
    struct fx *f = fx_get(c);

    if (f == NULL) {
        return -1;
    }
    activate(f); /* a reply of no bytes (a quiet command's) */
    f->active = false;
    if (f->cur.kind == SHAPE_THROTTLE || f->cur.kind == SHAPE_SLICE) {
        return 0; /* pacing goes on (shape_pump) */
    }
    size_t n = buf_len(&f->cap);
    int rc = 0;
    if (f->cur.kind == SHAPE_TRUNCATE && f->cur.keep_is_fraction) {
        uint64_t keep = (uint64_t)(f->cur.keep_fraction * (double)f->total);
        n = keep < n ? (size_t)keep : n;
        rc = n > 0 ? conn_client_add(c, buf_head(&f->cap), n) : 0;
    } else if (f->cur.kind == SHAPE_CORRUPT) {
        rc = shape_line_done(c);
    }
    buf_free(&f->cap);
    spec_free(&f->cur);
    fx_maybe_free(c);
    return rc;
}

int shape_line_done(struct conn *c)
{
    struct fx *f = c->fx;

    if (f == NULL || f->cur.kind != SHAPE_CORRUPT || buf_len(&f->cap) == 0) {
        return 0;
    }
    /* Whole lines (and their data blocks): their values are hit and they
     * go on, so a reply of many values holds one at a time. */
    size_t n = buf_len(&f->cap);
    char *b = f->cap.data + f->cap.start;
    corrupt_reply(f, b, n);
    int rc = conn_client_add(c, b, n);
    buf_consume(&f->cap, n);
    return rc;
}

void shape_upstream_gone(struct conn *c)
{
    struct fx *f = c->fx;

    if (f == NULL || !f->active || buf_len(&f->cap) == 0) {
        return;
    }
    /* memcached closed mid-reply: what came goes on, as with any reply
     * (a truncate's share of what came; corrupt's last value as it is). */
    size_t n = buf_len(&f->cap);
    if (f->cur.kind == SHAPE_TRUNCATE) {
        uint64_t keep = (uint64_t)(f->cur.keep_fraction * (double)f->total);
        n = keep < n ? (size_t)keep : n;
    }
    if (n > 0 && conn_client_add(c, buf_head(&f->cap), n) != 0) {
        conn_fail(c);
    }
    buf_free(&f->cap);
}

/* ---- pacing ---- */

/* Throttle: what is due by now; *wait_us: until the next step. */
static size_t throttle_due(struct fx *f, uint64_t now, size_t len,
                           uint64_t *wait_us)
{
    uint64_t rate = f->cur.rate_bps;
    uint64_t el = now > f->started_us ? now - f->started_us : 0;
    /* Split so that neither product overflows (el in us, rate in B/s). */
    uint64_t allowed = el / 1000000u * rate + el % 1000000u * rate / 1000000u;
    uint64_t due = allowed > f->released ? allowed - f->released : 0;
    size_t n = due < len ? (size_t)due : len;

    f->released += n;
    uint64_t step = rate / SHAPE_STEPS_PER_S > 0 ? rate / SHAPE_STEPS_PER_S : 1;
    if (step > len - n && len > n) {
        step = len - n;
    }
    /* When released + step bytes are allowed. */
    uint64_t want = f->released + step;
    uint64_t at =
        want / rate * 1000000u + (want % rate * 1000000u + rate - 1) / rate;
    *wait_us = at > el ? at - el : 0;
    return n;
}

/* Slice: the next piece when its time has come. */
static size_t slice_due(struct fx *f, uint64_t now, size_t len,
                        uint64_t *wait_us)
{
    if (now < f->next_us) {
        *wait_us = f->next_us - now;
        return 0;
    }
    uint32_t span = f->cur.slice_max - f->cur.slice_min + 1;
    size_t n = f->cur.slice_min + (size_t)(next_random(f) % span);
    f->next_us = now + f->cur.interval_us;
    *wait_us = f->cur.interval_us;
    return n < len ? n : len;
}

void shape_pump(struct conn *c)
{
    struct fx *f = c->fx;

    if (f == NULL) {
        return;
    }
    size_t len = buf_len(&f->out);
    if (len == 0) {
        fx_maybe_free(c);
        return;
    }
    uint64_t now = conn_now_us();
    uint64_t wait = 0;
    size_t n = f->cur.kind == SHAPE_THROTTLE ? throttle_due(f, now, len, &wait)
                                             : slice_due(f, now, len, &wait);
    if (n > 0) {
        if (conn_client_add(c, buf_head(&f->out), n) != 0) {
            conn_fail(c);
            return;
        }
        buf_consume(&f->out, n);
    }
    if (buf_len(&f->out) > 0 || f->active) {
        conn_wake_shape_in(c, wait);
    }
}

/* ---- corrupt on a storage command ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

int shape_block_begin(struct conn *c, uint64_t len, uint32_t flips)
{
    struct fx *f = fx_get(c);
    uint64_t bits = len * 8;

    if (f == NULL) {
        return -1;
    }
    free(f->flip);
    f->flip = NULL;
    f->nflip = 0;
    f->flip_next = 0;
    f->block_off = 0;
    if (bits == 0) {
        return 0;
    }
    uint32_t n = flips < bits ? flips : (uint32_t)bits;
    if ((f->flip = malloc(n * sizeof(*f->flip))) == NULL) {
        return -1;
    }
    /* Distinct positions, chosen as flip_bits does (then sorted). */
    for (uint32_t k = 0; k < n; k++) {
        uint64_t b;
        bool again;
        do {
            b = n == bits ? k : next_random(f) % bits;
            again = false;
            for (uint32_t j = 0; j < k; j++) {
                again = again || f->flip[j] == b;
            }
        } while (again);
        f->flip[k] = b;
    }
    qsort(f->flip, n, sizeof(*f->flip), cmp_u64);
    f->nflip = n;
    return 0;
}

void shape_block_piece(struct conn *c, char *dst, size_t n)
{
    struct fx *f = c->fx;

    if (f == NULL || f->nflip == 0) {
        return;
    }
    uint64_t lo = f->block_off * 8;
    uint64_t hi = (f->block_off + n) * 8;
    while (f->flip_next < f->nflip && f->flip[f->flip_next] < hi) {
        uint64_t b = f->flip[f->flip_next++];
        if (b >= lo) {
            dst[(b - lo) / 8] = (char)(dst[(b - lo) / 8] ^ (1u << (b % 8)));
        }
    }
    f->block_off += n;
    if (f->flip_next == f->nflip) {
        free(f->flip);
        f->flip = NULL;
        f->nflip = 0;
        fx_maybe_free(c);
    }
}
