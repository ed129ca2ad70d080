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

/* Validates, builds and swaps in the tables of cfg (freed here). */
static int apply_config(struct app *a, struct config *cfg, bool whole,
                        const char *target, const char *what,
                        struct config_errors *errs)
{
    size_t nrules = config_rule_count(cfg);
    struct app_proxy **map = calloc(cfg->nproxies, sizeof(*map));
    struct rules **tables = calloc(cfg->nproxies, sizeof(*tables));
    int rc = -1;

    if (map == NULL || tables == NULL) {
        config_errors_addf(errs, "out of memory");
        goto done;
    }
    if (map_proxies(a, cfg, whole, target, map, errs) != 0) {
        goto done;
    }
    if (build_tables(cfg, tables) != 0) {
        config_errors_addf(errs, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < cfg->nproxies; i++) {
        struct proxy *px = &map[i]->px;
        if (tables[i] != NULL && px->rules != NULL) {
            rules_carry_counters(tables[i], px->rules);
        }
        rules_destroy(px->rules);
        px->rules = tables[i];
    }
    rc = 0;
done:
    free(map);
    free(tables);
    config_free(cfg);
    if (rc == 0) {
        stats.reloads_ok++;
        log_msg(LOG_ERROR, "%s: ok, %zu rule%s", what, nrules,
                nrules == 1 ? "" : "s");
    } else {
        stats.reloads_failed++;
    }
    return rc;
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

int app_reload(struct app *a, struct config_errors *errs)
{
    struct config_errors mine = {0};
    struct config_errors *e = errs != NULL ? errs : &mine;
    size_t from = e->n;
    struct config cfg;
    int rc = -1;

    if (a->config_path == NULL) {
        config_errors_addf(e, "no config file (-c); nothing to do");
        log_msg(LOG_ERROR, "reload: no config file (-c); nothing to do");
        stats.reloads_failed++;
        goto done;
    }
    if (config_load_file(a->config_path, &cfg, e) != 0) {
        stats.reloads_failed++;
        log_refused(a, "reload", e, from);
        goto done;
    }
    rc = apply_config(a, &cfg, true, NULL, "reload", e);
    if (rc != 0) {
        log_refused(a, "reload", e, from);
    }
done:
    config_errors_free(&mine);
    return rc;
}

int app_replace_rules(struct app *a, const char *name, const char *text,
                      size_t len, const char *target,
                      struct config_errors *errs)
{
    struct config cfg;
    size_t from = errs->n;

    if (config_parse(name, text, len, &cfg, errs) != 0) {
        stats.reloads_failed++;
        log_refused(a, "PUT /rules", errs, from);
        return -1;
    }
    if (apply_config(a, &cfg, false, target, "PUT /rules", errs) != 0) {
        log_refused(a, "PUT /rules", errs, from);
        return -1;
    }
    return 0;
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
        rules_destroy(ap->px.rules);
        free(ap->name);
        free(ap->listen);
        free(ap->upstream);
    }
    free(a->proxies);
    a->proxies = NULL;
    a->nproxies = 0;
}
