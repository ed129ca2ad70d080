/*
 * Client connections: each one has its own upstream connection and an
 * in-flight queue (inflight.h); apply.c takes the fault decisions. The
 * inside of a connection is in src/conn_int.h.
 */
#ifndef MCFAULT_CONN_H
#define MCFAULT_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "mcfault/addr.h"

struct conn;
struct rules;

/* One proxy: a listener, an upstream, and the connections between them. */
struct proxy {
    struct event_base *base;
    const char *name;    /* for logs and the event log */
    struct rules *rules; /* NULL: no rules; swapped on reload */
    struct addr_spec upstream_spec;
    struct sockaddr_storage upstream;
    socklen_t upstream_len;    /* 0 until resolved */
    struct resolver *resolver; /* upstream_spec's address, looked up */
    struct conn *conns;        /* open connections, for shutdown */
    uint64_t conns_total;
    uint64_t conns_now;
    bool disabled; /* switched off (POST /proxies/NAME/disable): no clients,
                      its listener closed until enabled */
    uint64_t conn_seed; /* state of the per-connection draws (conn_pick) */
};

/*
 * Takes over an accepted client socket fd: opens the upstream connection
 * and starts proxying. On failure the client socket is closed and the reason
 * logged. Returns 0 or -1.
 */
int conn_create(struct proxy *px, int fd, const struct sockaddr *peer);

/*
 * A lookup of px's upstream name finished (status 0, or a getaddrinfo
 * error): the connections waiting for it connect, or close when it failed.
 */
void conn_upstream_resolved(struct proxy *px, int status);

/*
 * Like conn_create, for a client socket cfd whose upstream ufd is already
 * connected (any stream socket: tests/fuzz/fuzz_conn.c drives both
 * through socketpairs). Takes both fds, also on failure. Returns 0 or -1.
 */
int conn_adopt(struct proxy *px, int cfd, int ufd);

/*
 * Graceful stop: every connection of px stops reading requests; what its
 * client already sent is still forwarded and answered (delays included),
 * then it closes, exactly as after a client EOF. Idle ones close at once.
 */
void conn_drain_all(struct proxy *px);

/* Closes and frees every connection of px at once (shutdown). */
void conn_close_all(struct proxy *px);

#endif
