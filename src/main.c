/*
 * mcfault: command line, configuration, wiring, reloads and the event loop.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "mcfault/addr.h"
#include "mcfault/admin.h"
#include "mcfault/app.h"
#include "mcfault/config.h"
#include "mcfault/conn.h"
#include "mcfault/listener.h"
#include "mcfault/log.h"
#include "mcfault/resolve.h"
#include "mcfault/rules.h"
#include "mcfault/stats.h"
#include "mcfault/watch.h"
#include "mcfault/worker.h"

#define DEFAULT_LISTEN APP_DEFAULT_LISTEN
#define DEFAULT_UPSTREAM APP_DEFAULT_UPSTREAM
#define MEMCACHED_PORT "11211"
/* SIGTERM lets in-flight replies finish for this long (docker stop waits
 * 10 s before SIGKILL). */
#define DEFAULT_GRACE_S 5
#define STOP_TICK_US 50000
/* --health gives up after this long (a container health check). */
#define HEALTH_TIMEOUT_S 3

/* Exit code for bad usage, as the issue and sysexits-minded tools expect. */
#define EXIT_USAGE 2

enum {
    OPT_VERSION = 256,
    OPT_HELP,
    OPT_CHECK_CONFIG,
    OPT_EVENT_LOG,
    OPT_HEALTH,
    OPT_ADMIN,
    OPT_GRACE,
    OPT_LOG_FILE,
    OPT_MAX_CONNECTIONS,
    OPT_WATCH_CONFIG
};

static const struct option long_options[] = {
    {"listen", required_argument, NULL, 'l'},
    {"upstream", required_argument, NULL, 'u'},
    {"config", required_argument, NULL, 'c'},
    {"check-config", required_argument, NULL, OPT_CHECK_CONFIG},
    {"event-log", required_argument, NULL, OPT_EVENT_LOG},
    {"admin", required_argument, NULL, OPT_ADMIN},
    {"health", required_argument, NULL, OPT_HEALTH},
    {"grace", required_argument, NULL, OPT_GRACE},
    {"log-file", required_argument, NULL, OPT_LOG_FILE},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
    {"watch-config", no_argument, NULL, OPT_WATCH_CONFIG},
    {"verbose", no_argument, NULL, 'v'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mcfault [-l ADDR:PORT] [-u HOST:PORT] [-c FILE] "
            "[--admin ADDR:PORT]\n"
            "               [--event-log FILE] [--log-file FILE] "
            "[--grace SECONDS] [-v|-vv]\n"
            "               [--max-connections N] [--watch-config]\n"
            "       mcfault --check-config FILE\n"
            "       mcfault --health ADDR:PORT\n"
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
            "      --watch-config        reload FILE when it changes (also the "
            "file's\n"
            "                            watch: true); a bad file keeps the "
            "rules\n"
            "      --check-config FILE   validate FILE and exit: 0 when good, "
            "1 with\n"
            "                            every problem as FILE:LINE:COL: ...\n"
            "      --admin ADDR:PORT     serve the admin HTTP API (off by "
            "default;\n"
            "                            PORT alone binds 127.0.0.1)\n"
            "      --event-log FILE      append each fault that fires to FILE "
            "as a JSON\n"
            "                            line (SIGUSR1 reopens it)\n"
            "      --log-file FILE       log to FILE instead of stderr "
            "(SIGUSR1 reopens it)\n"
            "      --grace SECONDS       on SIGTERM/SIGINT, let in-flight "
            "replies finish\n"
            "                            for this long (default %d)\n"
            "      --max-connections N   client connections open at once, "
            "over all\n"
            "                            proxies (default %d; also the "
            "file's\n"
            "                            max_connections); past it a client "
            "gets\n"
            "                            ERROR Too many open connections\n"
            "      --health ADDR:PORT    exit 0 when mcfault there and its "
            "upstream\n"
            "                            answer, 1 otherwise\n"
            "  -v, --verbose             log connections, faults, reloads; -vv "
            "also every\n"
            "                            command and reply line\n"
            "      --version             print the version and exit\n"
            "      --help                print this help and exit\n"
            "\n"
            "Environment (flags win over it, it wins over the file):\n"
            "  MCFAULT_LISTEN, MCFAULT_UPSTREAM, MCFAULT_CONFIG   as -l, -u, "
            "-c\n",
            DEFAULT_GRACE_S, LISTENER_MAX_CONNS_DEFAULT);
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
           cfg.nproxies == 1 ? "y" : "ies", config_rule_count(&cfg),
           config_rule_count(&cfg) == 1 ? "" : "s");
    config_free(&cfg);
    return EXIT_SUCCESS;
}

