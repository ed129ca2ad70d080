/*
 * Slow work on threads of its own, finished on the loop's thread: each
 * thread writes its job's address to a pipe the loop reads.
 */
#include "mcfault/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "mcfault/log.h"

struct job {
    worker_fn work;
    worker_fn done;
    void *arg;
};

static int pipe_fds[2] = {-1, -1};
static struct event *pipe_ev;

/* A pointer write of 8 bytes to a pipe is atomic (< PIPE_BUF). */
static void *job_thread(void *p)
{
    struct job *j = p;

    j->work(j->arg);
    ssize_t n;
    do {
        n = write(pipe_fds[1], &j, sizeof(j));
    } while (n < 0 && errno == EINTR);
    return NULL;
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
    struct job *j;
    (void)what;
    (void)arg;

    while (read(fd, &j, sizeof(j)) == (ssize_t)sizeof(j)) {
        j->done(j->arg);
        free(j);
    }
}

int worker_init(struct event_base *base)
{
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
        return -1;
    }
    /* Only the read end is non-blocking: a thread must never lose its
     * completion, the loop must never block on an empty pipe. */
    evutil_make_socket_nonblocking(pipe_fds[0]);
    pipe_ev = event_new(base, pipe_fds[0], EV_READ | EV_PERSIST, on_pipe, NULL);
    if (pipe_ev == NULL || event_add(pipe_ev, NULL) != 0) {
        worker_deinit();
        return -1;
    }
    return 0;
}

int worker_run(worker_fn work, worker_fn done, void *arg)
{
    pthread_attr_t attr;
    pthread_t t;
    struct job *j = malloc(sizeof(*j));

    if (j == NULL || pipe_ev == NULL) {
        free(j);
        return -1;
    }
    j->work = work;
    j->done = done;
    j->arg = arg;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, job_thread, j);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        log_msg(LOG_ERROR, "worker: cannot start a thread: %d", rc);
        free(j);
        return -1;
    }
    return 0;
}

void worker_deinit(void)
{
    if (pipe_ev != NULL) {
        event_free(pipe_ev);
        pipe_ev = NULL;
    }
    /* The write end stays open, so its number is never reused: a thread
     * still running writes its job into this pipe (and gets EPIPE, its job
     * left unfreed at exit), never into some other file. */
    if (pipe_fds[0] >= 0) {
        close(pipe_fds[0]);
        pipe_fds[0] = -1;
    }
}
