/*
 * The admin HTTP API on the daemon's own event loop (libevent's evhttp):
 * listening, the admin connections (request deadline, cap, held requests),
 * routing and the reply helpers. Every handler answers at once except GET
 * /health (admin_health.c), rule changes and proxy switches
 * (admin_rules.c), which wait their turn in a queue, and /upstream/
 * (admin_upstream.c), which waits for memcached. /stats, /metrics and
 * /events are admin_stats.c, GET / (the dashboard) admin_page.c. See
 * docs/admin-api.md.
 */
#include "mcfault/admin.h"

#include "admin_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include <netdb.h>

#include "mcfault/addr.h"
#include "mcfault/listener.h"
#include "mcfault/log.h"

/* A rule document, not a dump: evhttp answers 413 beyond this. */
#define ADMIN_BODY_MAX (1024 * 1024)
/* Request line and headers; curl and Prometheus send well under 1 KiB. */
#define ADMIN_HEADERS_MAX (16 * 1024)
/* A client that goes silent mid-request (or idles on keep-alive) is
 * dropped after this long (evhttp's timeout: it restarts at every byte). */
#define ADMIN_TIMEOUT_S 10
/*
 * A whole request (line, headers, body) must arrive within this long of
 * the accept, or of the end of the reply before it on a keep-alive
 * connection; then a 408 and the close. evhttp's timeout only fires on
 * silence, so a client sending a byte every few seconds would otherwise
 * hold its connection (and up to ADMIN_BODY_MAX) forever. 10 s moves
 * 1 MiB even at 1 Mbit/s; the API belongs on the loopback.
 */
#define ADMIN_REQUEST_DEADLINE_S 10
/*
 * Admin connections open at once. Each holds a descriptor and up to
 * ADMIN_BODY_MAX of request; tests, scrapers and dashboards need a
 * handful. Past it a new connection gets a 503 and is closed at once; the
 * open ones are untouched.
 */
#define ADMIN_CONNS_MAX 64
#define ADMIN_BACKLOG 64
/* "PORT" alone binds here: the API changes what the proxy does, so it is
 * not exposed beyond the host unless asked. */
#define ADMIN_DEFAULT_HOST "127.0.0.1"

/*
 * One admin connection, tracked from the accept (evhttp_set_bevcb hands us
 * its bufferevent) to evhttp's close callback: for the request deadline,
 * the connection cap, and the request it may have held.
 */
struct conn_track {
    struct admin *ad;
    struct bufferevent *bev;
    struct evhttp_connection *evcon; /* NULL until attached */
    struct event *timer;             /* the attach, then the deadline */
    struct held *held;               /* a request answered later */
    bool attached;
    bool refused; /* over ADMIN_CONNS_MAX: 503 and closed at the attach */
    struct conn_track *prev;
    struct conn_track *next;
};

/* --------------------------------------------------------------------- */
/* Output helpers                                                          */

/* Appends s[0..n) as a JSON string, quoted, escaped as log_json_char
 * does: well-formed UTF-8 as it is, every other byte outside printable
 * ASCII as \u00HH, so any bytes (a glob may hold NUL) give valid JSON. */
void admin_json_str(struct evbuffer *b, const char *s, size_t n)
{
    char buf[256];
    size_t o = 0;
    size_t i = 0;

    buf[o++] = '"';
    while (i < n) {
        size_t used;
        if (o + LOG_JSON_CHAR_MAX + 1 > sizeof(buf)) {
            evbuffer_add(b, buf, o);
            o = 0;
        }
        o += log_json_char(s + i, n - i, &used, buf + o);
        i += used;
    }
    buf[o++] = '"';
    evbuffer_add(b, buf, o);
}

void admin_json_cstr(struct evbuffer *b, const char *s)
{
    admin_json_str(b, s, strlen(s));
}

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    }
    return "?";
}

/* Sends body (may be NULL) with status code and frees it. */
void admin_reply(struct evhttp_request *req, int code, const char *ctype,
                 struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    if (log_enabled(LOG_INFO)) {
        char uri[512];
        const char *u = evhttp_request_get_uri(req);
        log_msg(LOG_INFO, "admin: %s %s: %d",
                method_name(evhttp_request_get_command(req)),
                log_printable(u, strlen(u), uri, sizeof(uri)), code);
    }
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (body != NULL && evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        /* libevent 2.1 sends a HEAD reply's body all the same (only its
         * Content-Length left out), which a keep-alive client then reads
         * as the next reply: the length is said, the body not sent. */
        char len[24];
        snprintf(len, sizeof(len), "%zu", evbuffer_get_length(body));
        evhttp_add_header(h, "Content-Length", len);
        evbuffer_free(body);
        body = NULL;
    }
    evhttp_send_reply(req, code, NULL, body);
    if (body != NULL) {
        evbuffer_free(body);
    }
}

