/*
 * The admin API's rules: GET /rules and /rules/NAME as JSON, and every
 * change (PUT, POST, DELETE /rules, DELETE /rules/NAME, enable/disable,
 * /reload, /reset, POST /proxies/NAME/enable|disable) queued and applied
 * in the order it arrived, rule documents built on a worker thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <arpa/inet.h>

#include "admin_int.h"
#include "mcfault/config.h"
#include "mcfault/log.h"
#include "mcfault/rules.h"
#include "mcfault/stats.h"
#include "mcfault/worker.h"

/* Replies {"error": what, "problems": [...]} (a refused change). */
static void reply_problems(struct evhttp_request *req, int code,
                           const char *what, const struct config_errors *errs)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        admin_reply(req, 500, "application/json", NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"error\":");
    admin_json_cstr(b, what);
    evbuffer_add_printf(b, ",\"problems\":[");
    for (size_t i = 0; i < errs->n; i++) {
        evbuffer_add_printf(b, "%s", i > 0 ? "," : "");
        admin_json_cstr(b, errs->msgs[i]);
    }
    evbuffer_add(b, "]}", 2);
    admin_reply_json(req, code, b);
}

/* Replies {"ok":true,"rules":N} (rules in force now, over every proxy). */
static void reply_ok_rules(struct admin *ad, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        admin_reply(req, 500, "application/json", NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"ok\":true,\"rules\":%zu}",
                        app_rule_count(ad->a));
    admin_reply_json(req, 200, b);
}

static void json_globs(struct evbuffer *b, const struct rule_glob *g, size_t n)
{
    evbuffer_add(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            evbuffer_add(b, ",", 1);
        }
        admin_json_str(b, g[i].pat, g[i].len);
    }
    evbuffer_add(b, "]", 1);
}

/* The schedules' clock, as conn.c reads it for rules_subject.now_us:
 * CLOCK_MONOTONIC in microseconds. */
uint64_t admin_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Appends a client network as "a.b.c.d/N" (an IPv4-mapped one) or
 * "v6/N", quoted. */
static void json_cidr(struct evbuffer *b, const struct rule_cidr *c)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};
    char text[INET6_ADDRSTRLEN];
    unsigned bits = c->bits;

    if (bits >= 96 && memcmp(c->addr, mapped, sizeof(mapped)) == 0) {
        inet_ntop(AF_INET, c->addr + 12, text, sizeof(text));
        bits -= 96;
    } else if (inet_ntop(AF_INET6, c->addr, text, sizeof(text)) == NULL) {
        snprintf(text, sizeof(text), "?");
    }
    evbuffer_add_printf(b, "\"%s/%u\"", text, bits);
}

/*
 * A share (probability, connections, keep) as the fewest digits after the
 * point that config_parse_probability reads back as exactly f: plain
 * decimals ("0.00001", not "1e-05"), so people can read them. A share
 * that needs more than 30 digits (below about 1e-13) is written with an
 * exponent, which the parser reads too. percent: written as "N%" inside
 * quotes (keep).
 */
static void json_share(struct evbuffer *b, double f, bool percent)
{
    char buf[64];
    double back = -1;
    bool exact = false;
    double v = percent ? f * 100 : f;
    const char *unit = percent ? "%" : "";

    for (int digits = 0; digits <= 30 && !exact; digits++) {
        snprintf(buf, sizeof(buf), "%.*f%s", digits, v, unit);
        exact = config_parse_probability(buf, strlen(buf), &back, NULL) == 0 &&
                back == f;
    }
    if (!exact) {
        snprintf(buf, sizeof(buf), "%.17g%s", v, unit);
    }
    evbuffer_add_printf(b, percent ? "\"%s\"" : "%s", buf);
}

/* The fields of the newer actions' parameters and of targeting, each
 * where it means something for r. */
