/*
 * Configuration loader: YAML text -> struct config (proxies and their
 * rules), with every problem reported as "FILE:LINE:COL: message". Pure:
 * libyaml and memory only, no sockets, no globals.
 */
#ifndef MCFAULT_CONFIG_H
#define MCFAULT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcfault/rules.h"

/* A config file larger than this is refused (a rule file, not a dump). */
#define CONFIG_FILE_MAX (16 * 1024 * 1024)
/* max_connections and --max-connections: each client costs two descriptors,
 * and Linux allows a process 1048576 (fs.nr_open) unless raised. */
#define CONFIG_MAX_CONNECTIONS_MAX 500000
/* rate: past 1 GiB/s a throttle no longer slows anything down. */
#define CONFIG_RATE_MAX (1ULL << 30)
/* size (slice pieces): memcached's default item size limit; a larger piece
 * is the whole value at once. */
#define CONFIG_SLICE_MAX (1 << 20)
/* flips: a handful of bits is a corruption test, thousands are noise. */
#define CONFIG_FLIPS_MAX 1024
/* schedule start, duration, every: a test run, not a calendar (30 days,
 * in seconds). */
#define CONFIG_SCHEDULE_MAX_S (30 * 24 * 3600)

/* One proxy: a listener, an upstream, its rules. */
struct config_proxy {
    char *name;         /* "default" for the single-proxy form unless given */
    char *listen;       /* ADDR:PORT as written, NULL when absent */
    char *upstream;     /* HOST[:PORT] as written, NULL when absent */
    struct rule *rules; /* owned; file order */
    size_t nrules;
    uint32_t line; /* where the proxy starts, 0 for the single form */
};

struct config {
    struct config_proxy *proxies; /* at least one */
    size_t nproxies;
    bool has_seed;
    uint64_t seed;
    char *admin;              /* admin: ADDR:PORT, NULL when absent (issue 4) */
    uint64_t max_connections; /* 1..CONFIG_MAX_CONNECTIONS_MAX, 0 absent */
    bool watch;               /* watch: true, reload when the file changes */
};

/* Collected problems, in file order. */
struct config_errors {
    char **msgs; /* each "FILE:LINE:COL: message", NUL-terminated */
    size_t n;
};

/*
 * Parses text[0..len) (name is the file name used in messages). On success
 * returns 0 and fills *cfg (free with config_free). On failure returns -1,
 * leaves *cfg empty, and appends every problem found to *errs (free with
 * config_errors_free); a YAML syntax error stops at the first one, schema
 * errors are all collected.
 *
 * Schema (docs/config.md): top level is a mapping with either
 *   listen, upstream, rules           (one proxy, named "default")
 * or
 *   proxies: [{name, listen, upstream, rules}, ...]
 * plus optional seed (non-negative integer), admin (ADDR:PORT) and
 * max_connections (1..CONFIG_MAX_CONNECTIONS_MAX).
 * A rule is a mapping: name, command, key, action, message, delay, jitter,
 * probability, after, limit, forward, enabled, close, rate, size,
 * interval, keep, flips, client, connections, min_size, max_size,
 * schedule. Unknown keys are errors, and so are keys for another action.
 * `command: connect` (alone) makes a connect rule (on_connect).
 */
int config_parse(const char *name, const char *text, size_t len,
                 struct config *cfg, struct config_errors *errs);

/*
 * POST /rules: parses text[0..len) as rules to append after `before`
 * rules already in force: one rule (a mapping of rule keys), a list of
 * rules, or a document of the one-proxy form (a mapping with 'rules', and
 * optionally listen, upstream, seed; 'proxies' is refused). On success
 * *cfg holds one proxy of the single form (line 0) with those rules; a
 * rule without a name is named rule-N by its place after the `before`
 * ones. A name given twice is not a problem here: the caller checks the
 * names against the rules in force too. Otherwise as config_parse.
 */
int config_parse_rules(const char *name, const char *text, size_t len,
                       size_t before, struct config *cfg,
                       struct config_errors *errs);

/* Reads path and parses it (the path is the name in messages). An
 * unreadable file is one error "PATH: strerror". Same contract as
 * config_parse. */
int config_load_file(const char *path, struct config *cfg,
                     struct config_errors *errs);

/* Frees what cfg owns and empties it. */
void config_free(struct config *cfg);

void config_errors_free(struct config_errors *errs);

/* Appends one message, printf-style, to errs (for problems found after
 * parsing, such as a reload that would change addresses); dropped when
 * memory runs out. */
void config_errors_addf(struct config_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The rules of every proxy of cfg. */
size_t config_rule_count(const struct config *cfg);

/*
 * Parses a duration with a unit: "500ms", "250us", "1.5s", "0s". Returns
 * 0 and *us, or -1 with *why set to a static message. Pure helper, exported
 * for tests.
 */
int config_parse_duration(const char *s, size_t len, uint64_t *us,
                          const char **why);

/* Parses a probability: a number 0..1 or a percentage "25%". Returns 0 or
 * -1 with *why. */
int config_parse_probability(const char *s, size_t len, double *p,
                             const char **why);

/*
 * Parses a byte count: digits and an optional unit, B, KiB, MiB, GiB
 * (1024-based) or KB (kB), MB, GB (1000-based): "512", "512B", "4KiB".
 * Returns 0 and *bytes, or -1 with *why set to a static message.
 */
int config_parse_size(const char *s, size_t len, uint64_t *bytes,
                      const char **why);

/* Parses a rate: a byte count (config_parse_size) per second, the "/s"
 * optional: "10KiB/s", "512B/s", "1MiB/s", "4096". Returns 0 and *bps, or
 * -1 with *why. */
int config_parse_rate(const char *s, size_t len, uint64_t *bps,
                      const char **why);

#endif
