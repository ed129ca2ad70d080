/*
 * Rule table: the rules in file order, an index that keeps rules which
 * cannot match a command out of rules_decide's loop, targeting (client,
 * connection share, size, schedule), the per-rule gates (after, limit,
 * probability), the connect rules apart, and a seeded PRNG.
 */
#include "mcfault/rules.h"

#include <stdlib.h>
#include <string.h>

#include "mcfault/glob.h"

/*
 * The index.
 *
 * rules_decide must cost about the same with 1,000 rules that never match
 * as with none, so it never walks the whole table. Two facts narrow it:
 *
 * 1. The command. A known op is only recognised in its exact lower-case
 *    spelling, so its name is proto_op_name(op) and which rules' command
 *    globs match it is known when the table is built. Each op gets a
 *    *bucket* of the enabled rules whose command globs match its name
 *    (RULE_MISS rules only for retrievals). Ops with the same rule set
 *    share a bucket (with `command: "*"` every op shares one). Bucket 0
 *    holds every enabled rule but the connect rules (on_connect: they are
 *    never a command's, see rules_decide_connect, so no bucket holds
 *    them): it serves PROTO_OP_UNKNOWN and any subject
 *    whose name is not its op's canonical name, and there each candidate's
 *    command globs (and the RULE_MISS test) are checked at run time.
 *
 * 2. How a key starts or ends. Each key glob gives its rule *anchors*:
 *    byte strings a key must start with, end with or be for the glob to
 *    match it. A glob of literal bytes only ("\x" included) anchors on
 *    the whole key; one that starts with literal bytes on them, up to the
 *    first '*', '?' or '[' (at most PREFIX_MAX bytes); one that starts
 *    with a class on each member, one byte each (glob_match is asked about
 *    each byte, so glob.c alone says what a class holds). A glob that
 *    starts with '*' or '?' anchors on the literal bytes it ends with, if
 *    any ("*:lock" on a suffix ":lock"). A glob with none of these ("*",
 *    "?x*"), a class of more than ANCHORS_MAX members, or more than
 *    ANCHORS_MAX anchors in all make the rule *wild*: it may match any
 *    non-empty key. Separately, a rule can match the empty key when one
 *    of its globs matches "" (empty or all '*').
 *
 * A bucket holds a WILD list, an EMPTY list and a hash table of anchors.
 * An anchor's hash (bytes, length, kind) picks its slot with its low
 * bits, and its high 32 bits are its *tag*. A slot is a list of (rule,
 * tag) entries, so a rule whose anchor merely shares the slot is skipped
 * without touching the rule, and a 32-bit filter of the tags it holds, so
 * most probes of a key that matches nothing stop at the slot.
 * All lists are in file order, in one pool. For a key, each prefix whose
 * length is that of some prefix anchor in the bucket (a 64-bit mask) is
 * hashed (one pass from the key's start, mixing a word at a time) and the
 * entries of its slot with its tag taken, then the whole key if some exact
 * anchor has its length; suffixes likewise (a pass from the end, only when
 * the bucket has suffix anchors). A key shorter than every anchor of a
 * kind is not hashed for it.
 *
 * The candidates for a subject are the union of those over its keys, WILD
 * when a key is not empty, and EMPTY when one is empty or there is none.
 * They are walked in increasing rule index by a k-way merge over cursors
 * on the stack (each rule once), checked in full (the command in bucket
 * 0, the RULE_MISS conditions, the key globs with glob_match) and gated,
 * so the result is exactly that of trying every rule in file order, and
 * the first rule that fires ends the walk. When a subject
 * brings more than CURSORS_MAX lists (a multi-get whose keys hit many
 * slots), they are marked in a bitmap the table owns instead and the
 * bitmap is read in order: still exact, still no allocation.
 *
 * Memory: per bucket a rule takes at most ANCHORS_MAX + 2 pool entries of
 * 8 bytes, and the slot table has a power of two of 12-byte slots, at least
 * twice the anchors (at most SLOTS_MAX); there are at most PROTO_OP__COUNT
 * buckets, in practice a few. rules_set_enabled rebuilds the index.
 */

/* Longest anchor: a longer literal prefix is cut, which only lets more
 * rules be tried. 64 is one bit per length in a 64-bit mask. */
#define PREFIX_MAX 64
/* A rule with more anchors than this (a class of more members, many key
 * globs) is indexed as wild: bounds its entries in each bucket. */
#define ANCHORS_MAX 16
/* Slot table cap per bucket (8 MiB): more anchors than this only share
 * slots. */
#define SLOTS_MAX (1u << 20)
/* Merge cursors on rules_decide's stack; beyond this many lists the
 * bitmap is used. */
#define CURSORS_MAX 32

struct span {
    uint32_t off; /* into the index pool */
    uint32_t len;
};

/* What an anchor is to the key. */
enum anchor_kind {
    ANCHOR_PREFIX = 0,
    ANCHOR_SUFFIX,
    ANCHOR_EXACT,
    ANCHOR__COUNT
};

/* Anchor lengths of one kind in a bucket. */
struct lens {
    uint64_t mask; /* bit L-1: some anchor is L bytes long */
    uint32_t min;  /* the shortest (PREFIX_MAX + 1 when none) */
    uint32_t max;  /* the longest (0 when none) */
};

struct bucket {
    uint32_t nrules; /* rules in the bucket */
    struct span wild;
    struct span empty;
    struct lens lens[ANCHOR__COUNT];
    /* The bytes keys must start with to meet a prefix or whole-key anchor
     * of the bucket, and end with to meet a suffix one: a key that fails
     * both is settled without hashing a byte. */
    uint64_t first[4];
    uint64_t last[4];
    uint32_t slot_off; /* the bucket's slot table in index.slots */
    uint32_t mask;     /* slots - 1 */
};

/* A rule in a list; tag: its anchor's (slot lists only). */
struct entry {
    uint32_t rule;
    uint32_t tag;
};

/* A slot of a bucket's anchor table. */
struct slot {
    struct span list;
    uint32_t filter; /* bit tag % 32 set for each entry's tag */
};