static void json_rule_params(struct evbuffer *b, const struct rule *r)
{
    switch (r->action) {
    case RULE_DROP:
    case RULE_TRUNCATE:
        evbuffer_add_printf(b, ",\"close\":\"%s\"",
                            r->close == RULE_CLOSE_RESET ? "reset" : "fin");
        break;
    default:
        break;
    }
    if (r->action == RULE_THROTTLE) {
        evbuffer_add_printf(b, ",\"rate_bps\":%" PRIu64, r->rate_bps);
    }
    if (r->action == RULE_SLICE) {
        evbuffer_add_printf(b,
                            ",\"size\":{\"min\":%" PRIu32 ",\"max\":%" PRIu32
                            "},\"interval_us\":%" PRIu64,
                            r->slice_min, r->slice_max, r->interval_us);
    }
    if (r->action == RULE_TRUNCATE) {
        if (r->keep_is_fraction) {
            evbuffer_add_printf(b, ",\"keep\":");
            json_share(b, r->keep_fraction, true);
        } else {
            evbuffer_add_printf(b, ",\"keep\":%" PRIu64, r->keep_bytes);
        }
    }
    if (r->action == RULE_CORRUPT) {
        evbuffer_add_printf(b, ",\"flips\":%" PRIu32, r->flips);
    }
    if (r->nclients > 0) {
        evbuffer_add_printf(b, ",\"client\":[");
        for (size_t i = 0; i < r->nclients; i++) {
            if (i > 0) {
                evbuffer_add(b, ",", 1);
            }
            json_cidr(b, &r->clients[i]);
        }
        evbuffer_add(b, "]", 1);
    }
    if (r->connections > 0 && r->connections < 1) {
        evbuffer_add_printf(b, ",\"connections\":");
        json_share(b, r->connections, false);
    }
    if (r->sized) {
        evbuffer_add_printf(b, ",\"min_size\":%" PRIu64, r->min_size);
        if (r->max_size == UINT64_MAX) {
            evbuffer_add_printf(b, ",\"max_size\":null");
        } else {
            evbuffer_add_printf(b, ",\"max_size\":%" PRIu64, r->max_size);
        }
    }
    if (r->scheduled) {
        evbuffer_add_printf(b,
                            ",\"schedule\":{\"start_us\":%" PRIu64
                            ",\"duration_us\":%" PRIu64 ",\"every_us\":%" PRIu64
                            "}",
                            r->schedule.start_us, r->schedule.duration_us,
                            r->schedule.every_us);
    }
}

/*
 * "in_force" (enabled, and its schedule has it on at now) and, with
 * next, "next_change_ms": when that next changes, rounded up (waiting
 * that long finds it changed), or null when it never does by itself (no
 * schedule, a schedule that has ended, a disabled rule).
 */
void admin_json_in_force(struct evbuffer *b, const struct rule *r, uint64_t now,
                         bool next_too)
{
    uint64_t next = UINT64_MAX;
    bool on = r->enabled && rule_in_force(r, now, &next);

    evbuffer_add_printf(b, ",\"in_force\":%s", on ? "true" : "false");
    if (!next_too) {
        return;
    }
    if (!r->enabled || next == UINT64_MAX) {
        evbuffer_add_printf(b, ",\"next_change_ms\":null");
    } else {
        uint64_t us = next > now ? next - now : 0;
        evbuffer_add_printf(b, ",\"next_change_ms\":%" PRIu64,
                            (us + 999) / 1000);
    }
}

/* A rule as GET /rules shows it at now (admin_now_us()); with proxy (not NULL),
 * its proxy's name too (GET /rules/NAME). */
static void json_rule(struct evbuffer *b, const struct rule *r,
                      const char *proxy, uint64_t now)
{
    evbuffer_add_printf(b, "{\"name\":");
    admin_json_cstr(b, r->name);
    evbuffer_add_printf(b, ",\"command\":");
    json_globs(b, r->cmds, r->ncmds);
    evbuffer_add_printf(b, ",\"key\":");
    json_globs(b, r->keys, r->nkeys);
    evbuffer_add_printf(b, ",\"action\":\"%s\"", rule_action_name(r->action));
    if (r->action == RULE_ERROR && r->message != NULL) {
        evbuffer_add_printf(b, ",\"message\":");
        admin_json_str(b, r->message, r->message_len);
    }
    if (r->action == RULE_DELAY) {
        evbuffer_add_printf(b,
                            ",\"delay_us\":%" PRIu64 ",\"jitter_us\":%" PRIu64,
                            r->delay_us, r->jitter_us);
    }
    json_rule_params(b, r);
    evbuffer_add_printf(b, ",\"probability\":");
    json_share(b, r->probability, false);
    evbuffer_add_printf(b,
                        ",\"after\":%" PRIu64 ",\"limit\":%" PRIu64
                        ",\"forward\":%s,\"enabled\":%s"
                        ",\"matched\":%" PRIu64 ",\"fired\":%" PRIu64,
                        r->after, r->limit, r->forward ? "true" : "false",
                        r->enabled ? "true" : "false", r->matched, r->fired);
    admin_json_in_force(b, r, now, true);
    if (proxy != NULL) {
        evbuffer_add_printf(b, ",\"proxy\":");
        admin_json_cstr(b, proxy);
    }
    evbuffer_add(b, "}", 1);
}

