/*
 * The upstream's address: a name is looked up on a worker thread, never on
 * the loop, and looked up again after a connect to it fails (the upstream
 * moved: a container restarted with a new address).
 */
#ifndef MCFAULT_RESOLVE_H
#define MCFAULT_RESOLVE_H

#include <sys/socket.h>

#include "mcfault/addr.h"

/* Lookups of one name start at most this often: while the upstream is
 * down every client's connect fails, and each failure asks for a lookup. */
#define RESOLVE_INTERVAL_MS 1000

struct resolver;

/*
 * A resolver for spec (copied). A numeric address is resolved here, once
 * (AI_NUMERICHOST), and never looked up; a name is looked up by the first
 * resolver_get. done(arg, status) is called on the loop's thread when a
 * lookup started by resolver_get finishes: status 0 (the address is known
 * now) or a getaddrinfo error code. Needs worker_init. Returns NULL when
 * out of memory.
 */
struct resolver *resolver_create(const struct addr_spec *spec,
                                 void (*done)(void *arg, int status),
                                 void *arg);

/*
 * 0 and *ss, *len when an address is known; otherwise -1, and a lookup is
 * started unless one is in flight (done is called later). A lookup starts
 * no sooner than RESOLVE_INTERVAL_MS after the one before (its thread
 * waits). Never blocks. When no thread can be started nothing is in flight
 * (logged), and the next call tries again.
 */
int resolver_get(struct resolver *r, struct sockaddr_storage *ss,
                 socklen_t *len);

/*
 * A connect to the known address failed: forgets it, so that the next
 * resolver_get looks the name up again. Nothing for a numeric address.
 */
void resolver_invalidate(struct resolver *r);

/* Frees r (NULL is fine). Safe while a lookup is in flight: its result is
 * then discarded and freed when it arrives, and done is not called. */
void resolver_destroy(struct resolver *r);

#endif
