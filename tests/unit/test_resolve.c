/*
 * Unit tests for the upstream resolver. The worker is faked: worker_run
 * queues the job, and each test runs its thread half (the real
 * getaddrinfo) and its loop half when it chooses, so every interleaving
 * (a second get while in flight, destroy before the answer) is exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "mcfault/resolve.h"
#include "mcfault/worker.h"

/* ---- the fake worker ---- */

#define JOBS_MAX 8

static struct {
    worker_fn work;
    worker_fn done;
    void *arg;
} jobs[JOBS_MAX];
static size_t njobs;
static size_t started; /* worker_run calls, failed ones included */
static bool refuse;    /* worker_run fails, as when no thread starts */

int worker_run(worker_fn work, worker_fn done, void *arg)
{
    started++;
    if (refuse) {
        return -1;
    }
    assert_true(njobs < JOBS_MAX);
    jobs[njobs].work = work;
    jobs[njobs].done = done;
    jobs[njobs].arg = arg;
    njobs++;
    return 0;
}

/* Runs the oldest queued job: its thread half, then its loop half. */
static void run_job(void)
{
    assert_true(njobs > 0);
    jobs[0].work(jobs[0].arg);
    jobs[0].done(jobs[0].arg);
    njobs--;
    memmove(&jobs[0], &jobs[1], njobs * sizeof(jobs[0]));
}

/* ---- the done callback ---- */

struct seen {
    int calls;
    int status;
    struct resolver *destroy; /* destroyed from inside done when set */
};

static void on_done(void *arg, int status)
{
    struct seen *s = arg;

    s->calls++;
    s->status = status;
    if (s->destroy != NULL) {
        resolver_destroy(s->destroy);
        s->destroy = NULL;
    }
}

static int setup(void **state)
{
    (void)state;
    njobs = 0;
    started = 0;
    refuse = false;
    return 0;
}

static struct addr_spec spec_of(const char *host, const char *port)
{
    struct addr_spec s;

    memset(&s, 0, sizeof(s));
    snprintf(s.host, sizeof(s.host), "%s", host);
    snprintf(s.port, sizeof(s.port), "%s", port);
    return s;
}

/* The port of ss, and whether its address is a loopback one. */
static unsigned loopback_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        assert_int_equal(ntohl(a->sin_addr.s_addr) >> 24, 127);
        return ntohs(a->sin_port);
    }
    assert_int_equal(ss->ss_family, AF_INET6);
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    assert_true(IN6_IS_ADDR_LOOPBACK(&a->sin6_addr));
    return ntohs(a->sin6_port);
}

/* ---- tests ---- */

/* Numeric addresses are known at create: no lookup, ever. */
static const struct {
    const char *host;
    const char *port;
    int family;
} numeric_cases[] = {
    {"127.0.0.1", "11211", AF_INET}, {"127.0.0.3", "1", AF_INET},
    {"10.1.2.3", "65535", AF_INET},  {"::1", "11211", AF_INET6},
    {"fe80::1", "22122", AF_INET6},
};

static void test_numeric(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(numeric_cases) / sizeof(*numeric_cases);
         i++) {
        struct addr_spec spec =
            spec_of(numeric_cases[i].host, numeric_cases[i].port);
        struct seen seen = {0};
        struct sockaddr_storage ss;
        socklen_t len = 0;
        char want[INET6_ADDRSTRLEN];
        char got[64];

        struct resolver *r = resolver_create(&spec, on_done, &seen);
        assert_non_null(r);
        assert_int_equal(resolver_get(r, &ss, &len), 0);
        assert_int_equal(ss.ss_family, numeric_cases[i].family);
        assert_true(len > 0);
        /* a failed connect changes nothing for an address */
        resolver_invalidate(r);
        memset(&ss, 0, sizeof(ss));
        assert_int_equal(resolver_get(r, &ss, &len), 0);
        snprintf(want, sizeof(want), "%s", numeric_cases[i].host);
        if (ss.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, got,
                      sizeof(got));
        } else {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, got,
                      sizeof(got));
        }
        assert_string_equal(got, want);
        assert_int_equal(started, 0);
        assert_int_equal(seen.calls, 0);
        resolver_destroy(r);
    }
}

/* A name: the first get starts a lookup and says "not yet"; a second get
 * while it is in flight starts nothing; the answer makes it known. */