struct index {
    struct bucket buckets[PROTO_OP__COUNT]; /* [0]: every enabled rule */
    size_t nbuckets;
    uint8_t op_bucket[PROTO_OP__COUNT]; /* [PROTO_OP_UNKNOWN] is 0 */
    struct slot *slots;
    struct entry *pool;
};

/* A key prefix, suffix or whole key a rule needs: the hash of its bytes
 * (see struct hasher), its length and kind. */
struct anchor {
    uint64_t hash;
    uint32_t len;
    enum anchor_kind kind;
    unsigned char edge; /* its first byte (a suffix: its last) */
};

/* What a rule's key globs say about keys (see the index above). */
struct keyinfo {
    uint32_t off; /* its anchors in rules.anchors */
    uint32_t n;
    bool wild;
    bool empty;
};

struct name_ref {
    const char *name;
    uint32_t idx;
};

struct rules {
    struct rule *rules;
    size_t n;
    struct keyinfo *kinfo;  /* one per rule */
    struct anchor *anchors; /* of all rules */
    size_t nanchors;
    uint64_t *scratch;       /* one bit per rule, zero between calls */
    struct name_ref *byname; /* named rules sorted by (name, index) */
    size_t nnamed;
    /* The enabled on_connect rules in file order: sized for all of them
     * when the table is built, so a rebuild never allocates. */
    uint32_t *connect;
    size_t nconnect;
    struct index idx;
    const char *op_name[PROTO_OP__COUNT]; /* proto_op_name(op) */
    size_t op_len[PROTO_OP__COUNT];       /* and its length */
    uint64_t prng[4];                     /* xoshiro256** state */
};

static const char *const action_names[RULE__COUNT] = {
    [RULE_ERROR] = "error",     [RULE_DELAY] = "delay",
    [RULE_DROP] = "drop",       [RULE_HANG] = "hang",
    [RULE_MISS] = "miss",       [RULE_THROTTLE] = "throttle",
    [RULE_SLICE] = "slice",     [RULE_TRUNCATE] = "truncate",
    [RULE_CORRUPT] = "corrupt", [RULE_EVICT] = "evict",
};

void rule_free(struct rule *r)
{
    if (r == NULL) {
        return;
    }
    free(r->name);
    for (size_t i = 0; i < r->ncmds; i++) {
        free(r->cmds[i].pat);
    }
    free(r->cmds);
    for (size_t i = 0; i < r->nkeys; i++) {
        free(r->keys[i].pat);
    }
    free(r->keys);
    free(r->message);
    free(r->clients);
    r->name = NULL;
    r->cmds = NULL;
    r->ncmds = 0;
    r->keys = NULL;
    r->nkeys = 0;
    r->message = NULL;
    r->message_len = 0;
    r->clients = NULL;
    r->nclients = 0;
}

void rule_set_defaults(struct rule *r)
{
    memset(r, 0, sizeof(*r));
    r->probability = 1.0;
    r->enabled = true;
    r->close = RULE_CLOSE_FIN;
    r->interval_us = RULES_INTERVAL_DEFAULT_US;
    r->flips = 1;
    r->connections = 1.0;
    r->min_size = 0;
    r->max_size = UINT64_MAX;
}

/* Copies n globs into a new array at *out, counted in *nout as soon as
 * it exists so that rule_free frees a partial copy. Returns 0 or -1. */
static int globs_clone(struct rule_glob **out, size_t *nout,
                       const struct rule_glob *g, size_t n)
{
    if (n == 0) {
        return 0;
    }
    *out = calloc(n, sizeof(**out));
    if (*out == NULL) {
        return -1;
    }
    *nout = n;
    for (size_t i = 0; i < n; i++) {
        (*out)[i].pat = malloc(g[i].len + 1);
        if ((*out)[i].pat == NULL) {
            return -1;
        }
        memcpy((*out)[i].pat, g[i].pat, g[i].len);
        (*out)[i].pat[g[i].len] = '\0';
        (*out)[i].len = g[i].len;
    }
    return 0;
}

/* A copy of s[0..len) with a NUL after it, in *out; s NULL: none. */
static int bytes_clone(char **out, const char *s, size_t len)
{
    if (s == NULL) {
        return 0;
    }
    *out = malloc(len + 1);
    if (*out == NULL) {
        return -1;
    }
    memcpy(*out, s, len);
    (*out)[len] = '\0';
    return 0;
}

int rule_clone(struct rule *dst, const struct rule *src)
{
    *dst = *src;
    dst->name = NULL;
    dst->cmds = NULL;
    dst->ncmds = 0;
    dst->keys = NULL;
    dst->nkeys = 0;
    dst->message = NULL;
    dst->clients = NULL;
    dst->nclients = 0;
    if (bytes_clone(&dst->name, src->name,
                    src->name != NULL ? strlen(src->name) : 0) != 0 ||
        bytes_clone(&dst->message, src->message, src->message_len) != 0 ||
        globs_clone(&dst->cmds, &dst->ncmds, src->cmds, src->ncmds) != 0 ||
        globs_clone(&dst->keys, &dst->nkeys, src->keys, src->nkeys) != 0) {
        goto fail;
    }
    if (src->nclients > 0) {
        dst->clients = malloc(src->nclients * sizeof(*dst->clients));
        if (dst->clients == NULL) {
            goto fail;
        }
        memcpy(dst->clients, src->clients,
               src->nclients * sizeof(*dst->clients));
        dst->nclients = src->nclients;
    }
    return 0;
fail:
    rule_free(dst);
    return -1;
}

const char *rule_action_name(enum rule_action a)
{
    if ((unsigned)a >= RULE__COUNT) {
        return "unknown";
    }
    return action_names[a];
}

bool rule_op_is_retrieval(enum proto_op op)
{
    switch (op) {
    case PROTO_OP_GET:
    case PROTO_OP_GETS:
    case PROTO_OP_GAT:
    case PROTO_OP_GATS:
    case PROTO_OP_MG:
        return true;
    default:
        return false;
    }
}