void admin_reply_json(struct evhttp_request *req, int code,
                      struct evbuffer *body)
{
    evbuffer_add(body, "\n", 1);
    admin_reply(req, code, "application/json", body);
}

void admin_reply_error(struct evhttp_request *req, int code, const char *fmt,
                       ...)
{
    struct evbuffer *b = evbuffer_new();
    char msg[1024];
    va_list ap;

    if (b == NULL) {
        admin_reply(req, 500, "application/json", NULL);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    evbuffer_add_printf(b, "{\"error\":");
    admin_json_cstr(b, msg);
    evbuffer_add(b, "}", 1);
    admin_reply_json(req, code, b);
}

/* --------------------------------------------------------------------- */
/* Connections: the request deadline, the cap, held requests              */

/*
 * Holds req, the request on_request routes now, to answer it later: the
 * close of its connection will tell h. Returns -1 when the connection is
 * not tracked (out of memory at its accept); the caller answers at once.
 */
int admin_held_take(struct admin *ad, struct held *h,
                    struct evhttp_request *req)
{
    struct conn_track *c = ad->routing;

    if (c == NULL || c->held != NULL) {
        return -1;
    }
    h->req = req;
    h->conn = c;
    c->held = h;
    return 0;
}

/* Lets go of h and returns its request: NULL when libevent freed it,
 * else to be answered now (which frees it). */
struct evhttp_request *admin_held_release(struct held *h)
{
    struct evhttp_request *req = h->req;

    if (h->conn != NULL) {
        h->conn->held = NULL;
        h->conn = NULL;
    }
    h->req = NULL;
    return req;
}

static void conn_free(struct conn_track *c)
{
    struct admin *ad = c->ad;

    if (c->held != NULL) {
        c->held->conn = NULL;
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        ad->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    ad->nconns--;
    event_free(c->timer);
    if (!c->attached) {
        bufferevent_decref(c->bev); /* the reference on_accept_bev took */
    }
    free(c);
}

/*
 * evhttp frees the connection (whoever closed it): a request held on it
 * and still attached to it goes with it; one libevent detached (the
 * client left while we held it) stays ours.
 */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct conn_track *c = arg;
    struct held *h = c->held;

    if (h != NULL && h->req != NULL &&
        evhttp_request_get_connection(h->req) == evcon) {
        h->req = NULL;
    }
    conn_free(c);
}

/*
 * Writes a whole reply {"error": msg} straight to the connection's socket
 * just before evhttp closes it: evhttp has no way to answer a request it
 * has not finished reading. Best effort (the deadline runs only between
 * replies, so the socket's buffer is empty then).
 */
static void conn_say(struct conn_track *c, int code, const char *reason,
                     const char *msg)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    char body[256];
    char buf[512];
    int nb = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", msg);
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     code, reason, nb, body);

    /* Not behind a reply of evhttp's own (a 400 or 413) still queued. */
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
        return;
    }
    if (fd >= 0 && n > 0 && (size_t)n < sizeof(buf)) {
        (void)send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
}

/* Arms the deadline for the next request on c. */
static void conn_arm(struct conn_track *c)
{
    struct timeval tv = {.tv_sec = ADMIN_REQUEST_DEADLINE_S, .tv_usec = 0};

    evtimer_add(c->timer, &tv);
}

/*
 * Right after the accept, before any byte of the connection is read:
 * finds its evhttp_connection (the argument evhttp gives the bufferevent's
 * callbacks, in libevent 2.1 as in 2.2; checked against the bufferevent),
 * then refuses it over the cap or arms its deadline.
 */
static void conn_attach(struct conn_track *c)
{
    bufferevent_event_cb eventcb = NULL;
    void *cbarg = NULL;

    bufferevent_getcb(c->bev, NULL, NULL, &eventcb, &cbarg);
    if (eventcb == NULL || cbarg == NULL ||
        evhttp_connection_get_bufferevent(cbarg) != c->bev) {
        /* evhttp gave up on it already (out of memory) and freed it:
         * our reference kept it readable until now. */
        conn_free(c);
        return;
    }
    c->evcon = cbarg;
    c->attached = true;
    bufferevent_decref(c->bev); /* the close callback tells us from now */
    evhttp_connection_set_closecb(c->evcon, on_conn_close, c);
    if (c->refused) {
        log_msg(LOG_INFO, "admin: %d connections open: refusing another",
                ADMIN_CONNS_MAX);
        conn_say(c, 503, "Service Unavailable", "too many admin connections");
        evhttp_connection_free(c->evcon); /* calls on_conn_close */
        return;
    }
    conn_arm(c);
}

