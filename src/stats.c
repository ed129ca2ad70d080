/*
 * Process-wide counters and the ring of recent fault events.
 */
#include "mcfault/stats.h"

#include <stdlib.h>
#include <string.h>

struct stats stats;

const uint32_t stats_lat_bounds[STATS_LAT_BUCKETS - 1] = {
    100,   200,    500,    1000,   2000,    5000,    10000,  20000,
    50000, 100000, 200000, 500000, 1000000, 2000000, 5000000};

void stats_latency(enum proto_op op, uint64_t us)
{
    size_t b = 0;

    while (b < STATS_LAT_BUCKETS - 1 && us > stats_lat_bounds[b]) {
        b++;
    }
    stats.lat_count[op][b]++;
    stats.lat_sum_us[op] += us;
}
bool stats_keep_events;

static char *events[STATS_EVENTS_MAX];
static uint64_t events_seq; /* sequence number of the newest event */

uint64_t stats_event_push(const char *json)
{
    size_t slot = (size_t)(events_seq % STATS_EVENTS_MAX);
    char *copy = strdup(json);

    if (copy == NULL) {
        return events_seq; /* out of memory: the event is not remembered */
    }
    free(events[slot]);
    events[slot] = copy;
    return ++events_seq;
}

uint64_t stats_events_since(uint64_t since,
                            void (*fn)(uint64_t seq, const char *json,
                                       void *arg),
                            void *arg)
{
    uint64_t oldest =
        events_seq > STATS_EVENTS_MAX ? events_seq - STATS_EVENTS_MAX + 1 : 1;
    uint64_t from = since + 1 > oldest ? since + 1 : oldest;

    for (uint64_t seq = from; seq <= events_seq; seq++) {
        const char *e = events[(seq - 1) % STATS_EVENTS_MAX];
        if (e != NULL) {
            fn(seq, e, arg);
        }
    }
    return events_seq;
}

void stats_events_free(void)
{
    for (size_t i = 0; i < STATS_EVENTS_MAX; i++) {
        free(events[i]);
        events[i] = NULL;
    }
    events_seq = 0;
}

/* A counter field is zeroed, a gauge kept. */
#define STATS_RESET_counter(name) stats.name = 0;
#define STATS_RESET_gauge(name)
#define STATS_RESET(name, kind, help) STATS_RESET_##kind(name)

void stats_reset(void)
{
    STATS_FIELDS(STATS_RESET)
    memset(stats.commands, 0, sizeof(stats.commands));
    memset(stats.faults, 0, sizeof(stats.faults));
    memset(stats.lat_count, 0, sizeof(stats.lat_count));
    memset(stats.lat_sum_us, 0, sizeof(stats.lat_sum_us));
    stats_events_free();
}
