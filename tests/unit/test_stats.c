/*
 * Unit tests for the fired-fault ring behind GET /events: sequence
 * numbers, "since", and forgetting the oldest beyond STATS_EVENTS_MAX.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcfault/stats.h"

struct seen {
    uint64_t first;
    uint64_t last;
    size_t n;
    bool bad; /* an event's text does not match its sequence number */
};

static void collect(uint64_t seq, const char *json, void *arg)
{
    struct seen *s = arg;
    char want[32];

    snprintf(want, sizeof(want), "{\"n\":%llu}", (unsigned long long)seq);
    if (strcmp(json, want) != 0 || (s->n > 0 && seq != s->last + 1)) {
        s->bad = true;
    }
    if (s->n == 0) {
        s->first = seq;
    }
    s->last = seq;
    s->n++;
}

static void push_upto(uint64_t n)
{
    char buf[32];

    for (uint64_t i = 1; i <= n; i++) {
        snprintf(buf, sizeof(buf), "{\"n\":%llu}", (unsigned long long)i);
        assert_int_equal(stats_event_push(buf), i);
    }
}

static void test_events_before_wrap(void **state)
{
    struct seen s = {0};
    (void)state;

    assert_int_equal(stats_events_since(0, collect, &s), 0);
    assert_int_equal(s.n, 0);
    push_upto(5);
    assert_int_equal(stats_events_since(0, collect, &s), 5);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.first, 1);
    assert_false(s.bad);
    memset(&s, 0, sizeof(s));
    stats_events_since(3, collect, &s);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.first, 4);
    memset(&s, 0, sizeof(s));
    stats_events_since(5, collect, &s);
    assert_int_equal(s.n, 0);
    memset(&s, 0, sizeof(s));
    stats_events_since(99, collect, &s); /* ahead of the newest */
    assert_int_equal(s.n, 0);
    stats_events_free();
}

static void test_events_wrap(void **state)
{
    uint64_t total = STATS_EVENTS_MAX + 37;
    struct seen s = {0};
    (void)state;

    push_upto(total);
    assert_int_equal(stats_events_since(0, collect, &s), total);
    assert_int_equal(s.n, STATS_EVENTS_MAX);
    assert_int_equal(s.first, total - STATS_EVENTS_MAX + 1);
    assert_int_equal(s.last, total);
    assert_false(s.bad);
    memset(&s, 0, sizeof(s));
    stats_events_since(total - 3, collect, &s);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.first, total - 2);
    assert_false(s.bad);
    stats_events_free();
}

/* POST /reset: counters to 0, gauges kept, events gone and numbered
 * from 1 again. */
static void test_reset(void **state)
{
    struct seen s = {0};
    (void)state;

    stats.connections_total = 7;
    stats.connections_now = 3;
    stats.client_bytes_in = 100;
    stats.reloads_failed = 2;
    stats.faults_total = 5;
    stats.commands[PROTO_OP_GET] = 9;
    stats.faults[RULE_DROP] = 4;
    push_upto(3);
    stats_reset();
    assert_int_equal(stats.connections_total, 0);
    assert_int_equal(stats.connections_now, 3);
    assert_int_equal(stats.client_bytes_in, 0);
    assert_int_equal(stats.reloads_failed, 0);
    assert_int_equal(stats.faults_total, 0);
    assert_int_equal(stats.commands[PROTO_OP_GET], 0);
    assert_int_equal(stats.faults[RULE_DROP], 0);
    assert_int_equal(stats_events_since(0, collect, &s), 0);
    assert_int_equal(s.n, 0);
    push_upto(2); /* asserts the numbers restart at 1 */
    stats_events_free();
    memset(&stats, 0, sizeof(stats));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_before_wrap),
        cmocka_unit_test(test_events_wrap),
        cmocka_unit_test(test_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
