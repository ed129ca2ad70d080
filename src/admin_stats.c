/*
 * GET /stats (JSON), GET /metrics (Prometheus text format 0.0.4) and GET
 * /events (the recent fault events): stats.c's counters as the admin API
 * shows them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "admin_int.h"
#include "mcfault/proto.h"
#include "mcfault/rules.h"
#include "mcfault/stats.h"

/* `since` of GET /events: a uint64_t has at most 20 digits. */
#define SINCE_DIGITS_MAX 20

/* Appends a Prometheus label value: backslash, quote and newline escaped
 * (exposition format 0.0.4); names hold no other control bytes. */
static void prom_label(struct evbuffer *b, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\') {
            evbuffer_add(b, "\\\\", 2);
        } else if (*s == '"') {
            evbuffer_add(b, "\\\"", 2);
        } else if (*s == '\n') {
            evbuffer_add(b, "\\n", 2);
        } else {
            evbuffer_add(b, s, 1);
        }
    }
}

struct stat_field {
    const char *name;
    const char *kind; /* "counter" or "gauge" */
    const char *help;
    size_t off;
};

static const struct stat_field stat_fields[] = {
#define STATS_ROW(name, kind, help)                                            \
    {#name, #kind, help, offsetof(struct stats, name)},
    STATS_FIELDS(STATS_ROW)
#undef STATS_ROW
};

#define NFIELDS (sizeof(stat_fields) / sizeof(stat_fields[0]))

static uint64_t field_value(const struct stat_field *f)
{
    uint64_t v;

    memcpy(&v, (const char *)&stats + f->off, sizeof(v));
    return v;
}

static uint64_t uptime_s(const struct admin *ad)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)(now.tv_sec - ad->started.tv_sec);
}

/* Replies of command op whose upstream round trip was measured. */
static uint64_t latency_count(int op)
{
    uint64_t n = 0;

    for (size_t i = 0; i < STATS_LAT_BUCKETS; i++) {
        n += stats.lat_count[op][i];
    }
    return n;
}

/* "upstream_latency" of GET /stats: the histogram buckets' bounds, and
 * per command seen its count, sum and per-bucket counts (not cumulative;
 * one more than the bounds: the last is above the last bound). */
static void stats_latency_json(struct evbuffer *b)
{
    bool first = true;

    evbuffer_add_printf(b, ",\"upstream_latency\":{\"le_us\":[");
    for (size_t i = 0; i < STATS_LAT_BUCKETS - 1; i++) {
        evbuffer_add_printf(b, "%s%" PRIu32, i > 0 ? "," : "",
                            stats_lat_bounds[i]);
    }
    evbuffer_add_printf(b, "],\"commands\":{");
    for (int op = 0; op < PROTO_OP__COUNT; op++) {
        uint64_t n = latency_count(op);
        if (n == 0) {
            continue;
        }
        evbuffer_add_printf(b,
                            "%s\"%s\":{\"count\":%" PRIu64
                            ",\"sum_us\":%" PRIu64 ",\"buckets\":[",
                            first ? "" : ",", proto_op_name((enum proto_op)op),
                            n, stats.lat_sum_us[op]);
        first = false;
        for (size_t i = 0; i < STATS_LAT_BUCKETS; i++) {
            evbuffer_add_printf(b, "%s%" PRIu64, i > 0 ? "," : "",
                                stats.lat_count[op][i]);
        }
        evbuffer_add(b, "]}", 2);
    }
    evbuffer_add(b, "}}", 2);
}

void admin_stats(struct admin *ad, struct evhttp_request *req,
                 struct evkeyvalq *params)
{
    struct app *a = ad->a;
    struct evbuffer *b = evbuffer_new();
    bool first = true;
    (void)params;

