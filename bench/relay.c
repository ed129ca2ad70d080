/*
 * The floor for the benchmarks: a 1:1 TCP relay on plain libevent events
 * that parses nothing, so what a hop costs on libevent with nothing else.
 * Not part of the product; bench/lib.sh compiles it with cc -O2 ... -levent.
 *
 * Usage: relay LISTEN_IP:PORT UPSTREAM_IP:PORT   (IPv4 literals)
 *
 * Each accepted client gets its own non-blocking connection upstream. Per
 * direction one recv into a static buffer, then one send straight out;
 * only what a short send leaves is kept (then EV_WRITE on the receiving
 * side, and no reading on the sending side until it drains). A read of 0
 * becomes shutdown(SHUT_WR) on the other side once its data is out; the
 * pair is closed when both directions are done or on any error. SIGINT
 * and SIGTERM end the loop so profilers see a normal exit.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

/* One recv reads at most this much: a whole memcached reply of a few
 * values, and the most a short send can leave behind per direction. */
#define RELAY_BUF_SIZE (64 * 1024)

/* One direction of a pair: bytes read from `from`, written to `to`. */
struct half {
    struct side *from;
    struct side *to;
    char *pending; /* what a short send left, malloc'd; NULL when none */
    size_t pending_off;
    size_t pending_len;
    bool done; /* `from` read 0 and `to` is shut down for writing */
};

struct side {
    int fd;
    struct event *rev; /* readable: feeds the half leaving this side */
    struct event *wev; /* writable: drains the half arriving here */
    struct half *out;  /* the half that reads this side */
    struct half *in;   /* the half that writes this side */
    struct pair *pair;
};

struct pair {
    struct side client;
    struct side upstream;
    struct half up;           /* client -> upstream */
    struct half down;         /* upstream -> client */
    struct event *connecting; /* the upstream connect, until it completes */
};

static struct event_base *base;
static struct sockaddr_in upstream_addr;
static char buf[RELAY_BUF_SIZE];

// IPV4:PORT
static int parse_addr(const char *s, struct sockaddr_in *sin)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    char *end;
    long port;

    if (colon == NULL || (size_t)(colon - s) >= sizeof(host)) {
        return -1;
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535) {
        return -1;
    }
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -1;
}

/* Closes both sockets and frees the pair and whatever it still holds. */
static void pair_free(struct pair *p)
{
    struct side *sides[2] = {&p->client, &p->upstream};

    if (p->connecting != NULL) {
        event_free(p->connecting);
    }
    for (int i = 0; i < 2; i++) {
        if (sides[i]->rev != NULL) {
            event_free(sides[i]->rev);
        }
        if (sides[i]->wev != NULL) {
            event_free(sides[i]->wev);
        }
        if (sides[i]->fd >= 0) {
            close(sides[i]->fd);
        }
    }
    free(p->up.pending);
    free(p->down.pending);
    free(p);
}

/* Frees the pair when both directions have ended. */
static void pair_maybe_free(struct pair *p)
{
    if (p->up.done && p->down.done) {
        pair_free(p);
    }
}

/* Keeps what a send did not take; the half's reading stops until it is
 * gone. Returns 0, or -1 when out of memory. */
static int half_keep(struct half *h, const char *data, size_t len)
{
    h->pending = malloc(len);
    if (h->pending == NULL) {
        return -1;
    }
    memcpy(h->pending, data, len);
    h->pending_off = 0;
    h->pending_len = len;
    event_del(h->from->rev);
    event_add(h->to->wev, NULL);
    return 0;
}

/* Reads once from the half's source and sends it on. */
static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct side *s = arg;
    struct half *h = s->out;
    ssize_t n, w;

    (void)what;
    n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return;
        }
        pair_free(s->pair);
        return;
    }
    if (n == 0) {
        /* Nothing is pending (reading stops while something is), so the
         * EOF passes on at once. */
        event_del(s->rev);
        shutdown(h->to->fd, SHUT_WR);
        h->done = true;
        pair_maybe_free(s->pair);
        return;
    }
    w = send(h->to->fd, buf, (size_t)n, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            pair_free(s->pair);
            return;
        }
        w = 0;
    }
    if (w < n && half_keep(h, buf + w, (size_t)(n - w)) < 0) {
        pair_free(s->pair);
    }
}

