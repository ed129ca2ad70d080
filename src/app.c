/*
 * The running daemon's proxies and rule tables, and every way of changing
 * the rules while it runs: a SIGHUP reload, the admin API's PUT/DELETE and
 * enable/disable. A change is validated and built completely before any
 * table is swapped, so a bad one changes nothing.
 */
#include "mcfault/app.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mcfault/listener.h"
#include "mcfault/log.h"
#include "mcfault/resolve.h"
#include "mcfault/rules.h"
#include "mcfault/stats.h"

const char *app_eff_listen(const struct app *a, const struct config_proxy *p)
{
    if (a->listen_arg != NULL) {
        return a->listen_arg;
    }
    return p->listen != NULL ? p->listen : APP_DEFAULT_LISTEN;
}

const char *app_eff_upstream(const struct app *a, const struct config_proxy *p)
{
    if (a->upstream_arg != NULL) {
        return a->upstream_arg;
    }
    return p->upstream != NULL ? p->upstream : APP_DEFAULT_UPSTREAM;
}

/* The schedules' clock: CLOCK_MONOTONIC, as conn.c's (rules_subject.now_us
 * is read from it), in microseconds. */
static uint64_t app_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Without a seed, something that differs between runs. */
static uint64_t proxy_seed(const struct config *cfg, size_t i)
{
    uint64_t base = cfg->has_seed
                        ? cfg->seed
                        : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return base + i * 0x9e3779b97f4a7c15ULL;
}

/* Builds one rule table per proxy of cfg, taking the rules out of cfg; a
 * proxy without rules gets no table (the fast path). Returns 0, or -1
 * (nothing built) when out of memory. */
static int build_tables(struct config *cfg, struct rules **out)
{
    for (size_t i = 0; i < cfg->nproxies; i++) {
        struct config_proxy *cp = &cfg->proxies[i];
        out[i] = NULL;
        if (cp->nrules == 0) {
            continue;
        }
        out[i] = rules_create(cp->rules, cp->nrules, proxy_seed(cfg, i));
        cp->rules = NULL;
        cp->nrules = 0;
        if (out[i] == NULL) {
            for (size_t j = 0; j < i; j++) {
                rules_destroy(out[j]);
            }
            return -1;
        }
    }
    return 0;
}

int app_setup(struct app *a, struct config *cfg)
{
    if (cfg->nproxies > 1 && (a->listen_arg || a->upstream_arg)) {
        fprintf(stderr,
                "mcfault: -l/-u apply to a single proxy (so do "
                "MCFAULT_LISTEN/MCFAULT_UPSTREAM); %s defines %zu (set their "
                "addresses in the file)\n",
                a->config_path, cfg->nproxies);
        return -1;
    }
    struct rules **tables = calloc(cfg->nproxies, sizeof(*tables));
    a->proxies = calloc(cfg->nproxies, sizeof(*a->proxies));
    if (tables == NULL || a->proxies == NULL ||
        build_tables(cfg, tables) != 0) {
        free(tables);
        fprintf(stderr, "mcfault: out of memory\n");
        return -1;
    }
    a->nproxies = cfg->nproxies;
    uint64_t now = app_now_us();
    for (size_t i = 0; i < cfg->nproxies; i++) {
        const struct config_proxy *cp = &cfg->proxies[i];
        struct app_proxy *ap = &a->proxies[i];
        if (tables[i] != NULL) {
            rules_start_clocks(tables[i], now); /* the rules' first load */
        }
        ap->px.rules = tables[i];
        /* The connections' draws (`connections:`): their own stream, from
         * the same seed as the table's. */
        ap->px.conn_seed = proxy_seed(cfg, i) ^ 0x636f6e6e65637473ULL;
        ap->name = strdup(cp->name);
        ap->listen = strdup(app_eff_listen(a, cp));
        ap->upstream = strdup(app_eff_upstream(a, cp));
        ap->px.name = ap->name;
        ap->px.base = a->base;
        if (ap->name == NULL || ap->listen == NULL || ap->upstream == NULL) {
            fprintf(stderr, "mcfault: out of memory\n");
            free(tables);
            return -1;
        }
    }
    free(tables);
    return 0;
}

