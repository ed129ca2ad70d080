/*
 * Glob matcher: '*', '?', '[...]' classes and '\' escapes over byte strings,
 * iterative with one backtrack point so no pattern can make it explode.
 */
#include "mcfault/glob.h"

#include <stdint.h>

/* What class_scan found about one class. */
struct glob_class {
    size_t end;       /* offset just past the closing ']'; 0: unterminated */
    size_t bad_range; /* offset of the first range written high-low */
    bool lead_close;  /* the first member is a ']' */
    bool hit;         /* the byte asked about matches, negation applied */
};

/* No range out of order; offsets never reach SIZE_MAX. */
#define NO_OFFSET SIZE_MAX

/* The other ASCII case of c, or c itself. */
static unsigned other_case(unsigned c)
{
    if (c >= 'a' && c <= 'z') {
        return c - ('a' - 'A');
    }
    if (c >= 'A' && c <= 'Z') {
        return c + ('a' - 'A');
    }
    return c;
}

/*
 * // atom: '\' byte | byte
 * Reads one class member at p[*i] into *out and moves *i past it. Returns
 * false when a '\' is the last byte: the class cannot close after it.
 */
static bool read_atom(const unsigned char *p, size_t plen, size_t *i,
                      unsigned *out)
{
    if (p[*i] == '\\') {
        if (*i + 1 >= plen) {
            return false;
        }
        *out = p[*i + 1];
        *i += 2;
        return true;
    }
    *out = p[*i];
    *i += 1;
    return true;
}

/*
 * // '[' ['^' | '!'] member* ']'   member: atom ['-' atom]
 * // a ']' as the first member is a member; a '-' before ']' is a member
 * Scans the class whose '[' is at p[at]. c is the subject byte to test
 * (ignored when negative) and alt its other case (c itself when case
 * matters).
 */
static void class_scan(const unsigned char *p, size_t plen, size_t at, int c,
                       int alt, struct glob_class *out)
{
    size_t i = at + 1;
    bool negate = false;
    bool member = false;
    bool first = true;

    out->end = 0;
    out->bad_range = NO_OFFSET;
    out->lead_close = false;
    out->hit = false;
    if (i < plen && (p[i] == '^' || p[i] == '!')) {
        negate = true;
        i++;
    }
    while (i < plen) {
        if (p[i] == ']' && !first) {
            out->end = i + 1;
            out->hit = member != negate;
            return;
        }
        if (first && p[i] == ']') {
            out->lead_close = true;
        }
        first = false;

        size_t start = i;
        unsigned lo;
        if (!read_atom(p, plen, &i, &lo)) {
            return;
        }
        unsigned hi = lo;
        if (i + 1 < plen && p[i] == '-' && p[i + 1] != ']') {
            i++;
            if (!read_atom(p, plen, &i, &hi)) {
                return;
            }
            if (hi < lo) {
                if (out->bad_range == NO_OFFSET) {
                    out->bad_range = start;
                }
                unsigned t = lo;
                lo = hi;
                hi = t;
            }
        }
        if (c >= 0 && (((unsigned)c >= lo && (unsigned)c <= hi) ||
                       ((unsigned)alt >= lo && (unsigned)alt <= hi))) {
            member = true;
        }
    }
}

/*
 * Matches the one-byte token at p[pi] (anything but '*') against c. Stores
 * the offset of the next token in *next whether or not it matched.
 */
static bool token_match(const unsigned char *p, size_t plen, size_t pi,
                        unsigned c, bool nocase, size_t *next)
{
    unsigned alt = nocase ? other_case(c) : c;
    unsigned want;

    switch (p[pi]) {
    case '?':
        *next = pi + 1;
        return true;
    case '[': {
        struct glob_class cls;
        class_scan(p, plen, pi, (int)c, (int)alt, &cls);
        if (cls.end != 0) {
            *next = cls.end;
            return cls.hit;
        }
        /* Unterminated: a literal '['. */
        *next = pi + 1;
        want = '[';
        break;
    }
    case '\\':
        if (pi + 1 < plen) {
            *next = pi + 2;
            want = p[pi + 1];
        } else {
            *next = pi + 1;
            want = '\\';
        }
        break;
    default:
        *next = pi + 1;
        want = p[pi];
        break;
    }
    return c == want || alt == want;
}

bool glob_match(const char *pat, size_t plen, const char *s, size_t slen,
                bool nocase)
{
    const unsigned char *p = (const unsigned char *)pat;
    const unsigned char *str = (const unsigned char *)s;
    size_t pi = 0;
    size_t si = 0;
    /* The backtrack point: the token after the latest '*', and the subject
     * offset where the run it stands for ends for now. Only the latest '*'
     * needs remembering: letting an earlier one take more bytes can only
     * reach subject offsets the latest one reaches by itself. */
    size_t star_pi = NO_OFFSET;
    size_t star_si = 0;

    while (si < slen) {
        if (pi < plen && p[pi] == '*') {
            while (pi < plen && p[pi] == '*') {
                pi++;
            }
            if (pi == plen) {
                return true; /* a trailing '*' takes the rest */
            }
            star_pi = pi;
            star_si = si;
            continue;
        }
        size_t next;
        if (pi < plen && token_match(p, plen, pi, str[si], nocase, &next)) {
            pi = next;
            si++;
            continue;
        }
        if (star_pi == NO_OFFSET) {
            return false;
        }
        /* Let the latest '*' take one more byte and retry after it. */
        star_si++;
        pi = star_pi;
        si = star_si;
    }
    while (pi < plen && p[pi] == '*') {
        pi++;
    }
    return pi == plen;
}

int glob_validate(const char *pat, size_t plen, size_t *err_off,
                  const char **err_msg)
{
    const unsigned char *p = (const unsigned char *)pat;
    size_t i = 0;
    size_t off = 0;
    const char *msg = NULL;

    while (i < plen && msg == NULL) {
        if (p[i] == '\\') {
            if (i + 1 >= plen) {
                off = i;
                msg = "trailing backslash";
            }
            i += 2;
        } else if (p[i] == '[') {
            struct glob_class cls;
            class_scan(p, plen, i, -1, -1, &cls);
            if (cls.end == 0) {
                off = i;
                msg = cls.lead_close
                          ? "unterminated character class (a ']' right "
                            "after '[' or '[^' is a member)"
                          : "unterminated character class";
            } else if (cls.bad_range != NO_OFFSET) {
                off = cls.bad_range;
                msg = "character class range out of order";
            }
            i = cls.end;
        } else {
            i++;
        }
    }
    if (msg == NULL) {
        return GLOB_OK;
    }
    if (err_off != NULL) {
        *err_off = off;
    }
    if (err_msg != NULL) {
        *err_msg = msg;
    }
    return GLOB_EPATTERN;
}
