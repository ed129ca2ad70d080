/*
 * Slow work off the event loop: a job runs on a thread of its own (a name
 * lookup, building a big rule table), then its completion runs on the
 * loop's thread. No libevent locking is needed: threads hand finished jobs
 * back through a pipe the loop reads.
 */
#ifndef MCFAULT_WORKER_H
#define MCFAULT_WORKER_H

#include <event2/event.h>

typedef void (*worker_fn)(void *arg);

/*
 * Prepares the hand-back pipe in base. Call once, before worker_run.
 * Returns 0 or -1 with errno.
 */
int worker_init(struct event_base *base);

/*
 * Runs work(arg) on a new thread, then done(arg) on the loop's thread (from
 * the loop, never from inside worker_run). work must not touch libevent or
 * loop state; done may. Returns 0, or -1 when no thread could be started
 * (then neither function runs and arg is still the caller's).
 */
int worker_run(worker_fn work, worker_fn done, void *arg);

/*
 * Stops taking finished jobs: completions still pending are dropped
 * (done is not called; their arg is not freed), threads still running are
 * left to finish on their own. For shutdown.
 */
void worker_deinit(void);

#endif
