/*
 * Process-wide counters and the ring of recent fault events.
 */
#include "mcfault/stats.h"

#include <stdlib.h>
#include <string.h>

struct stats stats;
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
