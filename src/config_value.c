/*
 * The config's value parsers: durations, probabilities, byte counts and
 * rates from their text, each a pure function of (pointer, length) with a
 * static message for what is wrong (config.h).
 */
#include "mcfault/config.h"

#include "config_int.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bool config_seq_eq(const char *s, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
    while (b != 0) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/*
 * // digit+ ['.' digit+] unit        unit: us | ms | s | m | h
 * Exact in integers: a fraction is allowed down to the microsecond.
 */
int config_parse_duration(const char *s, size_t len, uint64_t *us,
                          const char **why)
{
    static const struct {
        const char *name;
        uint64_t us;
    } units[] = {{"us", 1},
                 {"ms", 1000},
                 {"s", 1000000},
                 {"m", 60000000},
                 {"h", 3600000000}};
    const char *msg = NULL;
    size_t i = 0;
    size_t int_end;
    size_t frac = 0; /* offset of the fraction digits, 0 none */
    size_t frac_end = 0;
    uint64_t mult = 0;
    uint64_t whole = 0;
    uint64_t total;

    if (len > 0 && s[0] == '-') {
        msg = "negative durations are not allowed";
        goto fail;
    }
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        i++;
    }
    int_end = i;
    if (int_end == 0) {
        msg = "expected a number followed by a unit (us, ms, s, m, h)";
        goto fail;
    }
    if (i < len && s[i] == '.') {
        frac = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        frac_end = i;
        if (frac_end == frac) {
            msg = "expected digits after '.'";
            goto fail;
        }
    }
    if (i == len) {
        msg = "missing unit (us, ms, s, m, h)";
        goto fail;
    }
    for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
        if (config_seq_eq(s + i, len - i, units[u].name)) {
            mult = units[u].us;
        }
    }
    if (mult == 0) {
        msg = "unknown unit (use us, ms, s, m or h)";
        goto fail;
    }
    for (size_t k = 0; k < int_end; k++) {
        unsigned d = (unsigned)(s[k] - '0');
        if (whole > (UINT64_MAX - d) / 10) {
            msg = "too large";
            goto fail;
        }
        whole = 10 * whole + d;
    }
    if (whole > UINT64_MAX / mult) {
        msg = "too large";
        goto fail;
    }
    total = whole * mult;
    if (frac != 0) {
        /* The fraction F / 10^k, trailing zeros dropped, is worth
         * F * mult / 10^k microseconds, which must be whole: with g =
         * gcd(mult, 10^k), exactly when 10^k / g divides F (mult / g and
         * 10^k / g share no factor). No unit has more than 2^10 or 5^10 in
         * it, so a whole value needs k <= 10: 10^k and F fit in 64 bits,
         * and the fraction's worth, below mult, does too. */
        while (frac_end > frac && s[frac_end - 1] == '0') {
            frac_end--;
        }
        size_t k = frac_end - frac;
        if (k > 10) {
            msg = "finer than a microsecond";
            goto fail;
        }
        uint64_t f = 0;
        uint64_t p10 = 1;
        for (size_t j = frac; j < frac_end; j++) {
            f = 10 * f + (unsigned)(s[j] - '0');
            p10 *= 10;
        }
        uint64_t g = gcd_u64(mult, p10);
        if (f % (p10 / g) != 0) {
            msg = "finer than a microsecond";
            goto fail;
        }
        uint64_t part = f / (p10 / g) * (mult / g);
        if (total > UINT64_MAX - part) {
            msg = "too large";
            goto fail;
        }
        total += part;
    }
    *us = total;
    return 0;
fail:
    if (why != NULL) {
        *why = msg;
    }
    return -1;
}

/*
 * // (digit+ ['.' digit*] | '.' digit+) [('e' | 'E') ['+' | '-'] digit+] ['%']
 * The exponent is there for JSON writers (Python's json and JavaScript
 * write 0.00001 as 1e-05). The range check is exact (integers, on the
 * first 17 fraction digits); the value is strtod's, correctly rounded
 * (mcfault never calls setlocale, so the point is '.'), divided by 100 for
 * a percentage.
 */