bool rule_key_match(const struct rule *r, const char *key, size_t len)
{
    for (size_t i = 0; i < r->nkeys; i++) {
        if (glob_match(r->keys[i].pat, r->keys[i].len, key, len, false)) {
            return true;
        }
    }
    return false;
}

static bool rule_cmd_match(const struct rule *r, const char *name, size_t len)
{
    for (size_t i = 0; i < r->ncmds; i++) {
        if (glob_match(r->cmds[i].pat, r->cmds[i].len, name, len, true)) {
            return true;
        }
    }
    return false;
}

/* ---- PRNG: splitmix64 seeds xoshiro256** (Blackman, Vigna). ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t rules_random(struct rules *t)
{
    uint64_t *s = t->prng;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t x = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= x;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1): the top 53 bits. */
static double random_unit(struct rules *t)
{
    return (double)(rules_random(t) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- Key glob analysis ---- */

/*
 * Hashes the prefixes (or suffixes) of a byte string as it is walked, one
 * byte at a time: bytes are gathered into a word and only each full word
 * goes through a multiply, so the prefix lengths probed cost a final mix
 * each, not a pass each.
 */
struct hasher {
    uint64_t h; /* the full words so far */
    uint64_t w; /* bytes of the word being filled */
};

static void hasher_add(struct hasher *x, size_t i, unsigned char c)
{
    x->w |= (uint64_t)c << (8 * (i % 8));
    if (i % 8 == 7) {
        x->h = (x->h ^ x->w) * 0x9e3779b97f4a7c15ULL;
        x->h ^= x->h >> 29;
        x->w = 0;
    }
}

/* The hash of the len bytes added so far as an anchor of kind k: its low
 * bits pick the slot, its high 32 are the tag. */
static uint64_t hasher_end(const struct hasher *x, size_t len,
                           enum anchor_kind k)
{
    uint64_t h = x->h ^ x->w;

    h ^= (uint64_t)(len + (size_t)k * (PREFIX_MAX + 1)) * 0xc2b2ae3d27d4eb4fULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint32_t hash_tag(uint64_t h)
{
    return (uint32_t)(h >> 32);
}

/*
 * // atom: '\' byte | byte
 * Moves *i past one class member; false when a '\' is the last byte.
 */
static bool skip_atom(const unsigned char *p, size_t plen, size_t *i)
{
    if (p[*i] == '\\') {
        if (*i + 1 >= plen) {
            return false;
        }
        *i += 2;
        return true;
    }
    *i += 1;
    return true;
}

/*
 * // '[' ['^' | '!'] member* ']'   member: atom ['-' atom]
 * Offset just past the class whose '[' is p[0], or 0 when it never closes
 * (it is then a literal '['). Follows glob.c's class_scan: a ']' closes
 * unless it is the first member or escaped, and cannot end a range.
 */
static size_t class_end(const unsigned char *p, size_t plen)
{
    size_t i = 1;
    bool first = true;

    if (i < plen && (p[i] == '^' || p[i] == '!')) {
        i++;
    }
    while (i < plen) {
        if (p[i] == ']' && !first) {
            return i + 1;
        }
        first = false;
        if (!skip_atom(p, plen, &i)) {
            return 0;
        }
        if (i + 1 < plen && p[i] == '-' && p[i + 1] != ']') {
            i++;
            if (!skip_atom(p, plen, &i)) {
                return 0;
            }
        }
    }
    return 0;
}

/*
 * // token: '*' | '?' | class | '\' byte | byte
 * Stores in out the literal bytes pat ends with (its last PREFIX_MAX, the
 * bytes after its last '*', '?' or class) and returns how many: 0 when it
 * ends with a wildcard.
 */
static size_t literal_suffix(const unsigned char *p, size_t plen,
                             unsigned char *out)
{
    size_t n = 0;
    size_t i = 0;

    while (i < plen) {
        unsigned char c = p[i];
        if (c == '*' || c == '?') {
            n = 0;
            i++;
            continue;
        }
        if (c == '[') {
            size_t end = class_end(p + i, plen - i);
            if (end != 0) {
                n = 0;
                i += end;
                continue;
            }
            i++; /* unterminated: a literal '[' */
        } else if (c == '\\' && i + 1 < plen) {
            c = p[i + 1];
            i += 2;
        } else {
            i++;
        }
        if (n == PREFIX_MAX) {
            memmove(out, out + 1, PREFIX_MAX - 1);
            n--;
        }
        out[n++] = c;
    }
    return n;
}

/* Where rule anchors are collected while the table is built. */
struct anchor_buf {
    struct anchor *a;
    size_t n;
    size_t cap;
};

/* Adds an anchor to the rule being analysed (whose anchors start at
 * ki->off); a rule with too many becomes wild. Returns -1 when out of
 * memory. */
static int anchor_add(struct anchor_buf *ab, struct keyinfo *ki,
                      const unsigned char *bytes, size_t len,
                      enum anchor_kind kind)
{
    struct hasher hs = {0, 0};

    if (ki->wild) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        hasher_add(&hs, i, bytes[kind == ANCHOR_SUFFIX ? len - 1 - i : i]);
    }
    uint64_t h = hasher_end(&hs, len, kind);
    for (size_t i = ki->off; i < ab->n; i++) {
        if (ab->a[i].hash == h) {
            return 0;
        }
    }
    if (ki->n == ANCHORS_MAX) {
        ki->wild = true;
        ab->n = ki->off;
        ki->n = 0;
        return 0;
    }
    if (ab->n == ab->cap) {
        size_t cap = ab->cap > 0 ? ab->cap * 2 : 64;
        struct anchor *a = realloc(ab->a, cap * sizeof(*a));
        if (a == NULL) {
            return -1;
        }
        ab->a = a;
        ab->cap = cap;
    }
    ab->a[ab->n].hash = h;
    ab->a[ab->n].len = (uint32_t)len;
    ab->a[ab->n].kind = kind;
    ab->a[ab->n].edge = bytes[kind == ANCHOR_SUFFIX ? len - 1 : 0];
    ab->n++;
    ki->n++;
    return 0;
}

/* Adds the anchors of key glob pat[0..plen) to *ki. Returns -1 when out
 * of memory. */
static int keyinfo_glob(struct anchor_buf *ab, struct keyinfo *ki,
                        const char *pat, size_t plen)
{
    const unsigned char *p = (const unsigned char *)pat;
    unsigned char prefix[PREFIX_MAX];
    size_t n = 0;
    size_t i = 0;

    if (glob_match(pat, plen, "", 0, false)) {
        ki->empty = true;
    }
    if (plen == 0) {
        return 0;
    }
    if (p[0] == '*' || p[0] == '?') {
        n = literal_suffix(p, plen, prefix);
        if (n == 0) {
            ki->wild = true;
            return 0;
        }
        return anchor_add(ab, ki, prefix, n, ANCHOR_SUFFIX);
    }
    if (p[0] == '[') {
        size_t end = class_end(p, plen);
        if (end == 0) {
            prefix[0] = '[';
            return anchor_add(ab, ki, prefix, 1, ANCHOR_PREFIX);
        }
        /* The class alone, asked about each byte: glob.c decides what
         * ranges, negation and escapes mean. */
        for (unsigned c = 0; c < 256 && !ki->wild; c++) {
            char b = (char)c;
            if (glob_match(pat, end, &b, 1, false)) {
                prefix[0] = (unsigned char)c;
                if (anchor_add(ab, ki, prefix, 1, ANCHOR_PREFIX) != 0) {
                    return -1;
                }
            }
        }
        return 0;
    }
    /* Literal bytes up to the first token that is not one. */
    while (i < plen && n < PREFIX_MAX && p[i] != '*' && p[i] != '?' &&
           p[i] != '[') {
        if (p[i] == '\\' && i + 1 < plen) {
            i++;
        }
        prefix[n++] = p[i++];
    }
    /* All of it read: the glob matches that key alone. */
    return anchor_add(ab, ki, prefix, n,
                      i == plen ? ANCHOR_EXACT : ANCHOR_PREFIX);
}

static int keyinfo_rule(struct anchor_buf *ab, struct keyinfo *ki,
                        const struct rule *r)
{
    memset(ki, 0, sizeof(*ki));
    ki->off = (uint32_t)ab->n;
    for (size_t i = 0; i < r->nkeys; i++) {
        if (keyinfo_glob(ab, ki, r->keys[i].pat, r->keys[i].len) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- Index build ---- */

static void index_free(struct index *x)
{
    free(x->slots);
    free(x->pool);
    memset(x, 0, sizeof(*x));
}

static bool bit_test(const uint64_t *set, size_t i)
{
    return (set[i / 64] >> (i % 64)) & 1;
}

/* Appends (rule i, tag) to list sp in fill, or with fill NULL counts it. */
static void list_put(struct span *sp, struct entry *fill, uint32_t i,
                     uint32_t tag)
{
    if (fill != NULL) {
        fill[sp->off + sp->len].rule = i;
        fill[sp->off + sp->len].tag = tag;
    }
    sp->len++;
}

/*
 * Goes over the rules of bucket b (those in set) and puts each in its
 * lists: with fill NULL only counts the entries, else writes them into
 * fill at the offsets already set (the lengths starting from 0).
 */
static void bucket_walk(const struct rules *t, const uint64_t *set,
                        struct bucket *b, struct slot *slots,
                        struct entry *fill)
{
    for (size_t i = 0; i < t->n; i++) {
        if (!bit_test(set, i)) {
            continue;
        }
        const struct keyinfo *ki = &t->kinfo[i];
        if (ki->empty) {
            list_put(&b->empty, fill, (uint32_t)i, 0);
        }
        if (ki->wild) {
            list_put(&b->wild, fill, (uint32_t)i, 0);
            continue;
        }
        /* Anchors of one rule differ in hash (anchor_add), so a (rule,
         * tag) pair is in a slot once unless two hashes share both slot
         * and tag bits; the merge takes a rule once either way. */
        for (size_t j = ki->off; j < ki->off + ki->n; j++) {
            uint64_t h = t->anchors[j].hash;
            struct slot *sl = &slots[h & b->mask];
            list_put(&sl->list, fill, (uint32_t)i, hash_tag(h));
            sl->filter |= (uint32_t)1 << (hash_tag(h) % 32);
        }
    }
}

/* Sizes bucket b from its rules: counts, anchor lengths, slot table. */
static void bucket_size(const struct rules *t, const uint64_t *set,
                        struct bucket *b)
{
    size_t anchors = 0;

    for (size_t k = 0; k < ANCHOR__COUNT; k++) {
        b->lens[k].min = PREFIX_MAX + 1;
    }
    for (size_t i = 0; i < t->n; i++) {
        if (!bit_test(set, i)) {
            continue;
        }
        const struct keyinfo *ki = &t->kinfo[i];
        b->nrules++;
        if (ki->wild) {
            continue;
        }
        for (size_t j = ki->off; j < ki->off + ki->n; j++) {
            uint32_t len = t->anchors[j].len;
            unsigned char e = t->anchors[j].edge;
            struct lens *l = &b->lens[t->anchors[j].kind];
            uint64_t *set_of =
                t->anchors[j].kind == ANCHOR_SUFFIX ? b->last : b->first;
            set_of[e >> 6] |= (uint64_t)1 << (e & 63);
            l->mask |= (uint64_t)1 << (len - 1);
            if (len < l->min) {
                l->min = len;
            }
            if (len > l->max) {
                l->max = len;
            }
        }
        anchors += ki->n;
    }
    uint32_t slots = 1;
    while (slots < SLOTS_MAX && slots < 2 * anchors) {
        slots *= 2;
    }
    b->mask = slots - 1;
}

/*
 * Builds the index of t with on[i] telling whether rule i is enabled.
 * Returns 0, or -1 when out of memory (*out is then left alone).
 */
static int index_build(const struct rules *t, const bool *on, struct index *out)
{
    size_t words = t->n / 64 + 1;
    uint64_t *sets = calloc(PROTO_OP__COUNT * words, sizeof(*sets));
    size_t owner[PROTO_OP__COUNT]; /* bucket -> op whose set it holds */
    struct index x;
    int rc = -1;

    memset(&x, 0, sizeof(x));
    if (sets == NULL) {
        goto fail;
    }
    /* Row PROTO_OP_UNKNOWN: every enabled rule (bucket 0). */
    for (size_t op = 0; op < PROTO_OP__COUNT; op++) {
        uint64_t *set = sets + op * words;
        const char *name = proto_op_name((enum proto_op)op);
        bool retrieval = rule_op_is_retrieval((enum proto_op)op);
        for (size_t i = 0; i < t->n; i++) {
            const struct rule *r = &t->rules[i];
            if (!on[i] || r->on_connect) {
                continue;
            }
            if (op != PROTO_OP_UNKNOWN &&
                ((r->action == RULE_MISS && !retrieval) ||
                 !rule_cmd_match(r, name, t->op_len[op]))) {
                continue;
            }
            set[i / 64] |= (uint64_t)1 << (i % 64);
        }
        size_t b = 0;
        while (b < x.nbuckets && memcmp(sets + owner[b] * words, set,
                                        words * sizeof(*set)) != 0) {
            b++;
        }
        if (b == x.nbuckets) {
            owner[x.nbuckets++] = op;
        }
        x.op_bucket[op] = (uint8_t)b;
    }

    /* Slot tables, then list lengths, then offsets, then the lists. */
    size_t nslots = 0;
    for (size_t b = 0; b < x.nbuckets; b++) {
        struct bucket *bk = &x.buckets[b];
        bucket_size(t, sets + owner[b] * words, bk);
        bk->slot_off = (uint32_t)nslots;
        nslots += (size_t)bk->mask + 1;
    }
    x.slots = calloc(nslots, sizeof(*x.slots));
    if (x.slots == NULL) {
        goto fail;
    }
    uint64_t total = 0;
    for (size_t b = 0; b < x.nbuckets; b++) {
        struct bucket *bk = &x.buckets[b];
        struct slot *slots = x.slots + bk->slot_off;
        bucket_walk(t, sets + owner[b] * words, bk, slots, NULL);
        bk->wild.off = (uint32_t)total;
        total += bk->wild.len;
        bk->wild.len = 0;
        bk->empty.off = (uint32_t)total;
        total += bk->empty.len;
        bk->empty.len = 0;
        for (size_t s = 0; s <= bk->mask; s++) {
            slots[s].list.off = (uint32_t)total;
            total += slots[s].list.len;
            slots[s].list.len = 0;
        }
    }
    /* At most PROTO_OP__COUNT * RULES_MAX * (ANCHORS_MAX + 2): fits. */
    x.pool = malloc((size_t)(total > 0 ? total : 1) * sizeof(*x.pool));
    if (x.pool == NULL) {
        goto fail;
    }
    for (size_t b = 0; b < x.nbuckets; b++) {
        struct bucket *bk = &x.buckets[b];
        bucket_walk(t, sets + owner[b] * words, bk, x.slots + bk->slot_off,
                    x.pool);
    }
    *out = x;
    memset(&x, 0, sizeof(x));
    rc = 0;
fail:
    index_free(&x);
    free(sets);
    return rc;
}

/* ---- Names ---- */

static int name_ref_cmp(const void *a, const void *b)
{
    const struct name_ref *x = a;
    const struct name_ref *y = b;
    int c = strcmp(x->name, y->name);

    if (c != 0) {
        return c;
    }
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Index in t->byname of the first entry named name, or t->nnamed. */
static size_t byname_lower(const struct rules *t, const char *name)
{
    size_t lo = 0;
    size_t hi = t->nnamed;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(t->byname[mid].name, name) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static bool byname_is(const struct rules *t, size_t i, const char *name)
{
    return i < t->nnamed && strcmp(t->byname[i].name, name) == 0;
}

/* ---- Targeting and connect rules ---- */

/* A share below 1 narrows the rule; 0 (a rule built with calloc) and NaN
 * count as every connection, as config.c never writes them. */
static bool rule_has_share(const struct rule *r)
{
    return r->connections > 0.0 && r->connections < 1.0;
}

static bool rule_targets(const struct rule *r)
{
    return r->nclients > 0 || rule_has_share(r) || r->sized || r->scheduled;
}

static size_t connect_count(const struct rules *t)
{
    size_t n = 0;

    for (size_t i = 0; i < t->n; i++) {
        n += t->rules[i].on_connect;
    }
    return n;
}

/* Lists the enabled connect rules in file order (t->connect holds room
 * for all of them). */
static void connect_build(struct rules *t)
{
    t->nconnect = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (t->rules[i].on_connect && t->rules[i].enabled) {
            t->connect[t->nconnect++] = (uint32_t)i;
        }
    }
}

/* Whether addr is in the network c: the first c->bits bits agree. */
static bool cidr_match(const struct rule_cidr *c, const uint8_t *addr)
{
    unsigned bits = c->bits > 128 ? 128 : c->bits;
    size_t whole = bits / 8;
    unsigned rest = bits % 8;

    if (memcmp(c->addr, addr, whole) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return ((c->addr[whole] ^ addr[whole]) & mask) == 0;
}

bool rule_client_match(const struct rule *r, const uint8_t *addr)
{
    for (size_t i = 0; i < r->nclients; i++) {
        if (cidr_match(&r->clients[i], addr)) {
            return true;
        }
    }
    return false;
}

/* a + b, or UINT64_MAX when that does not fit. */
static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/*
 * The schedule is a function of t = now - epoch: off before start, then
 * on for duration (0: for good), and with every, the same again from
 * start + k * every. A clock not yet started (epoch 0) is taken to start
 * at now_us, so such a rule is judged at t = 0: in force when start is 0.
 */
bool rule_in_force(const struct rule *r, uint64_t now_us, uint64_t *next_us)
{
    const struct rule_schedule *sc = &r->schedule;
    uint64_t next = UINT64_MAX;
    bool on;

    if (!r->scheduled) {
        on = true;
        goto out;
    }
    uint64_t epoch = r->epoch_us != 0 ? r->epoch_us : now_us;
    if (sc->start_us > UINT64_MAX - epoch) {
        on = false; /* a start past the end of the clock never comes */
        goto out;
    }
    uint64_t begin = epoch + sc->start_us;
    if (now_us < begin) {
        next = begin;
        on = false;
        goto out;
    }
    uint64_t t = now_us - begin;
    if (sc->every_us == 0) {
        /* once: from begin for duration, or for good */
        on = sc->duration_us == 0 || t < sc->duration_us;
        if (on && sc->duration_us != 0) {
            next = add_sat(begin, sc->duration_us);
        }
        goto out;
    }
    if (sc->duration_us >= sc->every_us || sc->duration_us == 0) {
        /* the windows touch (always on) or are empty (never on) */
        on = sc->duration_us != 0;
        goto out;
    }
    uint64_t cycle = now_us - t % sc->every_us; /* this window's start */
    on = t % sc->every_us < sc->duration_us;
    next = add_sat(cycle, on ? sc->duration_us : sc->every_us);
out:
    if (next_us != NULL) {
        *next_us = next;
    }
    return on;
}

/* Whether s is one of the commands r targets (r->targeted): its client,
 * its connection's draw, its data block's size, the schedule. */
static bool rule_target_match(const struct rule *r,
                              const struct rules_subject *s)
{
    if (r->nclients > 0 &&
        (s->client_addr == NULL || !rule_client_match(r, s->client_addr))) {
        return false;
    }
    /* conn_pick is uniform over 2^32, so this takes the share; shares
     * nest: a connection a 10% rule takes, a 25% rule takes too. */
    if (rule_has_share(r) &&
        !((double)s->conn_pick < r->connections * 4294967296.0)) {
        return false;
    }
    if (r->sized && (s->data_len < 0 || (uint64_t)s->data_len < r->min_size ||
                     (uint64_t)s->data_len > r->max_size)) {
        return false;
    }
    return !r->scheduled || rule_in_force(r, s->now_us, NULL);
}

/* ---- Table ---- */

struct rules *rules_create(struct rule *rules, size_t n, uint64_t seed)
{
    struct rules *t = NULL;
    bool *on = NULL;

    if (n > RULES_MAX || (n > 0 && rules == NULL)) {
        goto fail;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        goto fail;
    }
    t->rules = rules;
    t->n = n;
    rules = NULL; /* owned by t from here */

    for (size_t op = 0; op < PROTO_OP__COUNT; op++) {
        t->op_name[op] = proto_op_name((enum proto_op)op);
        t->op_len[op] = strlen(t->op_name[op]);
    }
    t->kinfo = calloc(n > 0 ? n : 1, sizeof(*t->kinfo));
    t->byname = calloc(n > 0 ? n : 1, sizeof(*t->byname));
    t->scratch = calloc(n / 64 + 1, sizeof(*t->scratch));
    t->connect = calloc(connect_count(t) + 1, sizeof(*t->connect));
    on = calloc(n > 0 ? n : 1, sizeof(*on));
    if (t->kinfo == NULL || t->byname == NULL || t->scratch == NULL ||
        t->connect == NULL || on == NULL) {
        goto fail;
    }
    struct anchor_buf ab = {NULL, 0, 0};
    for (size_t i = 0; i < n; i++) {
        if (keyinfo_rule(&ab, &t->kinfo[i], &t->rules[i]) != 0) {
            free(ab.a);
            goto fail;
        }
        on[i] = t->rules[i].enabled;
        t->rules[i].targeted = rule_targets(&t->rules[i]);
        if (t->rules[i].name != NULL) {
            t->byname[t->nnamed].name = t->rules[i].name;
            t->byname[t->nnamed].idx = (uint32_t)i;
            t->nnamed++;
        }
    }
    t->anchors = ab.a;
    t->nanchors = ab.n;
    qsort(t->byname, t->nnamed, sizeof(*t->byname), name_ref_cmp);
    if (index_build(t, on, &t->idx) != 0) {
        goto fail;
    }
    free(on);
    connect_build(t);

    for (size_t i = 0; i < 4; i++) {
        t->prng[i] = splitmix64(&seed);
    }
    return t;

fail:
    free(on);
    if (t != NULL) {
        rules_destroy(t);
    } else if (rules != NULL) {
        for (size_t i = 0; i < n; i++) {
            rule_free(&rules[i]);
        }
        free(rules);
    }
    return NULL;
}

void rules_destroy(struct rules *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < t->n; i++) {
        rule_free(&t->rules[i]);
    }
    free(t->rules);
    free(t->kinfo);
    free(t->anchors);
    free(t->scratch);
    free(t->byname);
    free(t->connect);
    index_free(&t->idx);
    free(t);
}

size_t rules_count(const struct rules *t)
{
    return t != NULL ? t->n : 0;
}

struct rule *rules_at(struct rules *t, size_t i)
{
    if (i >= t->n) {
        return NULL;
    }
    return &t->rules[i];
}

struct rule *rules_find(struct rules *t, const char *name)
{
    if (name == NULL) {
        return NULL;
    }
    size_t i = byname_lower(t, name);
    if (!byname_is(t, i, name)) {
        return NULL;
    }
    return &t->rules[t->byname[i].idx];
}

void rules_carry_counters(struct rules *to, const struct rules *from)
{
    size_t i = 0;
    size_t j = 0;

    /* A merge of the two name orders; with a name given twice, its k-th
     * rule in `to` takes the counters of its k-th rule in `from`. */
    while (i < to->nnamed && j < from->nnamed) {
        int c = strcmp(to->byname[i].name, from->byname[j].name);
        if (c < 0) {
            i++;
        } else if (c > 0) {
            j++;
        } else {
            struct rule *dst = &to->rules[to->byname[i].idx];
            const struct rule *src = &from->rules[from->byname[j].idx];
            dst->matched = src->matched;
            dst->fired = src->fired;
            dst->epoch_us = src->epoch_us;
            i++;
            j++;
        }
    }
}

int rules_set_enabled(struct rules *t, const char *name, bool enabled)
{
    if (name == NULL) {
        return -1;
    }
    size_t lo = byname_lower(t, name);
    size_t hi = lo;
    bool change = false;

    while (byname_is(t, hi, name)) {
        change |= t->rules[t->byname[hi].idx].enabled != enabled;
        hi++;
    }
    if (lo == hi) {
        return -1;
    }
    if (!change) {
        return 0;
    }

    bool *on = malloc(t->n * sizeof(*on));
    struct index x;
    if (on == NULL) {
        return -1;
    }
    for (size_t i = 0; i < t->n; i++) {
        on[i] = t->rules[i].enabled;
    }
    for (size_t i = lo; i < hi; i++) {
        on[t->byname[i].idx] = enabled;
    }
    int rc = index_build(t, on, &x);
    free(on);
    if (rc != 0) {
        return -1;
    }
    for (size_t i = lo; i < hi; i++) {
        t->rules[t->byname[i].idx].enabled = enabled;
    }
    index_free(&t->idx);
    t->idx = x;
    connect_build(t);
    return 0;
}

void rules_start_clocks(struct rules *t, uint64_t now_us)
{
    for (size_t i = 0; t != NULL && i < t->n; i++) {
        if (t->rules[i].epoch_us == 0) {
            t->rules[i].epoch_us = now_us;
        }
    }
}

/* ---- Decide ---- */

/* Counts a match of r and tells whether its gates let it fire. */
static bool rule_gate(struct rules *t, struct rule *r)
{
    r->matched++;
    if (r->matched <= r->after) {
        return false;
    }
    if (r->limit > 0 && r->fired >= r->limit) {
        return false;
    }
    /* Probability 1 (or more) and 0 (or less, or NaN) decide without a
     * draw, so such rules do not move the PRNG under other rules. */
    if (!(r->probability >= 1.0)) {
        if (!(r->probability > 0.0) || random_unit(t) >= r->probability) {
            return false;
        }
    }
    r->fired++;
    return true;
}

static bool subject_key_match(const struct rule *r,
                              const struct rules_subject *s)
{
    if (s->nkeys == 0) {
        return rule_key_match(r, "", 0);
    }
    for (size_t i = 0; i < s->nkeys; i++) {
        if (rule_key_match(r, s->key_base + s->keys[i].off, s->keys[i].len)) {
            return true;
        }
    }
    return false;
}

/* Tries candidate rule i in full; by_name: the bucket did not check the
 * command (bucket 0). */
static bool rule_try(struct rules *t, uint32_t i, const struct rules_subject *s,
                     bool by_name)
{
    struct rule *r = &t->rules[i];

    /* A retrieval without a key is memcached's to refuse (ERROR). */
    if (r->action == RULE_MISS && s->nkeys == 0) {
        return false;
    }
    if (by_name && ((r->action == RULE_MISS && !rule_op_is_retrieval(s->op)) ||
                    !rule_cmd_match(r, s->name, s->name_len))) {
        return false;
    }
    if (!subject_key_match(r, s)) {
        return false;
    }
    /* Rules without targeting pay this one branch. A command targeting
     * turns away is not a match: not counted, the next rule tries. */
    if (r->targeted && !rule_target_match(r, s)) {
        return false;
    }
    return rule_gate(t, r);
}

static unsigned lowest_bit(uint64_t v)
{
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)__builtin_ctzll(v);
#else
    unsigned n = 0;
    while (!(v & 1)) {
        v >>= 1;
        n++;
    }
    return n;
#endif
}

/* A list being merged: entries p..end, of which only those with tag
 * count unless any. */
struct cursor {
    const struct entry *p;
    const struct entry *end;
    uint32_t tag;
    bool any;
};

/* Moves c to its next entry that counts; false when there is none. */
static bool cursor_settle(struct cursor *c)
{
    if (!c->any) {
        while (c->p < c->end && c->p->tag != c->tag) {
            c->p++;
        }
    }
    return c->p < c->end;
}

/* The candidate lists of a subject: as merge cursors, or when there are
 * too many, as bits in the table's scratch bitmap. */
struct gather {
    const struct entry *pool;
    struct cursor cur[CURSORS_MAX];
    size_t k;
    uint64_t *bits; /* NULL: cursors */
    size_t lo;      /* words of bits touched */
    size_t hi;
};

/* Adds list sp, its entries with tag unless any; false when the cursors
 * are full. */
static bool gather_list(struct gather *g, const struct span *sp, uint32_t tag,
                        bool any)
{
    struct cursor c = {g->pool + sp->off, g->pool + sp->off + sp->len, tag,
                       any};

    if (!cursor_settle(&c)) {
        return true;
    }
    if (g->bits != NULL) {
        for (; c.p < c.end; c.p++) {
            if (any || c.p->tag == tag) {
                uint32_t i = c.p->rule;
                g->bits[i / 64] |= (uint64_t)1 << (i % 64);
                g->lo = i / 64 < g->lo ? i / 64 : g->lo;
                g->hi = i / 64 > g->hi ? i / 64 : g->hi;
            }
        }
        return true;
    }
    for (size_t j = 0; j < g->k; j++) {
        if (g->cur[j].p == c.p) {
            return true; /* two keys, one anchor: the same first entry */
        }
    }
    if (g->k == CURSORS_MAX) {
        return false;
    }
    g->cur[g->k++] = c;
    return true;
}

/* Takes the entries of the anchor hashed so far in hs (len bytes, kind
 * k); false when the cursors are full. */
static bool gather_probe(struct gather *g, const struct bucket *b,
                         const struct slot *slots, const struct hasher *hs,
                         size_t len, enum anchor_kind k)
{
    uint64_t h = hasher_end(hs, len, k);
    uint32_t tag = hash_tag(h);
    const struct slot *sl = &slots[h & b->mask];

    if (((sl->filter >> (tag % 32)) & 1) == 0) {
        return true;
    }
    return gather_list(g, &sl->list, tag, false);
}

static bool has_len(const struct lens *ls, size_t len)
{
    return len >= 1 && len <= PREFIX_MAX && ((ls->mask >> (len - 1)) & 1);
}

/* Collects the candidate lists of s from bucket b; false when they do not
 * fit the cursors. */
static bool gather_subject(struct gather *g, const struct index *x,
                           const struct bucket *b,
                           const struct rules_subject *s)
{
    const struct slot *slots = x->slots + b->slot_off;
    const struct lens *pre = &b->lens[ANCHOR_PREFIX];
    const struct lens *suf = &b->lens[ANCHOR_SUFFIX];
    bool empty = s->nkeys == 0;
    bool nonempty = false;

    for (size_t i = 0; i < s->nkeys; i++) {
        const unsigned char *key =
            (const unsigned char *)s->key_base + s->keys[i].off;
        size_t len = s->keys[i].len;
        if (len == 0) {
            empty = true;
            continue;
        }
        nonempty = true;

        /* From the start: the prefix lengths the bucket has (no more
         * bytes hashed than the longest of them needs), then the whole
         * key. */
        bool first = (b->first[key[0] >> 6] >> (key[0] & 63)) & 1;
        uint64_t m = first ? pre->mask : 0;
        if (len < 64) {
            m &= ((uint64_t)1 << len) - 1;
        }
        struct hasher hs = {0, 0};
        size_t done = 0;
        while (m != 0) {
            size_t l = lowest_bit(m) + 1;
            m &= m - 1;
            for (; done < l; done++) {
                hasher_add(&hs, done, key[done]);
            }
            if (!gather_probe(g, b, slots, &hs, l, ANCHOR_PREFIX)) {
                return false;
            }
        }
        if (first && has_len(&b->lens[ANCHOR_EXACT], len)) {
            for (; done < len; done++) {
                hasher_add(&hs, done, key[done]);
            }
            if (!gather_probe(g, b, slots, &hs, len, ANCHOR_EXACT)) {
                return false;
            }
        }

        /* From the end: suffixes. */
        unsigned char z = key[len - 1];
        m = (b->last[z >> 6] >> (z & 63)) & 1 ? suf->mask : 0;
        if (len < 64) {
            m &= ((uint64_t)1 << len) - 1;
        }
        hs.h = 0;
        hs.w = 0;
        done = 0;
        while (m != 0) {
            size_t l = lowest_bit(m) + 1;
            m &= m - 1;
            for (; done < l; done++) {
                hasher_add(&hs, done, key[len - 1 - done]);
            }
            if (!gather_probe(g, b, slots, &hs, l, ANCHOR_SUFFIX)) {
                return false;
            }
        }
    }
    if (nonempty && !gather_list(g, &b->wild, 0, true)) {
        return false;
    }
    if (empty && !gather_list(g, &b->empty, 0, true)) {
        return false;
    }
    return true;
}

/* Tries the rules marked in t->scratch in file order, clearing the
 * bitmap as it goes. */
static struct rule *decide_marked(struct rules *t, const struct gather *g,
                                  const struct rules_subject *s, bool by_name)
{
    for (size_t w = g->lo; w <= g->hi; w++) {
        uint64_t bits = t->scratch[w];
        t->scratch[w] = 0;
        for (; bits != 0; bits &= bits - 1) {
            uint32_t i = (uint32_t)(w * 64 + lowest_bit(bits));
            if (rule_try(t, i, s, by_name)) {
                if (w < g->hi) {
                    memset(&t->scratch[w + 1], 0,
                           (g->hi - w) * sizeof(*t->scratch));
                }
                return &t->rules[i];
            }
        }
    }
    return NULL;
}

struct rule *rules_decide(struct rules *t, const struct rules_subject *s)
{
    const struct index *x = &t->idx;
    bool by_name = true;
    size_t op = (size_t)s->op;

    if (op > PROTO_OP_UNKNOWN && op < PROTO_OP__COUNT &&
        s->name_len == t->op_len[op] &&
        memcmp(s->name, t->op_name[op], s->name_len) == 0) {
        by_name = false;
    }
    const struct bucket *b = &x->buckets[by_name ? 0 : x->op_bucket[op]];
    if (b->nrules == 0) {
        return NULL;
    }

    struct gather g;
    g.pool = x->pool;
    g.k = 0;
    g.bits = NULL;
    if (!gather_subject(&g, x, b, s)) {
        g.bits = t->scratch;
        g.lo = SIZE_MAX;
        g.hi = 0;
        gather_subject(&g, x, b, s);
        return decide_marked(t, &g, s, by_name);
    }

    /* k-way merge, smallest rule index first, each rule once. */
    struct cursor *cur = g.cur;
    size_t k = g.k;
    while (k > 0) {
        uint32_t next = cur[0].p->rule;
        for (size_t j = 1; j < k; j++) {
            if (cur[j].p->rule < next) {
                next = cur[j].p->rule;
            }
        }
        for (size_t j = 0; j < k;) {
            bool more = true;
            /* Past every entry of rule next: two anchors of one rule may
             * share a slot and, rarely, a tag. */
            while (more && cur[j].p->rule == next) {
                cur[j].p++;
                more = cursor_settle(&cur[j]);
            }
            if (!more) {
                cur[j] = cur[--k];
            } else {
                j++;
            }
        }
        if (rule_try(t, next, s, by_name)) {
            return &t->rules[next];
        }
    }
    return NULL;
}

struct rule *rules_decide_connect(struct rules *t,
                                  const struct rules_subject *s)
{
    for (size_t j = 0; j < t->nconnect; j++) {
        struct rule *r = &t->rules[t->connect[j]];
        if (r->targeted && !rule_target_match(r, s)) {
            continue;
        }
        if (rule_gate(t, r)) {
            return r;
        }
    }
    return NULL;
}

bool rules_have_connect(const struct rules *t)
{
    return t != NULL && t->nconnect > 0;
}