void admin_rules_get(struct admin *ad, struct evhttp_request *req,
                     struct evkeyvalq *params)
{
    struct app *a = ad->a;
    struct app_proxy *only;
    const char *target;
    struct evbuffer *b;
    bool first = true;
    uint64_t now = admin_now_us();

    if (admin_target_proxy(ad, req, params, &target, &only) != 0) {
        return;
    }
    if ((b = evbuffer_new()) == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    evbuffer_add_printf(b, "{\"proxies\":[");
    for (size_t i = 0; i < a->nproxies; i++) {
        struct app_proxy *ap = &a->proxies[i];
        struct rules *t = ap->px.rules;
        if (only != NULL && only != ap) {
            continue;
        }
        evbuffer_add_printf(b, "%s{\"name\":", first ? "" : ",");
        first = false;
        admin_json_cstr(b, ap->name);
        evbuffer_add_printf(b, ",\"rules\":[");
        for (size_t j = 0; t != NULL && j < rules_count(t); j++) {
            if (j > 0) {
                evbuffer_add(b, ",", 1);
            }
            json_rule(b, rules_at(t, j), NULL, now);
        }
        evbuffer_add(b, "]}", 2);
    }
    evbuffer_add(b, "]}", 2);
    admin_reply_json(req, 200, b);
}

/* Answers POST /rules/NAME/enable|disable: n rules changed. */
static void rules_toggled(struct evhttp_request *req, const char *name,
                          size_t n)
{
    struct evbuffer *b;

    if (n == 0) {
        admin_reply_error(req, 404, "no rule named '%s'", name);
        return;
    }
    if ((b = evbuffer_new()) == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    evbuffer_add_printf(b, "{\"ok\":true,\"changed\":%zu}", n);
    admin_reply_json(req, 200, b);
}

/*
 * Rule changes (PUT, POST, DELETE, DELETE of one rule, enable/disable,
 * reload, reset) are applied one at a time in the order they arrived.
 * Documents are parsed and tables built on a worker thread (10,000 rules
 * take a good part of a second), only the swap runs on the loop; a change
 * that arrives meanwhile waits in the queue, so that a later request never
 * lands before an earlier one. The queue holds at most one request per
 * admin connection.
 */
enum change_kind {
    CHANGE_PUT,    /* built on a worker thread */
    CHANGE_RELOAD, /* built on a worker thread */
    CHANGE_ADD,    /* POST /rules: copied on the loop, built on a worker */
    CHANGE_REMOVE, /* DELETE /rules/NAME: the same */
    CHANGE_RESET,  /* the file read on a worker (none without -c) */
    CHANGE_DELETE,
    CHANGE_ENABLE,
    CHANGE_DISABLE,
    CHANGE_PROXY_ON,  /* POST /proxies/NAME/enable */
    CHANGE_PROXY_OFF, /* POST /proxies/NAME/disable */
};

struct change {
    struct admin *ad;
    enum change_kind kind;
    struct held held;
    const char *target;   /* ?proxy=: the running proxy's own name, or NULL */
    struct app_proxy *ap; /* the same proxy, or NULL */
    char *text; /* PUT, POST: the body; enable/disable, remove: the name */
    size_t len;
    const char *path;         /* reload, reset: the rule file, or NULL */
    struct app_change *built; /* what the worker built */
    struct app_edit *edit;    /* add, remove: the copy the worker builds */
    struct change *next;
};

static void change_free(struct change *ch)
{
    app_change_free(ch->built);
    app_edit_free(ch->edit);
    free(ch->text);
    free(ch);
}

/* Whether ch is built on a worker thread before it is applied. */
static bool change_needs_build(const struct change *ch)
{
    switch (ch->kind) {
    case CHANGE_PUT:
    case CHANGE_RELOAD:
        return true;
    case CHANGE_RESET:
        return ch->path != NULL;
    case CHANGE_ADD:
    case CHANGE_REMOVE:
        return ch->edit != NULL; /* NULL: out of memory, answered at once */
    default:
        return false;
    }
}

/* On the loop, when ch reaches the head of the queue: an edit copies the
 * rules in force now, after every change before it. */
static void change_prepare(struct change *ch)
{
    struct app *a = ch->ad->a;

    if (ch->kind == CHANGE_ADD) {
        ch->edit = app_edit_add(a, ch->ap);
    } else if (ch->kind == CHANGE_REMOVE) {
        ch->edit = app_edit_remove(a, ch->ap, ch->text);
    }
}

/* On a worker thread: reads and writes nothing but ch's own document and
 * copy (config.c and rules.c keep no global state). */
static void change_build(void *arg)
{
    struct change *ch = arg;

    switch (ch->kind) {
    case CHANGE_PUT:
        ch->built = app_change_parse("body", ch->text, ch->len);
        break;
    case CHANGE_ADD:
        app_edit_build(ch->edit, "body", ch->text, ch->len);
        break;
    case CHANGE_REMOVE:
        app_edit_build(ch->edit, NULL, NULL, 0);
        break;
    default:
        ch->built = app_change_load(ch->path);
        break;
    }
}

/* {"ok":true,"rules":N,"<what>":n} */
static void reply_ok_count(struct admin *ad, struct evhttp_request *req,
                           const char *what, size_t n)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        admin_reply(req, 500, "application/json", NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"ok\":true,\"rules\":%zu,\"%s\":%zu}",
                        app_rule_count(ad->a), what, n);
    admin_reply_json(req, 200, b);
}

/* POST /rules, DELETE /rules/NAME: applies the edit, answers req (when
 * not NULL). */
static void change_apply_edit(struct change *ch, struct evhttp_request *req,
                              struct config_errors *errs)
{
    struct admin *ad = ch->ad;
    size_t n = 0;
    int rc;

