/*
 * The rule table: which commands on which keys get which fault. Pure: no
 * libevent, no sockets, no globals; built from config.c's output, consulted
 * by apply.c once per command.
 */
#ifndef MCFAULT_RULES_H
#define MCFAULT_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcfault/proto.h"

/* At most this many rules per table: bounds the index (see rules.c). */
#define RULES_MAX 100000
/* A delay or jitter over an hour is a typo, not a test. */
#define RULES_DELAY_MAX_US (3600ULL * 1000 * 1000)

enum rule_action {
    RULE_ERROR = 0, /* reply message instead of forwarding */
    RULE_DELAY,     /* hold the command delay_us (+- jitter) */
    RULE_DROP,      /* close the client connection */
    RULE_HANG,      /* never answer again on this connection */
    RULE_MISS,      /* retrievals: matching keys answer as misses */
    RULE__COUNT
};

/* A glob pattern (see glob.h), NUL-terminated for printing; len counts the
 * bytes, which may include NUL. */
struct rule_glob {
    char *pat;
    size_t len;
};

/*
 * One rule as written in the file. Strings are owned by the rule (freed by
 * rule_free / rules_destroy). Defaults: cmds = {"*"}, keys = {"*"},
 * probability 1, after 0, limit 0 (no limit), enabled.
 */
struct rule {
    char *name;
    struct rule_glob *cmds; /* matched case-insensitively; ncmds >= 1 */
    size_t ncmds;
    struct rule_glob *keys; /* matched as bytes; nkeys >= 1 */
    size_t nkeys;
    enum rule_action action;
    char *message; /* RULE_ERROR: the reply line, without \r\n */
    size_t message_len;
    uint64_t delay_us;  /* RULE_DELAY */
    uint64_t jitter_us; /* RULE_DELAY: uniform in [-jitter, +jitter] */
    double probability; /* 0..1 */
    uint64_t after;     /* let this many matches through first */
    uint64_t limit;     /* fire at most this often; 0 = no limit */
    bool forward;       /* the command reaches memcached; its reply is hit */
    bool enabled;
    uint32_t line; /* where the rule starts in its file (1-based), 0 unknown */
    /* Counters, carried across reloads for an unchanged name. */
    uint64_t matched; /* command and key globs matched */
    uint64_t fired;   /* and the gates let it fire */
};

/* Frees what a rule owns (not the struct itself). */
void rule_free(struct rule *r);

/* Short lower-case name of an action ("error", "delay", ...). */
const char *rule_action_name(enum rule_action a);

/* True when op is a retrieval whose keys a RULE_MISS can answer as misses:
 * get, gets, gat, gats, mg. */
bool rule_op_is_retrieval(enum proto_op op);

/* True when key[0..len) matches one of r's key globs. */
bool rule_key_match(const struct rule *r, const char *key, size_t len);

/* What a command looks like to the rule table. */
struct rules_subject {
    enum proto_op op;
    const char *name; /* the command name as the client typed it */
    size_t name_len;
    /* Keys as matched: base64 keys already decoded. A command without a key
     * is matched as if its key were the empty string: give nkeys 0. */
    const struct proto_tok *keys; /* offsets into key_base */
    const char *key_base;
    size_t nkeys;
};

struct rules; /* opaque: the rules, an index over them and a PRNG */

/*
 * Builds a table from rules[0..n) and takes ownership of the array and what
 * it holds (also on failure). seed seeds the PRNG when seeded is true;
 * otherwise the caller passes something unpredictable (time, pid) as seed.
 * Returns NULL when out of memory or n > RULES_MAX.
 */
struct rules *rules_create(struct rule *rules, size_t n, uint64_t seed);

/* Frees the table and its rules. NULL is allowed. */
void rules_destroy(struct rules *t);

/* Number of rules, and rule i in file order (0-based). */
size_t rules_count(const struct rules *t);
struct rule *rules_at(struct rules *t, size_t i);

/* Finds a rule by name; NULL when there is none. */
struct rule *rules_find(struct rules *t, const char *name);

/* Copies matched/fired from the rules of `from` into the rules of `to`
 * that have the same name (a reload keeps counters). */
void rules_carry_counters(struct rules *to, const struct rules *from);

/* Enables or disables a rule by name (the index is rebuilt). Returns 0, or
 * -1 when there is no such rule or memory runs out (the table is then
 * unchanged). */
int rules_set_enabled(struct rules *t, const char *name, bool enabled);

/*
 * Decides a command: tries the enabled rules in file order; the first
 * whose command glob matches s->name (case-insensitively) and one of whose
 * key globs matches one of the keys counts a match (matched++), then its
 * gates decide: the first `after` matches pass, then it fires unless
 * `limit` fires were reached or the probability draw says no. A rule that
 * matches but does not fire lets the next rule try. A RULE_MISS rule is
 * only tried on retrievals (rule_op_is_retrieval) with at least one key.
 * Returns the rule that
 * fired (fired++), or NULL: forward untouched.
 *
 * Cost: an index by command and by each key glob's literal prefix, suffix
 * or whole key (see rules.c) keeps rules that cannot match out of the
 * loop, so 1,000 rules that never match cost tens of nanoseconds. Globs
 * with neither (such as "*foo*") are tried one by one.
 */
struct rule *rules_decide(struct rules *t, const struct rules_subject *s);

/* A uniform random number from the table's PRNG (jitter draws). */
uint64_t rules_random(struct rules *t);

#endif