static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn_track *c = arg;
    (void)fd;
    (void)what;

    if (!c->attached) {
        conn_attach(c);
        return;
    }
    log_msg(LOG_INFO, "admin: request not complete within %ds: closing",
            ADMIN_REQUEST_DEADLINE_S);
    conn_say(c, 408, "Request Timeout", "request not complete in time");
    evhttp_connection_free(c->evcon); /* calls on_conn_close */
}

/*
 * evhttp_set_bevcb: evhttp accepted a connection and asks for its
 * bufferevent. We make it (as evhttp would: a socket bufferevent, the fd
 * set by evhttp) to know the connection from its first moment, and take a
 * reference so it stays readable until conn_attach runs, at the end of
 * this loop iteration (event_active), before any of its I/O. Returning
 * NULL (out of memory) lets evhttp make one: that connection goes
 * untracked.
 */
static struct bufferevent *on_accept_bev(struct event_base *base, void *arg)
{
    struct admin *ad = arg;
    struct conn_track *c = calloc(1, sizeof(*c));
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);

    if (c == NULL || bev == NULL ||
        (c->timer = evtimer_new(base, on_conn_timer, c)) == NULL) {
        if (bev != NULL) {
            bufferevent_free(bev);
        }
        free(c);
        return NULL;
    }
    bufferevent_incref(bev);
    c->ad = ad;
    c->bev = bev;
    c->refused = ad->nconns >= ADMIN_CONNS_MAX;
    c->next = ad->conns;
    if (ad->conns != NULL) {
        ad->conns->prev = c;
    }
    ad->conns = c;
    ad->nconns++;
    event_active(c->timer, EV_TIMEOUT, 1);
    return bev;
}

/* The tracked connection a request came on, NULL when untracked. */
static struct conn_track *conn_of(struct admin *ad, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);

    for (struct conn_track *c = ad->conns; evcon != NULL && c != NULL;
         c = c->next) {
        if (c->evcon == evcon) {
            return c;
        }
    }
    return NULL;
}

/* The reply to a request has been written: the deadline of the next
 * request on the connection starts. */
static void on_reply_sent(struct evhttp_request *req, void *arg)
{
    (void)req;
    conn_arm(arg);
}

/* --------------------------------------------------------------------- */
/* Routing                                                                 */

typedef void (*handler_fn)(struct admin *ad, struct evhttp_request *req,
                           struct evkeyvalq *params);

struct route {
    const char *path;
    enum evhttp_cmd_type method; /* GET also answers HEAD */
    handler_fn fn;
};

