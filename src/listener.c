/*
 * The listening socket: accepts clients and hands them to conn_create.
 */
#include "mcfault/listener.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include <event2/listener.h>

#include "mcfault/log.h"

/* Pending connections the kernel may queue (memcached uses 1024). */
#define LISTENER_BACKLOG 1024

struct listener {
    struct evconnlistener *evl;
    struct proxy *px;
};

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd,
                      struct sockaddr *sa, int socklen, void *arg)
{
    struct listener *l = arg;
    (void)evl;
    (void)socklen;

    conn_create(l->px, fd, sa);
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
    (void)evl;
    (void)arg;
    /* EMFILE and friends: log and keep listening; connections that close
     * free descriptors again. */
    log_msg(LOG_ERROR, "accept: %s", strerror(errno));
}

struct listener *listener_create(struct proxy *px, const struct addr_spec *spec)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = addr_resolve(spec, 1, &ss, &len);

    if (rc != 0) {
        log_msg(LOG_ERROR, "listen %s:%s: %s", spec->host, spec->port,
                gai_strerror(rc));
        return NULL;
    }
    struct listener *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return NULL;
    }
    l->px = px;
    l->evl = evconnlistener_new_bind(
        px->base, on_accept, l,
        LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        LISTENER_BACKLOG, (struct sockaddr *)&ss, (int)len);
    if (l->evl == NULL) {
        log_msg(LOG_ERROR, "listen %s:%s: %s", spec->host, spec->port,
                strerror(errno));
        free(l);
        return NULL;
    }
    evconnlistener_set_error_cb(l->evl, on_accept_error);
    return l;
}

void listener_destroy(struct listener *l)
{
    if (l != NULL) {
        evconnlistener_free(l->evl);
        free(l);
    }
}
