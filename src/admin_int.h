/*
 * What the admin API's files share (admin.c: routing, rules, stats;
 * admin_upstream.c: the side connection to memcached; admin_page.c: the
 * dashboard): the API's state, requests answered later, and the reply
 * helpers. Not a public header.
 */
#ifndef MCFAULT_ADMIN_INT_H
#define MCFAULT_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "mcfault/app.h"

struct health;
struct change;
struct conn_track;
struct upcall;

/*
 * A request answered later (GET /health, a queued rule change, a command
 * sent upstream). req turns NULL when libevent frees it with its
 * connection; a request libevent detached from its connection (the client
 * left while we held it) stays: it is ours, and replying to it frees it.
 */
struct held {
    struct evhttp_request *req;
    struct conn_track *conn; /* NULL once the connection is gone */
};

struct admin {
    struct app *a;
    struct evhttp *http;
    struct health *checks;  /* GET /health requests waiting for probes */
    struct upcall *upcalls; /* /upstream/ requests waiting for memcached */
    struct conn_track *conns;
    size_t nconns;
    struct conn_track *routing; /* the connection of the request on_request
                                   routes now; NULL outside it */
    /* Rule changes, in arrival order; the head's document may be being
     * built on a worker thread (building). */
    struct change *changes;
    struct change **changes_tail;
    bool building;
    struct timespec started;
};

/* Sends body (may be NULL) with status code and content type, logs the
 * request at -v, and frees body. */
void admin_reply(struct evhttp_request *req, int code, const char *ctype,
                 struct evbuffer *body);

/* admin_reply of a JSON body (a newline is added). */
void admin_reply_json(struct evhttp_request *req, int code,
                      struct evbuffer *body);

/* Replies {"error": "..."} with status code. */
void admin_reply_error(struct evhttp_request *req, int code, const char *fmt,
                       ...) __attribute__((format(printf, 3, 4)));

/* Appends s[0..n) as a JSON string, quoted, escaped as log_json_char
 * does, so that any bytes give valid JSON. */
void admin_json_str(struct evbuffer *b, const char *s, size_t n);
void admin_json_cstr(struct evbuffer *b, const char *s);

/*
 * Holds req, the request being routed now, to answer it later (the close
 * of its connection tells h). Returns -1 when that is not possible (an
 * untracked connection, or one that holds a request already); the caller
 * answers at once.
 */
int admin_held_take(struct admin *ad, struct held *h,
                    struct evhttp_request *req);

/* Lets go of h and returns its request: NULL when libevent freed it, else
 * to be answered now (which frees it). */
struct evhttp_request *admin_held_release(struct held *h);

/*
 * The proxy ?proxy=NAME names (*ap, *name), or NULL for none given.
 * Replies 404 and returns -1 when it names no proxy.
 */
int admin_target_proxy(struct admin *ad, struct evhttp_request *req,
                       struct evkeyvalq *params, const char **name,
                       struct app_proxy **ap);

/* POST /upstream/command and GET /upstream/stats (admin_upstream.c). */
void admin_upstream_command(struct admin *ad, struct evhttp_request *req,
                            struct evkeyvalq *params);
void admin_upstream_stats(struct admin *ad, struct evhttp_request *req,
                          struct evkeyvalq *params);

/* GET /: the dashboard page (admin_page.c). */
void admin_page(struct admin *ad, struct evhttp_request *req,
                struct evkeyvalq *params);

/* Drops every /upstream/ request in progress (admin_destroy). */
void admin_upstream_free_all(struct admin *ad);

#endif
