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
/* slice: the pause between pieces unless `interval` says: long enough for
 * each piece to leave in its own segment, short enough not to stall. */
#define RULES_INTERVAL_DEFAULT_US 1000ULL

enum rule_action {
    RULE_ERROR = 0, /* reply message instead of forwarding */
    RULE_DELAY,     /* hold the command delay_us (+- jitter) */
    RULE_DROP,      /* close the client connection */
    RULE_HANG,      /* never answer again on this connection */
    RULE_MISS,      /* retrievals: matching keys answer as misses */
    RULE_THROTTLE,  /* the command's reply reaches the client at rate_bps */
    RULE_SLICE,     /* ... in pieces of slice_min..slice_max bytes */
    RULE_TRUNCATE,  /* ... cut after keep bytes, then the connection closes */
    RULE_CORRUPT,   /* bits flipped in value bytes (reply or stored block) */
    RULE_EVICT,     /* the matching keys are deleted first, then it runs */
    RULE__COUNT
};

/* How a connection the proxy closes goes: a FIN (EOF) or a reset (RST,
 * SO_LINGER 0: ECONNRESET). */
enum rule_close { RULE_CLOSE_FIN = 0, RULE_CLOSE_RESET };

/* A client network: an IPv4 one is kept as its IPv4-mapped IPv6 form
 * (::ffff:a.b.c.d), bits counting over all 128 (an IPv4 /8 is 104). */
struct rule_cidr {
    uint8_t addr[16];
    uint8_t bits; /* 0..128 */
};

/* When a rule is in force, counted from rule.epoch_us: from start on,
 * for duration (0: no end), again every `every` (0: once). */
struct rule_schedule {
    uint64_t start_us;
    uint64_t duration_us;
    uint64_t every_us;
};

/* A glob pattern (see glob.h), NUL-terminated for printing; len counts the
 * bytes, which may include NUL. */
struct rule_glob {
    char *pat;
    size_t len;
};

/*
 * One rule as written in the file. Strings and clients are owned by the
 * rule (freed by rule_free / rules_destroy). Defaults (rule_set_defaults):
 * cmds = {"*"}, keys = {"*"}, probability 1, after 0, limit 0 (no limit),
 * enabled, close fin, interval 1ms, flips 1, no clients, connections 1,
 * not sized (max_size UINT64_MAX), not scheduled.
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
    /* The newer actions' parameters. */
    enum rule_close close; /* drop, truncate: how the connection closes */
    uint64_t rate_bps;     /* throttle: bytes per second, > 0 */
    uint32_t slice_min;    /* slice: piece size, 1 <= min <= max */
    uint32_t slice_max;
    uint64_t interval_us;  /* slice: between pieces */
    uint64_t keep_bytes;   /* truncate: bytes of the reply kept, */
    double keep_fraction;  /* ... or this share of them (0..1) */
    bool keep_is_fraction; /* which of the two */
    uint32_t flips;        /* corrupt: bits flipped per value, >= 1 */
    /* Targeting: a rule matches a command only when all of these say yes
     * (checked after command and key, before the gates). */
    struct rule_cidr *clients; /* the client's address in one; 0: any */
    size_t nclients;
    double connections; /* share of connections (0..1], chosen once per
                           connection (rules_subject.conn_pick); 0 (a
                           rule built with calloc) counts as 1 */
    bool sized;         /* min_size/max_size given: only commands with a
                           data block of min..max bytes match */
    uint64_t min_size;
    uint64_t max_size; /* UINT64_MAX: no bound */
    bool scheduled;    /* schedule given */
    struct rule_schedule schedule;
    bool on_connect;   /* command: connect (alone): rules_decide_connect */
    bool targeted;     /* any of clients, connections < 1, sized,
                          scheduled: set by rules_create */
    uint64_t epoch_us; /* the schedule's clock: when the rule was first
                          loaded (monotonic); kept across reloads by name */
    uint32_t line; /* where the rule starts in its file (1-based), 0 unknown */
    /* Counters, carried across reloads for an unchanged name. */
    uint64_t matched; /* command and key globs and targeting matched */
    uint64_t fired;   /* and the gates let it fire */
};

/* Frees what a rule owns (not the struct itself). */
void rule_free(struct rule *r);

/* Zeroes *r and sets the defaults of a rule written without keys (see
 * struct rule): probability 1, enabled, connections 1, max_size
 * UINT64_MAX, flips 1, interval 1ms, close fin. cmds, keys and action are
 * left for the caller. */
void rule_set_defaults(struct rule *r);

/* A deep copy of src into dst (counters, epoch and enabled flag
 * included). Returns 0, or -1 when out of memory (dst then owns
 * nothing). */
int rule_clone(struct rule *dst, const struct rule *src);

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
    /* Targeting (only read for rules that target). */
    int64_t data_len;           /* the data block without its \r\n; -1:
                                   the command has none */
    const uint8_t *client_addr; /* 16 bytes, IPv4 mapped; NULL: not an IP
                                   client (a unix socket): no `client` rule
                                   matches it */
    uint32_t conn_pick;         /* the connection's draw, uniform over
                                   2^32: `connections: S` takes it when
                                   conn_pick < S * 2^32 */
    uint64_t now_us;            /* monotonic, for schedules */
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

/* Copies matched/fired and epoch_us from the rules of `from` into the rules
 * of `to` that have the same name (a reload keeps counters and schedule
 * clocks). */
void rules_carry_counters(struct rules *to, const struct rules *from);

/* Enables or disables a rule by name (the index is rebuilt). Returns 0, or
 * -1 when there is no such rule or memory runs out (the table is then
 * unchanged). */
int rules_set_enabled(struct rules *t, const char *name, bool enabled);

/*
 * Decides a command: tries the enabled rules in file order (never an
 * on_connect one); the first whose command glob matches s->name
 * (case-insensitively), one of whose key globs matches one of the keys
 * and whose targeting (client, connections, size, schedule; only for
 * rules with `targeted`) takes s counts a match (matched++), then its
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

/*
 * Decides a new connection (s: name "connect", no keys, data_len -1): the
 * enabled rules with on_connect, in file order, with their targeting and
 * gates. rules_decide never returns such a rule.
 */
struct rule *rules_decide_connect(struct rules *t,
                                  const struct rules_subject *s);

/* True when t has an enabled on_connect rule (conn_create asks first). */
bool rules_have_connect(const struct rules *t);

/*
 * Whether r's schedule has it in force at now_us (always, without one).
 * *next_us (next_us may be NULL) gets the monotonic time at which that
 * next changes, UINT64_MAX when it never does. A rule whose clock has not
 * started (epoch_us 0) is judged as if it started at now_us: at the start
 * of its schedule, in force only when start is 0.
 */
bool rule_in_force(const struct rule *r, uint64_t now_us, uint64_t *next_us);

/* True when addr (16 bytes, IPv4 mapped) is in one of r's clients. */
bool rule_client_match(const struct rule *r, const uint8_t *addr);

/* Starts the schedule clock (epoch_us = now_us) of every rule of t whose
 * clock has not started (epoch_us 0): call when a table goes live, after
 * rules_carry_counters. */
void rules_start_clocks(struct rules *t, uint64_t now_us);

/* A uniform random number from the table's PRNG (jitter draws). */
uint64_t rules_random(struct rules *t);

#endif
