/*
 * The admin HTTP API on the daemon's own event loop (libevent's evhttp):
 * every handler answers at once except GET /health, which holds its request
 * while non-blocking connects probe the upstreams, rule changes and proxy
 * switches (POST /proxies/NAME/disable|enable), which wait their turn in a
 * queue, and /upstream/ (admin_upstream.c), which waits for memcached. GET / is
 * the dashboard page (admin_page.c). See docs/admin-api.md.
 */
#include "mcfault/admin.h"

#include "admin_int.h"

#include <errno.h>
#include <inttypes.h>
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

#include <arpa/inet.h>
#include <netdb.h>

#include "mcfault/addr.h"
#include "mcfault/config.h"
#include "mcfault/listener.h"
#include "mcfault/log.h"
#include "mcfault/rules.h"
#include "mcfault/stats.h"
#include "mcfault/worker.h"

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
/* How long GET /health waits for an upstream to accept a connection. */
#define HEALTH_TIMEOUT_MS 1000
/* `since` of GET /events: a uint64_t has at most 20 digits. */
#define SINCE_DIGITS_MAX 20

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

/* One upstream reachability probe: a non-blocking connect. */
struct probe {
    struct health *h;
    evutil_socket_t fd; /* -1 when not (or no longer) connecting */
    struct event *ev;
    bool ok;
    int err;         /* errno of a failed connect, 0 otherwise */
    const char *why; /* or a fixed reason */
};

/* A GET /health in progress: one probe per proxy, in a->proxies order
 * (proxies never change while mcfault runs). */
struct health {
    struct admin *ad;
    struct held held;
    struct probe *probes;
    size_t n;
    size_t pending;
    struct health *prev;
    struct health *next;
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

/* Appends a Prometheus label value: backslash, quote and newline escaped
 * (exposition format 0.0.4); names hold no other control bytes. */
static void prom_label(struct evbuffer *b, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\') {
            evbuffer_add(b, "\\\\", 2);
        } else if (*s == '"') {
            evbuffer_add(b, "\\\"", 2);
        } else if (*s == '\n') {
            evbuffer_add(b, "\\n", 2);
        } else {
            evbuffer_add(b, s, 1);
        }
    }
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

/* Replies {"error": what, "problems": [...]} (a refused change). */
static void reply_problems(struct evhttp_request *req, int code,
                           const char *what, const struct config_errors *errs)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        admin_reply(req, 500, "application/json", NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"error\":");
    admin_json_cstr(b, what);
    evbuffer_add_printf(b, ",\"problems\":[");
    for (size_t i = 0; i < errs->n; i++) {
        evbuffer_add_printf(b, "%s", i > 0 ? "," : "");
        admin_json_cstr(b, errs->msgs[i]);
    }
    evbuffer_add(b, "]}", 2);
    admin_reply_json(req, code, b);
}

/* Replies {"ok":true,"rules":N} (rules in force now, over every proxy). */
static void reply_ok_rules(struct admin *ad, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        admin_reply(req, 500, "application/json", NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"ok\":true,\"rules\":%zu}",
                        app_rule_count(ad->a));
    admin_reply_json(req, 200, b);
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
/* GET /health                                                             */

static void health_free(struct health *h)
{
    struct admin *ad = h->ad;

    for (size_t i = 0; i < h->n; i++) {
        struct probe *p = &h->probes[i];
        if (p->ev != NULL) {
            event_free(p->ev);
        }
        if (p->fd >= 0) {
            evutil_closesocket(p->fd);
        }
    }
    admin_held_release(&h->held);
    if (h->prev != NULL) {
        h->prev->next = h->next;
    } else if (ad->checks == h) {
        ad->checks = h->next;
    }
    if (h->next != NULL) {
        h->next->prev = h->prev;
    }
    free(h->probes);
    free(h);
}

/* Every probe has answered: replies 200 when every upstream accepted a
 * connection, 503 otherwise, and frees h. */
static void health_finish(struct health *h)
{
    struct app *a = h->ad->a;
    struct evhttp_request *req = admin_held_release(&h->held);
    struct evbuffer *b = req != NULL ? evbuffer_new() : NULL;
    bool all = true;

    if (b != NULL) {
        evbuffer_add_printf(b, "{\"proxies\":[");
        for (size_t i = 0; i < h->n; i++) {
            const struct app_proxy *ap = &a->proxies[i];
            const struct probe *p = &h->probes[i];
            all = all && p->ok;
            evbuffer_add_printf(b, "%s{\"name\":", i > 0 ? "," : "");
            admin_json_cstr(b, ap->name);
            evbuffer_add_printf(b, ",\"listen\":");
            admin_json_cstr(b, ap->listen);
            evbuffer_add_printf(b, ",\"upstream\":");
            admin_json_cstr(b, ap->upstream);
            evbuffer_add_printf(b, ",\"enabled\":%s,\"upstream_reachable\":%s",
                                ap->px.disabled ? "false" : "true",
                                p->ok ? "true" : "false");
            if (!p->ok) {
                evbuffer_add_printf(b, ",\"error\":");
                admin_json_cstr(b, p->why != NULL ? p->why : strerror(p->err));
            }
            evbuffer_add(b, "}", 1);
        }
        evbuffer_add_printf(b, "],\"ok\":%s}", all ? "true" : "false");
    }
    health_free(h);
    if (req == NULL) {
        return; /* the client went away and libevent freed the request */
    }
    if (b == NULL) {
        admin_reply(req, 500, "application/json", NULL);
        return;
    }
    admin_reply_json(req, all ? 200 : 503, b);
}

static void on_probe(evutil_socket_t fd, short what, void *arg);

/* Starts probing px's upstream; a probe that ends at once (unresolved,
 * refused synchronously) leaves h->pending unchanged. */
static void probe_start(struct health *h, struct probe *p,
                        const struct proxy *px)
{
    struct event_base *base = h->ad->a->base;
    evutil_socket_t fd;

    p->h = h;
    p->fd = -1;
    if (px->upstream_len == 0) {
        p->why = "upstream address not resolved (retried at the next "
                 "client connection)";
        return;
    }
    fd = socket(px->upstream.ss_family,
                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        p->err = errno;
        return;
    }
    if (connect(fd, (const struct sockaddr *)&px->upstream, px->upstream_len) ==
        0) {
        evutil_closesocket(fd);
        p->ok = true;
        return;
    }
    if (errno != EINPROGRESS) {
        p->err = errno;
        evutil_closesocket(fd);
        return;
    }
    struct timeval tv = {.tv_sec = HEALTH_TIMEOUT_MS / 1000,
                         .tv_usec = (HEALTH_TIMEOUT_MS % 1000) * 1000};
    p->ev = event_new(base, fd, EV_WRITE, on_probe, p);
    if (p->ev == NULL || event_add(p->ev, &tv) != 0) {
        if (p->ev != NULL) {
            event_free(p->ev);
            p->ev = NULL;
        }
        evutil_closesocket(fd);
        p->why = "out of memory";
        return;
    }
    p->fd = fd;
    h->pending++;
}

static void on_probe(evutil_socket_t fd, short what, void *arg)
{
    struct probe *p = arg;
    struct health *h = p->h;

    if (what & EV_TIMEOUT) {
        p->why = "no answer within 1s";
    } else {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
            err = errno;
        }
        p->ok = err == 0;
        p->err = err;
    }
    event_free(p->ev);
    p->ev = NULL;
    evutil_closesocket(p->fd);
    p->fd = -1;
    if (--h->pending == 0) {
        health_finish(h);
    }
}

