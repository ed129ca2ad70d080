/*
 * The upstream's address: glibc's getaddrinfo on a worker thread (so
 * /etc/hosts, nsswitch.conf and resolv.conf are read as glibc reads them,
 * at each lookup), the answer kept until a connect to it fails.
 */
#include "mcfault/resolve.h"

#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mcfault/log.h"
#include "mcfault/worker.h"

/* One getaddrinfo on a thread. The thread reads only this struct, never
 * the resolver, which may be gone by the time the answer arrives. */
struct lookup {
    struct resolver *r; /* NULL: the resolver was destroyed, discard */
    struct addr_spec spec;
    struct timespec start; /* CLOCK_MONOTONIC; the thread waits for it */
    int status;            /* a getaddrinfo code */
    struct sockaddr_storage ss;
    socklen_t len;
};

struct resolver {
    struct addr_spec spec;
    void (*done)(void *arg, int status);
    void *arg;
    bool numeric;               /* resolved at create, never looked up */
    bool known;                 /* ss/len are the address to use */
    struct sockaddr_storage ss; /* the last address found, even forgotten */
    socklen_t len;              /* 0: none found yet */
    struct lookup *inflight;
    bool looked_up; /* last_start is set */
    struct timespec last_start;
    bool failing; /* the last lookup failed with status failed (logged) */
    int failed;
};

static void ts_add_ms(struct timespec *t, long ms)
{
    t->tv_sec += ms / 1000;
    t->tv_nsec += (ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec ||
           (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* On the worker thread. */
static void lookup_work(void *arg)
{
    struct lookup *lk = arg;

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &lk->start, NULL) ==
           EINTR) {
    }
    lk->status = addr_resolve(&lk->spec, 0, &lk->ss, &lk->len);
}

static bool same_addr(const struct sockaddr_storage *a, socklen_t alen,
                      const struct sockaddr_storage *b, socklen_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* Logs an answer: a failure or a move at error level (a failure once
 * until the answer changes), the rest at -v. */
static void lookup_report(struct resolver *r, const struct lookup *lk)
{
    char now[128];
    char was[128];
    const char *h = r->spec.host;
    const char *p = r->spec.port;

    if (lk->status != 0) {
        log_msg(r->failing && r->failed == lk->status ? LOG_INFO : LOG_ERROR,
                "upstream %s:%s: %s (looked up again when a client "
                "connects)",
                h, p, gai_strerror(lk->status));
        r->failing = true;
        r->failed = lk->status;
        return;
    }
    addr_format((const struct sockaddr *)&lk->ss, now, sizeof(now));
    if (r->len != 0 && !same_addr(&r->ss, r->len, &lk->ss, lk->len)) {
        addr_format((const struct sockaddr *)&r->ss, was, sizeof(was));
        log_msg(LOG_ERROR, "upstream %s:%s is now %s (was %s)", h, p, now, was);
    } else {
        log_msg(r->failing ? LOG_ERROR : LOG_INFO, "upstream %s:%s is %s", h, p,
                now);
    }
    r->failing = false;
}

/* On the loop's thread. */
static void lookup_done(void *arg)
{
    struct lookup *lk = arg;
    struct resolver *r = lk->r;

    if (r == NULL) {
        free(lk);
        return;
    }
    r->inflight = NULL;
    lookup_report(r, lk);
    int status = lk->status;
    if (status == 0) {
        memcpy(&r->ss, &lk->ss, lk->len);
        r->len = lk->len;
        r->known = true;
    }
    free(lk);
    r->done(r->arg, status); /* last: it may destroy r */
}

/* Starts a lookup on a thread, no sooner than RESOLVE_INTERVAL_MS after
 * the one before. */
static void lookup_start(struct resolver *r)
{
    struct lookup *lk = calloc(1, sizeof(*lk));

    if (lk == NULL) {
        log_msg(LOG_ERROR, "upstream %s:%s: out of memory", r->spec.host,
                r->spec.port);
        return;
    }
    lk->r = r;
    lk->spec = r->spec;
    clock_gettime(CLOCK_MONOTONIC, &lk->start);
    if (r->looked_up) {
        struct timespec next = r->last_start;
        ts_add_ms(&next, RESOLVE_INTERVAL_MS);
        if (ts_before(&lk->start, &next)) {
            lk->start = next;
        }
    }
    if (worker_run(lookup_work, lookup_done, lk) != 0) {
        free(lk);
        return;
    }
    r->inflight = lk;
    r->looked_up = true;
    r->last_start = lk->start;
}

struct resolver *resolver_create(const struct addr_spec *spec,
                                 void (*done)(void *arg, int status), void *arg)
{
    struct resolver *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        return NULL;
    }
    r->spec = *spec;
    r->done = done;
    r->arg = arg;
    if (addr_resolve(spec, ADDR_NUMERIC, &r->ss, &r->len) == 0) {
        r->numeric = true;
        r->known = true;
    } else {
        r->len = 0;
    }
    return r;
}

int resolver_get(struct resolver *r, struct sockaddr_storage *ss,
                 socklen_t *len)
{
    if (r->known) {
        memcpy(ss, &r->ss, r->len);
        *len = r->len;
        return 0;
    }
    if (r->inflight == NULL) {
        lookup_start(r);
    }
    return -1;
}

void resolver_invalidate(struct resolver *r)
{
    if (!r->numeric) {
        r->known = false;
    }
}

void resolver_destroy(struct resolver *r)
{
    if (r == NULL) {
        return;
    }
    if (r->inflight != NULL) {
        r->inflight->r = NULL;
    }
    free(r);
}