/* Drains what a short send left; resumes reading the source when empty. */
static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct side *s = arg;
    struct half *h = s->in;
    ssize_t w;

    (void)what;
    w = send(fd, h->pending + h->pending_off, h->pending_len - h->pending_off,
             MSG_NOSIGNAL);
    if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return;
        }
        pair_free(s->pair);
        return;
    }
    h->pending_off += (size_t)w;
    if (h->pending_off < h->pending_len) {
        return;
    }
    free(h->pending);
    h->pending = NULL;
    event_del(s->wev);
    event_add(h->from->rev, NULL);
}

/* The upstream connect finished: start relaying, or give up. */
static void on_connect(evutil_socket_t fd, short what, void *arg)
{
    struct pair *p = arg;
    int err = 0;
    socklen_t len = sizeof(err);

    (void)what;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
        pair_free(p);
        return;
    }
    event_free(p->connecting);
    p->connecting = NULL;
    event_add(p->client.rev, NULL);
    event_add(p->upstream.rev, NULL);
}

static void side_init(struct pair *p, struct side *s, int fd, struct half *out,
                      struct half *in)
{
    s->fd = fd;
    s->pair = p;
    s->out = out;
    s->in = in;
    s->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_read, s);
    s->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write, s);
}

/* Opens the upstream connection for a new client; the pair starts relaying
 * once the connect completes. */
static void pair_start(int cfd)
{
    struct pair *p = calloc(1, sizeof(*p));
    int one = 1;
    int ufd;

    if (p == NULL) {
        close(cfd);
        return;
    }
    p->client.fd = -1;
    p->upstream.fd = -1;
    ufd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    p->up = (struct half){.from = &p->client, .to = &p->upstream};
    p->down = (struct half){.from = &p->upstream, .to = &p->client};
    side_init(p, &p->client, cfd, &p->up, &p->down);
    if (ufd < 0) {
        goto fail;
    }
    side_init(p, &p->upstream, ufd, &p->down, &p->up);
    if (p->client.rev == NULL || p->client.wev == NULL ||
        p->upstream.rev == NULL || p->upstream.wev == NULL) {
        goto fail;
    }
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(ufd, (struct sockaddr *)&upstream_addr, sizeof(upstream_addr)) <
            0 &&
        errno != EINPROGRESS) {
        goto fail;
    }
    /* Writable means the connect is done, one way or the other. */
    p->connecting = event_new(base, ufd, EV_WRITE, on_connect, p);
    if (p->connecting == NULL || event_add(p->connecting, NULL) < 0) {
        goto fail;
    }
    return;
fail:
    pair_free(p);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            /* EAGAIN, or out of fds: try again on the next event. */
            return;
        }
        pair_start(cfd);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
    struct sockaddr_in listen_addr;
    struct event *lev, *sint, *sterm;
    int one = 1;
    int lfd;

    if (argc != 3 || parse_addr(argv[1], &listen_addr) < 0 ||
        parse_addr(argv[2], &upstream_addr) < 0) {
        fprintf(stderr, "usage: relay LISTEN_IP:PORT UPSTREAM_IP:PORT\n");
        return 2;
    }
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(lfd, (struct sockaddr *)&listen_addr, sizeof(listen_addr)) < 0 ||
        listen(lfd, 1024) < 0) {
        perror("relay: listen");
        return 1;
    }
    base = event_base_new();
    if (base == NULL) {
        fprintf(stderr, "relay: event_base_new failed\n");
        return 1;
    }
    lev = event_new(base, lfd, EV_READ | EV_PERSIST, on_accept, NULL);
    sint = evsignal_new(base, SIGINT, on_signal, NULL);
    sterm = evsignal_new(base, SIGTERM, on_signal, NULL);
    if (lev == NULL || sint == NULL || sterm == NULL ||
        event_add(lev, NULL) < 0 || event_add(sint, NULL) < 0 ||
        event_add(sterm, NULL) < 0) {
        fprintf(stderr, "relay: cannot set up events\n");
        return 1;
    }
    event_base_dispatch(base);
    event_free(lev);
    event_free(sint);
    event_free(sterm);
    event_base_free(base);
    close(lfd);
    return 0;
}