size_t app_rule_count(const struct app *a)
{
    size_t n = 0;

    for (size_t i = 0; i < a->nproxies; i++) {
        if (a->proxies[i].px.rules != NULL) {
            n += rules_count(a->proxies[i].px.rules);
        }
    }
    return n;
}

struct app_proxy *app_find_proxy(struct app *a, const char *name)
{
    if (name == NULL) {
        return a->nproxies == 1 ? &a->proxies[0] : NULL;
    }
    for (size_t i = 0; i < a->nproxies; i++) {
        if (strcmp(a->proxies[i].name, name) == 0) {
            return &a->proxies[i];
        }
    }
    return NULL;
}

/*
 * Maps each proxy of cfg to a running one: all of them in order (whole, a
 * reload), or by name (a PUT; target, when given, names the running proxy
 * a single-proxy document applies to). Fills map[i] or appends why not to
 * errs. Returns 0 when every proxy maps.
 */
static int map_proxies(struct app *a, const struct config *cfg, bool whole,
                       const char *target, struct app_proxy **map,
                       struct config_errors *errs)
{
    size_t before = errs->n;

    if (whole && cfg->nproxies != a->nproxies) {
        config_errors_addf(errs,
                           "the number of proxies changed (restart mcfault to "
                           "apply it)");
        return -1;
    }
    for (size_t i = 0; i < cfg->nproxies; i++) {
        const struct config_proxy *cp = &cfg->proxies[i];
        struct app_proxy *ap;
        if (whole) {
            ap = &a->proxies[i];
            if (strcmp(cp->name, ap->name) != 0) {
                config_errors_addf(
                    errs,
                    "proxy names changed (restart mcfault to apply it): "
                    "'%s'",
                    cp->name);
                continue;
            }
        } else {
            bool single = cfg->nproxies == 1 && cp->line == 0;
            ap = app_find_proxy(a, single ? target : cp->name);
            if (ap == NULL) {
                config_errors_addf(
                    errs,
                    "no running proxy '%s' (with several, say which one "
                    "with ?proxy=NAME)",
                    single && target ? target : cp->name);
                continue;
            }
        }
        /* The file's addresses are compared as the effective ones (a -l/-u
         * override hides them); a document may leave them out. */
        const char *l = whole ? app_eff_listen(a, cp) : cp->listen;
        const char *u = whole ? app_eff_upstream(a, cp) : cp->upstream;
        if (!whole && a->listen_arg != NULL) {
            l = NULL;
        }
        if (!whole && a->upstream_arg != NULL) {
            u = NULL;
        }
        if (l != NULL && strcmp(l, ap->listen) != 0) {
            config_errors_addf(
                errs,
                "proxy '%s': the listen address changed (restart "
                "mcfault to apply it)",
                ap->name);
        } else if (u != NULL && strcmp(u, ap->upstream) != 0) {
            config_errors_addf(
                errs,
                "proxy '%s': the upstream address changed (restart "
                "mcfault to apply it)",
                ap->name);
        }
        map[i] = ap;
    }
    return errs->n == before ? 0 : -1;
}

/*
 * A rule change between its two halves: the document (its rules moved into
 * tables) and one table per proxy of it, or the problems found.
 */
struct app_change {
    struct config cfg;
    struct rules **tables; /* cfg.nproxies of them; NULL: no rules */
    struct config_errors errs;
    size_t nrules;
    bool whole;       /* a reload (every proxy, in order), not a PUT */
    bool fresh;       /* a reset: no counters carried */
    const char *what; /* "reload", "PUT /rules" or "reset", for the log */
};

/* Builds the tables of a parsed document into ch; on failure the problem
 * goes to ch->errs. */