static void test_name_lookup(void **state)
{
    struct addr_spec spec = spec_of("localhost", "11211");
    struct seen seen = {0};
    struct sockaddr_storage ss;
    socklen_t len = 0;
    (void)state;

    struct resolver *r = resolver_create(&spec, on_done, &seen);
    assert_non_null(r);
    assert_int_equal(resolver_get(r, &ss, &len), -1);
    assert_int_equal(njobs, 1);
    assert_int_equal(resolver_get(r, &ss, &len), -1);
    assert_int_equal(njobs, 1);
    assert_int_equal(seen.calls, 0);

    run_job();
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.status, 0);
    assert_int_equal(resolver_get(r, &ss, &len), 0);
    assert_int_equal(loopback_port(&ss), 11211);
    assert_int_equal(started, 1);

    /* a failed connect: forgotten, looked up again (rate-limited: this
     * lookup's thread waits out RESOLVE_INTERVAL_MS) */
    resolver_invalidate(r);
    assert_int_equal(resolver_get(r, &ss, &len), -1);
    assert_int_equal(njobs, 1);
    resolver_invalidate(r); /* nothing known: nothing to forget */
    run_job();
    assert_int_equal(seen.calls, 2);
    assert_int_equal(seen.status, 0);
    assert_int_equal(resolver_get(r, &ss, &len), 0);
    assert_int_equal(started, 2);
    resolver_destroy(r);
}

/* A lookup that fails reports its getaddrinfo code; nothing is known,
 * and the next get looks up again. (A service name, refused without any
 * name service being asked: AI_NUMERICSERV.) */
static void test_lookup_fails(void **state)
{
    struct addr_spec spec = spec_of("localhost", "mc");
    struct seen seen = {0};
    struct sockaddr_storage ss;
    socklen_t len;
    (void)state;

    struct resolver *r = resolver_create(&spec, on_done, &seen);
    assert_int_equal(resolver_get(r, &ss, &len), -1);
    run_job();
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.status, EAI_NONAME);
    assert_int_equal(resolver_get(r, &ss, &len), -1);
    assert_int_equal(njobs, 1);
    run_job();
    assert_int_equal(seen.calls, 2);
    assert_int_equal(seen.status, EAI_NONAME);
    resolver_destroy(r);
}

/* Destroyed with a lookup in flight: the answer is discarded (and freed:
 * the sanitizer build would report a leak or a use after free). */
static void test_destroy_in_flight(void **state)
{
    struct addr_spec spec = spec_of("localhost", "1");
    struct seen seen = {0};
    struct sockaddr_storage ss;
    socklen_t len;
    (void)state;

    struct resolver *r = resolver_create(&spec, on_done, &seen);
    assert_int_equal(resolver_get(r, &ss, &len), -1);
    resolver_destroy(r);
    run_job();
    assert_int_equal(seen.calls, 0);
    resolver_destroy(NULL);
}

/* done may destroy the resolver: nothing touches it afterwards. */
static void test_destroy_from_done(void **state)
{
    struct addr_spec spec = spec_of("localhost", "2");
    struct seen seen = {0};
    struct sockaddr_storage ss;
    socklen_t len;
    (void)state;

    struct resolver *r = resolver_create(&spec, on_done, &seen);
    seen.destroy = r;
    assert_int_equal(resolver_get(r, &ss, &len), -1);
    run_job();
    assert_int_equal(seen.calls, 1);
    assert_null(seen.destroy);
}

/* No thread: nothing in flight, the next get tries again. */
static void test_no_thread(void **state)
{
    struct addr_spec spec = spec_of("localhost", "3");
    struct seen seen = {0};
    struct sockaddr_storage ss;
    socklen_t len;
    (void)state;

    struct resolver *r = resolver_create(&spec, on_done, &seen);
    refuse = true;
    assert_int_equal(resolver_get(r, &ss, &len), -1);
    assert_int_equal(resolver_get(r, &ss, &len), -1);
    assert_int_equal(started, 2);
    assert_int_equal(njobs, 0);
    refuse = false;
    assert_int_equal(resolver_get(r, &ss, &len), -1);
    assert_int_equal(njobs, 1);
    run_job();
    assert_int_equal(seen.calls, 1);
    assert_int_equal(resolver_get(r, &ss, &len), 0);
    assert_int_equal(loopback_port(&ss), 3);
    resolver_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_numeric, setup),
        cmocka_unit_test_setup(test_name_lookup, setup),
        cmocka_unit_test_setup(test_lookup_fails, setup),
        cmocka_unit_test_setup(test_destroy_in_flight, setup),
        cmocka_unit_test_setup(test_destroy_from_done, setup),
        cmocka_unit_test_setup(test_no_thread, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
