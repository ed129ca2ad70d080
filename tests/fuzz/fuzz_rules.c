/*
 * libFuzzer target for the rule table: fuzzer-chosen rules (command globs
 * from a fixed list, arbitrary key globs, miss/disabled flags, after and
 * limit) and subjects; rules_decide, which walks its index, must return
 * exactly what trying every rule in file order returns, and leave the same
 * matched/fired counters. Probability is 1, so no draw is involved.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "mcfault/glob.h"
#include "mcfault/proto.h"
#include "mcfault/rules.h"

struct rd {
    const uint8_t *p;
    size_t n;
};
static int take(struct rd *r)
{
    if (!r->n)
        return -1;
    r->n--;
    return *r->p++;
}
static size_t takebytes(struct rd *r, char *out, size_t max)
{
    int l = take(r);
    if (l < 0)
        return 0;
    size_t n = (size_t)l % (max + 1);
    if (n > r->n)
        n = r->n;
    memcpy(out, r->p, n);
    r->p += n;
    r->n -= n;
    return n;
}
static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static const struct {
    enum proto_op op;
    const char *name;
} ops[] = {{PROTO_OP_GET, "get"},       {PROTO_OP_SET, "set"},
           {PROTO_OP_MG, "mg"},         {PROTO_OP_GETS, "gets"},
           {PROTO_OP_DELETE, "delete"}, {PROTO_OP_UNKNOWN, "GET"},
           {PROTO_OP_UNKNOWN, "x"},     {PROTO_OP_GET, "Get"}};
static const char *cmds[] = {"*",   "get", "set", "g*",      "[gs]et",
                             "?et", "m?",  "GET", "unknown", "*e*"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rd r = {data, size};
    int nr = take(&r);
    if (nr < 0)
        return 0;
    nr %= 24;
    struct rule *rs = calloc((size_t)nr + 1, sizeof(*rs));
    for (int i = 0; i < nr; i++) {
        int f = take(&r);
        if (f < 0)
            f = 0;
        rs[i].ncmds = 1;
        rs[i].cmds = calloc(1, sizeof(struct rule_glob));
        const char *c = cmds[(f & 0xf) % 10];
        rs[i].cmds[0].pat = dupn(c, strlen(c));
        rs[i].cmds[0].len = strlen(c);
        size_t nk = 1 + ((f >> 4) & 3);
        rs[i].nkeys = nk;
        rs[i].keys = calloc(nk, sizeof(struct rule_glob));
        for (size_t k = 0; k < nk; k++) {
            char b[80];
            size_t l = takebytes(&r, b, 70);
            rs[i].keys[k].pat = dupn(b, l);
            rs[i].keys[k].len = l;
        }
        rs[i].action = (f & 0x40) ? RULE_MISS : RULE_ERROR;
        rs[i].probability = 1;
        rs[i].enabled = !(f & 0x80) || (f & 1);
        int g = take(&r);
        if (g < 0)
            g = 0;
        rs[i].after = g & 3;
        rs[i].limit = (g >> 2) & 3;
    }
    struct rules *t = rules_create(rs, (size_t)nr, 1);
    if (!t)
        abort();
    uint64_t matched[24] = {0}, fired[24] = {0};
    for (int round = 0; round < 64 && r.n; round++) {
        int o = take(&r);
        if (o < 0)
            break;
        char base[4096];
        struct proto_tok toks[64];
        size_t used = 0, nk = (size_t)(o >> 3) % 40;
        for (size_t k = 0; k < nk; k++) {
            size_t l = takebytes(&r, base + used, 80);
            toks[k].off = (uint32_t)used;
            toks[k].len = (uint32_t)l;
            used += l;
        }
        struct rules_subject s = {.op = ops[o & 7].op,
                                  .name = ops[o & 7].name,
                                  .name_len = strlen(ops[o & 7].name),
                                  .keys = toks,
                                  .key_base = base,
                                  .nkeys = nk,
                                  .data_len = -1};
        long want = -1;
        for (int i = 0; i < nr && want < 0; i++) {
            const struct rule *x = rules_at(t, (size_t)i);
            if (!x->enabled || (x->action == RULE_MISS &&
                                (!rule_op_is_retrieval(s.op) || s.nkeys == 0)))
                continue;
            if (!glob_match(x->cmds[0].pat, x->cmds[0].len, s.name, s.name_len,
                            true))
                continue;
            int hit = 0;
            for (size_t k = 0; k < x->nkeys && !hit; k++) {
                if (nk == 0)
                    hit = glob_match(x->keys[k].pat, x->keys[k].len, "", 0,
                                     false);
                for (size_t j = 0; j < nk && !hit; j++)
                    hit = glob_match(x->keys[k].pat, x->keys[k].len,
                                     base + toks[j].off, toks[j].len, false);
            }
            if (!hit)
                continue;
            matched[i]++;
            if (matched[i] <= x->after || (x->limit && fired[i] >= x->limit))
                continue;
            fired[i]++;
            want = i;
        }
        struct rule *got = rules_decide(t, &s);
        long g = got ? (long)(got - rules_at(t, 0)) : -1;
        if (g != want)
            abort();
    }
    for (int i = 0; i < nr; i++)
        if (rules_at(t, (size_t)i)->matched != matched[i] ||
            rules_at(t, (size_t)i)->fired != fired[i])
            abort();
    rules_destroy(t);
    return 0;
}
