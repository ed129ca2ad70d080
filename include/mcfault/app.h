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
 * SIGHUP and POST /reload: re-reads a->config_path; the new tables are
 * built completely, then swapped in, keeping counters of rules whose name
 * is unchanged. A bad file, or one that changes what only a restart can
 * (proxies, addresses), keeps every old table. Logs one line with the
 * outcome. Returns 0, or -1 with each problem appended to *errs (when not
 * NULL; always logged).
 */
int app_reload(struct app *a, struct config_errors *errs);

/*
 * PUT /rules: text[0..len) is a rule document with the schema of the file
 * (name used in messages). Its proxies are matched by name with the running
 * ones (a single-proxy document, named "default", applies to the only
 * proxy; with several, target names it); listen/upstream, when given, must
 * equal the running ones. Proxies the document does not mention keep their
 * rules. Validation and swap as app_reload. Returns 0, or -1 with every
 * problem in *errs.
 */
int app_replace_rules(struct app *a, const char *name, const char *text,
                      size_t len, const char *target,
                      struct config_errors *errs);

/* DELETE /rules: every proxy (target NULL) or the named one loses all its
 * rules. Returns 0, or -1 when target names no proxy. */
int app_clear_rules(struct app *a, const char *target);

/* POST /rules/NAME/enable|disable: in every proxy that has a rule of that
 * name. Returns the number of rules changed (0: no such rule). */
size_t app_set_enabled(struct app *a, const char *rule, bool enabled);

/* Frees the proxies: listeners, connections, tables. */
void app_free(struct app *a);

#endif