static void change_tables(struct app_change *ch)
{
    ch->nrules = config_rule_count(&ch->cfg);
    ch->tables = calloc(ch->cfg.nproxies + 1, sizeof(*ch->tables));
    if (ch->tables == NULL || build_tables(&ch->cfg, ch->tables) != 0) {
        free(ch->tables);
        ch->tables = NULL;
        config_errors_addf(&ch->errs, "out of memory");
    }
}

struct app_change *app_change_parse(const char *name, const char *text,
                                    size_t len)
{
    struct app_change *ch = calloc(1, sizeof(*ch));

    if (ch == NULL) {
        return NULL;
    }
    ch->what = "PUT /rules";
    if (config_parse(name, text, len, &ch->cfg, &ch->errs) == 0) {
        change_tables(ch);
    }
    return ch;
}

struct app_change *app_change_load(const char *path)
{
    struct app_change *ch = calloc(1, sizeof(*ch));

    if (ch == NULL) {
        return NULL;
    }
    ch->what = "reload";
    ch->whole = true;
    if (config_load_file(path, &ch->cfg, &ch->errs) == 0) {
        change_tables(ch);
    }
    return ch;
}

void app_change_free(struct app_change *ch)
{
    if (ch == NULL) {
        return;
    }
    for (size_t i = 0; ch->tables != NULL && i < ch->cfg.nproxies; i++) {
        rules_destroy(ch->tables[i]);
    }
    free(ch->tables);
    config_free(&ch->cfg);
    config_errors_free(&ch->errs);
    free(ch);
}

/* Logs the problems of a refused change and its one summary line. */
static void log_refused(struct app *a, const char *what,
                        const struct config_errors *errs, size_t from)
{
    for (size_t i = from; i < errs->n; i++) {
        log_msg(LOG_ERROR, "%s: %s", what, errs->msgs[i]);
    }
    log_msg(LOG_ERROR, "%s: failed, %zu problem%s; kept the %zu old rules",
            what, errs->n - from, errs->n - from == 1 ? "" : "s",
            app_rule_count(a));
}

int app_change_apply(struct app *a, struct app_change *ch, const char *target,
                     struct config_errors *errs)
{
    struct config_errors mine = {0};
    struct config_errors *e = errs != NULL ? errs : &mine;
    size_t from = e->n;
    const char *what = ch->what;
    size_t nrules = ch->nrules;
    struct app_proxy **map = NULL;
    int rc = -1;

    for (size_t i = 0; i < ch->errs.n; i++) {
        config_errors_addf(e, "%s", ch->errs.msgs[i]);
    }
    if (ch->errs.n > 0 || ch->tables == NULL) {
        goto done;
    }
    if ((map = calloc(ch->cfg.nproxies + 1, sizeof(*map))) == NULL) {
        config_errors_addf(e, "out of memory");
        goto done;
    }
    if (map_proxies(a, &ch->cfg, ch->whole, target, map, e) != 0) {
        goto done;
    }
    uint64_t now = app_now_us();
    for (size_t i = 0; i < ch->cfg.nproxies; i++) {
        struct proxy *px = &map[i]->px;
        if (ch->tables[i] != NULL && px->rules != NULL && !ch->fresh) {
            rules_carry_counters(ch->tables[i], px->rules);
        }
        /* A rule whose name stays keeps its clock (carried); a new one,
         * or every one after a reset, starts its schedule now. */
        if (ch->tables[i] != NULL) {
            rules_start_clocks(ch->tables[i], now);
        }
        rules_destroy(px->rules);
        px->rules = ch->tables[i];
        ch->tables[i] = NULL;
        map[i]->gen++;
    }
    rc = 0;
done:
    free(map);
    if (rc == 0) {
        stats.reloads_ok++;
        log_msg(LOG_ERROR, "%s: ok, %zu rule%s", what, nrules,
                nrules == 1 ? "" : "s");
    } else {
        stats.reloads_failed++;
        log_refused(a, what, e, from);
    }
    app_change_free(ch);
    config_errors_free(&mine);
    return rc;
}

