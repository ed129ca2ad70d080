/*
 * mcfault: command line, configuration, wiring, reloads and the event loop.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "mcfault/addr.h"
#include "mcfault/config.h"
#include "mcfault/conn.h"
#include "mcfault/listener.h"
#include "mcfault/log.h"
#include "mcfault/rules.h"

#define DEFAULT_LISTEN "127.0.0.1:11212"
#define DEFAULT_UPSTREAM "127.0.0.1:11211"
#define MEMCACHED_PORT "11211"

/* Exit code for bad usage, as the issue and sysexits-minded tools expect. */
#define EXIT_USAGE 2

enum {
    OPT_VERSION = 256,
    OPT_HELP,
    OPT_DEBUG_INJECT,
    OPT_CHECK_CONFIG,
    OPT_EVENT_LOG
};

static const struct option long_options[] = {
    {"listen", required_argument, NULL, 'l'},
    {"upstream", required_argument, NULL, 'u'},
    {"config", required_argument, NULL, 'c'},
    {"check-config", required_argument, NULL, OPT_CHECK_CONFIG},
    {"event-log", required_argument, NULL, OPT_EVENT_LOG},
    {"verbose", no_argument, NULL, 'v'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, OPT_HELP},
    {"debug-inject", required_argument, NULL, OPT_DEBUG_INJECT},
    {NULL, 0, NULL, 0},
};

/* One configured proxy at run time. */
struct app_proxy {
    struct proxy px;
    char *name;
    char *listen;   /* effective ADDR:PORT */
    char *upstream; /* effective HOST:PORT */
    struct listener *listener;
};

/* Everything main owns. */
struct app {
    struct event_base *base;
    const char *config_path; /* NULL: no rules file */
    const char *listen_arg;  /* -l, NULL when not given */
    const char *upstream_arg;
    struct app_proxy *proxies;
    size_t nproxies;
    uint64_t reloads_ok;
    uint64_t reloads_failed;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mcfault [-l ADDR:PORT] [-u HOST:PORT] [-c FILE] [-v|-vv]\n"
            "       mcfault --check-config FILE\n"
            "\n"
            "A memcached text-protocol proxy that injects faults.\n"
            "\n"
            "  -l, --listen ADDR:PORT    where clients connect "
            "(default " DEFAULT_LISTEN ");\n"
            "                            IPv6 as [::1]:11212\n"
            "  -u, --upstream HOST:PORT  the real memcached "
            "(default " DEFAULT_UPSTREAM ";\n"
            "                            port " MEMCACHED_PORT
            " when omitted)\n"
            "  -c, --config FILE         YAML fault rules; SIGHUP reloads it\n"
            "                            (-l/-u override a single proxy's "
            "addresses)\n"
            "      --check-config FILE   validate FILE and exit: 0 when good, "
            "1 with\n"
            "                            every problem as FILE:LINE:COL: ...\n"
            "      --event-log FILE      append each fault that fires to FILE "
            "as a JSON line\n"
            "  -v, --verbose             log connections, faults, reloads; -vv "
            "also every\n"
            "                            command and reply line\n"
            "      --version             print the version and exit\n"
            "      --help                print this help and exit\n");
}

static void print_errors(const struct config_errors *errs, const char *what)
{
    for (size_t i = 0; i < errs->n; i++) {
        log_msg(LOG_ERROR, "%s%s", what, errs->msgs[i]);
    }
}

static size_t count_rules(const struct config *cfg)
{
    size_t n = 0;

    for (size_t i = 0; i < cfg->nproxies; i++) {
        n += cfg->proxies[i].nrules;
    }
    return n;
}

/* --check-config: 0 when the file is good, 1 otherwise. */
static int check_config(const char *path)
{
    struct config cfg;
    struct config_errors errs = {0};

    if (config_load_file(path, &cfg, &errs) != 0) {
        for (size_t i = 0; i < errs.n; i++) {
            fprintf(stderr, "%s\n", errs.msgs[i]);
        }
        config_errors_free(&errs);
        return EXIT_FAILURE;
    }
    printf("%s: ok, %zu prox%s, %zu rule%s\n", path, cfg.nproxies,
           cfg.nproxies == 1 ? "y" : "ies", count_rules(&cfg),
           count_rules(&cfg) == 1 ? "" : "s");
    config_free(&cfg);
    return EXIT_SUCCESS;
}

/* Without a seed, something that differs between runs. */
static uint64_t proxy_seed(const struct config *cfg, size_t i)
{
    uint64_t base = cfg->has_seed
                        ? cfg->seed
                        : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return base + i * 0x9e3779b97f4a7c15ULL;
}

/* Builds one rule table per proxy of cfg, taking the rules out of cfg.
 * Returns 0, or -1 (nothing built) when out of memory. */