/*
 * --health ADDR:PORT: sends mcfault there "mcfault_health", which it
 * forwards to its upstream as "version" past the rules (apply.c); a VERSION
 * reply means both answer. Blocking, bounded by
 * HEALTH_TIMEOUT_S. Returns the exit status (0 healthy, 1 not).
 */
static int health_check(const char *arg)
{
    struct addr_spec spec;
    struct sockaddr_storage ss;
    socklen_t len;
    struct timeval tv = {.tv_sec = HEALTH_TIMEOUT_S};
    char buf[256];
    size_t got = 0;

    if (addr_parse(arg, MEMCACHED_PORT, &spec) != 0) {
        fprintf(stderr, "mcfault: --health: bad address '%s'\n", arg);
        return EXIT_USAGE;
    }
    if (addr_resolve(&spec, 0, &ss, &len) != 0) {
        fprintf(stderr, "mcfault: --health: cannot resolve '%s'\n", arg);
        return EXIT_FAILURE;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "mcfault: --health: %s\n", strerror(errno));
        return EXIT_FAILURE;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&ss, len) != 0 ||
        send(fd, "mcfault_health\r\n", 16, MSG_NOSIGNAL) != 16) {
        fprintf(stderr, "mcfault: --health: %s: %s\n", arg, strerror(errno));
        close(fd);
        return EXIT_FAILURE;
    }
    while (got < sizeof(buf) - 1 && memchr(buf, '\n', got) == NULL) {
        ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    if (strncmp(buf, "VERSION ", 8) != 0) {
        fprintf(stderr, "mcfault: --health: %s: %s\n", arg,
                got == 0 ? "no answer (is its upstream down?)"
                         : "unexpected answer");
        return EXIT_FAILURE;
    }
    printf("%s: ok, %.*s\n", arg, (int)strcspn(buf, "\r\n"), buf);
    return EXIT_SUCCESS;
}

/* Graceful stop: stop accepting, let in-flight replies finish, exit when
 * every connection is gone or the grace period ends. */
struct stopping {
    struct app *a;
    struct event *tick;
    struct timeval deadline;
};

static size_t open_connections(const struct app *a)
{
    size_t n = 0;

    for (size_t i = 0; i < a->nproxies; i++) {
        n += a->proxies[i].px.conns_now;
    }
    return n;
}

static void on_stop_tick(evutil_socket_t fd, short what, void *arg)
{
    struct stopping *st = arg;
    struct timeval now;
    (void)fd;
    (void)what;

    evutil_gettimeofday(&now, NULL);
    size_t left = open_connections(st->a);
    if (left == 0 || evutil_timercmp(&now, &st->deadline, >=)) {
        if (left > 0) {
            log_msg(LOG_ERROR, "grace period over: closing %zu connection%s",
                    left, left == 1 ? "" : "s");
        }
        event_base_loopexit(st->a->base, NULL);
        return;
    }
    struct timeval tv = {.tv_sec = 0, .tv_usec = STOP_TICK_US};
    evtimer_add(st->tick, &tv);
}

static struct stopping stopping;
static unsigned grace_seconds = DEFAULT_GRACE_S;

static void begin_stop(struct app *a, int sig)
{
    if (stopping.a != NULL) {
        log_msg(LOG_ERROR, "signal %d again: stopping now", sig);
        event_base_loopexit(a->base, NULL);
        return;
    }
    log_msg(LOG_INFO, "signal %d: stopping (grace %us)", sig, grace_seconds);
    stopping.a = a;
    evutil_gettimeofday(&stopping.deadline, NULL);
    stopping.deadline.tv_sec += (time_t)grace_seconds;
    for (size_t i = 0; i < a->nproxies; i++) {
        listener_destroy(a->proxies[i].listener);
        a->proxies[i].listener = NULL;
        conn_drain_all(&a->proxies[i].px);
    }
    stopping.tick = evtimer_new(a->base, on_stop_tick, &stopping);
    if (stopping.tick == NULL) {
        event_base_loopexit(a->base, NULL);
        return;
    }
    on_stop_tick(-1, EV_TIMEOUT, &stopping);
}