static const struct route routes[] = {
    {"/", EVHTTP_REQ_GET, admin_page},
    {"/health", EVHTTP_REQ_GET, admin_health},
    {"/rules", EVHTTP_REQ_GET, admin_rules_get},
    {"/rules", EVHTTP_REQ_PUT, admin_rules_put},
    {"/rules", EVHTTP_REQ_DELETE, admin_rules_delete},
    {"/rules", EVHTTP_REQ_POST, admin_rules_post},
    {"/reload", EVHTTP_REQ_POST, admin_reload},
    {"/reset", EVHTTP_REQ_POST, admin_reset},
    {"/upstream/command", EVHTTP_REQ_POST, admin_upstream_command},
    {"/upstream/stats", EVHTTP_REQ_GET, admin_upstream_stats},
    {"/stats", EVHTTP_REQ_GET, admin_stats},
    {"/metrics", EVHTTP_REQ_GET, admin_metrics},
    {"/events", EVHTTP_REQ_GET, admin_events},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* The proxy ?proxy=NAME names, or NULL for all. Replies 404 and returns
 * -1 when it names none. */
int admin_target_proxy(struct admin *ad, struct evhttp_request *req,
                       struct evkeyvalq *params, const char **name,
                       struct app_proxy **ap)
{
    *name = evhttp_find_header(params, "proxy");
    *ap = NULL;
    if (*name != NULL && (*ap = app_find_proxy(ad->a, *name)) == NULL) {
        admin_reply_error(req, 404, "no proxy named '%s'", *name);
        return -1;
    }
    return 0;
}

/* Replies 405 with the Allow header listing what path accepts. */
static void reply_405(struct evhttp_request *req, const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    admin_reply_error(req, 405, "method not allowed (allowed: %s)", allow);
}

/* The rule (or proxy: what) name in a path, seg[0..seg_len)
 * percent-decoded; NULL after replying 400 or 500. The caller frees it. */
static char *path_name_decode(struct evhttp_request *req, const char *seg,
                              size_t seg_len, const char *what)
{
    char *raw = malloc(seg_len + 1);
    size_t len = 0;
    char *name = NULL;

    if (raw != NULL) {
        memcpy(raw, seg, seg_len);
        raw[seg_len] = '\0';
        name = evhttp_uridecode(raw, 0, &len);
        free(raw);
    }
    if (name == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return NULL;
    }
    if (len != strlen(name)) {
        admin_reply_error(req, 400, "a %s name cannot contain NUL", what);
        free(name);
        return NULL;
    }
    return name;
}

#define RULES_PREFIX "/rules/"
#define RULES_PREFIX_LEN (sizeof(RULES_PREFIX) - 1)

/*
 * PREFIX NAME /enable or /disable, POST only: the shape of the rule and
 * proxy switches (NAME percent-encoded; for rules it may hold '/'). Returns
 * NULL when path is not of that shape (route it elsewhere); else the
 * decoded NAME (the caller frees it) with *enable set, or NULL with
 * *answered set when the request was answered (405, a bad NAME).
 */
char *admin_switch_path(struct evhttp_request *req, const char *path,
                        const char *prefix, size_t prefix_len, const char *what,
                        bool *enable, bool *answered)
{
    const char *seg = path + prefix_len;
    const char *slash;

    *answered = false;
    if (strncmp(path, prefix, prefix_len) != 0 ||
        (slash = strrchr(path, '/')) == NULL || slash <= seg) {
        return NULL;
    }
    if (strcmp(slash, "/enable") == 0) {
        *enable = true;
    } else if (strcmp(slash, "/disable") == 0) {
        *enable = false;
    } else {
        return NULL;
    }
    *answered = true;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        reply_405(req, "POST");
        return NULL;
    }
    return path_name_decode(req, seg, (size_t)(slash - seg), what);
}

/*
 * POST /rules/NAME/enable and /rules/NAME/disable. Returns false when path
 * is not of that shape.
 */
static bool route_toggle(struct admin *ad, struct evhttp_request *req,
                         const char *path)
{
    bool enable;
    bool answered;
    char *name = admin_switch_path(req, path, RULES_PREFIX, RULES_PREFIX_LEN,
                                   "rule", &enable, &answered);

    if (name != NULL) {
        admin_rules_toggle(ad, req, name, enable);
    }
    return name != NULL || answered;
}

/*
 * GET and DELETE /rules/NAME (NAME percent-encoded, non-empty; a '/' in
 * it is part of it). Returns false when path is not of that shape.
 */
static bool route_rule(struct admin *ad, struct evhttp_request *req,
                       const char *path, struct evkeyvalq *params)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    const char *seg = path + RULES_PREFIX_LEN;
    char *name;

    if (strncmp(path, RULES_PREFIX, RULES_PREFIX_LEN) != 0 || *seg == '\0') {
        return false;
    }
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD && m != EVHTTP_REQ_DELETE) {
        reply_405(req, "GET, HEAD, DELETE");
        return true;
    }
    if ((name = path_name_decode(req, seg, strlen(seg), "rule")) == NULL) {
        return true;
    }
    if (m == EVHTTP_REQ_DELETE) {
        admin_rule_delete(ad, req, params, name); /* takes name */
        return true;
    }
    admin_rule_get(ad, req, params, name);
    free(name);
    return true;
}

static void route(struct admin *ad, struct evhttp_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    struct evkeyvalq params;
    char allow[64] = "";
    bool known = false;

    /* An empty list (evhttp_parse_query_str fills it when there is a
     * query). */
    params.tqh_first = NULL;
    params.tqh_last = &params.tqh_first;
    if (path == NULL || *path == '\0') {
        admin_reply_error(req, 400, "bad request target");
        return;
    }
    if (query != NULL && evhttp_parse_query_str(query, &params) != 0) {
        evhttp_clear_headers(&params);
        admin_reply_error(req, 400, "bad query string");
        return;
    }
    for (size_t i = 0; i < NROUTES; i++) {
        const struct route *r = &routes[i];
        if (strcmp(r->path, path) != 0) {
            continue;
        }
        known = true;
        if (r->method == m ||
            (r->method == EVHTTP_REQ_GET && m == EVHTTP_REQ_HEAD)) {
            r->fn(ad, req, &params);
            evhttp_clear_headers(&params);
            return;
        }
        size_t used = strlen(allow);
        snprintf(allow + used, sizeof(allow) - used, "%s%s%s",
                 used > 0 ? ", " : "", method_name(r->method),
                 r->method == EVHTTP_REQ_GET ? ", HEAD" : "");
    }
    if (known) {
        reply_405(req, allow);
    } else if (!route_toggle(ad, req, path) &&
               !route_rule(ad, req, path, &params) &&
               !admin_route_proxy(ad, req, path)) {
        admin_reply_error(req, 404, "no such endpoint: %.200s", path);
    }
    evhttp_clear_headers(&params);
}

