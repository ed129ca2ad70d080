/*
 * mcfault: command line, wiring and the event loop.
 */
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "mcfault/addr.h"
#include "mcfault/conn.h"
#include "mcfault/listener.h"
#include "mcfault/log.h"

#define DEFAULT_LISTEN "127.0.0.1:11212"
#define DEFAULT_UPSTREAM "127.0.0.1:11211"
#define MEMCACHED_PORT "11211"

/* Exit code for bad usage, as the issue and sysexits-minded tools expect. */
#define EXIT_USAGE 2

enum { OPT_VERSION = 256, OPT_HELP, OPT_DEBUG_INJECT };

static const struct option long_options[] = {
    {"listen", required_argument, NULL, 'l'},
    {"upstream", required_argument, NULL, 'u'},
    {"config", required_argument, NULL, 'c'},
    {"verbose", no_argument, NULL, 'v'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, OPT_HELP},
    {"debug-inject", required_argument, NULL, OPT_DEBUG_INJECT},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: mcfault [-l ADDR:PORT] [-u HOST:PORT] [-c FILE] "
                 "[-v|-vv]\n"
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
                 "  -c, --config FILE         fault rules (YAML; not in this "
                 "version yet)\n"
                 "  -v, --verbose             log connections and errors; -vv "
                 "also every\n"
                 "                            command and reply line\n"
                 "      --version             print the version and exit\n"
                 "      --help                print this help and exit\n");
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct event_base *base = arg;
    (void)what;

    log_msg(LOG_INFO, "signal %d: shutting down", (int)sig);
    event_base_loopexit(base, NULL);
}

int main(int argc, char **argv)
{
    const char *listen_arg = DEFAULT_LISTEN;
    const char *upstream_arg = DEFAULT_UPSTREAM;
    const char *inject = NULL;
    int opt;

    while ((opt = getopt_long(argc, argv, "l:u:c:v", long_options, NULL)) !=
           -1) {
        switch (opt) {
        case 'l':
            listen_arg = optarg;
            break;
        case 'u':
            upstream_arg = optarg;
            break;
        case 'c':
            fprintf(stderr, "mcfault: -c/--config: fault rules are not "
                            "implemented in this version\n");
            return EXIT_USAGE;
        case 'v':
            log_level++;
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

    struct addr_spec listen_spec;
    struct proxy px;
    memset(&px, 0, sizeof(px));
    if (addr_parse(listen_arg, MEMCACHED_PORT, &listen_spec) != 0) {
        fprintf(stderr, "mcfault: bad --listen address '%s'\n", listen_arg);
        return EXIT_USAGE;
    }
    if (addr_parse(upstream_arg, MEMCACHED_PORT, &px.upstream_spec) != 0) {
        fprintf(stderr, "mcfault: bad --upstream address '%s'\n", upstream_arg);
        return EXIT_USAGE;
    }
    if (inject != NULL && *inject != '\0') {
        px.inject_prefix = inject;
        px.inject_len = strlen(inject);
    }

    int rc = addr_resolve(&px.upstream_spec, 0, &px.upstream, &px.upstream_len);
    if (rc != 0) {
        /* In compose the upstream's name may appear later; connections are
         * refused (closed) until it does. */
        log_msg(LOG_ERROR, "upstream %s:%s: %s (will retry per connection)",
                px.upstream_spec.host, px.upstream_spec.port, gai_strerror(rc));
        px.upstream_len = 0;
    }

    signal(SIGPIPE, SIG_IGN);
    px.base = event_base_new();
    if (px.base == NULL) {
        fprintf(stderr, "mcfault: cannot create the event loop\n");
        return EXIT_FAILURE;
    }
    struct listener *l = listener_create(&px, &listen_spec);
    if (l == NULL) {
        event_base_free(px.base);
        return EXIT_FAILURE;
    }
    struct event *sigterm = evsignal_new(px.base, SIGTERM, on_signal, px.base);
    struct event *sigint = evsignal_new(px.base, SIGINT, on_signal, px.base);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    log_msg(LOG_INFO, "listening on %s:%s, upstream %s:%s", listen_spec.host,
            listen_spec.port, px.upstream_spec.host, px.upstream_spec.port);

    event_base_dispatch(px.base);

    listener_destroy(l);
    conn_close_all(&px);
    event_free(sigterm);
    event_free(sigint);
    event_base_free(px.base);
    libevent_global_shutdown();
    return EXIT_SUCCESS;
}