static void reload_async(struct app *a);

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct app *a = arg;
    (void)what;

    if (sig == SIGHUP) {
        reload_async(a);
        return;
    }
    if (sig == SIGUSR1) {
        /* Log rotation: whoever renamed the files wants new ones. */
        if (log_reopen() != 0) {
            log_msg(LOG_ERROR, "log file: cannot reopen: %s", strerror(errno));
        }
        if (log_event_reopen() != 0) {
            log_msg(LOG_ERROR, "event log: cannot reopen: %s", strerror(errno));
        }
        log_msg(LOG_INFO, "SIGUSR1: log files reopened");
        return;
    }
    begin_stop(a, (int)sig);
}

/*
 * SIGHUP and --watch-config: the file is read and its tables built on a
 * worker thread, so a big file never stalls proxied traffic; the swap
 * happens on the loop. Reloads are numbered: one that finishes after a
 * newer one has been applied is dropped (the newer read the file later).
 */
struct reload_job {
    struct app *a;
    uint64_t seq;
    struct app_change *ch;
};

static uint64_t reload_started;
static uint64_t reload_applied;

static void reload_work(void *arg)
{
    struct reload_job *j = arg;

    j->ch = app_change_load(j->a->config_path);
}

static void reload_done(void *arg)
{
    struct reload_job *j = arg;

    if (j->seq < reload_applied) {
        app_change_free(j->ch);
    } else if (j->ch == NULL) {
        reload_applied = j->seq;
        log_msg(LOG_ERROR, "reload: out of memory; kept the old rules");
        stats.reloads_failed++;
    } else {
        reload_applied = j->seq;
        app_change_apply(j->a, j->ch, NULL, NULL);
    }
    free(j);
}

static void reload_async(struct app *a)
{
    struct reload_job *j;

    if (a->config_path == NULL || (j = calloc(1, sizeof(*j))) == NULL) {
        app_reload(a, NULL); /* logs why, or reloads on the loop */
        return;
    }
    j->a = a;
    j->seq = ++reload_started;
    if (worker_run(reload_work, reload_done, j) != 0) {
        free(j);
        app_reload(a, NULL);
    }
}

/* --watch-config: the rule file changed; as SIGHUP. */
static void on_config_changed(void *arg)
{
    reload_async(arg);
}

/* A lookup of a proxy's upstream finished: px->upstream follows it (the
 * admin API's health probe reads it). The resolver logs the outcome. */
static void on_upstream_resolved(void *arg, int status)
{
    struct proxy *px = arg;

    if (status == 0 &&
        resolver_get(px->resolver, &px->upstream, &px->upstream_len) != 0) {
        px->upstream_len = 0;
    }
    conn_upstream_resolved(px, status);
}

/* Starts resolving the upstream and opens the listener of every proxy.
 * Returns 0, EXIT_USAGE for a malformed address, or -1. */
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
        px->resolver =
            resolver_create(&px->upstream_spec, on_upstream_resolved, px);
        if (px->resolver == NULL) {
            fprintf(stderr, "mcfault: out of memory\n");
            return -1;
        }
        /* A name is looked up on a thread, starting now; in compose it may
         * appear later: a failure is logged, and connections are refused
         * (closed) until a lookup finds it. */
        if (resolver_get(px->resolver, &px->upstream, &px->upstream_len) != 0) {
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

/* An environment variable, NULL when unset or empty. */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : NULL;
}

