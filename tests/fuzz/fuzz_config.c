/*
 * libFuzzer target for the config loader: config_parse on arbitrary bytes
 * must return either a config that keeps every promise of config.h and
 * rules.h, or at least one "NAME:..." message and an empty config; both are
 * freed (leaks are findings). The input also goes to the two helpers.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcfault/config.h"

#define NAME "fuzz.yaml"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static void check_globs(const struct rule_glob *g, size_t n)
{
    check(n >= 1 && g != NULL);
    for (size_t i = 0; i < n; i++) {
        check(g[i].pat != NULL && g[i].pat[g[i].len] == '\0');
    }
}

static void check_rule(const struct rule *r)
{
    check(r->name != NULL && r->name[0] != '\0');
    check(r->line >= 1);
    check_globs(r->cmds, r->ncmds);
    check_globs(r->keys, r->nkeys);
    check((unsigned)r->action < RULE__COUNT);
    check((r->message != NULL) == (r->action == RULE_ERROR));
    if (r->message != NULL) {
        check(r->message_len > 0);
        for (size_t i = 0; i < r->message_len; i++) {
            char b = r->message[i];
            check(b != '\r' && b != '\n' && b != '\0');
        }
    }
    if (r->action != RULE_DELAY) {
        check(r->delay_us == 0 && r->jitter_us == 0);
    }
    check(r->delay_us <= RULES_DELAY_MAX_US && r->jitter_us <= r->delay_us);
    check(r->probability >= 0.0 && r->probability <= 1.0);
    check(!(r->forward && r->action == RULE_MISS));
    check(r->matched == 0 && r->fired == 0);
}

static void check_config(const struct config *cfg)
{
    check(cfg->nproxies >= 1 && cfg->proxies != NULL);
    if (!cfg->has_seed) {
        check(cfg->seed == 0);
    }
    for (size_t i = 0; i < cfg->nproxies; i++) {
        const struct config_proxy *p = &cfg->proxies[i];
        check(p->name != NULL && p->name[0] != '\0');
        check((p->rules == NULL) == (p->nrules == 0));
        if (p->line != 0) {
            /* the proxies form: listen and upstream are required */
            check(p->listen != NULL && p->upstream != NULL);
        }
        for (size_t j = 0; j < i; j++) {
            check(strcmp(cfg->proxies[j].name, p->name) != 0);
        }
        for (size_t j = 0; j < p->nrules; j++) {
            check_rule(&p->rules[j]);
            for (size_t k = 0; k < j; k++) {
                check(strcmp(p->rules[k].name, p->rules[j].name) != 0);
            }
        }
    }
}

/* The unit a duration's text ends in, in microseconds, after n bytes of
 * digits and points; 0 for none. */
static double duration_unit(const char *s, size_t len, size_t n)
{
    const char *unit = s + n;
    size_t ulen = len - n;

    return ulen == 2 && unit[0] == 'u' && unit[1] == 's'   ? 1
           : ulen == 2 && unit[0] == 'm' && unit[1] == 's' ? 1e3
           : ulen == 1 && unit[0] == 's'                   ? 1e6
           : ulen == 1 && unit[0] == 'm'                   ? 60e6
           : ulen == 1 && unit[0] == 'h'                   ? 3600e6
                                                           : 0;
}

/* Significant digits of a decimal number (leading zeros not counted). */
static size_t significant_digits(const char *num)
{
    size_t n = 0;
    bool lead = true;

    for (; *num != '\0'; num++) {
        if (*num >= '1' && *num <= '9') {
            lead = false;
        }
        if (!lead && *num >= '0' && *num <= '9') {
            n++;
        }
    }
    return n;
}

static void check_duration(const char *s, size_t len)
{
    uint64_t us = 0;
    const char *why = NULL;
    char num[64];
    size_t n = 0;

    while (n < len && ((s[n] >= '0' && s[n] <= '9') || s[n] == '.')) {
        n++;
    }
    double mult = duration_unit(s, len, n);
    double want = -1;
    if (n > 0 && n < sizeof(num)) {
        memcpy(num, s, n);
        num[n] = '\0';
        want = strtod(num, NULL) * mult;
    }
    if (config_parse_duration(s, len, &us, &why) == 0) {
        /* digits, then us, ms, s, m or h; the value agrees with strtod's
         * reading of the number times the unit. */
        check(len >= 2 && s[0] >= '0' && s[0] <= '9' && mult > 0);
        double got = (double)us;
        check(want < 0 ||
              (got - want <= want * 1e-9 + 1 && want - got <= want * 1e-9 + 1));
        return;
    }
    check(why != NULL && why[0] != '\0');
    /* A short number whose value is a whole number of microseconds is not
     * "finer than a microsecond": with at most 12 significant digits, a
     * value off a whole number is off by far more than strtod's rounding. */
    if (strcmp(why, "finer than a microsecond") == 0 && want >= 1 &&
        want < 1e15 && significant_digits(num) <= 12) {
        double rounded = (double)(uint64_t)(want + 0.5);
        double off = want > rounded ? want - rounded : rounded - want;
        check(off > rounded * 1e-13);
    }
}

static void check_probability(const char *s, size_t len)
{
    double p = -1;
    const char *why = NULL;
    char num[64];
    bool percent = len > 0 && s[len - 1] == '%';
    size_t n = percent ? len - 1 : len;
    double want = -1;

    if (n < sizeof(num)) {
        memcpy(num, s, n);
        num[n] = '\0';
        want = strtod(num, NULL) / (percent ? 100 : 1);
    }
    if (config_parse_probability(s, len, &p, &why) == 0) {
        /* strtod's value, up to 1 (1.000...01 past 17 digits is 1). */
        check(p >= 0.0 && p <= 1.0);
        check(want < 0 || p == (want > 1 ? 1 : want));
        return;
    }
    check(why != NULL && why[0] != '\0' && p == -1);
    if (strcmp(why, "out of range") == 0 && want >= 0) {
        check(want >= 1); /* above 1, or 1 once rounded */
    }
}

static void check_helpers(const char *s, size_t len)
{
    check_duration(s, len);
    check_probability(s, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct config cfg;
    struct config_errors errs = {0};

    int rc = config_parse(NAME, text, size, &cfg, &errs);
    if (rc == 0) {
        check(errs.n == 0);
        check_config(&cfg);
    } else {
        check(rc == -1 && errs.n >= 1);
        check(cfg.proxies == NULL && cfg.nproxies == 0 && cfg.admin == NULL);
        for (size_t i = 0; i < errs.n; i++) {
            check(strncmp(errs.msgs[i], NAME ":", strlen(NAME) + 1) == 0);
        }
    }
    config_free(&cfg);
    config_errors_free(&errs);
    check_helpers(text, size);
    return 0;
}