static int build_tables(struct config *cfg, struct rules **out)
{
    for (size_t i = 0; i < cfg->nproxies; i++) {
        struct config_proxy *cp = &cfg->proxies[i];
        out[i] = NULL;
        if (cp->nrules == 0) {
            continue; /* no table: the fast path */
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

/* The addresses a proxy of cfg really uses: -l/-u win over the file, the
 * file over the defaults. */
static const char *eff_listen(const struct app *a, const struct config_proxy *p)
{
    if (a->listen_arg != NULL) {
        return a->listen_arg;
    }
    return p->listen != NULL ? p->listen : DEFAULT_LISTEN;
}

static const char *eff_upstream(const struct app *a,
                                const struct config_proxy *p)
{
    if (a->upstream_arg != NULL) {
        return a->upstream_arg;
    }
    return p->upstream != NULL ? p->upstream : DEFAULT_UPSTREAM;
}

/* Rules in force now, over every proxy. */
static size_t live_rules(const struct app *a)
{
    size_t n = 0;

    for (size_t i = 0; i < a->nproxies; i++) {
        if (a->proxies[i].px.rules != NULL) {
            n += rules_count(a->proxies[i].px.rules);
        }
    }
    return n;
}

/* SIGHUP: the new file is loaded and its tables built completely before
 * any is swapped in; a bad file, or one that changes what only a restart
 * can (proxies, addresses), keeps every old table. */
static void reload(struct app *a)
{
    struct config cfg;
    struct config_errors errs = {0};

    if (a->config_path == NULL) {
        log_msg(LOG_ERROR, "reload: no config file (-c); nothing to do");
        return;
    }
    if (config_load_file(a->config_path, &cfg, &errs) != 0) {
        print_errors(&errs, "reload: ");
        log_msg(LOG_ERROR,
                "reload: failed, %zu problem%s; kept the %zu old "
                "rules",
                errs.n, errs.n == 1 ? "" : "s", live_rules(a));
        config_errors_free(&errs);
        a->reloads_failed++;
        return;
    }
    const char *why = NULL;
    if (cfg.nproxies != a->nproxies) {
        why = "the number of proxies changed";
    }
    for (size_t i = 0; why == NULL && i < cfg.nproxies; i++) {
        const struct config_proxy *cp = &cfg.proxies[i];
        const struct app_proxy *ap = &a->proxies[i];
        if (strcmp(cp->name, ap->name) != 0) {
            why = "proxy names changed";
        } else if (strcmp(eff_listen(a, cp), ap->listen) != 0) {
            why = "a listen address changed";
        } else if (strcmp(eff_upstream(a, cp), ap->upstream) != 0) {
            why = "an upstream address changed";
        }
    }
    size_t nrules = count_rules(&cfg);
    struct rules **tables = NULL;
    if (why == NULL) {
        tables = calloc(cfg.nproxies, sizeof(*tables));
        if (tables == NULL || build_tables(&cfg, tables) != 0) {
            why = "out of memory";
        }
    }
    if (why != NULL) {
        log_msg(LOG_ERROR,
                "reload: failed: %s (restart mcfault to apply it); kept "
                "the %zu old rules",
                why, live_rules(a));
        free(tables);
        config_free(&cfg);
        a->reloads_failed++;
        return;
    }
    for (size_t i = 0; i < a->nproxies; i++) {
        struct proxy *px = &a->proxies[i].px;
        if (tables[i] != NULL && px->rules != NULL) {
            rules_carry_counters(tables[i], px->rules);
        }
        rules_destroy(px->rules);
        px->rules = tables[i];
    }
    free(tables);
    config_free(&cfg);
    a->reloads_ok++;
    log_msg(LOG_ERROR, "reload: ok, %zu rule%s", nrules,
            nrules == 1 ? "" : "s");
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct app *a = arg;
    (void)what;

    if (sig == SIGHUP) {
        reload(a);
        return;
    }
    if (sig == SIGUSR1) {
        if (log_event_reopen() != 0) {
            log_msg(LOG_ERROR, "event log: cannot reopen: %s", strerror(errno));
        }
        return;
    }
    log_msg(LOG_INFO, "signal %d: shutting down", (int)sig);
    event_base_loopexit(a->base, NULL);
}

/* Fills a->proxies from cfg (addresses, names, rule tables). Returns 0 or
 * prints why not and returns -1. */
static int setup_proxies(struct app *a, struct config *cfg)
{
    if (cfg->nproxies > 1 && (a->listen_arg || a->upstream_arg)) {
        fprintf(stderr,
                "mcfault: -l/-u apply to a single proxy; %s "
                "defines %zu (set their addresses in the file)\n",
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
        ap->listen = strdup(eff_listen(a, cp));
        ap->upstream = strdup(eff_upstream(a, cp));
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

/* Resolves the upstream and opens the listener of every proxy. Returns 0,
 * EXIT_USAGE for a malformed address, or -1. */
static int start_proxies(struct app *a)
{
    for (size_t i = 0; i < a->nproxies; i++) {
        struct app_proxy *ap = &a->proxies[i];
        struct proxy *px = &ap->px;
        struct addr_spec ls;
        if (addr_parse(ap->listen, MEMCACHED_PORT, &ls) != 0) {
            fprintf(stderr, "mcfault: %s: bad listen address '%s'\n", ap->name,
                    ap->listen);
            return EXIT_USAGE;
        }
        if (addr_parse(ap->upstream, MEMCACHED_PORT, &px->upstream_spec) != 0) {
            fprintf(stderr, "mcfault: %s: bad upstream address '%s'\n",
                    ap->name, ap->upstream);
            return EXIT_USAGE;
        }
        int rc = addr_resolve(&px->upstream_spec, 0, &px->upstream,
                              &px->upstream_len);
        if (rc != 0) {
            /* In compose the upstream's name may appear later; connections
             * are refused (closed) until it does. */
            log_msg(LOG_ERROR,
                    "%s: upstream %s:%s: %s (will retry per "
                    "connection)",
                    ap->name, px->upstream_spec.host, px->upstream_spec.port,
                    gai_strerror(rc));
            px->upstream_len = 0;
        }
        ap->listener = listener_create(px, &ls);
        if (ap->listener == NULL) {
            fprintf(stderr, "mcfault: %s: cannot listen on %s\n", ap->name,
                    ap->listen);
            return -1;
        }
        log_msg(LOG_INFO, "%s: listening on %s:%s, upstream %s:%s, %zu rules",
                ap->name, ls.host, ls.port, px->upstream_spec.host,
                px->upstream_spec.port,
                px->rules != NULL ? rules_count(px->rules) : 0);
    }
    return 0;
}

static void app_free(struct app *a)
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
}

/* A config with one proxy and no rules, for running without -c. */
static int default_config(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->proxies = calloc(1, sizeof(*cfg->proxies));
    if (cfg->proxies == NULL ||
        (cfg->proxies[0].name = strdup("default")) == NULL) {
        return -1;
    }
    cfg->nproxies = 1;
    return 0;
}

int main(int argc, char **argv)
{
    struct app a;
    const char *inject = NULL;
    const char *event_log = NULL;
    int opt;

    memset(&a, 0, sizeof(a));
    while ((opt = getopt_long(argc, argv, "l:u:c:v", long_options, NULL)) !=
           -1) {
        switch (opt) {
        case 'l':
            a.listen_arg = optarg;
            break;
        case 'u':
            a.upstream_arg = optarg;
            break;
        case 'c':
            a.config_path = optarg;
            break;
        case 'v':
            log_level++;
            break;
        case OPT_CHECK_CONFIG:
            return check_config(optarg);
        case OPT_EVENT_LOG:
            event_log = optarg;
            break;
        case OPT_VERSION:
            printf("mcfault %s\n", MCFAULT_VERSION);
            return EXIT_SUCCESS;
        case OPT_HELP:
            usage(stdout);
            return EXIT_SUCCESS;
        case OPT_DEBUG_INJECT:
            inject = optarg;
            break;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mcfault: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }

    struct config cfg;
    if (a.config_path != NULL) {
        struct config_errors errs = {0};
        if (config_load_file(a.config_path, &cfg, &errs) != 0) {
            for (size_t i = 0; i < errs.n; i++) {
                fprintf(stderr, "%s\n", errs.msgs[i]);
            }
            fprintf(stderr, "mcfault: %s: %zu problem%s, not starting\n",
                    a.config_path, errs.n, errs.n == 1 ? "" : "s");
            config_errors_free(&errs);
            return EXIT_FAILURE;
        }
    } else if (default_config(&cfg) != 0) {
        fprintf(stderr, "mcfault: out of memory\n");
        return EXIT_FAILURE;
    }
    if (event_log != NULL && log_event_open(event_log) != 0) {
        fprintf(stderr, "mcfault: --event-log %s: %s\n", event_log,
                strerror(errno));
        config_free(&cfg);
        return EXIT_FAILURE;
    }

    signal(SIGPIPE, SIG_IGN);
    a.base = event_base_new();
    int rc = EXIT_FAILURE;
    if (a.base == NULL) {
        fprintf(stderr, "mcfault: cannot create the event loop\n");
        goto done;
    }
    if (setup_proxies(&a, &cfg) != 0) {
        goto done;
    }
    if (inject != NULL && *inject != '\0') {
        a.proxies[0].px.inject_prefix = inject;
        a.proxies[0].px.inject_len = strlen(inject);
    }
    if ((rc = start_proxies(&a)) != 0) {
        rc = rc == EXIT_USAGE ? EXIT_USAGE : EXIT_FAILURE;
        goto done;
    }
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
    struct event *sev[sizeof(sigs) / sizeof(sigs[0])];
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sev[i] = evsignal_new(a.base, sigs[i], on_signal, &a);
        evsignal_add(sev[i], NULL);
    }

    event_base_dispatch(a.base);

    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        event_free(sev[i]);
    }
    rc = EXIT_SUCCESS;
done:
    app_free(&a);
    config_free(&cfg);
    log_event_close();
    if (a.base != NULL) {
        event_base_free(a.base);
    }
    libevent_global_shutdown();
    return rc;
}