static void h_health(struct admin *ad, struct evhttp_request *req,
                     struct evkeyvalq *params)
{
    struct app *a = ad->a;
    struct health *h = calloc(1, sizeof(*h));
    (void)params;

    if (h == NULL ||
        (h->probes = calloc(a->nproxies + 1, sizeof(*h->probes))) == NULL ||
        admin_held_take(ad, &h->held, req) != 0) {
        if (h != NULL) {
            free(h->probes);
        }
        free(h);
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    h->ad = ad;
    h->n = a->nproxies;
    h->next = ad->checks;
    if (ad->checks != NULL) {
        ad->checks->prev = h;
    }
    ad->checks = h;
    for (size_t i = 0; i < h->n; i++) {
        probe_start(h, &h->probes[i], &a->proxies[i].px);
    }
    if (h->pending == 0) {
        health_finish(h);
    }
}

/* --------------------------------------------------------------------- */
/* Rules                                                                   */

static void json_globs(struct evbuffer *b, const struct rule_glob *g, size_t n)
{
    evbuffer_add(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            evbuffer_add(b, ",", 1);
        }
        admin_json_str(b, g[i].pat, g[i].len);
    }
    evbuffer_add(b, "]", 1);
}

/* The schedules' clock, as conn.c reads it for rules_subject.now_us:
 * CLOCK_MONOTONIC in microseconds. */
static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Appends a client network as "a.b.c.d/N" (an IPv4-mapped one) or
 * "v6/N", quoted. */
static void json_cidr(struct evbuffer *b, const struct rule_cidr *c)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};
    char text[INET6_ADDRSTRLEN];
    unsigned bits = c->bits;

    if (bits >= 96 && memcmp(c->addr, mapped, sizeof(mapped)) == 0) {
        inet_ntop(AF_INET, c->addr + 12, text, sizeof(text));
        bits -= 96;
    } else if (inet_ntop(AF_INET6, c->addr, text, sizeof(text)) == NULL) {
        snprintf(text, sizeof(text), "?");
    }
    evbuffer_add_printf(b, "\"%s/%u\"", text, bits);
}

/* The fields of the newer actions' parameters and of targeting, each
 * where it means something for r. */
static void json_rule_params(struct evbuffer *b, const struct rule *r)
{
    switch (r->action) {
    case RULE_DROP:
    case RULE_TRUNCATE:
        evbuffer_add_printf(b, ",\"close\":\"%s\"",
                            r->close == RULE_CLOSE_RESET ? "reset" : "fin");
        break;
    default:
        break;
    }
    if (r->action == RULE_THROTTLE) {
        evbuffer_add_printf(b, ",\"rate_bps\":%" PRIu64, r->rate_bps);
    }
    if (r->action == RULE_SLICE) {
        evbuffer_add_printf(b,
                            ",\"size\":{\"min\":%" PRIu32 ",\"max\":%" PRIu32
                            "},\"interval_us\":%" PRIu64,
                            r->slice_min, r->slice_max, r->interval_us);
    }
    if (r->action == RULE_TRUNCATE) {
        if (r->keep_is_fraction) {
            evbuffer_add_printf(b, ",\"keep\":\"%.15g%%\"",
                                r->keep_fraction * 100);
        } else {
            evbuffer_add_printf(b, ",\"keep\":%" PRIu64, r->keep_bytes);
        }
    }
    if (r->action == RULE_CORRUPT) {
        evbuffer_add_printf(b, ",\"flips\":%" PRIu32, r->flips);
    }
    if (r->nclients > 0) {
        evbuffer_add_printf(b, ",\"client\":[");
        for (size_t i = 0; i < r->nclients; i++) {
            if (i > 0) {
                evbuffer_add(b, ",", 1);
            }
            json_cidr(b, &r->clients[i]);
        }
        evbuffer_add(b, "]", 1);
    }
    if (r->connections > 0 && r->connections < 1) {
        evbuffer_add_printf(b, ",\"connections\":%.15g", r->connections);
    }
    if (r->sized) {
        evbuffer_add_printf(b, ",\"min_size\":%" PRIu64, r->min_size);
        if (r->max_size == UINT64_MAX) {
            evbuffer_add_printf(b, ",\"max_size\":null");
        } else {
            evbuffer_add_printf(b, ",\"max_size\":%" PRIu64, r->max_size);
        }
    }
    if (r->scheduled) {
        evbuffer_add_printf(b,
                            ",\"schedule\":{\"start_us\":%" PRIu64
                            ",\"duration_us\":%" PRIu64 ",\"every_us\":%" PRIu64
                            "}",
                            r->schedule.start_us, r->schedule.duration_us,
                            r->schedule.every_us);
    }
}

/*
 * "in_force" (enabled, and its schedule has it on at now) and, with
 * next, "next_change_ms": when that next changes, rounded up (waiting
 * that long finds it changed), or null when it never does by itself (no
 * schedule, a schedule that has ended, a disabled rule).
 */
static void json_in_force(struct evbuffer *b, const struct rule *r,
                          uint64_t now, bool next_too)
{
    uint64_t next = UINT64_MAX;
    bool on = r->enabled && rule_in_force(r, now, &next);

    evbuffer_add_printf(b, ",\"in_force\":%s", on ? "true" : "false");
    if (!next_too) {
        return;
    }
    if (!r->enabled || next == UINT64_MAX) {
        evbuffer_add_printf(b, ",\"next_change_ms\":null");
    } else {
        uint64_t us = next > now ? next - now : 0;
        evbuffer_add_printf(b, ",\"next_change_ms\":%" PRIu64,
                            (us + 999) / 1000);
    }
}

