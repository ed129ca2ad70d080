/*
 * libFuzzer target for the glob matcher: compares glob_match with a slow
 * reference (pattern compiled to byte sets, memoized recursion) on small
 * inputs, and checks glob_validate's outputs and a few invariants.
 *
 * Input: byte 0 holds nocase in bit 0 and the pattern length in bits 1-7
 * (cut to what is left); the pattern follows, then the subject. Both may
 * hold any byte, NUL included.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcfault/glob.h"

/* The reference is quadratic in space; larger inputs are only run through
 * glob_match for the sanitizers. */
#define REF_MAX 128

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ref_tok {
    bool star;
    uint8_t set[32]; /* bit b: byte b matches */
};

struct ref {
    struct ref_tok tok[REF_MAX];
    size_t ntok;
    const uint8_t *s;
    size_t slen;
    uint8_t memo[REF_MAX + 1][REF_MAX + 1]; /* 0 unknown, 1 no, 2 yes */
};

static void set_add(uint8_t *set, unsigned b)
{
    set[b >> 3] = (uint8_t)(set[b >> 3] | (1u << (b & 7)));
}

static bool set_has(const uint8_t *set, unsigned b)
{
    return (set[b >> 3] >> (b & 7)) & 1u;
}

/* ASCII case folding written independently of glob.c. */
static unsigned ref_fold(unsigned b)
{
    return (b >= 'A' && b <= 'Z') ? b | 0x20u : b;
}

/* One byte of a class: an escaped byte or a plain one. Returns false when a
 * '\' ends the pattern. */
static bool ref_atom(const uint8_t *p, size_t n, size_t *j, unsigned *b)
{
    if (p[*j] != '\\') {
        *b = p[(*j)++];
        return true;
    }
    if (*j + 1 == n) {
        return false;
    }
    *b = p[*j + 1];
    *j += 2;
    return true;
}

/* Adds to set the other ASCII case of every letter already in it. */
static void ref_fold_set(uint8_t *set)
{
    uint8_t out[32] = {0};
    for (unsigned b = 0; b < 256; b++) {
        if (!set_has(set, b)) {
            continue;
        }
        set_add(out, b);
        set_add(out, ref_fold(b));
        if (b >= 'a' && b <= 'z') {
            set_add(out, b - 0x20u);
        }
    }
    memcpy(set, out, sizeof(out));
}

/* Compiles the class at p[i] == '[' into set; returns the offset past its
 * ']' or 0 when it does not close. Case is folded before negation: with
 * nocase, "[^a]" refuses both "a" and "A". */
static size_t ref_class(const uint8_t *p, size_t n, size_t i, bool nocase,
                        uint8_t *set)
{
    size_t j = i + 1;
    bool neg = j < n && (p[j] == '^' || p[j] == '!');
    uint8_t raw[32] = {0};

    if (neg) {
        j++;
    }
    for (size_t k = 0; j < n; k++) {
        if (p[j] == ']' && k > 0) {
            if (nocase) {
                ref_fold_set(raw);
            }
            for (unsigned b = 0; b < 256; b++) {
                if (set_has(raw, b) != neg) {
                    set_add(set, b);
                }
            }
            return j + 1;
        }
        unsigned lo;
        unsigned hi;
        if (!ref_atom(p, n, &j, &lo)) {
            return 0;
        }
        hi = lo;
        if (j + 1 < n && p[j] == '-' && p[j + 1] != ']') {
            j++;
            if (!ref_atom(p, n, &j, &hi)) {
                return 0;
            }
        }
        unsigned a = lo < hi ? lo : hi;
        unsigned z = lo < hi ? hi : lo;
        for (unsigned b = a; b <= z; b++) {
            set_add(raw, b);
        }
    }
    return 0;
}

static void ref_compile(struct ref *r, const uint8_t *p, size_t n, bool nocase)
{
    size_t i = 0;
    r->ntok = 0;
    while (i < n) {
        struct ref_tok *t = &r->tok[r->ntok++];
        memset(t, 0, sizeof(*t));
        if (p[i] == '*') {
            t->star = true;
            i++;
            continue;
        }
        if (p[i] == '?') {
            memset(t->set, 0xff, sizeof(t->set));
            i++;
            continue;
        }
        if (p[i] == '[') {
            size_t end = ref_class(p, n, i, nocase, t->set);
            if (end != 0) {
                i = end; /* already folded */
                continue;
            }
            set_add(t->set, '['); /* unterminated: a literal '[' */
            i++;
        } else if (p[i] == '\\' && i + 1 < n) {
            set_add(t->set, p[i + 1]);
            i += 2;
        } else {
            set_add(t->set, p[i]);
            i++;
        }
        if (nocase) {
            ref_fold_set(t->set);
        }
    }
}

static bool ref_match(struct ref *r, size_t ti, size_t si)
{
    if (r->memo[ti][si] != 0) {
        return r->memo[ti][si] == 2;
    }
    bool m;
    if (ti == r->ntok) {
        m = si == r->slen;
    } else if (r->tok[ti].star) {
        m = ref_match(r, ti + 1, si) ||
            (si < r->slen && ref_match(r, ti, si + 1));
    } else {
        m = si < r->slen && set_has(r->tok[ti].set, r->s[si]) &&
            ref_match(r, ti + 1, si + 1);
    }
    r->memo[ti][si] = m ? 2 : 1;
    return m;
}

static void check_validate(const char *pat, size_t plen)
{
    size_t off = SIZE_MAX;
    const char *msg = NULL;
    int rc = glob_validate(pat, plen, &off, &msg);

    if (rc == GLOB_OK) {
        if (off != SIZE_MAX || msg != NULL) {
            abort();
        }
    } else if (rc != GLOB_EPATTERN || off >= plen || msg == NULL) {
        abort();
    }
}

/* Escaping every byte of s gives a pattern that is valid and matches s;
 * swapping ASCII case in s does not change a nocase match. */
static void check_invariants(const char *pat, size_t plen, const char *s,
                             size_t slen)
{
    char esc[2 * REF_MAX];
    char swapped[REF_MAX];

    if (slen > REF_MAX) {
        return;
    }
    for (size_t i = 0; i < slen; i++) {
        esc[2 * i] = '\\';
        esc[2 * i + 1] = s[i];
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            c ^= 0x20;
        }
        swapped[i] = (char)c;
    }
    if (glob_validate(esc, 2 * slen, NULL, NULL) != GLOB_OK ||
        !glob_match(esc, 2 * slen, s, slen, false) ||
        !glob_match(esc, 2 * slen, swapped, slen, true)) {
        abort();
    }
    if (glob_match(pat, plen, s, slen, true) !=
        glob_match(pat, plen, swapped, slen, true)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    bool nocase = data[0] & 1u;
    size_t plen = data[0] >> 1;
    if (plen > size - 1) {
        plen = size - 1;
    }
    const char *pat = (const char *)data + 1;
    const char *s = pat + plen;
    size_t slen = size - 1 - plen;

    bool got = glob_match(pat, plen, s, slen, nocase);
    check_validate(pat, plen);
    check_invariants(pat, plen, s, slen);
    if (plen > REF_MAX || slen > REF_MAX) {
        return 0;
    }

    struct ref *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return 0;
    }
    ref_compile(r, data + 1, plen, nocase);
    r->s = data + 1 + plen;
    r->slen = slen;
    bool want = ref_match(r, 0, 0);
    free(r);
    if (got != want) {
        abort();
    }
    return 0;
}
