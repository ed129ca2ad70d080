/*
 * The running daemon: its proxies and their rule tables, and the ways to
 * change the rules while it runs (SIGHUP, the admin API).
 */
#ifndef MCFAULT_APP_H
#define MCFAULT_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "mcfault/config.h"
#include "mcfault/conn.h"

struct listener;

/* One configured proxy at run time. */
struct app_proxy {
    struct proxy px;
    char *name;
    char *listen;   /* effective ADDR:PORT */
    char *upstream; /* effective HOST:PORT */
    struct listener *listener;
};

/* Everything the daemon owns. */
struct app {
    struct event_base *base;
    const char *config_path;  /* NULL: no rules file */
    const char *listen_arg;   /* -l or MCFAULT_LISTEN, NULL when neither */
    const char *upstream_arg; /* -u or MCFAULT_UPSTREAM */
    struct app_proxy *proxies;
    size_t nproxies;
};

#define APP_DEFAULT_LISTEN "127.0.0.1:11212"
#define APP_DEFAULT_UPSTREAM "127.0.0.1:11211"

/* The addresses a proxy of a config really uses: -l/-u (or the
 * environment) win over the file, the file over the defaults. */
const char *app_eff_listen(const struct app *a, const struct config_proxy *p);
const char *app_eff_upstream(const struct app *a, const struct config_proxy *p);

/*
 * Builds a->proxies from cfg (names, effective addresses, rule tables; the
 * rules are taken out of cfg). Nothing is opened yet. Returns 0, or -1
 * with the reason printed.
 */
int app_setup(struct app *a, struct config *cfg);

/* Rules in force now, over every proxy. */
size_t app_rule_count(const struct app *a);

/* The proxy named name, or the only one when name is NULL and there is
 * exactly one; NULL otherwise. */
struct app_proxy *app_find_proxy(struct app *a, const char *name);

/*
 * A rule change in two halves, so that the slow one can run off the loop:
 * app_change_parse / app_change_load read the document and build its rule
 * tables; app_change_apply matches it with the running proxies and swaps
 * the tables in. The first half is pure (config.c and rules.c keep no
 * global state; it reads no app state): it may run on a worker thread.
 */
struct app_change;

/*
 * PUT /rules, first half: parses text[0..len) (name used in messages) as
 * a rule document with the schema of the file and builds its tables. The
 * problems found, if any, are kept for app_change_apply. Returns the
 * change, or NULL when out of memory.
 */
struct app_change *app_change_parse(const char *name, const char *text,
                                    size_t len);

/* POST /reload and SIGHUP, first half: the same for the file at path. */
struct app_change *app_change_load(const char *path);

/*
 * Second half, on the loop's thread: applies ch and frees it. A parsed
 * document's proxies are matched by name with the running ones (a
 * single-proxy document, named "default", applies to the only proxy;
 * with several, target names it); listen/upstream, when given, must equal
 * the running ones; proxies it does not mention keep their rules. A loaded
 * file must name every running proxy, in order, with the same addresses.
 * The new tables are swapped in, keeping the counters of rules whose name
 * is unchanged; with any problem nothing changes. Counts the outcome in
 * stats (reloads_ok / reloads_failed) and logs one line, and each problem.
 * Returns 0, or -1 with every problem appended to *errs (when not NULL).
 */
int app_change_apply(struct app *a, struct app_change *ch, const char *target,
                     struct config_errors *errs);

/* Frees a change without applying it. NULL is allowed. */
void app_change_free(struct app_change *ch);

/*
 * SIGHUP: both halves of re-reading a->config_path at once, on the loop.
 * Returns as app_change_apply; no -c is a failure too (logged, counted).
 */
int app_reload(struct app *a, struct config_errors *errs);

/* DELETE /rules: every proxy (target NULL) or the named one loses all its
 * rules. Returns 0, or -1 when target names no proxy. */
int app_clear_rules(struct app *a, const char *target);

/* POST /rules/NAME/enable|disable: in every proxy that has a rule of that
 * name. Returns the number of rules changed (0: no such rule). */
size_t app_set_enabled(struct app *a, const char *rule, bool enabled);

/* Frees the proxies: listeners, connections, tables. */
void app_free(struct app *a);

#endif
