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
    /* Bumped at every change of px.rules (a swap, enable/disable): a copy
     * of the rules taken for building off the loop knows it is stale. */
    uint64_t gen;
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
 * The new tables are swapped in, keeping the counters and schedule clocks
 * of rules whose name is unchanged (the others' clocks start now); with
 * any problem nothing changes. Counts the outcome in
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

/* Results of the rule edits below besides 0. */
enum {
    APP_EINVAL = -1, /* problems in the change: errs says which */
    APP_EDUP = -2,   /* a rule name in force already, or given twice */
    APP_ENOENT = -3  /* no proxy has a rule of that name */
};

/*
 * POST /rules and DELETE /rules/NAME change the rules in force rather than
 * replace them; the new tables (a copy of the rules in force, with rules
 * added or one removed) are built off the loop, in three steps:
 * 1. app_edit_add / app_edit_remove, on the loop: copy the rules in force
 *    of the proxies concerned (definitions and enabled flags);
 * 2. app_edit_build, on any thread: reads and writes only the edit (parses
 *    the body, checks the names, builds the tables);
 * 3. app_edit_apply, on the loop: swaps the tables in, keeping counters by
 *    name. When the rules changed between 1 and 3 (a SIGHUP, which is not
 *    queued behind admin changes), 1 and 2 are redone there first.
 */
struct app_edit;

/* POST /rules, step 1: rules are to be appended to ap's. Returns NULL when
 * out of memory. */
struct app_edit *app_edit_add(struct app *a, struct app_proxy *ap);

/* DELETE /rules/NAME, step 1: the rule named name goes from ap, or from
 * every proxy that has one when ap is NULL (name is copied). Returns NULL
 * when out of memory. */
struct app_edit *app_edit_remove(struct app *a, struct app_proxy *ap,
                                 const char *name);

/*
 * Step 2. For an add, text[0..len) is the body (config_parse_rules: one
 * rule, a list, or {rules: [...]}; name names it in messages; the caller
 * keeps text), and the union of the rules in force and the body's must
 * have unique names. Touches no app state.
 */
void app_edit_build(struct app_edit *e, const char *name, const char *text,
                    size_t len);

/*
 * Step 3: applies e and frees it. Returns 0 with *count the rules added
 * or removed; APP_EINVAL (the body's problems, FILE:LINE:COL, or an
 * address that differs from the running one, or too many rules), APP_EDUP
 * ("rule 'x' already exists", "rule 'x' is given twice in the body") with
 * the problems appended to *errs; or APP_ENOENT (nothing to remove). On
 * failure nothing changes. An add counts in reloads_ok / reloads_failed
 * as PUT /rules does. Logs one line.
 */
int app_edit_apply(struct app *a, struct app_edit *e,
                   struct config_errors *errs, size_t *count);

/* Frees an edit without applying it. NULL is allowed. */
void app_edit_free(struct app_edit *e);

/*
 * POST /reset, second half (the first is app_change_load of the rule
 * file; ch is NULL when mcfault runs without -c): the file's rules replace
 * every proxy's as a reload does, but fresh: no counters carried, enabled
 * as the file says (without a file, no rules at all), their schedules'
 * clocks starting now. Every proxy switched off is switched on again
 * (app_proxy_enable; one that cannot bind stays off, logged). Then every
 * counter is zeroed: stats_reset, and each proxy's connections accepted.
 * Returns 0, or APP_EINVAL with the file's problems in *errs: then nothing
 * is reset. Frees ch.
 */
int app_reset(struct app *a, struct app_change *ch, struct config_errors *errs);

/*
 * POST /proxies/NAME/disable: switches ap off (Toxiproxy's enabled:
 * false): px.disabled is set, its listening socket closed (new clients
 * are refused) and every client connection of it closed at once. Does
 * nothing when it is off already. Returns the connections closed.
 */
size_t app_proxy_disable(struct app *a, struct app_proxy *ap);

/*
 * POST /proxies/NAME/enable: binds ap's listening address again (the port
 * it had, also one the kernel chose) and accepts again. Returns 0 (also
 * when it was on), or -1 with errno set and the proxy still off:
 * EADDRINUSE and the like from the bind, ESHUTDOWN while mcfault stops.
 */
int app_proxy_enable(struct app *a, struct app_proxy *ap);

/* Frees the proxies: listeners, connections, tables. */
void app_free(struct app *a);

#endif
