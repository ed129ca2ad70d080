/*
 * The event sink (see event.h): one record per fired fault, rendered for
 * the log, the event log and the admin API's ring from the same fields.
 */
#include "mcfault/event.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mcfault/log.h"
#include "mcfault/proto.h"
#include "mcfault/stats.h"

/* Escaping makes a byte at most 6 bytes (\u00HH); rule and proxy names
 * are at most 128 bytes (config.c), keys PROTO_KEY_MAX, a command name at
 * most a line. */
#define EVENT_NAME_MAX (128 * 6 + 8)
#define EVENT_KEY_MAX (PROTO_KEY_MAX * 6 + 8)
#define EVENT_CMD_MAX (PROTO_LINE_MAX * 6 + 8)

/* One fired fault, as every reader sees it. */
struct fault_event {
    struct timespec time;
    const char *proxy;
    int conn;
    const struct rule *rule;
    const char *command; /* as the client typed it */
    size_t command_len;
    const char *key; /* the first key the rule matched ("" for none) */
    size_t key_len;
    size_t nkeys;
};

static void event_log_line(const struct fault_event *ev)
{
    char k[EVENT_KEY_MAX];
    char name[EVENT_CMD_MAX];
    const struct rule *r = ev->rule;

    log_msg(LOG_INFO, "conn %d: fault %s rule '%s' %s%s: %s%s%s", ev->conn,
            ev->proxy, r->name, rule_action_name(r->action),
            r->forward ? " (forward)" : "",
            log_printable(ev->command, ev->command_len, name, sizeof(name)),
            ev->key_len > 0 ? " " : "",
            log_printable(ev->key, ev->key_len, k, sizeof(k)));
}

static void event_json(const struct fault_event *ev, char *line, size_t cap)
{
    char k[EVENT_KEY_MAX];
    char name[EVENT_CMD_MAX];
    char rn[EVENT_NAME_MAX];
    char pn[EVENT_NAME_MAX];
    const struct rule *r = ev->rule;

    snprintf(line, cap,
             "{\"time\":%lld.%06ld,\"proxy\":\"%s\",\"conn\":%d,"
             "\"rule\":\"%s\",\"action\":\"%s\",\"forward\":%s,"
             "\"command\":\"%s\",\"key\":\"%s\",\"keys\":%zu}",
             (long long)ev->time.tv_sec, ev->time.tv_nsec / 1000,
             log_json_escape(ev->proxy, strlen(ev->proxy), pn, sizeof(pn)),
             ev->conn,
             log_json_escape(r->name, strlen(r->name), rn, sizeof(rn)),
             rule_action_name(r->action), r->forward ? "true" : "false",
             log_json_escape(ev->command, ev->command_len, name, sizeof(name)),
             log_json_escape(ev->key, ev->key_len, k, sizeof(k)), ev->nkeys);
}

void event_fault(const char *proxy, int conn, const struct rule *r,
                 const struct rules_subject *s)
{
    stats.faults_total++;
    stats.faults[r->action]++;
    if (!log_enabled(LOG_INFO) && !log_event_enabled() && !stats_keep_events) {
        return;
    }
    struct fault_event ev = {.proxy = proxy,
                             .conn = conn,
                             .rule = r,
                             .command = s->name,
                             .command_len = s->name_len,
                             .key = "",
                             .nkeys = s->nkeys};
    clock_gettime(CLOCK_REALTIME, &ev.time);
    if (s->nkeys > 0) {
        /* The first key the rule matched (the command's first key for
         * rules on keyless commands). */
        size_t i = 0;
        while (
            i + 1 < s->nkeys &&
            !rule_key_match(r, s->key_base + s->keys[i].off, s->keys[i].len)) {
            i++;
        }
        ev.key = s->key_base + s->keys[i].off;
        ev.key_len = s->keys[i].len;
    }
    if (log_enabled(LOG_INFO)) {
        event_log_line(&ev);
    }
    if (log_event_enabled() || stats_keep_events) {
        char line[EVENT_KEY_MAX + EVENT_CMD_MAX + 2 * EVENT_NAME_MAX + 256];
        event_json(&ev, line, sizeof(line));
        log_event(line);
        if (stats_keep_events) {
            stats_event_push(line);
        }
    }
}
