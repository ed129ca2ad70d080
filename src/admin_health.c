/*
 * GET /health: a non-blocking connect to each proxy's upstream, the request
 * held until every probe has answered; 200 when every upstream accepted a
 * connection, 503 otherwise.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "admin_int.h"

/* How long GET /health waits for an upstream to accept a connection. */
#define HEALTH_TIMEOUT_MS 1000

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

void admin_health(struct admin *ad, struct evhttp_request *req,
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

/* Drops every GET /health in progress (admin_destroy). */
void admin_health_free_all(struct admin *ad)
{
    while (ad->checks != NULL) {
        struct health *h = ad->checks;
        struct evhttp_request *req = admin_held_release(&h->held);
        if (req != NULL) {
            evhttp_request_free(req);
        }
        health_free(h);
    }
}