int app_reload(struct app *a, struct config_errors *errs)
{
    struct app_change *ch;

    if (a->config_path == NULL) {
        if (errs != NULL) {
            config_errors_addf(errs, "no config file (-c); nothing to do");
        }
        log_msg(LOG_ERROR, "reload: no config file (-c); nothing to do");
        stats.reloads_failed++;
        return -1;
    }
    if ((ch = app_change_load(a->config_path)) == NULL) {
        if (errs != NULL) {
            config_errors_addf(errs, "out of memory");
        }
        log_msg(LOG_ERROR, "reload: out of memory; kept the old rules");
        stats.reloads_failed++;
        return -1;
    }
    return app_change_apply(a, ch, NULL, errs);
}

int app_clear_rules(struct app *a, const char *target)
{
    struct app_proxy *only = NULL;

    if (target != NULL && (only = app_find_proxy(a, target)) == NULL) {
        return -1;
    }
    for (size_t i = 0; i < a->nproxies; i++) {
        struct app_proxy *ap = &a->proxies[i];
        if (only == NULL || only == ap) {
            rules_destroy(ap->px.rules);
            ap->px.rules = NULL;
            ap->gen++;
        }
    }
    log_msg(LOG_ERROR, "DELETE /rules: %s: no rules", target ? target : "all");
    return 0;
}

size_t app_set_enabled(struct app *a, const char *rule, bool enabled)
{
    size_t n = 0;

    for (size_t i = 0; i < a->nproxies; i++) {
        struct rules *t = a->proxies[i].px.rules;
        if (t != NULL && rules_set_enabled(t, rule, enabled) == 0) {
            a->proxies[i].gen++;
            n++;
        }
    }
    if (n > 0) {
        log_msg(LOG_ERROR, "rule '%s' %s", rule,
                enabled ? "enabled" : "disabled");
    }
    return n;
}

/* ---- POST /rules, DELETE /rules/NAME: edits built off the loop ---- */

/* One proxy's side of an edit. */
struct edit_proxy {
    bool touched;        /* its rules change */
    uint64_t gen;        /* its app_proxy gen when the copy was taken */
    struct rule *rules;  /* the copy; step 2 appends the new rules */
    size_t n;            /* rules in the copy (the ones in force, kept) */
    struct rules *table; /* built from rules; NULL for no rules */
};

struct app_edit {
    bool adding;
    char *name;    /* remove: the rule's name */
    size_t target; /* add: the proxy; remove: one, or SIZE_MAX for all */
    struct edit_proxy *px; /* one per running proxy */
    size_t np;
    struct config cfg; /* add: the body, parsed */
    bool parsed;
    struct config_errors errs; /* the body's problems, or the build's */
    int status;                /* 0 or APP_E* once built */
    size_t count;              /* rules added or removed */
};

static void edit_proxy_clear(struct edit_proxy *ep)
{
    for (size_t i = 0; i < ep->n; i++) {
        rule_free(&ep->rules[i]);
    }
    free(ep->rules);
    rules_destroy(ep->table);
    ep->rules = NULL;
    ep->n = 0;
    ep->table = NULL;
    ep->touched = false;
}

/* Whether e concerns proxy i. */
static bool edit_concerns(const struct app_edit *e, size_t i)
{
    return e->target == SIZE_MAX || e->target == i;
}

/*
 * Step 1 (also when redone): copies the rules in force of the proxies e
 * concerns, less the one removed; counts the removed. Returns 0 or -1
 * (out of memory).
 */
static int edit_copy(struct app *a, struct app_edit *e)
{
    e->count = 0;
    for (size_t i = 0; i < e->np; i++) {
        struct edit_proxy *ep = &e->px[i];
        struct rules *t = a->proxies[i].px.rules;
        size_t n = rules_count(t);
        edit_proxy_clear(ep);
        if (!edit_concerns(e, i)) {
            continue;
        }
        ep->gen = a->proxies[i].gen;
        ep->touched = e->adding;
        if ((ep->rules = calloc(n + 1, sizeof(*ep->rules))) == NULL) {
            return -1;
        }
        for (size_t j = 0; j < n; j++) {
            const struct rule *r = rules_at(t, j);
            if (!e->adding && r->name != NULL &&
                strcmp(r->name, e->name) == 0) {
                ep->touched = true;
                e->count++;
                continue;
            }
            if (rule_clone(&ep->rules[ep->n], r) != 0) {
                return -1;
            }
            ep->n++;
        }
    }
    return 0;
}