int config_parse_probability(const char *s, size_t len, double *p,
                             const char **why)
{
    /* The range check reads this many fraction digits: 1e-17 is below a
     * double's resolution near 1, and 100 * 10^17 still fits in 64 bits.
     * (The value itself is strtod's, from every digit.) */
    enum { FRAC_MAX = 17 };
    /* An exponent this much longer than the text moves every digit out
     * of range (or past FRAC_MAX): no need to count further. */
    enum { EXP_MAX = 1000 };
    const char *msg = NULL;
    size_t i = 0;
    size_t int_end, frac_start, frac_end;
    long exp = 0;
    bool exp_neg = false;
    bool percent = false;

    if (len > 0 && s[0] == '-') {
        msg = "negative";
        goto fail;
    }
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        i++;
    }
    int_end = frac_start = frac_end = i;
    if (i < len && s[i] == '.') {
        frac_start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        frac_end = i;
    }
    if (int_end + (frac_end - frac_start) == 0) {
        msg = "not a number";
        goto fail;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-')) {
            exp_neg = s[i] == '-';
            i++;
        }
        size_t exp_start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (exp <= (long)len + EXP_MAX) {
                exp = 10 * exp + (s[i] - '0');
            }
            i++;
        }
        if (i == exp_start) {
            msg = "not a number";
            goto fail;
        }
    }
    if (i < len && s[i] == '%') {
        percent = true;
        i++;
    }
    if (i != len) {
        msg = "not a number";
        goto fail;
    }

    /* The digits, integer and fraction alike, with the point moved by the
     * exponent: the first `point` of them are whole, the rest (after
     * `lead` implied zeros when the point moved left past them) fraction. */
    long point = (long)int_end + (exp_neg ? -exp : exp);
    size_t ndigits = int_end + (frac_end - frac_start);
    bool nonzero = false;
    uint64_t num = 0;
    uint64_t den = 1;
    size_t nfrac = 0;
    for (long k = point; k < 0 && nfrac < FRAC_MAX; k++) {
        den *= 10; /* a leading zero of the fraction */
        nfrac++;
    }
    for (size_t k = 0; k < ndigits; k++) {
        unsigned d =
            (unsigned)(s[k < int_end ? k : frac_start + k - int_end] - '0');
        nonzero = nonzero || d != 0;
        if ((long)k < point) {
            num = 10 * num + d;
            if (num > 100) {
                msg = "out of range";
                goto fail;
            }
        } else if (nfrac < FRAC_MAX) {
            num = 10 * num + d;
            den *= 10;
            nfrac++;
        }
    }
    for (long k = (long)ndigits; k < point && num > 0; k++) {
        num *= 10; /* zeros the exponent added after the digits */
        if (num > 100) {
            msg = "out of range";
            goto fail;
        }
    }
    if (percent) {
        den *= 100;
    }
    if (num > den) {
        msg = "out of range";
        goto fail;
    }
    char small[64];
    size_t n = percent ? len - 1 : len;
    char *copy = n < sizeof(small) ? small : malloc(n + 1);
    if (copy == NULL) {
        msg = "out of memory";
        goto fail;
    }
    memcpy(copy, s, n);
    copy[n] = '\0';
    double v = strtod(copy, NULL) / (percent ? 100 : 1);
    if (copy != small) {
        free(copy);
    }
    if (v > 1) {
        v = 1; /* 1.000...01 past the digits the range check reads */
    }
    if (v == 0 && nonzero) {
        msg = "too small";
        goto fail;
    }
    *p = v;
    return 0;
fail:
    if (why != NULL) {
        *why = msg;
    }
    return -1;
}

/*
 * // digit+ [unit]        unit: B | KiB | MiB | GiB | KB | kB | MB | GB
 * For rate (config_parse_rate) an optional "/s" may follow. Whole numbers
 * only: a fraction of a byte has no meaning, and of a KiB is a typo.
 */
static int parse_bytes(const char *s, size_t len, bool rate, uint64_t *out,
                       const char **why)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {
        {"B", 1},
        {"KiB", 1ULL << 10},
        {"MiB", 1ULL << 20},
        {"GiB", 1ULL << 30},
        {"KB", 1000},
        {"kB", 1000},
        {"MB", 1000000},
        {"GB", 1000000000},
    };
    const char *msg = NULL;
    uint64_t mult = 0;
    uint64_t n = 0;
    size_t i = 0;

    if (rate && len >= 2 && s[len - 2] == '/' && s[len - 1] == 's') {
        len -= 2;
    }
    if (len > 0 && s[0] == '-') {
        msg = "negative sizes are not allowed";
        goto fail;
    }
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (n > (UINT64_MAX - d) / 10) {
            msg = "too large";
            goto fail;
        }
        n = 10 * n + d;
    }
    if (i == 0) {
        msg = rate ? "expected bytes per second such as 10KiB/s"
                   : "expected a number of bytes such as 512 or 4KiB";
        goto fail;
    }
    if (i < len && s[i] == '.') {
        msg = "a byte count is a whole number (use a smaller unit)";
        goto fail;
    }
    if (i == len) {
        mult = 1;
    }
    for (size_t u = 0; mult == 0 && u < sizeof(units) / sizeof(units[0]); u++) {
        if (config_seq_eq(s + i, len - i, units[u].name)) {
            mult = units[u].mult;
        }
    }
    if (mult == 0) {
        msg = rate ? "unknown unit (use B, KiB, MiB, GiB, KB, MB or GB, "
                     "then /s)"
                   : "unknown unit (use B, KiB, MiB, GiB, KB, MB or GB)";
        goto fail;
    }
    if (n > UINT64_MAX / mult) {
        msg = "too large";
        goto fail;
    }
    *out = n * mult;
    return 0;
fail:
    if (why != NULL) {
        *why = msg;
    }
    return -1;
}

int config_parse_size(const char *s, size_t len, uint64_t *bytes,
                      const char **why)
{
    return parse_bytes(s, len, false, bytes, why);
}

int config_parse_rate(const char *s, size_t len, uint64_t *bps,
                      const char **why)
{
    return parse_bytes(s, len, true, bps, why);
}