/* A rule as GET /rules shows it at now (now_us()); with proxy (not NULL),
 * its proxy's name too (GET /rules/NAME). */
static void json_rule(struct evbuffer *b, const struct rule *r,
                      const char *proxy, uint64_t now)
{
    evbuffer_add_printf(b, "{\"name\":");
    admin_json_cstr(b, r->name);
    evbuffer_add_printf(b, ",\"command\":");
    json_globs(b, r->cmds, r->ncmds);
    evbuffer_add_printf(b, ",\"key\":");
    json_globs(b, r->keys, r->nkeys);
    evbuffer_add_printf(b, ",\"action\":\"%s\"", rule_action_name(r->action));
    if (r->action == RULE_ERROR && r->message != NULL) {
        evbuffer_add_printf(b, ",\"message\":");
        admin_json_str(b, r->message, r->message_len);
    }
    if (r->action == RULE_DELAY) {
        evbuffer_add_printf(b,
                            ",\"delay_us\":%" PRIu64 ",\"jitter_us\":%" PRIu64,
                            r->delay_us, r->jitter_us);
    }
    json_rule_params(b, r);
    evbuffer_add_printf(b,
                        ",\"probability\":%.15g,\"after\":%" PRIu64
                        ",\"limit\":%" PRIu64 ",\"forward\":%s,\"enabled\":%s"
                        ",\"matched\":%" PRIu64 ",\"fired\":%" PRIu64,
                        r->probability, r->after, r->limit,
                        r->forward ? "true" : "false",
                        r->enabled ? "true" : "false", r->matched, r->fired);
    json_in_force(b, r, now, true);
    if (proxy != NULL) {
        evbuffer_add_printf(b, ",\"proxy\":");
        admin_json_cstr(b, proxy);
    }
    evbuffer_add(b, "}", 1);
}

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

static void h_rules_get(struct admin *ad, struct evhttp_request *req,
                        struct evkeyvalq *params)
{
    struct app *a = ad->a;
    struct app_proxy *only;
    const char *target;
    struct evbuffer *b;
    bool first = true;
    uint64_t now = now_us();

    if (admin_target_proxy(ad, req, params, &target, &only) != 0) {
        return;
    }
    if ((b = evbuffer_new()) == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    evbuffer_add_printf(b, "{\"proxies\":[");
    for (size_t i = 0; i < a->nproxies; i++) {
        struct app_proxy *ap = &a->proxies[i];
        struct rules *t = ap->px.rules;
        if (only != NULL && only != ap) {
            continue;
        }
        evbuffer_add_printf(b, "%s{\"name\":", first ? "" : ",");
        first = false;
        admin_json_cstr(b, ap->name);
        evbuffer_add_printf(b, ",\"rules\":[");
        for (size_t j = 0; t != NULL && j < rules_count(t); j++) {
            if (j > 0) {
                evbuffer_add(b, ",", 1);
            }
            json_rule(b, rules_at(t, j), NULL, now);
        }
        evbuffer_add(b, "]}", 2);
    }
    evbuffer_add(b, "]}", 2);
    admin_reply_json(req, 200, b);
}

/* Answers POST /rules/NAME/enable|disable: n rules changed. */
static void rules_toggled(struct evhttp_request *req, const char *name,
                          size_t n)
{
    struct evbuffer *b;

    if (n == 0) {
        admin_reply_error(req, 404, "no rule named '%s'", name);
        return;
    }
    if ((b = evbuffer_new()) == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    evbuffer_add_printf(b, "{\"ok\":true,\"changed\":%zu}", n);
    admin_reply_json(req, 200, b);
}

/*
 * Rule changes (PUT, POST, DELETE, DELETE of one rule, enable/disable,
 * reload, reset) are applied one at a time in the order they arrived.
 * Documents are parsed and tables built on a worker thread (10,000 rules
 * take a good part of a second), only the swap runs on the loop; a change
 * that arrives meanwhile waits in the queue, so that a later request never
 * lands before an earlier one. The queue holds at most one request per
 * admin connection.
 */
enum change_kind {
    CHANGE_PUT,    /* built on a worker thread */
    CHANGE_RELOAD, /* built on a worker thread */
    CHANGE_ADD,    /* POST /rules: copied on the loop, built on a worker */
    CHANGE_REMOVE, /* DELETE /rules/NAME: the same */
    CHANGE_RESET,  /* the file read on a worker (none without -c) */
    CHANGE_DELETE,
    CHANGE_ENABLE,
    CHANGE_DISABLE,
    CHANGE_PROXY_ON,  /* POST /proxies/NAME/enable */
    CHANGE_PROXY_OFF, /* POST /proxies/NAME/disable */
};

struct change {
    struct admin *ad;
    enum change_kind kind;
    struct held held;
    const char *target;   /* ?proxy=: the running proxy's own name, or NULL */
    struct app_proxy *ap; /* the same proxy, or NULL */
    char *text; /* PUT, POST: the body; enable/disable, remove: the name */
    size_t len;
    const char *path;         /* reload, reset: the rule file, or NULL */
    struct app_change *built; /* what the worker built */
    struct app_edit *edit;    /* add, remove: the copy the worker builds */
    struct change *next;
};

static void change_free(struct change *ch)
{
    app_change_free(ch->built);
    app_edit_free(ch->edit);
    free(ch->text);
    free(ch);
}

/* Whether ch is built on a worker thread before it is applied. */
static bool change_needs_build(const struct change *ch)
{
    switch (ch->kind) {
    case CHANGE_PUT:
    case CHANGE_RELOAD:
        return true;
    case CHANGE_RESET:
        return ch->path != NULL;
    case CHANGE_ADD:
    case CHANGE_REMOVE:
        return ch->edit != NULL; /* NULL: out of memory, answered at once */
    default:
        return false;
    }
}

/* On the loop, when ch reaches the head of the queue: an edit copies the
 * rules in force now, after every change before it. */
static void change_prepare(struct change *ch)
{
    struct app *a = ch->ad->a;

    if (ch->kind == CHANGE_ADD) {
        ch->edit = app_edit_add(a, ch->ap);
    } else if (ch->kind == CHANGE_REMOVE) {
        ch->edit = app_edit_remove(a, ch->ap, ch->text);
    }
}

/* On a worker thread: reads and writes nothing but ch's own document and
 * copy (config.c and rules.c keep no global state). */
static void change_build(void *arg)
{
    struct change *ch = arg;

    switch (ch->kind) {
    case CHANGE_PUT:
        ch->built = app_change_parse("body", ch->text, ch->len);
        break;
    case CHANGE_ADD:
        app_edit_build(ch->edit, "body", ch->text, ch->len);
        break;
    case CHANGE_REMOVE:
        app_edit_build(ch->edit, NULL, NULL, 0);
        break;
    default:
        ch->built = app_change_load(ch->path);
        break;
    }
}

/* {"ok":true,"rules":N,"<what>":n} */
static void reply_ok_count(struct admin *ad, struct evhttp_request *req,
                           const char *what, size_t n)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        admin_reply(req, 500, "application/json", NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"ok\":true,\"rules\":%zu,\"%s\":%zu}",
                        app_rule_count(ad->a), what, n);
    admin_reply_json(req, 200, b);
}

/* POST /rules, DELETE /rules/NAME: applies the edit, answers req (when
 * not NULL). */
static void change_apply_edit(struct change *ch, struct evhttp_request *req,
                              struct config_errors *errs)
{
    struct admin *ad = ch->ad;
    size_t n = 0;
    int rc;

