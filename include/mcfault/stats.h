/*
 * Process-wide counters for GET /stats and /metrics, declared once in an
 * X-macro, and a bounded ring of the faults that fired (GET /events).
 */
#ifndef MCFAULT_STATS_H
#define MCFAULT_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcfault/proto.h"
#include "mcfault/rules.h"

/* X(name, kind, help): kind is counter or gauge (Prometheus types). */
#define STATS_FIELDS(X)                                                        \
    X(connections_total, counter, "client connections accepted")               \
    X(connections_now, gauge, "client connections open")                       \
    X(client_bytes_in, counter, "bytes read from clients")                     \
    X(client_bytes_out, counter, "bytes written to clients")                   \
    X(upstream_bytes_out, counter, "bytes written to memcached")               \
    X(upstream_bytes_in, counter, "bytes read from memcached")                 \
    X(upstream_errors, counter, "upstream connects refused or failed")         \
    X(faults_total, counter, "faults fired")                                   \
    X(reloads_ok, counter, "rule reloads that took effect")                    \
    X(reloads_failed, counter, "rule reloads refused (old rules kept)")

/* Upstream latency per command: buckets whose upper bounds (microseconds)
 * are stats_lat_bounds, the last one unbounded (+Inf). */
#define STATS_LAT_BUCKETS 16
extern const uint32_t stats_lat_bounds[STATS_LAT_BUCKETS - 1];

struct stats {
#define STATS_DECLARE(name, kind, help) uint64_t name;
    STATS_FIELDS(STATS_DECLARE)
#undef STATS_DECLARE
    uint64_t commands[PROTO_OP__COUNT]; /* by proto_op_name */
    uint64_t faults[RULE__COUNT];       /* by rule_action_name */
    /* From a command's forwarding to its reply framed, for commands with
     * one reply: per bucket (not cumulative), and the sum. */
    uint64_t lat_count[PROTO_OP__COUNT][STATS_LAT_BUCKETS];
    uint64_t lat_sum_us[PROTO_OP__COUNT];
};

/* Counts one upstream round trip of us microseconds for command op. */
void stats_latency(enum proto_op op, uint64_t us);

/* The one instance; the loop is single-threaded. */
extern struct stats stats;

/* True when something reads the events (the admin API is on); otherwise
 * stats_event_push is not called. */
extern bool stats_keep_events;

/* How many fired faults /events remembers. */
#define STATS_EVENTS_MAX 1024

/*
 * Remembers one fired fault (a JSON object, copied) and returns its
 * sequence number (1, 2, ...). The oldest is forgotten beyond
 * STATS_EVENTS_MAX.
 */
uint64_t stats_event_push(const char *json);

/*
 * Calls fn for each remembered event with a sequence number above since,
 * oldest first. Returns the highest sequence number handed out so far.
 */
uint64_t stats_events_since(uint64_t since,
                            void (*fn)(uint64_t seq, const char *json,
                                       void *arg),
                            void *arg);

/* Frees the remembered events; the next one pushed is number 1 again. */
void stats_events_free(void);

/*
 * POST /reset: every counter back to 0 (the fields of kind counter, the
 * commands and faults tables) and the events forgotten (their sequence
 * numbers restart at 1). Gauges (connections_now) keep their value: they
 * say what is, not what happened.
 */
void stats_reset(void);

#endif
