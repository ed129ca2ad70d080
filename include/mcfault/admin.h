/*
 * The admin HTTP API (libevent's evhttp): health, rules, reload, reset,
 * stats, Prometheus metrics, recent fault events and commands sent straight
 * to memcached. Off unless --admin or the file's admin: is set. See
 * docs/admin-api.md.
 */
#ifndef MCFAULT_ADMIN_H
#define MCFAULT_ADMIN_H

#include "mcfault/app.h"

struct admin;

/*
 * Binds the API on addr ("ADDR:PORT"; "PORT" alone binds 127.0.0.1) in
 * a->base. Returns NULL with the reason logged when it cannot.
 */
struct admin *admin_create(struct app *a, const char *addr);

/* Stops the API and frees it. NULL is allowed. */
void admin_destroy(struct admin *ad);

#endif