    if (ch->edit == NULL) {
        if (req != NULL) {
            admin_reply_error(req, 500, "out of memory");
        }
        return;
    }
    rc = app_edit_apply(ad->a, ch->edit, errs, &n);
    ch->edit = NULL; /* app_edit_apply freed it */
    if (req == NULL) {
        return;
    }
    switch (rc) {
    case 0:
        reply_ok_count(ad, req, ch->kind == CHANGE_ADD ? "added" : "removed",
                       n);
        break;
    case APP_EDUP:
        reply_problems(req, 409, "duplicate rule name", errs);
        break;
    case APP_ENOENT:
        admin_reply_error(req, 404, "no rule named '%s'", ch->text);
        break;
    default:
        if (ch->kind == CHANGE_ADD) {
            reply_problems(req, 400, "invalid rules", errs);
        } else {
            admin_reply_error(req, 500, "out of memory");
        }
        break;
    }
}

/* POST /reset: the file read (or none), applied fresh. */
static void change_apply_reset(struct change *ch, struct evhttp_request *req,
                               struct config_errors *errs)
{
    if (ch->path != NULL && ch->built == NULL) {
        log_msg(LOG_ERROR, "reset: out of memory; nothing reset");
        if (req != NULL) {
            admin_reply_error(req, 500, "out of memory");
        }
        return;
    }
    int rc = app_reset(ch->ad->a, ch->built, errs);
    ch->built = NULL; /* app_reset freed it */
    if (req == NULL) {
        return;
    }
    if (rc == 0) {
        reply_ok_rules(ch->ad, req);
    } else {
        reply_problems(req, 400,
                       "the rule file has problems; nothing was reset", errs);
    }
}

/* POST /proxies/NAME/enable|disable: switches ch->ap, answers req (when
 * not NULL). */
static void change_apply_proxy(struct change *ch, struct evhttp_request *req)
{
    struct app_proxy *ap = ch->ap;
    bool on = ch->kind == CHANGE_PROXY_ON;
    size_t closed = 0;
    int err = 0;
    struct evbuffer *b;

    if (!on) {
        closed = app_proxy_disable(ch->ad->a, ap);
    } else if (app_proxy_enable(ch->ad->a, ap) != 0) {
        err = errno;
    }
    if (req == NULL) {
        return;
    }
    if (err != 0) {
        admin_reply_error(req, err == ESHUTDOWN ? 503 : 409,
                          "proxy '%s': cannot listen on %s again: %s; it "
                          "stays disabled",
                          ap->name, ap->listen,
                          err == ESHUTDOWN ? "mcfault is stopping"
                                           : strerror(err));
        return;
    }
    if ((b = evbuffer_new()) == NULL) {
        admin_reply(req, 500, "application/json", NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"ok\":true,\"proxy\":");
    admin_json_cstr(b, ap->name);
    evbuffer_add_printf(b,
                        ",\"enabled\":%s,\"listen\":", on ? "true" : "false");
    admin_json_cstr(b, ap->listen);
    if (!on) {
        evbuffer_add_printf(b, ",\"closed\":%zu", closed);
    }
    evbuffer_add(b, "}", 1);
    admin_reply_json(req, 200, b);
}

/* Applies ch, the head of the queue, answers its request if it still
 * can, and frees it. */
static void change_apply(struct change *ch)
{
    struct admin *ad = ch->ad;
    struct evhttp_request *req = admin_held_release(&ch->held);
    struct config_errors errs = {0};
    size_t n;

    ad->changes = ch->next;
    if (ad->changes == NULL) {
        ad->changes_tail = &ad->changes;
    }
    switch (ch->kind) {
    case CHANGE_PUT:
    case CHANGE_RELOAD:
        if (ch->built == NULL) {
            stats.reloads_failed++;
            log_msg(LOG_ERROR, "%s: out of memory; kept the old rules",
                    ch->kind == CHANGE_PUT ? "PUT /rules" : "reload");
            if (req != NULL) {
                admin_reply_error(req, 500, "out of memory");
            }
        } else if (app_change_apply(ad->a, ch->built, ch->target, &errs) == 0) {
            if (req != NULL) {
                reply_ok_rules(ad, req);
            }
        } else if (req != NULL) {
            reply_problems(req, 400,
                           ch->kind == CHANGE_PUT
                               ? "invalid rules"
                               : "reload failed; the old rules are kept",
                           &errs);
        }
        ch->built = NULL; /* app_change_apply freed it */
        break;
    case CHANGE_DELETE:
        if (app_clear_rules(ad->a, ch->target) != 0) {
            if (req != NULL) {
                admin_reply_error(req, 404, "no proxy named '%s'", ch->target);
            }
        } else if (req != NULL) {
            reply_ok_rules(ad, req);
        }
        break;
    case CHANGE_ENABLE:
    case CHANGE_DISABLE:
        n = app_set_enabled(ad->a, ch->text, ch->kind == CHANGE_ENABLE);
        if (req != NULL) {
            rules_toggled(req, ch->text, n);
        }
        break;
    case CHANGE_ADD:
    case CHANGE_REMOVE:
        change_apply_edit(ch, req, &errs);
        break;
    case CHANGE_RESET:
        change_apply_reset(ch, req, &errs);
        break;
    case CHANGE_PROXY_ON:
    case CHANGE_PROXY_OFF:
        change_apply_proxy(ch, req);
        break;
    }
    config_errors_free(&errs);
    change_free(ch);
}

static void changes_run(struct admin *ad);

/* On the loop: the worker built the head of the queue. */
static void change_built(void *arg)
{
    struct change *ch = arg;
    struct admin *ad = ch->ad;

    ad->building = false;
    change_apply(ch);
    changes_run(ad);
}

/* Applies the changes at the head of the queue until one needs building
 * (then it goes to a worker) or the queue is empty. */
static void changes_run(struct admin *ad)
{
    struct change *ch;

    while (!ad->building && (ch = ad->changes) != NULL) {
        change_prepare(ch);
        if (change_needs_build(ch)) {
            ad->building = true;
            if (worker_run(change_build, change_built, ch) == 0) {
                return;
            }
            /* No thread to be had: build it here, on the loop. */
            ad->building = false;
            change_build(ch);
        }
        change_apply(ch);
    }
}

/* Queues ch for req (the request being routed), which is answered when
 * ch is applied; takes ch. */
static void change_submit(struct admin *ad, struct evhttp_request *req,
                          struct change *ch)
{
    ch->ad = ad;
    if (admin_held_take(ad, &ch->held, req) != 0) {
        change_free(ch);
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    *ad->changes_tail = ch;
    ad->changes_tail = &ch->next;
    changes_run(ad);
}

/* A new change of kind for target (a running proxy or NULL), owning text
 * (may be NULL); NULL when out of memory (then text is freed). */
static struct change *change_new(enum change_kind kind,
                                 struct app_proxy *target, char *text,
                                 size_t len)
{
    struct change *ch = calloc(1, sizeof(*ch));

    if (ch == NULL) {
        free(text);
        return NULL;
    }
    ch->kind = kind;
    ch->ap = target;
    ch->target = target != NULL ? target->name : NULL;
    ch->text = text;
    ch->len = len;
    return ch;
}

/* Takes the request's body as a rule change of kind for ap and queues it;
 * an empty body answers 400 with empty_msg. */
static void submit_body(struct admin *ad, struct evhttp_request *req,
                        enum change_kind kind, struct app_proxy *ap,
                        const char *empty_msg)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    struct change *ch;
    char *text;

    if (len == 0) {
        admin_reply_error(req, 400, "%s", empty_msg);
        return;
    }
    /* The body moves to memory of the change's own (the request may be
     * freed with its connection while the document is built). */
    if ((text = malloc(len)) == NULL ||
        evbuffer_remove(in, text, len) != (ev_ssize_t)len) {
        free(text);
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    if ((ch = change_new(kind, ap, text, len)) == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    change_submit(ad, req, ch);
}

static void h_rules_put(struct admin *ad, struct evhttp_request *req,
                        struct evkeyvalq *params)
{
    struct app_proxy *ap;
    const char *target;

    if (admin_target_proxy(ad, req, params, &target, &ap) != 0) {
        return;
    }
    submit_body(ad, req, CHANGE_PUT, ap,
                "empty body: send a rule document (DELETE /rules "
                "removes every rule)");
}

static void h_rules_delete(struct admin *ad, struct evhttp_request *req,
                           struct evkeyvalq *params)
{
    struct app_proxy *ap;
    const char *target;
    struct change *ch;

    if (admin_target_proxy(ad, req, params, &target, &ap) != 0) {
        return;
    }
    if ((ch = change_new(CHANGE_DELETE, ap, NULL, 0)) == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    change_submit(ad, req, ch);
}

static void h_rules_post(struct admin *ad, struct evhttp_request *req,
                         struct evkeyvalq *params)
{
    struct app_proxy *ap;
    const char *target;

    if (admin_target_proxy(ad, req, params, &target, &ap) != 0) {
        return;
    }
    if (ap == NULL && (ap = app_find_proxy(ad->a, NULL)) == NULL) {
        admin_reply_error(req, 400,
                          "several proxies run: say which one with "
                          "?proxy=NAME");
        return;
    }
    submit_body(ad, req, CHANGE_ADD, ap,
                "empty body: send a rule, a list of rules or "
                "{\"rules\": [...]}");
}

/* GET /rules/NAME: the first proxy's rule of that name (or ?proxy's). */
static void rule_get(struct admin *ad, struct evhttp_request *req,
                     struct evkeyvalq *params, const char *name)
{
    struct app *a = ad->a;
    struct app_proxy *only;
    const char *target;
    struct evbuffer *b;

    if (admin_target_proxy(ad, req, params, &target, &only) != 0) {
        return;
    }
    for (size_t i = 0; i < a->nproxies; i++) {
        struct app_proxy *ap = &a->proxies[i];
        const struct rule *r;
        if ((only != NULL && only != ap) || ap->px.rules == NULL ||
            (r = rules_find(ap->px.rules, name)) == NULL) {
            continue;
        }
        if ((b = evbuffer_new()) == NULL) {
            admin_reply_error(req, 500, "out of memory");
            return;
        }
        json_rule(b, r, ap->name, now_us());
        admin_reply_json(req, 200, b);
        return;
    }
    admin_reply_error(req, 404, "no rule named '%s'", name);
}

/* DELETE /rules/NAME; name is taken. */
static void rule_delete(struct admin *ad, struct evhttp_request *req,
                        struct evkeyvalq *params, char *name)
{
    struct app_proxy *ap;
    const char *target;
    struct change *ch;

    if (admin_target_proxy(ad, req, params, &target, &ap) != 0) {
        free(name);
        return;
    }
    if ((ch = change_new(CHANGE_REMOVE, ap, name, strlen(name))) == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    change_submit(ad, req, ch);
}

/* POST /rules/NAME/enable|disable; name (percent-decoded) is taken. */
static void rules_toggle(struct admin *ad, struct evhttp_request *req,
                         char *name, bool enabled)
{
    struct change *ch = change_new(enabled ? CHANGE_ENABLE : CHANGE_DISABLE,
                                   NULL, name, strlen(name));

    if (ch == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    change_submit(ad, req, ch);
}

static void h_reload(struct admin *ad, struct evhttp_request *req,
                     struct evkeyvalq *params)
{
    struct change *ch;
    (void)params;

    if (ad->a->config_path == NULL) {
        /* app_reload logs and counts the refusal. */
        app_reload(ad->a, NULL);
        admin_reply_error(req, 409,
                          "no config file (-c): nothing to reload; use PUT "
                          "/rules");
        return;
    }
    if ((ch = change_new(CHANGE_RELOAD, NULL, NULL, 0)) == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    ch->path = ad->a->config_path;
    change_submit(ad, req, ch);
}

static void h_reset(struct admin *ad, struct evhttp_request *req,
                    struct evkeyvalq *params)
{
    struct change *ch;
    (void)params;

    if ((ch = change_new(CHANGE_RESET, NULL, NULL, 0)) == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    ch->path = ad->a->config_path; /* NULL: no file, no rules */
    change_submit(ad, req, ch);
}

/* --------------------------------------------------------------------- */
/* Stats, metrics, events                                                  */

struct stat_field {
    const char *name;
    const char *kind; /* "counter" or "gauge" */
    const char *help;
    size_t off;
};

static const struct stat_field stat_fields[] = {
#define STATS_ROW(name, kind, help)                                            \
    {#name, #kind, help, offsetof(struct stats, name)},
    STATS_FIELDS(STATS_ROW)
#undef STATS_ROW
};

#define NFIELDS (sizeof(stat_fields) / sizeof(stat_fields[0]))

static uint64_t field_value(const struct stat_field *f)
{
    uint64_t v;

    memcpy(&v, (const char *)&stats + f->off, sizeof(v));
    return v;
}

static uint64_t uptime_s(const struct admin *ad)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)(now.tv_sec - ad->started.tv_sec);
}

/* Replies of command op whose upstream round trip was measured. */
static uint64_t latency_count(int op)
{
    uint64_t n = 0;

    for (size_t i = 0; i < STATS_LAT_BUCKETS; i++) {
        n += stats.lat_count[op][i];
    }
    return n;
}

/* "upstream_latency" of GET /stats: the histogram buckets' bounds, and
 * per command seen its count, sum and per-bucket counts (not cumulative;
 * one more than the bounds: the last is above the last bound). */
static void stats_latency_json(struct evbuffer *b)
{
    bool first = true;

    evbuffer_add_printf(b, ",\"upstream_latency\":{\"le_us\":[");
    for (size_t i = 0; i < STATS_LAT_BUCKETS - 1; i++) {
        evbuffer_add_printf(b, "%s%" PRIu32, i > 0 ? "," : "",
                            stats_lat_bounds[i]);
    }
    evbuffer_add_printf(b, "],\"commands\":{");
    for (int op = 0; op < PROTO_OP__COUNT; op++) {
        uint64_t n = latency_count(op);
        if (n == 0) {
            continue;
        }
        evbuffer_add_printf(b,
                            "%s\"%s\":{\"count\":%" PRIu64
                            ",\"sum_us\":%" PRIu64 ",\"buckets\":[",
                            first ? "" : ",", proto_op_name((enum proto_op)op),
                            n, stats.lat_sum_us[op]);
        first = false;
        for (size_t i = 0; i < STATS_LAT_BUCKETS; i++) {
            evbuffer_add_printf(b, "%s%" PRIu64, i > 0 ? "," : "",
                                stats.lat_count[op][i]);
        }
        evbuffer_add(b, "]}", 2);
    }
    evbuffer_add(b, "}}", 2);
}

static void h_stats(struct admin *ad, struct evhttp_request *req,
                    struct evkeyvalq *params)
{
    struct app *a = ad->a;
    struct evbuffer *b = evbuffer_new();
    bool first = true;
    (void)params;

    if (b == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    evbuffer_add_printf(
        b, "{\"version\":\"%s\",\"uptime_seconds\":%" PRIu64 ",\"rules\":%zu",
        MCFAULT_VERSION, uptime_s(ad), app_rule_count(a));
    for (size_t i = 0; i < NFIELDS; i++) {
        evbuffer_add_printf(b, ",\"%s\":%" PRIu64, stat_fields[i].name,
                            field_value(&stat_fields[i]));
    }
    evbuffer_add_printf(b, ",\"commands\":{");
    for (int op = 0; op < PROTO_OP__COUNT; op++) {
        if (stats.commands[op] == 0) {
            continue;
        }
        evbuffer_add_printf(b, "%s\"%s\":%" PRIu64, first ? "" : ",",
                            proto_op_name((enum proto_op)op),
                            stats.commands[op]);
        first = false;
    }
    evbuffer_add_printf(b, "},\"faults\":{");
    for (int i = 0; i < RULE__COUNT; i++) {
        evbuffer_add_printf(b, "%s\"%s\":%" PRIu64, i > 0 ? "," : "",
                            rule_action_name((enum rule_action)i),
                            stats.faults[i]);
    }
    evbuffer_add_printf(b, "},\"proxies\":[");
    uint64_t now = now_us();
    for (size_t i = 0; i < a->nproxies; i++) {
        struct app_proxy *ap = &a->proxies[i];
        struct rules *t = ap->px.rules;
        evbuffer_add_printf(b, "%s{\"name\":", i > 0 ? "," : "");
        admin_json_cstr(b, ap->name);
        evbuffer_add_printf(b,
                            ",\"enabled\":%s,\"connections_now\":%" PRIu64
                            ",\"connections_total\":%" PRIu64 ",\"rules\":[",
                            ap->px.disabled ? "false" : "true",
                            ap->px.conns_now, ap->px.conns_total);
        for (size_t j = 0; t != NULL && j < rules_count(t); j++) {
            const struct rule *r = rules_at(t, j);
            evbuffer_add_printf(b, "%s{\"name\":", j > 0 ? "," : "");
            admin_json_cstr(b, r->name);
            evbuffer_add_printf(
                b, ",\"enabled\":%s,\"matched\":%" PRIu64 ",\"fired\":%" PRIu64,
                r->enabled ? "true" : "false", r->matched, r->fired);
            json_in_force(b, r, now, false); /* the page polls it */
            evbuffer_add(b, "}", 1);
        }
        evbuffer_add(b, "]}", 2);
    }
    evbuffer_add(b, "]", 1);
    stats_latency_json(b);
    evbuffer_add(b, "}", 1);
    admin_reply_json(req, 200, b);
}

/* # HELP and # TYPE lines of one metric family. */
static void prom_family(struct evbuffer *b, const char *name, const char *kind,
                        const char *help)
{
    evbuffer_add_printf(b, "# HELP mcfault_%s %s\n# TYPE mcfault_%s %s\n", name,
                        help, name, kind);
}

/* The per-rule families: one sample per rule of every proxy; which: 0
 * matched, 1 fired, 2 enabled, 3 in force. */
static void prom_rules(struct evbuffer *b, struct app *a, const char *metric,
                       int which)
{
    uint64_t now = now_us();

    for (size_t i = 0; i < a->nproxies; i++) {
        struct app_proxy *ap = &a->proxies[i];
        struct rules *t = ap->px.rules;
        for (size_t j = 0; t != NULL && j < rules_count(t); j++) {
            const struct rule *r = rules_at(t, j);
            uint64_t next;
            uint64_t v = r->matched;
            if (which == 1) {
                v = r->fired;
            } else if (which == 2) {
                v = r->enabled;
            } else if (which == 3) {
                v = r->enabled && rule_in_force(r, now, &next);
            }
            evbuffer_add_printf(b, "mcfault_%s{proxy=\"", metric);
            prom_label(b, ap->name);
            evbuffer_add_printf(b, "\",rule=\"");
            prom_label(b, r->name);
            evbuffer_add_printf(b, "\"} %" PRIu64 "\n", v);
        }
    }
}

/* Appends us microseconds as seconds in decimal, exactly ("0.0001", "5",
 * "12.345678"): bucket bounds and sums are not rounded through a double. */
static void prom_seconds(struct evbuffer *b, uint64_t us)
{
    char frac[8];
    int n;

    if (us % 1000000 == 0) {
        evbuffer_add_printf(b, "%" PRIu64, us / 1000000);
        return;
    }
    n = snprintf(frac, sizeof(frac), "%06" PRIu64, us % 1000000);
    while (n > 0 && frac[n - 1] == '0') {
        n--;
    }
    evbuffer_add_printf(b, "%" PRIu64 ".%.*s", us / 1000000, n, frac);
}

/*
 * mcfault_upstream_latency_seconds: a histogram per command seen
 * (commands never measured have no series), its buckets cumulative as
 * the format wants, le="+Inf" equal to _count.
 */
static void prom_latency(struct evbuffer *b)
{
    const char *m = "mcfault_upstream_latency_seconds";

    prom_family(b, "upstream_latency_seconds", "histogram",
                "from a command forwarded to memcached to the end of its "
                "reply, by command");
    for (int op = 0; op < PROTO_OP__COUNT; op++) {
        const char *cmd = proto_op_name((enum proto_op)op);
        uint64_t n = latency_count(op);
        uint64_t cum = 0;
        if (n == 0) {
            continue;
        }
        for (size_t i = 0; i < STATS_LAT_BUCKETS; i++) {
            cum += stats.lat_count[op][i];
            evbuffer_add_printf(b, "%s_bucket{command=\"%s\",le=\"", m, cmd);
            if (i < STATS_LAT_BUCKETS - 1) {
                prom_seconds(b, stats_lat_bounds[i]);
            } else {
                evbuffer_add(b, "+Inf", 4);
            }
            evbuffer_add_printf(b, "\"} %" PRIu64 "\n", cum);
        }
        evbuffer_add_printf(b, "%s_sum{command=\"%s\"} ", m, cmd);
        prom_seconds(b, stats.lat_sum_us[op]);
        evbuffer_add_printf(b, "\n%s_count{command=\"%s\"} %" PRIu64 "\n", m,
                            cmd, n);
    }
}

/*
 * Fields exposed only split by a label, whose sum they are:
 * mcfault_faults_total{action}, mcfault_connections{proxy} and
 * mcfault_connections_accepted_total{proxy} (an unlabelled
 * mcfault_connections_total beside the gauge mcfault_connections would
 * clash for parsers that strip _total).
 */
static bool prom_by_label(const char *field)
{
    return strcmp(field, "faults_total") == 0 ||
           strcmp(field, "connections_total") == 0 ||
           strcmp(field, "connections_now") == 0;
}

static void h_metrics(struct admin *ad, struct evhttp_request *req,
                      struct evkeyvalq *params)
{
    struct app *a = ad->a;
    struct evbuffer *b = evbuffer_new();
    (void)params;

    if (b == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    for (size_t i = 0; i < NFIELDS; i++) {
        const struct stat_field *f = &stat_fields[i];
        char name[64];
        size_t n = strlen(f->name);
        bool counter = strcmp(f->kind, "counter") == 0;
        if (prom_by_label(f->name)) {
            continue;
        }
        /* Prometheus counters end in _total. */
        snprintf(name, sizeof(name), "%s%s", f->name,
                 counter && (n < 6 || strcmp(f->name + n - 6, "_total") != 0)
                     ? "_total"
                     : "");
        prom_family(b, name, f->kind, f->help);
        evbuffer_add_printf(b, "mcfault_%s %" PRIu64 "\n", name,
                            field_value(f));
    }
    prom_family(b, "commands_total", "counter", "commands parsed, by command");
    for (int op = 0; op < PROTO_OP__COUNT; op++) {
        evbuffer_add_printf(
            b, "mcfault_commands_total{command=\"%s\"} %" PRIu64 "\n",
            proto_op_name((enum proto_op)op), stats.commands[op]);
    }
    prom_family(b, "faults_total", "counter", "faults fired, by action");
    for (int i = 0; i < RULE__COUNT; i++) {
        evbuffer_add_printf(
            b, "mcfault_faults_total{action=\"%s\"} %" PRIu64 "\n",
            rule_action_name((enum rule_action)i), stats.faults[i]);
    }
    prom_latency(b);
    prom_family(b, "connections", "gauge", "client connections open, by proxy");
    for (size_t i = 0; i < a->nproxies; i++) {
        evbuffer_add_printf(b, "mcfault_connections{proxy=\"");
        prom_label(b, a->proxies[i].name);
        evbuffer_add_printf(b, "\"} %" PRIu64 "\n", a->proxies[i].px.conns_now);
    }
    prom_family(b, "connections_accepted_total", "counter",
                "client connections accepted, by proxy");
    for (size_t i = 0; i < a->nproxies; i++) {
        evbuffer_add_printf(b, "mcfault_connections_accepted_total{proxy=\"");
        prom_label(b, a->proxies[i].name);
        evbuffer_add_printf(b, "\"} %" PRIu64 "\n",
                            a->proxies[i].px.conns_total);
    }
    prom_family(b, "rules", "gauge", "rules in force, over every proxy");
    evbuffer_add_printf(b, "mcfault_rules %zu\n", app_rule_count(a));
    prom_family(b, "rule_matched_total", "counter",
                "commands a rule's globs matched");
    prom_rules(b, a, "rule_matched_total", 0);
    prom_family(b, "rule_fired_total", "counter", "faults a rule fired");
    prom_rules(b, a, "rule_fired_total", 1);
    prom_family(b, "rule_enabled", "gauge", "1 when a rule is enabled");
    prom_rules(b, a, "rule_enabled", 2);
    prom_family(b, "rule_in_force", "gauge",
                "1 when a rule is enabled and its schedule has it on");
    prom_rules(b, a, "rule_in_force", 3);
    prom_family(b, "proxy_enabled", "gauge",
                "1 when a proxy listens (0: switched off)");
    for (size_t i = 0; i < a->nproxies; i++) {
        evbuffer_add_printf(b, "mcfault_proxy_enabled{proxy=\"");
        prom_label(b, a->proxies[i].name);
        evbuffer_add_printf(b, "\"} %d\n", a->proxies[i].px.disabled ? 0 : 1);
    }
    prom_family(b, "uptime_seconds", "gauge", "seconds since the API started");
    evbuffer_add_printf(b, "mcfault_uptime_seconds %" PRIu64 "\n",
                        uptime_s(ad));
    prom_family(b, "build_info", "gauge", "always 1; the version as a label");
    evbuffer_add_printf(b, "mcfault_build_info{version=\"%s\"} 1\n",
                        MCFAULT_VERSION);
    admin_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", b);
}

static void add_event(uint64_t seq, const char *json, void *arg)
{
    struct evbuffer *b = arg;

    evbuffer_add_printf(b, "%s{\"seq\":%" PRIu64 ",\"event\":%s}",
                        evbuffer_get_length(b) > 0 ? "," : "", seq, json);
}

static void h_events(struct admin *ad, struct evhttp_request *req,
                     struct evkeyvalq *params)
{
    const char *s = evhttp_find_header(params, "since");
    uint64_t since = 0;
    struct evbuffer *list;
    struct evbuffer *b;
    (void)ad;

    if (s != NULL) {
        size_t n = strlen(s);
        if (n == 0 || n > SINCE_DIGITS_MAX || strspn(s, "0123456789") != n) {
            admin_reply_error(
                req, 400, "'since' must be a non-negative integer, got '%.40s'",
                s);
            return;
        }
        errno = 0;
        since = strtoull(s, NULL, 10);
        if (errno == ERANGE) {
            admin_reply_error(req, 400, "'since' is out of range");
            return;
        }
    }
    list = evbuffer_new();
    b = evbuffer_new();
    if (list == NULL || b == NULL) {
        if (list != NULL) {
            evbuffer_free(list);
        }
        if (b != NULL) {
            evbuffer_free(b);
        }
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    uint64_t last = stats_events_since(since, add_event, list);
    evbuffer_add_printf(b, "{\"last\":%" PRIu64 ",\"events\":[", last);
    evbuffer_add_buffer(b, list);
    evbuffer_free(list);
    evbuffer_add(b, "]}", 2);
    admin_reply_json(req, 200, b);
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
    {"/health", EVHTTP_REQ_GET, h_health},
    {"/rules", EVHTTP_REQ_GET, h_rules_get},
    {"/rules", EVHTTP_REQ_PUT, h_rules_put},
    {"/rules", EVHTTP_REQ_DELETE, h_rules_delete},
    {"/rules", EVHTTP_REQ_POST, h_rules_post},
    {"/reload", EVHTTP_REQ_POST, h_reload},
    {"/reset", EVHTTP_REQ_POST, h_reset},
    {"/upstream/command", EVHTTP_REQ_POST, admin_upstream_command},
    {"/upstream/stats", EVHTTP_REQ_GET, admin_upstream_stats},
    {"/stats", EVHTTP_REQ_GET, h_stats},
    {"/metrics", EVHTTP_REQ_GET, h_metrics},
    {"/events", EVHTTP_REQ_GET, h_events},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

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
static char *switch_path(struct evhttp_request *req, const char *path,
                         const char *prefix, size_t prefix_len,
                         const char *what, bool *enable, bool *answered)
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
    char *name = switch_path(req, path, RULES_PREFIX, RULES_PREFIX_LEN, "rule",
                             &enable, &answered);

    if (name != NULL) {
        rules_toggle(ad, req, name, enable);
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
        rule_delete(ad, req, params, name); /* takes name */
        return true;
    }
    rule_get(ad, req, params, name);
    free(name);
    return true;
}

#define PROXIES_PREFIX "/proxies/"
#define PROXIES_PREFIX_LEN (sizeof(PROXIES_PREFIX) - 1)

/*
 * POST /proxies/NAME/enable and /proxies/NAME/disable (NAME
 * percent-encoded). Queued with the rule changes, so that a switch and a
 * POST /reset apply in the order they arrived. Returns false when path is
 * not of that shape.
 */
static bool route_proxy(struct admin *ad, struct evhttp_request *req,
                        const char *path)
{
    struct app_proxy *ap;
    struct change *ch;
    bool enable;
    bool answered;
    char *name = switch_path(req, path, PROXIES_PREFIX, PROXIES_PREFIX_LEN,
                             "proxy", &enable, &answered);

    if (name == NULL) {
        return answered;
    }
    /* Proxies are fixed for the life of the process: known now. */
    if ((ap = app_find_proxy(ad->a, name)) == NULL) {
        admin_reply_error(req, 404, "no proxy named '%s'", name);
        free(name);
        return true;
    }
    free(name);
    ch = change_new(enable ? CHANGE_PROXY_ON : CHANGE_PROXY_OFF, ap, NULL, 0);
    if (ch == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return true;
    }
    change_submit(ad, req, ch);
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
               !route_proxy(ad, req, path)) {
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
    while (ad->checks != NULL) {
        struct health *h = ad->checks;
        struct evhttp_request *req = admin_held_release(&h->held);
        if (req != NULL) {
            evhttp_request_free(req);
        }
        health_free(h);
    }
    for (struct change *ch = ad->changes, *next; ch != NULL; ch = next) {
        struct evhttp_request *req = admin_held_release(&ch->held);
        next = ch->next;
        if (req != NULL) {
            evhttp_request_free(req);
        }
        /* The head, when being built, belongs to its worker thread until
         * it is done, which will not be seen now: left to the exiting
         * process. */
        if (!(ch == ad->changes && ad->building)) {
            change_free(ch);
        }
    }
    ad->changes = NULL;
    free(ad);
}