    if (ch->edit == NULL) {
        if (req != NULL) {
            admin_reply_error(req, 500, "out of memory");
        }
        return;
    }
    rc = app_edit_apply(ad->a, ch->edit, errs, &n);
    ch->edit = NULL; /* app_edit_apply freed it */
    if (req == NULL) {
        return;
    }
    switch (rc) {
    case 0:
        reply_ok_count(ad, req, ch->kind == CHANGE_ADD ? "added" : "removed",
                       n);
        break;
    case APP_EDUP:
        reply_problems(req, 409, "duplicate rule name", errs);
        break;
    case APP_ENOENT:
        admin_reply_error(req, 404, "no rule named '%s'", ch->text);
        break;
    default:
        if (ch->kind == CHANGE_ADD) {
            reply_problems(req, 400, "invalid rules", errs);
        } else {
            admin_reply_error(req, 500, "out of memory");
        }
        break;
    }
}

/* POST /reset: the file read (or none), applied fresh. */
static void change_apply_reset(struct change *ch, struct evhttp_request *req,
                               struct config_errors *errs)
{
    if (ch->path != NULL && ch->built == NULL) {
        log_msg(LOG_ERROR, "reset: out of memory; nothing reset");
        if (req != NULL) {
            admin_reply_error(req, 500, "out of memory");
        }
        return;
    }
    int rc = app_reset(ch->ad->a, ch->built, errs);
    ch->built = NULL; /* app_reset freed it */
    if (req == NULL) {
        return;
    }
    if (rc == 0) {
        reply_ok_rules(ch->ad, req);
    } else {
        reply_problems(req, 400,
                       "the rule file has problems; nothing was reset", errs);
    }
}

/* POST /proxies/NAME/enable|disable: switches ch->ap, answers req (when
 * not NULL). */
static void change_apply_proxy(struct change *ch, struct evhttp_request *req)
{
    struct app_proxy *ap = ch->ap;
    bool on = ch->kind == CHANGE_PROXY_ON;
    size_t closed = 0;
    int err = 0;
    struct evbuffer *b;

    if (!on) {
        closed = app_proxy_disable(ch->ad->a, ap);
    } else if (app_proxy_enable(ch->ad->a, ap) != 0) {
        err = errno;
    }
    if (req == NULL) {
        return;
    }
    if (err != 0) {
        admin_reply_error(req, err == ESHUTDOWN ? 503 : 409,
                          "proxy '%s': cannot listen on %s again: %s; it "
                          "stays disabled",
                          ap->name, ap->listen,
                          err == ESHUTDOWN ? "mcfault is stopping"
                                           : strerror(err));
        return;
    }
    if ((b = evbuffer_new()) == NULL) {
        admin_reply(req, 500, "application/json", NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"ok\":true,\"proxy\":");
    admin_json_cstr(b, ap->name);
    evbuffer_add_printf(b,
                        ",\"enabled\":%s,\"listen\":", on ? "true" : "false");
    admin_json_cstr(b, ap->listen);
    if (!on) {
        evbuffer_add_printf(b, ",\"closed\":%zu", closed);
    }
    evbuffer_add(b, "}", 1);
    admin_reply_json(req, 200, b);
}

/* Applies ch, the head of the queue, answers its request if it still
 * can, and frees it. */
static void change_apply(struct change *ch)
{
    struct admin *ad = ch->ad;
    struct evhttp_request *req = admin_held_release(&ch->held);
    struct config_errors errs = {0};
    size_t n;

    ad->changes = ch->next;
    if (ad->changes == NULL) {
        ad->changes_tail = &ad->changes;
    }
    switch (ch->kind) {
    case CHANGE_PUT:
    case CHANGE_RELOAD:
        if (ch->built == NULL) {
            stats.reloads_failed++;
            log_msg(LOG_ERROR, "%s: out of memory; kept the old rules",
                    ch->kind == CHANGE_PUT ? "PUT /rules" : "reload");
            if (req != NULL) {
                admin_reply_error(req, 500, "out of memory");
            }
        } else if (app_change_apply(ad->a, ch->built, ch->target, &errs) == 0) {
            if (req != NULL) {
                reply_ok_rules(ad, req);
            }
        } else if (req != NULL) {
            reply_problems(req, 400,
                           ch->kind == CHANGE_PUT
                               ? "invalid rules"
                               : "reload failed; the old rules are kept",
                           &errs);
        }
        ch->built = NULL; /* app_change_apply freed it */
        break;
    case CHANGE_DELETE:
        if (app_clear_rules(ad->a, ch->target) != 0) {
            if (req != NULL) {
                admin_reply_error(req, 404, "no proxy named '%s'", ch->target);
            }
        } else if (req != NULL) {
            reply_ok_rules(ad, req);
        }
        break;
    case CHANGE_ENABLE:
    case CHANGE_DISABLE:
        n = app_set_enabled(ad->a, ch->text, ch->kind == CHANGE_ENABLE);
        if (req != NULL) {
            rules_toggled(req, ch->text, n);
        }
        break;
    case CHANGE_ADD:
    case CHANGE_REMOVE:
        change_apply_edit(ch, req, &errs);
        break;
    case CHANGE_RESET:
        change_apply_reset(ch, req, &errs);
        break;
    case CHANGE_PROXY_ON:
    case CHANGE_PROXY_OFF:
        change_apply_proxy(ch, req);
        break;
    }
    config_errors_free(&errs);
    change_free(ch);
}

static void changes_run(struct admin *ad);

/* On the loop: the worker built the head of the queue. */
static void change_built(void *arg)
{
    struct change *ch = arg;
    struct admin *ad = ch->ad;

    ad->building = false;
    change_apply(ch);
    changes_run(ad);
}

/* Applies the changes at the head of the queue until one needs building
 * (then it goes to a worker) or the queue is empty. */
static void changes_run(struct admin *ad)
{
    struct change *ch;

    while (!ad->building && (ch = ad->changes) != NULL) {
        change_prepare(ch);
        if (change_needs_build(ch)) {
            ad->building = true;
            if (worker_run(change_build, change_built, ch) == 0) {
                return;
            }
            /* No thread to be had: build it here, on the loop. */
            ad->building = false;
            change_build(ch);
        }
        change_apply(ch);
    }
}

/* Queues ch for req (the request being routed), which is answered when
 * ch is applied; takes ch. */
static void change_submit(struct admin *ad, struct evhttp_request *req,
                          struct change *ch)
{
    ch->ad = ad;
    if (admin_held_take(ad, &ch->held, req) != 0) {
        change_free(ch);
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    *ad->changes_tail = ch;
    ad->changes_tail = &ch->next;
    changes_run(ad);
}

/* A new change of kind for target (a running proxy or NULL), owning text
 * (may be NULL); NULL when out of memory (then text is freed). */
static struct change *change_new(enum change_kind kind,
                                 struct app_proxy *target, char *text,
                                 size_t len)
{
    struct change *ch = calloc(1, sizeof(*ch));

    if (ch == NULL) {
        free(text);
        return NULL;
    }
    ch->kind = kind;
    ch->ap = target;
    ch->target = target != NULL ? target->name : NULL;
    ch->text = text;
    ch->len = len;
    return ch;
}

/* Takes the request's body as a rule change of kind for ap and queues it;
 * an empty body answers 400 with empty_msg. */
static void submit_body(struct admin *ad, struct evhttp_request *req,
                        enum change_kind kind, struct app_proxy *ap,
                        const char *empty_msg)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    struct change *ch;
    char *text;

    if (len == 0) {
        admin_reply_error(req, 400, "%s", empty_msg);
        return;
    }
    /* The body moves to memory of the change's own (the request may be
     * freed with its connection while the document is built). */
    if ((text = malloc(len)) == NULL ||
        evbuffer_remove(in, text, len) != (ev_ssize_t)len) {
        free(text);
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    if ((ch = change_new(kind, ap, text, len)) == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    change_submit(ad, req, ch);
}

void admin_rules_put(struct admin *ad, struct evhttp_request *req,
                     struct evkeyvalq *params)
{
    struct app_proxy *ap;
    const char *target;

    if (admin_target_proxy(ad, req, params, &target, &ap) != 0) {
        return;
    }
    submit_body(ad, req, CHANGE_PUT, ap,
                "empty body: send a rule document (DELETE /rules "
                "removes every rule)");
}

void admin_rules_delete(struct admin *ad, struct evhttp_request *req,
                        struct evkeyvalq *params)
{
    struct app_proxy *ap;
    const char *target;
    struct change *ch;

    if (admin_target_proxy(ad, req, params, &target, &ap) != 0) {
        return;
    }
    if ((ch = change_new(CHANGE_DELETE, ap, NULL, 0)) == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    change_submit(ad, req, ch);
}

void admin_rules_post(struct admin *ad, struct evhttp_request *req,
                      struct evkeyvalq *params)
{
    struct app_proxy *ap;
    const char *target;

    if (admin_target_proxy(ad, req, params, &target, &ap) != 0) {
        return;
    }
    if (ap == NULL && (ap = app_find_proxy(ad->a, NULL)) == NULL) {
        admin_reply_error(req, 400,
                          "several proxies run: say which one with "
                          "?proxy=NAME");
        return;
    }
    submit_body(ad, req, CHANGE_ADD, ap,
                "empty body: send a rule, a list of rules or "
                "{\"rules\": [...]}");
}

/* GET /rules/NAME: the first proxy's rule of that name (or ?proxy's). */
void admin_rule_get(struct admin *ad, struct evhttp_request *req,
                    struct evkeyvalq *params, const char *name)
{
    struct app *a = ad->a;
    struct app_proxy *only;
    const char *target;
    struct evbuffer *b;

    if (admin_target_proxy(ad, req, params, &target, &only) != 0) {
        return;
    }
    for (size_t i = 0; i < a->nproxies; i++) {
        struct app_proxy *ap = &a->proxies[i];
        const struct rule *r;
        if ((only != NULL && only != ap) || ap->px.rules == NULL ||
            (r = rules_find(ap->px.rules, name)) == NULL) {
            continue;
        }
        if ((b = evbuffer_new()) == NULL) {
            admin_reply_error(req, 500, "out of memory");
            return;
        }
        json_rule(b, r, ap->name, admin_now_us());
        admin_reply_json(req, 200, b);
        return;
    }
    admin_reply_error(req, 404, "no rule named '%s'", name);
}

/* DELETE /rules/NAME; name is taken. */
void admin_rule_delete(struct admin *ad, struct evhttp_request *req,
                       struct evkeyvalq *params, char *name)
{
    struct app_proxy *ap;
    const char *target;
    struct change *ch;

    if (admin_target_proxy(ad, req, params, &target, &ap) != 0) {
        free(name);
        return;
    }
    if ((ch = change_new(CHANGE_REMOVE, ap, name, strlen(name))) == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    change_submit(ad, req, ch);
}

/* POST /rules/NAME/enable|disable; name (percent-decoded) is taken. */
void admin_rules_toggle(struct admin *ad, struct evhttp_request *req,
                        char *name, bool enabled)
{
    struct change *ch = change_new(enabled ? CHANGE_ENABLE : CHANGE_DISABLE,
                                   NULL, name, strlen(name));

    if (ch == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    change_submit(ad, req, ch);
}

void admin_reload(struct admin *ad, struct evhttp_request *req,
                  struct evkeyvalq *params)
{
    struct change *ch;
    (void)params;

    if (ad->a->config_path == NULL) {
        /* app_reload logs and counts the refusal. */
        app_reload(ad->a, NULL);
        admin_reply_error(req, 409,
                          "no config file (-c): nothing to reload; use PUT "
                          "/rules");
        return;
    }
    if ((ch = change_new(CHANGE_RELOAD, NULL, NULL, 0)) == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    ch->path = ad->a->config_path;
    change_submit(ad, req, ch);
}

void admin_reset(struct admin *ad, struct evhttp_request *req,
                 struct evkeyvalq *params)
{
    struct change *ch;
    (void)params;

    if ((ch = change_new(CHANGE_RESET, NULL, NULL, 0)) == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    ch->path = ad->a->config_path; /* NULL: no file, no rules */
    change_submit(ad, req, ch);
}

#define PROXIES_PREFIX "/proxies/"
#define PROXIES_PREFIX_LEN (sizeof(PROXIES_PREFIX) - 1)

/*
 * POST /proxies/NAME/enable and /proxies/NAME/disable (NAME
 * percent-encoded). Queued with the rule changes, so that a switch and a
 * POST /reset apply in the order they arrived. Returns false when path is
 * not of that shape.
 */
bool admin_route_proxy(struct admin *ad, struct evhttp_request *req,
                       const char *path)
{
    struct app_proxy *ap;
    struct change *ch;
    bool enable;
    bool answered;
    char *name =
        admin_switch_path(req, path, PROXIES_PREFIX, PROXIES_PREFIX_LEN,
                          "proxy", &enable, &answered);

    if (name == NULL) {
        return answered;
    }
    /* Proxies are fixed for the life of the process: known now. */
    if ((ap = app_find_proxy(ad->a, name)) == NULL) {
        admin_reply_error(req, 404, "no proxy named '%s'", name);
        free(name);
        return true;
    }
    free(name);
    ch = change_new(enable ? CHANGE_PROXY_ON : CHANGE_PROXY_OFF, ap, NULL, 0);
    if (ch == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return true;
    }
    change_submit(ad, req, ch);
    return true;
}

/* Drops every queued rule change (admin_destroy). */
void admin_changes_free_all(struct admin *ad)
{
    for (struct change *ch = ad->changes, *next; ch != NULL; ch = next) {
        struct evhttp_request *req = admin_held_release(&ch->held);
        next = ch->next;
        if (req != NULL) {
            evhttp_request_free(req);
        }
        /* The head, when being built, belongs to its worker thread until
         * it is done, which will not be seen now: left to the exiting
         * process. */
        if (!(ch == ad->changes && ad->building)) {
            change_free(ch);
        }
    }
    ad->changes = NULL;
}
