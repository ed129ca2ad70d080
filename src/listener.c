/*
 * The listening socket: accepts clients and hands them to conn_create,
 * enforces the connection limit, and pauses accepting while the process is
 * out of file descriptors.
 */
#include "mcfault/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/listener.h>

#include "mcfault/log.h"
#include "mcfault/stats.h"

/* Pending connections the kernel may queue (memcached uses 1024). */
#define LISTENER_BACKLOG 1024

/*
 * Out of descriptors, a level-triggered listening socket stays readable and
 * every accept fails at once: a busy loop. So, as memcached does
 * (accept_new_conns), accepting stops; a timer tries again.
 */
enum accept_state {
    ACCEPTING,
    PAUSED,   /* out of descriptors: disabled, the timer tries again */
    RESUMING, /* enabled again; the episode ends after a quiet interval */
};

struct listener {
    struct evconnlistener *evl; /* NULL while stopped (listener_stop) */
    struct proxy *px;
    /* The address really bound (port 0 asked: the one the kernel gave),
     * so that listener_start binds the same one again. */
    struct sockaddr_storage bound;
    socklen_t bound_len;
    struct event *retry;
    enum accept_state state;
    /* A client accepted with no descriptor left for its upstream waits
     * here rather than be dropped. */
    int held_fd;
    struct sockaddr_storage held_peer;
    /* The episode: when it began, what it cost (for its last log line). */
    struct timeval since;
    uint64_t failed;   /* accept attempts that failed */
    uint64_t held;     /* clients held back (accepted, no upstream fd) */
    uint64_t deferred; /* retries that found no descriptors */
};

static size_t max_conns = LISTENER_MAX_CONNS_DEFAULT;
/* The limit is over all proxies, so its episode is too. */
static bool full;
static uint64_t full_refused;

static bool out_of_fds(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* 0 when n (at most 2) more descriptors can be opened now, else the errno
 * of the open that failed. Costs a dup and a close each; nothing cheaper
 * tells, as a hole below the last descriptor counts as much as room above
 * it. */
static int fds_free(int fd, int n)
{
    int got[2];
    int i = 0;
    int err = 0;

    while (i < n && i < 2) {
        if ((got[i] = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
            err = errno;
            break;
        }
        i++;
    }
    while (i > 0) {
        close(got[--i]);
    }
    return err;
}

static void retry_arm(struct listener *l)
{
    struct timeval tv = {.tv_sec = LISTENER_RETRY_MS / 1000,
                         .tv_usec = (LISTENER_RETRY_MS % 1000) * 1000};
    evtimer_add(l->retry, &tv);
}

/* Stops accepting until the timer finds descriptors again; the first
 * pause of an episode is the one logged. */
static void accept_pause(struct listener *l, int err)
{
    evconnlistener_disable(l->evl);
    if (l->state == ACCEPTING) {
        evutil_gettimeofday(&l->since, NULL);
        l->failed = 0;
        l->held = 0;
        l->deferred = 0;
        log_msg(LOG_ERROR,
                "%s: accept: %s: pausing accepts, retrying every %d ms",
                l->px->name, strerror(err), LISTENER_RETRY_MS);
    }
    l->state = PAUSED;
    retry_arm(l);
}

/* A client past max_conns: one non-blocking try at memcached's words,
 * then the close. */
static void refuse_full(struct listener *l, int fd, const struct sockaddr *sa)
{
    char name[128];

    (void)!send(fd, LISTENER_FULL_REPLY, strlen(LISTENER_FULL_REPLY),
                MSG_DONTWAIT | MSG_NOSIGNAL);
    close(fd);
    full_refused++;
    if (!full) {
        full = true;
        log_msg(LOG_ERROR,
                "%s: %zu client connections open (--max-connections): "
                "refusing new clients",
                l->px->name, max_conns);
    }
    log_msg(LOG_INFO, "%s: refused %s: too many connections", l->px->name,
            addr_format(sa, name, sizeof(name)));
}

/* Past the connection limit or not; the client is taken over either way. */
static void admit(struct listener *l, int fd, const struct sockaddr *sa)
{
    if (stats.connections_now >= max_conns) {
        refuse_full(l, fd, sa);
        return;
    }
    if (full) {
        full = false;
        log_msg(LOG_ERROR,
                "%s: accepting clients again (%" PRIu64 " refused while %zu "
                "were open)",
                l->px->name, full_refused, max_conns);
        full_refused = 0;
    }
    conn_create(l->px, fd, sa);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd,
                      struct sockaddr *sa, int socklen, void *arg)
{
    struct listener *l = arg;
    (void)evl;

    /* The upstream needs a descriptor too: without one, conn_create would
     * drop the client, and the next in the backlog, and the next... */
    int err = 0;
    if (stats.connections_now < max_conns && (err = fds_free(fd, 1)) != 0) {
        l->held_fd = fd;
        memcpy(&l->held_peer, sa, (size_t)socklen);
        accept_pause(l, err);
        l->held++;
        return;
    }
    admit(l, fd, sa);
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
    struct listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    (void)evl;

    if (out_of_fds(err)) {
        accept_pause(l, err);
        l->failed++;
        return;
    }
    /* Errors of one connection (the network's, passed on by accept). */
    log_msg(LOG_ERROR, "%s: accept: %s", l->px->name, strerror(err));
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;
    struct timeval now;
    (void)fd;
    (void)what;

    if (l->state == RESUMING) {
        /* A whole interval without running out: the episode is over. */
        evutil_gettimeofday(&now, NULL);
        evutil_timersub(&now, &l->since, &now);
        log_msg(LOG_ERROR,
                "%s: accepting again after %.1f s (%" PRIu64
                " accept attempts failed, %" PRIu64
                " clients held back, %" PRIu64 " retries deferred)",
                l->px->name, (double)now.tv_sec + now.tv_usec / 1e6, l->failed,
                l->held, l->deferred);
        l->state = ACCEPTING;
        return;
    }
    if (l->held_fd >= 0) {
        if (fds_free(l->held_fd, 1) != 0) {
            l->deferred++;
            retry_arm(l);
            return;
        }
        int held = l->held_fd;
        l->held_fd = -1;
        admit(l, held, (const struct sockaddr *)&l->held_peer);
    }
    /* Room for a whole connection, client and upstream, or wait on. */
    if (fds_free(evconnlistener_get_fd(l->evl), 2) != 0) {
        l->deferred++;
        retry_arm(l);
        return;
    }
    l->state = RESUMING;
    evconnlistener_enable(l->evl);
    retry_arm(l);
}

void listener_set_max_connections(size_t max, size_t nlisteners)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)2 * max + nlisteners + LISTENER_FD_SLACK;

    max_conns = max;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_msg(LOG_ERROR, "file descriptors: getrlimit: %s", strerror(errno));
        return;
    }
    rlim_t from = rl.rlim_cur;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rl.rlim_cur = need;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
        }
        if (rl.rlim_cur > from && setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            log_msg(LOG_ERROR, "file descriptors: setrlimit: %s",
                    strerror(errno));
            rl.rlim_cur = from;
        }
    }
    if (rl.rlim_cur != from) {
        log_msg(LOG_INFO,
                "file descriptors: soft limit raised from %llu to %llu "
                "(%zu connections need %llu)",
                (unsigned long long)from, (unsigned long long)rl.rlim_cur, max,
                (unsigned long long)need);
    } else {
        log_msg(LOG_INFO,
                "file descriptors: soft limit %llu (%zu connections need "
                "%llu)",
                (unsigned long long)rl.rlim_cur, max, (unsigned long long)need);
    }
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        log_msg(LOG_ERROR,
                "file descriptors: the hard limit %llu is below the %llu "
                "that %zu connections need (--max-connections): accepting "
                "will pause whenever descriptors run out",
                (unsigned long long)rl.rlim_max, (unsigned long long)need, max);
    }
}

