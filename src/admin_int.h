/*
 * What the admin API's files share (admin.c: the server, routing, replies;
 * admin_health.c, admin_rules.c, admin_stats.c, admin_upstream.c,
 * admin_page.c: the endpoints): the API's state, requests answered later,
 * the reply helpers and the handlers admin.c routes to. Not a public
 * header.
 */
#ifndef MCFAULT_ADMIN_INT_H
#define MCFAULT_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "mcfault/app.h"

struct health;
struct change;
struct conn_track;
struct upcall;
struct rule;

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

/*
 * PREFIX NAME /enable or /disable, POST only: the shape of the rule and
 * proxy switches (NAME percent-encoded; for rules it may hold '/'). Returns
 * NULL when path is not of that shape (route it elsewhere); else the
 * decoded NAME (the caller frees it) with *enable set, or NULL with
 * *answered set when the request was answered (405, a bad NAME).
 */
char *admin_switch_path(struct evhttp_request *req, const char *path,
                        const char *prefix, size_t prefix_len, const char *what,
                        bool *enable, bool *answered);

/*
 * The handlers admin.c's route table calls: each answers req at once, or
 * holds it (admin_held_take) and answers it later; params is the parsed
 * query string, owned by the caller.
 */

/* GET /health: probes every proxy's upstream, then 200 or 503
 * (admin_health.c). */
void admin_health(struct admin *ad, struct evhttp_request *req,
                  struct evkeyvalq *params);

/* Drops every GET /health in progress (admin_destroy); a request still
 * held is freed unanswered. */
void admin_health_free_all(struct admin *ad);

/* GET /rules: every proxy's rules (or ?proxy's) as JSON (admin_rules.c). */
void admin_rules_get(struct admin *ad, struct evhttp_request *req,
                     struct evkeyvalq *params);

/* PUT /rules, DELETE /rules, POST /rules, POST /reload, POST /reset: each
 * queues a rule change, answered when it is applied (admin_rules.c). */
void admin_rules_put(struct admin *ad, struct evhttp_request *req,
                     struct evkeyvalq *params);
void admin_rules_delete(struct admin *ad, struct evhttp_request *req,
                        struct evkeyvalq *params);
void admin_rules_post(struct admin *ad, struct evhttp_request *req,
                      struct evkeyvalq *params);
void admin_reload(struct admin *ad, struct evhttp_request *req,
                  struct evkeyvalq *params);
void admin_reset(struct admin *ad, struct evhttp_request *req,
                 struct evkeyvalq *params);

/* GET /rules/NAME: the first proxy's rule of that name (or ?proxy's), or
 * 404 (admin_rules.c). name stays the caller's. */
void admin_rule_get(struct admin *ad, struct evhttp_request *req,
                    struct evkeyvalq *params, const char *name);

/* DELETE /rules/NAME: queues the removal (admin_rules.c); takes name (a
 * malloc'd string, freed here or with the change). */
void admin_rule_delete(struct admin *ad, struct evhttp_request *req,
                       struct evkeyvalq *params, char *name);

/* POST /rules/NAME/enable|disable: queues the switch (admin_rules.c);
 * takes name (percent-decoded, malloc'd). */
void admin_rules_toggle(struct admin *ad, struct evhttp_request *req,
                        char *name, bool enabled);

/*
 * POST /proxies/NAME/enable and /proxies/NAME/disable: queued with the
 * rule changes (admin_rules.c). Returns false when path is not of that
 * shape (req untouched), true when req was answered or queued.
 */
bool admin_route_proxy(struct admin *ad, struct evhttp_request *req,
                       const char *path);

/* Drops every queued rule change (admin_destroy); held requests are freed
 * unanswered, and the head, while a worker builds it, is left to it. */
void admin_changes_free_all(struct admin *ad);

/* The schedules' clock, as conn.c reads it for rules_subject.now_us:
 * CLOCK_MONOTONIC in microseconds (admin_rules.c). */
uint64_t admin_now_us(void);

/*
 * Appends ,"in_force":BOOL (r enabled and its schedule has it on at now)
 * and, with next_too, ,"next_change_ms": when that next changes, or null
 * when it never does by itself (admin_rules.c).
 */
void admin_json_in_force(struct evbuffer *b, const struct rule *r, uint64_t now,
                         bool next_too);

/* GET /stats (JSON), GET /metrics (Prometheus text) and GET /events
 * (?since=SEQ: the fault events after it) (admin_stats.c). */
void admin_stats(struct admin *ad, struct evhttp_request *req,
                 struct evkeyvalq *params);
void admin_metrics(struct admin *ad, struct evhttp_request *req,
                   struct evkeyvalq *params);
void admin_events(struct admin *ad, struct evhttp_request *req,
                  struct evkeyvalq *params);

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
