/*
 * The listening socket: accepts clients and hands them to conn_create.
 */
#ifndef MCFAULT_LISTENER_H
#define MCFAULT_LISTENER_H

#include "mcfault/addr.h"
#include "mcfault/conn.h"

struct listener;

/*
 * Binds spec (resolved as a passive address) and starts accepting into px.
 * Returns the listener, or NULL with the reason logged (address in use,
 * unresolvable, ...).
 */
struct listener *listener_create(struct proxy *px,
                                 const struct addr_spec *spec);

/* Stops accepting and frees the listener. */
void listener_destroy(struct listener *l);

#endif