static struct app_edit *edit_new(struct app *a, bool adding, size_t target)
{
    struct app_edit *e = calloc(1, sizeof(*e));

    if (e == NULL) {
        return NULL;
    }
    e->adding = adding;
    e->target = target;
    e->np = a->nproxies;
    if ((e->px = calloc(e->np + 1, sizeof(*e->px))) == NULL) {
        free(e);
        return NULL;
    }
    return e;
}

struct app_edit *app_edit_add(struct app *a, struct app_proxy *ap)
{
    struct app_edit *e = edit_new(a, true, (size_t)(ap - a->proxies));

    if (e != NULL && edit_copy(a, e) != 0) {
        app_edit_free(e);
        return NULL;
    }
    return e;
}

struct app_edit *app_edit_remove(struct app *a, struct app_proxy *ap,
                                 const char *name)
{
    struct app_edit *e =
        edit_new(a, false, ap != NULL ? (size_t)(ap - a->proxies) : SIZE_MAX);

    if (e == NULL) {
        return NULL;
    }
    if ((e->name = strdup(name)) == NULL || edit_copy(a, e) != 0) {
        app_edit_free(e);
        return NULL;
    }
    return e;
}

struct name_ref {
    const char *name;
    bool body; /* one of the body's rules */
};

static int name_ref_cmp(const void *x, const void *y)
{
    const struct name_ref *a = x;
    const struct name_ref *b = y;
    int c = strcmp(a->name, b->name);

    return c != 0 ? c : (int)a->body - (int)b->body;
}

/* The names of the rules kept and the body's must differ: each name
 * taken is one problem. Returns 0 or APP_EDUP (or APP_EINVAL when out of
 * memory). */
static int edit_check_names(struct app_edit *e, const struct edit_proxy *ep,
                            const struct config_proxy *body)
{
    size_t n = ep->n + body->nrules;
    struct name_ref *refs = calloc(n + 1, sizeof(*refs));
    int rc = 0;

    if (refs == NULL) {
        config_errors_addf(&e->errs, "out of memory");
        return APP_EINVAL;
    }
    for (size_t i = 0; i < ep->n; i++) {
        refs[i].name = ep->rules[i].name;
    }
    for (size_t i = 0; i < body->nrules; i++) {
        refs[ep->n + i].name = body->rules[i].name;
        refs[ep->n + i].body = true;
    }
    qsort(refs, n, sizeof(*refs), name_ref_cmp);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(refs[i].name, refs[i - 1].name) != 0 ||
            (i > 1 && strcmp(refs[i].name, refs[i - 2].name) == 0)) {
            continue; /* a name reported once, however often it is given */
        }
        config_errors_addf(&e->errs,
                           refs[i - 1].body
                               ? "rule '%s' is given twice in the body"
                               : "rule '%s' already exists",
                           refs[i].name);
        rc = APP_EDUP;
    }
    free(refs);
    return rc;
}

/* Step 2 after the parse (also when redone): checks the names, appends
 * copies of the body's rules, builds the tables. Sets e->status. */