    if (b == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    evbuffer_add_printf(
        b, "{\"version\":\"%s\",\"uptime_seconds\":%" PRIu64 ",\"rules\":%zu",
        MCFAULT_VERSION, uptime_s(ad), app_rule_count(a));
    for (size_t i = 0; i < NFIELDS; i++) {
        evbuffer_add_printf(b, ",\"%s\":%" PRIu64, stat_fields[i].name,
                            field_value(&stat_fields[i]));
    }
    evbuffer_add_printf(b, ",\"commands\":{");
    for (int op = 0; op < PROTO_OP__COUNT; op++) {
        if (stats.commands[op] == 0) {
            continue;
        }
        evbuffer_add_printf(b, "%s\"%s\":%" PRIu64, first ? "" : ",",
                            proto_op_name((enum proto_op)op),
                            stats.commands[op]);
        first = false;
    }
    evbuffer_add_printf(b, "},\"faults\":{");
    for (int i = 0; i < RULE__COUNT; i++) {
        evbuffer_add_printf(b, "%s\"%s\":%" PRIu64, i > 0 ? "," : "",
                            rule_action_name((enum rule_action)i),
                            stats.faults[i]);
    }
    evbuffer_add_printf(b, "},\"proxies\":[");
    uint64_t now = admin_now_us();
    for (size_t i = 0; i < a->nproxies; i++) {
        struct app_proxy *ap = &a->proxies[i];
        struct rules *t = ap->px.rules;
        evbuffer_add_printf(b, "%s{\"name\":", i > 0 ? "," : "");
        admin_json_cstr(b, ap->name);
        evbuffer_add_printf(b,
                            ",\"enabled\":%s,\"connections_now\":%" PRIu64
                            ",\"connections_total\":%" PRIu64 ",\"rules\":[",
                            ap->px.disabled ? "false" : "true",
                            ap->px.conns_now, ap->px.conns_total);
        for (size_t j = 0; t != NULL && j < rules_count(t); j++) {
            const struct rule *r = rules_at(t, j);
            evbuffer_add_printf(b, "%s{\"name\":", j > 0 ? "," : "");
            admin_json_cstr(b, r->name);
            evbuffer_add_printf(
                b, ",\"enabled\":%s,\"matched\":%" PRIu64 ",\"fired\":%" PRIu64,
                r->enabled ? "true" : "false", r->matched, r->fired);
            admin_json_in_force(b, r, now, false); /* the page polls it */
            evbuffer_add(b, "}", 1);
        }
        evbuffer_add(b, "]}", 2);
    }
    evbuffer_add(b, "]", 1);
    stats_latency_json(b);
    evbuffer_add(b, "}", 1);
    admin_reply_json(req, 200, b);
}

/* # HELP and # TYPE lines of one metric family. */
static void prom_family(struct evbuffer *b, const char *name, const char *kind,
                        const char *help)
{
    evbuffer_add_printf(b, "# HELP mcfault_%s %s\n# TYPE mcfault_%s %s\n", name,
                        help, name, kind);
}

/* The per-rule families: one sample per rule of every proxy; which: 0
 * matched, 1 fired, 2 enabled, 3 in force. */
static void prom_rules(struct evbuffer *b, struct app *a, const char *metric,
                       int which)
{
    uint64_t now = admin_now_us();

    for (size_t i = 0; i < a->nproxies; i++) {
        struct app_proxy *ap = &a->proxies[i];
        struct rules *t = ap->px.rules;
        for (size_t j = 0; t != NULL && j < rules_count(t); j++) {
            const struct rule *r = rules_at(t, j);
            uint64_t next;
            uint64_t v = r->matched;
            if (which == 1) {
                v = r->fired;
            } else if (which == 2) {
                v = r->enabled;
            } else if (which == 3) {
                v = r->enabled && rule_in_force(r, now, &next);
            }
            evbuffer_add_printf(b, "mcfault_%s{proxy=\"", metric);
            prom_label(b, ap->name);
            evbuffer_add_printf(b, "\",rule=\"");
            prom_label(b, r->name);
            evbuffer_add_printf(b, "\"} %" PRIu64 "\n", v);
        }
    }
}

/* Appends us microseconds as seconds in decimal, exactly ("0.0001", "5",
 * "12.345678"): bucket bounds and sums are not rounded through a double. */
static void prom_seconds(struct evbuffer *b, uint64_t us)
{
    char frac[8];
    int n;

    if (us % 1000000 == 0) {
        evbuffer_add_printf(b, "%" PRIu64, us / 1000000);
        return;
    }
    n = snprintf(frac, sizeof(frac), "%06" PRIu64, us % 1000000);
    while (n > 0 && frac[n - 1] == '0') {
        n--;
    }
    evbuffer_add_printf(b, "%" PRIu64 ".%.*s", us / 1000000, n, frac);
}

/*
 * mcfault_upstream_latency_seconds: a histogram per command seen
 * (commands never measured have no series), its buckets cumulative as
 * the format wants, le="+Inf" equal to _count.
 */
static void prom_latency(struct evbuffer *b)
{
    const char *m = "mcfault_upstream_latency_seconds";

    prom_family(b, "upstream_latency_seconds", "histogram",
                "from a command forwarded to memcached to the end of its "
                "reply, by command");
    for (int op = 0; op < PROTO_OP__COUNT; op++) {
        const char *cmd = proto_op_name((enum proto_op)op);
        uint64_t n = latency_count(op);
        uint64_t cum = 0;
        if (n == 0) {
            continue;
        }
        for (size_t i = 0; i < STATS_LAT_BUCKETS; i++) {
            cum += stats.lat_count[op][i];
            evbuffer_add_printf(b, "%s_bucket{command=\"%s\",le=\"", m, cmd);
            if (i < STATS_LAT_BUCKETS - 1) {
                prom_seconds(b, stats_lat_bounds[i]);
            } else {
                evbuffer_add(b, "+Inf", 4);
            }
            evbuffer_add_printf(b, "\"} %" PRIu64 "\n", cum);
        }
        evbuffer_add_printf(b, "%s_sum{command=\"%s\"} ", m, cmd);
        prom_seconds(b, stats.lat_sum_us[op]);
        evbuffer_add_printf(b, "\n%s_count{command=\"%s\"} %" PRIu64 "\n", m,
                            cmd, n);
    }
}

/*
 * Fields exposed only split by a label, whose sum they are:
 * mcfault_faults_total{action}, mcfault_connections{proxy} and
 * mcfault_connections_accepted_total{proxy} (an unlabelled
 * mcfault_connections_total beside the gauge mcfault_connections would
 * clash for parsers that strip _total).
 */
static bool prom_by_label(const char *field)
{
    return strcmp(field, "faults_total") == 0 ||
           strcmp(field, "connections_total") == 0 ||
           strcmp(field, "connections_now") == 0;
}

void admin_metrics(struct admin *ad, struct evhttp_request *req,
                   struct evkeyvalq *params)
{
    struct app *a = ad->a;
    struct evbuffer *b = evbuffer_new();
    (void)params;

