/*
 * The running daemon's proxies and rule tables, and every way of changing
 * the rules while it runs: a SIGHUP reload, the admin API's PUT/DELETE and
 * enable/disable. A change is validated and built completely before any
 * table is swapped, so a bad one changes nothing.
 */
#include "mcfault/app.h"

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
    for (size_t i = 0; i < cfg->nproxies; i++) {
        const struct config_proxy *cp = &cfg->proxies[i];
        struct app_proxy *ap = &a->proxies[i];
        ap->px.rules = tables[i];
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
    const char *what; /* "reload" or "PUT /rules", for the log */
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
    for (size_t i = 0; i < ch->cfg.nproxies; i++) {
        struct proxy *px = &map[i]->px;
        if (ch->tables[i] != NULL && px->rules != NULL) {
            rules_carry_counters(ch->tables[i], px->rules);
        }
        rules_destroy(px->rules);
        px->rules = ch->tables[i];
        ch->tables[i] = NULL;
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
            n++;
        }
    }
    if (n > 0) {
        log_msg(LOG_ERROR, "rule '%s' %s", rule,
                enabled ? "enabled" : "disabled");
    }
    return n;
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