static void edit_tables(struct app_edit *e)
{
    e->status = 0;
    if (e->adding) {
        struct edit_proxy *ep = &e->px[e->target];
        const struct config_proxy *body = &e->cfg.proxies[0];
        size_t total = ep->n + body->nrules;
        if ((e->status = edit_check_names(e, ep, body)) != 0) {
            return;
        }
        if (total > RULES_MAX) {
            config_errors_addf(&e->errs,
                               "too many rules: %zu in force and %zu added "
                               "(at most %d)",
                               ep->n, body->nrules, RULES_MAX);
            e->status = APP_EINVAL;
            return;
        }
        struct rule *r = realloc(ep->rules, (total + 1) * sizeof(*r));
        if (r == NULL) {
            goto oom;
        }
        ep->rules = r;
        for (size_t i = 0; i < body->nrules; i++) {
            if (rule_clone(&ep->rules[ep->n], &body->rules[i]) != 0) {
                goto oom;
            }
            ep->n++;
        }
        e->count = body->nrules;
    }
    for (size_t i = 0; i < e->np; i++) {
        struct edit_proxy *ep = &e->px[i];
        if (!ep->touched || ep->n == 0) {
            continue; /* no rules: no table, the fast path */
        }
        /* A body with a seed seeds the new table as a file would. */
        ep->table = rules_create(ep->rules, ep->n, proxy_seed(&e->cfg, i));
        ep->rules = NULL; /* rules_create took them, also on failure */
        ep->n = 0;
        if (ep->table == NULL) {
            goto oom;
        }
    }
    return;
oom:
    config_errors_addf(&e->errs, "out of memory");
    e->status = APP_EINVAL;
}

void app_edit_build(struct app_edit *e, const char *name, const char *text,
                    size_t len)
{
    if (e->adding) {
        if (config_parse_rules(name, text, len, e->px[e->target].n, &e->cfg,
                               &e->errs) != 0) {
            e->status = APP_EINVAL;
            return;
        }
        e->parsed = true;
    }
    edit_tables(e);
}

/* Step 3's check that the copy is still what is in force; a stale edit is
 * copied and built again here. Returns false when out of memory. */
static bool edit_refresh(struct app *a, struct app_edit *e)
{
    bool stale = false;

    for (size_t i = 0; i < e->np; i++) {
        if (edit_concerns(e, i) && e->px[i].gen != a->proxies[i].gen) {
            stale = true;
        }
    }
    if (!stale) {
        return true;
    }
    log_msg(LOG_INFO, "rules changed while an edit was built: building it "
                      "again");
    if (edit_copy(a, e) != 0) {
        return false;
    }
    edit_tables(e);
    return true;
}

int app_edit_apply(struct app *a, struct app_edit *e,
                   struct config_errors *errs_out, size_t *count)
{
    struct config_errors mine = {0};
    struct config_errors *errs = errs_out != NULL ? errs_out : &mine;
    const char *what = e->adding ? "POST /rules" : "DELETE /rules/NAME";
    size_t from = errs->n;
    int rc = e->status;

    *count = 0;
    if (e->adding && rc == 0) {
        /* A document's listen/upstream must be the running ones. */
        struct app_proxy *map = NULL;
        if (map_proxies(a, &e->cfg, false, a->proxies[e->target].name, &map,
                        errs) != 0) {
            rc = APP_EINVAL;
        }
    }
    if (rc == 0 && !edit_refresh(a, e)) {
        config_errors_addf(errs, "out of memory");
        rc = APP_EINVAL;
    }
    if (rc == 0) {
        rc = e->status;
    }
    if (rc == 0 && !e->adding && e->count == 0) {
        rc = APP_ENOENT;
    }
    for (size_t i = 0; i < e->errs.n; i++) {
        config_errors_addf(errs, "%s", e->errs.msgs[i]);
    }
    if (rc != 0) {
        if (e->adding) {
            stats.reloads_failed++;
            log_refused(a, what, errs, from);
        }
        app_edit_free(e);
        config_errors_free(&mine);
        return rc;
    }
    uint64_t now = app_now_us();
    for (size_t i = 0; i < e->np; i++) {
        struct edit_proxy *ep = &e->px[i];
        struct app_proxy *ap = &a->proxies[i];
        if (!ep->touched) {
            continue;
        }
        if (ep->table != NULL && ap->px.rules != NULL) {
            rules_carry_counters(ep->table, ap->px.rules);
        }
        if (ep->table != NULL) {
            rules_start_clocks(ep->table, now); /* the added rules' */
        }
        rules_destroy(ap->px.rules);
        ap->px.rules = ep->table;
        ep->table = NULL;
        ap->gen++;
    }
    if (e->adding) {
        stats.reloads_ok++;
        log_msg(LOG_ERROR, "%s: ok, %zu rule%s added to '%s', %zu in force",
                what, e->count, e->count == 1 ? "" : "s",
                a->proxies[e->target].name, app_rule_count(a));
    } else {
        log_msg(LOG_ERROR, "DELETE /rules/%s: ok, removed from %zu prox%s",
                e->name, e->count, e->count == 1 ? "y" : "ies");
    }
    *count = e->count;
    app_edit_free(e);
    return 0;
}

