/*
 * The listening socket: accepts clients and hands them to conn_create,
 * within the connection limit, and pauses (instead of spinning) while the
 * process is out of file descriptors.
 */
#ifndef MCFAULT_LISTENER_H
#define MCFAULT_LISTENER_H

#include <stddef.h>

#include "mcfault/addr.h"
#include "mcfault/conn.h"

/* Client connections allowed over all proxies unless told otherwise:
 * memcached's -c default. */
#define LISTENER_MAX_CONNS_DEFAULT 1024

/* What a client past the limit reads before the close: memcached's own
 * words, so clients that know memcached know what happened. */
#define LISTENER_FULL_REPLY "ERROR Too many open connections\r\n"

/* Out of descriptors, accepting is retried this often: short enough that
 * waiting clients hardly notice, long enough to cost nothing. */
#define LISTENER_RETRY_MS 100

/* Descriptors needed besides two per client (its socket and its upstream's)
 * and one per listener: stdio, the event loop and its signal pipe, the
 * worker pipe, log files, the admin API and its clients, name lookups. */
#define LISTENER_FD_SLACK 64

struct listener;

/*
 * Sets the limit every listener enforces: while max client connections are
 * open over all proxies (stats.connections_now), a new client gets
 * LISTENER_FULL_REPLY and is closed; open ones are untouched. Then raises
 * the soft RLIMIT_NOFILE, up to the hard limit, to what max connections and
 * nlisteners listeners need (never lowers it); says at -v what it did and
 * warns when the hard limit is too low. Call once, before listener_create.
 */
void listener_set_max_connections(size_t max, size_t nlisteners);

/*
 * Binds spec (resolved as a passive address) and starts accepting into px.
 * Returns the listener, or NULL with the reason logged (address in use,
 * unresolvable, ...).
 */
struct listener *listener_create(struct proxy *px,
                                 const struct addr_spec *spec);

/*
 * Closes the listening socket (a proxy switched off): new clients are
 * refused by the kernel, those waiting in its backlog reset, a client held
 * back for want of descriptors closed. The listener keeps the address it
 * bound. Stopping a stopped listener does nothing.
 */
void listener_stop(struct listener *l);

/*
 * Binds the address the listener bound at its creation again (the port
 * the kernel chose, when port 0 was asked) and accepts again. Returns 0
 * (also when it is listening already), or -1 with errno set (EADDRINUSE:
 * someone took the port meanwhile) and the reason logged; it then stays
 * stopped.
 */
int listener_start(struct listener *l);

/* The address l binds, as "host:port" / "[v6]:port", into buf. */
const char *listener_address(const struct listener *l, char *buf, size_t size);

/* Stops accepting and frees the listener (a client held back for want of
 * descriptors is closed). */
void listener_destroy(struct listener *l);

#endif