/* Binds l->bound and starts accepting. Returns 0, or -1 with errno set. */
static int listener_bind(struct listener *l)
{
    l->evl = evconnlistener_new_bind(
        l->px->base, on_accept, l,
        LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        LISTENER_BACKLOG, (struct sockaddr *)&l->bound, (int)l->bound_len);
    if (l->evl == NULL) {
        if (errno == 0) {
            errno = ENOMEM;
        }
        return -1;
    }
    evconnlistener_set_error_cb(l->evl, on_accept_error);
    l->state = ACCEPTING;
    return 0;
}

struct listener *listener_create(struct proxy *px, const struct addr_spec *spec)
{
    int rc;
    struct listener *l = calloc(1, sizeof(*l));

    if (l == NULL) {
        return NULL;
    }
    l->bound_len = sizeof(l->bound);
    rc = addr_resolve(spec, ADDR_PASSIVE, &l->bound, &l->bound_len);
    if (rc != 0) {
        log_msg(LOG_ERROR, "listen %s:%s: %s", spec->host, spec->port,
                gai_strerror(rc));
        free(l);
        return NULL;
    }
    l->px = px;
    l->held_fd = -1;
    l->retry = evtimer_new(px->base, on_retry, l);
    if (l->retry == NULL) {
        free(l);
        return NULL;
    }
    errno = 0;
    if (listener_bind(l) != 0) {
        log_msg(LOG_ERROR, "listen %s:%s: %s", spec->host, spec->port,
                strerror(errno));
        event_free(l->retry);
        free(l);
        return NULL;
    }
    /* Port 0 gets one from the kernel: enabling again binds that one. */
    socklen_t len = sizeof(l->bound);
    if (getsockname(evconnlistener_get_fd(l->evl), (struct sockaddr *)&l->bound,
                    &len) == 0) {
        l->bound_len = len;
    }
    return l;
}

void listener_stop(struct listener *l)
{
    if (l == NULL || l->evl == NULL) {
        return;
    }
    /* The socket closes: clients in its backlog get a reset, new ones a
     * refusal (a disabled evconnlistener would let the kernel go on
     * completing handshakes). */
    evconnlistener_free(l->evl);
    l->evl = NULL;
    evtimer_del(l->retry);
    l->state = ACCEPTING;
    if (l->held_fd >= 0) {
        close(l->held_fd);
        l->held_fd = -1;
    }
}

int listener_start(struct listener *l)
{
    if (l->evl != NULL) {
        return 0;
    }
    errno = 0;
    if (listener_bind(l) != 0) {
        char name[128];
        int err = errno;
        log_msg(LOG_ERROR, "%s: listen %s: %s", l->px->name,
                addr_format((struct sockaddr *)&l->bound, name, sizeof(name)),
                strerror(err));
        errno = err;
        return -1;
    }
    return 0;
}

const char *listener_address(const struct listener *l, char *buf, size_t size)
{
    return addr_format((const struct sockaddr *)&l->bound, buf, size);
}

void listener_destroy(struct listener *l)
{
    if (l != NULL) {
        if (l->evl != NULL) {
            evconnlistener_free(l->evl);
        }
        event_free(l->retry);
        if (l->held_fd >= 0) {
            close(l->held_fd);
        }
        free(l);
    }
}