    if (b == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    for (size_t i = 0; i < NFIELDS; i++) {
        const struct stat_field *f = &stat_fields[i];
        char name[64];
        size_t n = strlen(f->name);
        bool counter = strcmp(f->kind, "counter") == 0;
        if (prom_by_label(f->name)) {
            continue;
        }
        /* Prometheus counters end in _total. */
        snprintf(name, sizeof(name), "%s%s", f->name,
                 counter && (n < 6 || strcmp(f->name + n - 6, "_total") != 0)
                     ? "_total"
                     : "");
        prom_family(b, name, f->kind, f->help);
        evbuffer_add_printf(b, "mcfault_%s %" PRIu64 "\n", name,
                            field_value(f));
    }
    prom_family(b, "commands_total", "counter", "commands parsed, by command");
    for (int op = 0; op < PROTO_OP__COUNT; op++) {
        evbuffer_add_printf(
            b, "mcfault_commands_total{command=\"%s\"} %" PRIu64 "\n",
            proto_op_name((enum proto_op)op), stats.commands[op]);
    }
    prom_family(b, "faults_total", "counter", "faults fired, by action");
    for (int i = 0; i < RULE__COUNT; i++) {
        evbuffer_add_printf(
            b, "mcfault_faults_total{action=\"%s\"} %" PRIu64 "\n",
            rule_action_name((enum rule_action)i), stats.faults[i]);
    }
    prom_latency(b);
    prom_family(b, "connections", "gauge", "client connections open, by proxy");
    for (size_t i = 0; i < a->nproxies; i++) {
        evbuffer_add_printf(b, "mcfault_connections{proxy=\"");
        prom_label(b, a->proxies[i].name);
        evbuffer_add_printf(b, "\"} %" PRIu64 "\n", a->proxies[i].px.conns_now);
    }
    prom_family(b, "connections_accepted_total", "counter",
                "client connections accepted, by proxy");
    for (size_t i = 0; i < a->nproxies; i++) {
        evbuffer_add_printf(b, "mcfault_connections_accepted_total{proxy=\"");
        prom_label(b, a->proxies[i].name);
        evbuffer_add_printf(b, "\"} %" PRIu64 "\n",
                            a->proxies[i].px.conns_total);
    }
    prom_family(b, "rules", "gauge", "rules in force, over every proxy");
    evbuffer_add_printf(b, "mcfault_rules %zu\n", app_rule_count(a));
    prom_family(b, "rule_matched_total", "counter",
                "commands a rule's globs matched");
    prom_rules(b, a, "rule_matched_total", 0);
    prom_family(b, "rule_fired_total", "counter", "faults a rule fired");
    prom_rules(b, a, "rule_fired_total", 1);
    prom_family(b, "rule_enabled", "gauge", "1 when a rule is enabled");
    prom_rules(b, a, "rule_enabled", 2);
    prom_family(b, "rule_in_force", "gauge",
                "1 when a rule is enabled and its schedule has it on");
    prom_rules(b, a, "rule_in_force", 3);
    prom_family(b, "proxy_enabled", "gauge",
                "1 when a proxy listens (0: switched off)");
    for (size_t i = 0; i < a->nproxies; i++) {
        evbuffer_add_printf(b, "mcfault_proxy_enabled{proxy=\"");
        prom_label(b, a->proxies[i].name);
        evbuffer_add_printf(b, "\"} %d\n", a->proxies[i].px.disabled ? 0 : 1);
    }
    prom_family(b, "uptime_seconds", "gauge", "seconds since the API started");
    evbuffer_add_printf(b, "mcfault_uptime_seconds %" PRIu64 "\n",
                        uptime_s(ad));
    prom_family(b, "build_info", "gauge", "always 1; the version as a label");
    evbuffer_add_printf(b, "mcfault_build_info{version=\"%s\"} 1\n",
                        MCFAULT_VERSION);
    admin_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", b);
}

static void add_event(uint64_t seq, const char *json, void *arg)
{
    struct evbuffer *b = arg;

    evbuffer_add_printf(b, "%s{\"seq\":%" PRIu64 ",\"event\":%s}",
                        evbuffer_get_length(b) > 0 ? "," : "", seq, json);
}

void admin_events(struct admin *ad, struct evhttp_request *req,
                  struct evkeyvalq *params)
{
    const char *s = evhttp_find_header(params, "since");
    uint64_t since = 0;
    struct evbuffer *list;
    struct evbuffer *b;
    (void)ad;

    if (s != NULL) {
        size_t n = strlen(s);
        if (n == 0 || n > SINCE_DIGITS_MAX || strspn(s, "0123456789") != n) {
            admin_reply_error(
                req, 400, "'since' must be a non-negative integer, got '%.40s'",
                s);
            return;
        }
        errno = 0;
        since = strtoull(s, NULL, 10);
        if (errno == ERANGE) {
            admin_reply_error(req, 400, "'since' is out of range");
            return;
        }
    }
    list = evbuffer_new();
    b = evbuffer_new();
    if (list == NULL || b == NULL) {
        if (list != NULL) {
            evbuffer_free(list);
        }
        if (b != NULL) {
            evbuffer_free(b);
        }
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    uint64_t last = stats_events_since(since, add_event, list);
    evbuffer_add_printf(b, "{\"last\":%" PRIu64 ",\"events\":[", last);
    evbuffer_add_buffer(b, list);
    evbuffer_free(list);
    evbuffer_add(b, "]}", 2);
    admin_reply_json(req, 200, b);
}