int main(int argc, char **argv)
{
    struct app a;
    const char *event_log = NULL;
    const char *log_path = NULL;
    const char *admin_arg = NULL;
    struct admin *admin = NULL;
    size_t max_conns = 0; /* 0: --max-connections not given */
    bool watch_flag = false;
    struct watch *watch = NULL;
    int opt;

    memset(&a, 0, sizeof(a));
    /* Flags win over the environment, the environment over the file. */
    a.listen_arg = env("MCFAULT_LISTEN");
    a.upstream_arg = env("MCFAULT_UPSTREAM");
    a.config_path = env("MCFAULT_CONFIG");
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
        case OPT_HEALTH:
            return health_check(optarg);
        case OPT_EVENT_LOG:
            event_log = optarg;
            break;
        case OPT_LOG_FILE:
            log_path = optarg;
            break;
        case OPT_ADMIN:
            admin_arg = optarg;
            break;
        case OPT_GRACE: {
            char *end;
            unsigned long g = strtoul(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || g > 3600) {
                fprintf(stderr,
                        "mcfault: --grace: want 0..3600 seconds, got "
                        "'%s'\n",
                        optarg);
                return EXIT_USAGE;
            }
            grace_seconds = (unsigned)g;
            break;
        }
        case OPT_MAX_CONNECTIONS: {
            char *end;
            unsigned long m = strtoul(optarg, &end, 10);
            if (*optarg < '0' || *optarg > '9' || *end != '\0' || m < 1 ||
                m > CONFIG_MAX_CONNECTIONS_MAX) {
                fprintf(stderr,
                        "mcfault: --max-connections: want 1..%d, got '%s'\n",
                        CONFIG_MAX_CONNECTIONS_MAX, optarg);
                return EXIT_USAGE;
            }
            max_conns = (size_t)m;
            break;
        }
        case OPT_WATCH_CONFIG:
            watch_flag = true;
            break;
        case OPT_VERSION:
            printf("mcfault %s\n", MCFAULT_VERSION);
            return EXIT_SUCCESS;
        case OPT_HELP:
            usage(stdout);
            return EXIT_SUCCESS;
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
    if (watch_flag && a.config_path == NULL) {
        fprintf(stderr, "mcfault: --watch-config needs a rule file (-c)\n");
        return EXIT_USAGE;
    }
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
    if (admin_arg == NULL) {
        admin_arg = cfg.admin;
    }
    if (log_path != NULL && log_open(log_path) != 0) {
        fprintf(stderr, "mcfault: --log-file %s: %s\n", log_path,
                strerror(errno));
        config_free(&cfg);
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
    if (worker_init(a.base) != 0) {
        fprintf(stderr, "mcfault: cannot create the worker pipe: %s\n",
                strerror(errno));
        goto done;
    }
    if (app_setup(&a, &cfg) != 0) {
        goto done;
    }
    /* The flag wins over the file, the file over memcached's default. */
    if (max_conns == 0) {
        max_conns = cfg.max_connections != 0 ? (size_t)cfg.max_connections
                                             : LISTENER_MAX_CONNS_DEFAULT;
    }
    listener_set_max_connections(max_conns,
                                 a.nproxies + (admin_arg != NULL ? 1 : 0));
    if ((rc = start_proxies(&a)) != 0) {
        rc = rc == EXIT_USAGE ? EXIT_USAGE : EXIT_FAILURE;
        goto done;
    }
    rc = EXIT_FAILURE;
    if (admin_arg != NULL) {
        if ((admin = admin_create(&a, admin_arg)) == NULL) {
            fprintf(stderr, "mcfault: cannot serve the admin API on %s\n",
                    admin_arg);
            goto done;
        }
        stats_keep_events = true;
    }
    if ((watch_flag || cfg.watch) && a.config_path != NULL &&
        (watch = watch_create(a.base, a.config_path, on_config_changed, &a)) ==
            NULL) {
        fprintf(stderr, "mcfault: cannot watch %s\n", a.config_path);
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
    watch_destroy(watch);
    admin_destroy(admin);
    if (stopping.tick != NULL) {
        event_free(stopping.tick);
    }
    app_free(&a);
    worker_deinit();
    config_free(&cfg);
    log_event_close();
    log_close();
    stats_events_free();
    if (a.base != NULL) {
        event_base_free(a.base);
    }
    libevent_global_shutdown();
    return rc;
}
