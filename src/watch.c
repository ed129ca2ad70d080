/*
 * Live rule files (see watch.h): inotify on the directories, a debounce
 * timer, and a fingerprint of the content so only a real change counts.
 */
#include "mcfault/watch.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "mcfault/log.h"

/* What in a directory can mean the file changed: written, replaced by a
 * rename, created, removed, or a symlink swapped. */
#define WATCH_MASK                                                             \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |    \
     IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

struct watch {
    char *path;
    int fd; /* inotify */
    int wd[2];
    char *dirs[2]; /* the path's directory, its target's directory */
    struct event *ev;
    struct event *timer;
    void (*changed)(void *arg);
    void *arg;
    bool seen;       /* fingerprint is of a readable file */
    bool unreadable; /* logged that it cannot be read */
    uint64_t fingerprint;
};

/* FNV-1a over the content, with its length: a change of the file that
 * leaves these equal is not one. */
static int fingerprint_of(const char *path, uint64_t *out)
{
    char buf[8192];
    uint64_t h = 1469598103934665603ULL;
    uint64_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return -1;
    }
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (n == 0) {
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            h = (h ^ (unsigned char)buf[i]) * 1099511628211ULL;
        }
        len += (uint64_t)n;
    }
    close(fd);
    *out = h ^ (len * 0x9e3779b97f4a7c15ULL);
    return 0;
}

static char *dir_of(const char *path)
{
    char *copy = strdup(path);
    char *d;

    if (copy == NULL) {
        return NULL;
    }
    d = strdup(dirname(copy));
    free(copy);
    return d;
}

/* Watches the path's directory and, when the path is a symlink that ends
 * elsewhere, that directory too (it changes when the link is swapped:
 * the watch follows). */
static void watch_dirs(struct watch *w)
{
    char real[PATH_MAX];
    char *want[2] = {dir_of(w->path), NULL};

    if (realpath(w->path, real) != NULL) {
        want[1] = dir_of(real);
        if (want[1] != NULL && want[0] != NULL &&
            strcmp(want[0], want[1]) == 0) {
            free(want[1]);
            want[1] = NULL;
        }
    }
    for (int i = 0; i < 2; i++) {
        if (w->dirs[i] != NULL && want[i] != NULL &&
            strcmp(w->dirs[i], want[i]) == 0) {
            free(want[i]);
            continue;
        }
        if (w->wd[i] >= 0) {
            inotify_rm_watch(w->fd, w->wd[i]);
            w->wd[i] = -1;
        }
        free(w->dirs[i]);
        w->dirs[i] = want[i];
        if (w->dirs[i] != NULL) {
            w->wd[i] = inotify_add_watch(w->fd, w->dirs[i], WATCH_MASK);
            if (w->wd[i] < 0) {
                log_msg(LOG_ERROR, "watch %s: %s: %s", w->path, w->dirs[i],
                        strerror(errno));
            }
        }
    }
}

static void on_settled(evutil_socket_t fd, short what, void *arg)
{
    struct watch *w = arg;
    uint64_t fp;
    (void)fd;
    (void)what;

    watch_dirs(w);
    if (fingerprint_of(w->path, &fp) != 0) {
        if (!w->unreadable) {
            log_msg(LOG_ERROR,
                    "watch %s: cannot read it: %s (the rules in force stay)",
                    w->path, strerror(errno));
            w->unreadable = true;
        }
        return;
    }
    w->unreadable = false;
    if (w->seen && fp == w->fingerprint) {
        return; /* touched, renamed onto itself: nothing new */
    }
    w->seen = true;
    w->fingerprint = fp;
    log_msg(LOG_INFO, "watch %s: changed, reloading", w->path);
    w->changed(w->arg);
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
    struct watch *w = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;
    (void)what;

    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
            break; /* EAGAIN: all read */
        }
        any = true;
    }
    if (any) {
        struct timeval tv = {.tv_sec = WATCH_DEBOUNCE_MS / 1000,
                             .tv_usec = (WATCH_DEBOUNCE_MS % 1000) * 1000};
        evtimer_add(w->timer, &tv); /* restarts: the last event counts */
    }
}

struct watch *watch_create(struct event_base *base, const char *path,
                           void (*changed)(void *arg), void *arg)
{
    struct watch *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        return NULL;
    }
    w->wd[0] = -1;
    w->wd[1] = -1;
    w->changed = changed;
    w->arg = arg;
    w->path = strdup(path);
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->path == NULL || w->fd < 0) {
        log_msg(LOG_ERROR, "watch %s: %s", path, strerror(errno));
        watch_destroy(w);
        return NULL;
    }
    watch_dirs(w);
    if (w->wd[0] < 0) {
        watch_destroy(w);
        return NULL;
    }
    w->seen = fingerprint_of(path, &w->fingerprint) == 0;
    w->ev = event_new(base, w->fd, EV_READ | EV_PERSIST, on_inotify, w);
    w->timer = evtimer_new(base, on_settled, w);
    if (w->ev == NULL || w->timer == NULL || event_add(w->ev, NULL) != 0) {
        watch_destroy(w);
        return NULL;
    }
    log_msg(LOG_INFO, "watch %s: watching %s%s%s", path, w->dirs[0],
            w->dirs[1] != NULL ? " and " : "",
            w->dirs[1] != NULL ? w->dirs[1] : "");
    return w;
}

void watch_destroy(struct watch *w)
{
    if (w == NULL) {
        return;
    }
    if (w->ev != NULL) {
        event_free(w->ev);
    }
    if (w->timer != NULL) {
        event_free(w->timer);
    }
    if (w->fd >= 0) {
        close(w->fd);
    }
    for (int i = 0; i < 2; i++) {
        free(w->dirs[i]);
    }
    free(w->path);
    free(w);
}