void app_edit_free(struct app_edit *e)
{
    if (e == NULL) {
        return;
    }
    for (size_t i = 0; i < e->np; i++) {
        edit_proxy_clear(&e->px[i]);
    }
    free(e->px);
    free(e->name);
    config_free(&e->cfg);
    config_errors_free(&e->errs);
    free(e);
}

/* ---- POST /reset ---- */

int app_reset(struct app *a, struct app_change *ch, struct config_errors *errs)
{
    if (ch != NULL) {
        ch->fresh = true;
        ch->what = "reset";
        if (app_change_apply(a, ch, NULL, errs) != 0) {
            return APP_EINVAL;
        }
    } else {
        for (size_t i = 0; i < a->nproxies; i++) {
            rules_destroy(a->proxies[i].px.rules);
            a->proxies[i].px.rules = NULL;
            a->proxies[i].gen++;
        }
        log_msg(LOG_ERROR, "reset: no rule file (-c): no rules");
    }
    /* A fresh start has every proxy up. One whose port was taken while it
     * was off stays off (logged; GET /health shows it). */
    for (size_t i = 0; i < a->nproxies; i++) {
        struct app_proxy *ap = &a->proxies[i];
        if (ap->px.disabled && app_proxy_enable(a, ap) != 0) {
            log_msg(LOG_ERROR, "reset: proxy '%s' stays disabled: %s", ap->name,
                    strerror(errno));
        }
    }
    stats_reset();
    for (size_t i = 0; i < a->nproxies; i++) {
        a->proxies[i].px.conns_total = 0;
    }
    return 0;
}

/* ---- POST /proxies/NAME/disable, /enable ---- */

size_t app_proxy_disable(struct app *a, struct app_proxy *ap)
{
    uint64_t open = ap->px.conns_now;
    (void)a;

    if (ap->px.disabled) {
        return 0;
    }
    /* The socket first, so that no client slips in between. */
    ap->px.disabled = true;
    listener_stop(ap->listener);
    conn_close_all(&ap->px);
    log_msg(LOG_ERROR,
            "proxy '%s' disabled: not listening, %" PRIu64
            " connection%s closed",
            ap->name, open, open == 1 ? "" : "s");
    return (size_t)open;
}

int app_proxy_enable(struct app *a, struct app_proxy *ap)
{
    char addr[128];
    (void)a;

    if (!ap->px.disabled) {
        return 0;
    }
    if (ap->listener == NULL) {
        errno = ESHUTDOWN; /* stopping: the listeners are gone */
        return -1;
    }
    if (listener_start(ap->listener) != 0) {
        return -1; /* errno says why; listener_start logged it */
    }
    ap->px.disabled = false;
    log_msg(LOG_ERROR, "proxy '%s' enabled: listening on %s", ap->name,
            listener_address(ap->listener, addr, sizeof(addr)));
    return 0;
}

void app_free(struct app *a)
{
    for (size_t i = 0; i < a->nproxies; i++) {
        struct app_proxy *ap = &a->proxies[i];
        listener_destroy(ap->listener);
        conn_close_all(&ap->px);
        resolver_destroy(ap->px.resolver);
        rules_destroy(ap->px.rules);
        free(ap->name);
        free(ap->listen);
        free(ap->upstream);
    }
    free(a->proxies);
    a->proxies = NULL;
    a->nproxies = 0;
}