/* evhttp read a whole request. */
static void on_request(struct evhttp_request *req, void *arg)
{
    struct admin *ad = arg;
    struct conn_track *c = conn_of(ad, req);

    /* No deadline while it is answered (a held request may take a while);
     * the next request's starts when this reply has gone. */
    if (c != NULL) {
        evtimer_del(c->timer);
        evhttp_request_set_on_complete_cb(req, on_reply_sent, c);
    }
    ad->routing = c;
    route(ad, req);
    ad->routing = NULL;
}

/* --------------------------------------------------------------------- */
/* Lifecycle                                                               */

/* "ADDR:PORT", "[V6]:PORT", or "PORT" alone (ADMIN_DEFAULT_HOST). */
static int admin_parse_addr(const char *s, struct addr_spec *spec)
{
    size_t n = strlen(s);

    if (n > 0 && n < ADDR_PORT_MAX && strspn(s, "0123456789") == n) {
        char buf[sizeof(ADMIN_DEFAULT_HOST) + ADDR_PORT_MAX + 1];
        snprintf(buf, sizeof(buf), "%s:%s", ADMIN_DEFAULT_HOST, s);
        return addr_parse(buf, "", spec);
    }
    return addr_parse(s, "", spec);
}

struct admin *admin_create(struct app *a, const char *addr)
{
    struct addr_spec spec;
    struct sockaddr_storage ss;
    socklen_t len;
    struct admin *ad;
    struct evconnlistener *evl;
    int rc;

    if (admin_parse_addr(addr, &spec) != 0) {
        log_msg(LOG_ERROR,
                "admin API: bad address '%s' (want ADDR:PORT or "
                "PORT)",
                addr);
        return NULL;
    }
    if ((rc = addr_resolve(&spec, 1, &ss, &len)) != 0) {
        log_msg(LOG_ERROR, "admin API: %s:%s: %s", spec.host, spec.port,
                gai_strerror(rc));
        return NULL;
    }
    if ((ad = calloc(1, sizeof(*ad))) == NULL ||
        (ad->http = evhttp_new(a->base)) == NULL) {
        log_msg(LOG_ERROR, "admin API: out of memory");
        free(ad);
        return NULL;
    }
    ad->a = a;
    ad->changes_tail = &ad->changes;
    clock_gettime(CLOCK_MONOTONIC, &ad->started);
    evl = evconnlistener_new_bind(
        a->base, NULL, NULL,
        LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        ADMIN_BACKLOG, (struct sockaddr *)&ss, (int)len);
    if (evl == NULL) {
        log_msg(LOG_ERROR, "admin API: listen %s:%s: %s", spec.host, spec.port,
                strerror(errno));
        goto fail;
    }
    if (evhttp_bind_listener(ad->http, evl) == NULL) {
        evconnlistener_free(evl);
        log_msg(LOG_ERROR, "admin API: out of memory");
        goto fail;
    }
    evhttp_set_max_body_size(ad->http, ADMIN_BODY_MAX);
    evhttp_set_max_headers_size(ad->http, ADMIN_HEADERS_MAX);
    evhttp_set_timeout(ad->http, ADMIN_TIMEOUT_S);
    /* Every method but CONNECT reaches on_request, which answers 405 with
     * Allow for the ones a path does not take (evhttp would say 501). */
    evhttp_set_allowed_methods(
        ad->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                      EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                      EVHTTP_REQ_TRACE | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(ad->http, on_request, ad);
    evhttp_set_bevcb(ad->http, on_accept_bev, ad);
    log_msg(LOG_INFO, "admin API: listening on %s:%s", spec.host, spec.port);
    return ad;
fail:
    evhttp_free(ad->http);
    free(ad);
    return NULL;
}

void admin_destroy(struct admin *ad)
{
    if (ad == NULL) {
        return;
    }
    /* Every connection closes: on_conn_close forgets the requests held on
     * them. What is left held afterwards was detached from its
     * connection: ours to free. */
    evhttp_free(ad->http);
    while (ad->conns != NULL) {
        conn_free(ad->conns); /* never attached */
    }
    admin_upstream_free_all(ad);
    admin_health_free_all(ad);
    admin_changes_free_all(ad);
    free(ad);
}
