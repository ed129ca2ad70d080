/*
 * POST /upstream/command and GET /upstream/stats: one command sent to a
 * proxy's memcached on a side connection of its own, past the rules, its
 * reply framed by the proxy's own response framer. Not the hot path: one
 * non-blocking connection per request, on the loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "admin_int.h"
#include "mcfault/log.h"
#include "mcfault/proto.h"
#include "mcfault/reply.h"
#include "mcfault/resolve.h"

/* A reply over this is refused (502): the answer holds it twice (text and
 * base64) and memcached's items are 1 MiB unless -I raises them. */
#define UPSTREAM_REPLY_MAX (16 * 1024 * 1024)
#define UPSTREAM_REPLY_MAX_TEXT "16 MiB"
/* ?timeout_ms: connect and reply, in all. */
#define UPSTREAM_TIMEOUT_MS_DEFAULT 5000
/* Ten minutes: longer is a test gone wrong, not a slow memcached. */
#define UPSTREAM_TIMEOUT_MS_MAX 600000
#define UPSTREAM_TIMEOUT_DIGITS_MAX 6
/* Bytes read from memcached at a time. */
#define UPSTREAM_READ_CHUNK (64 * 1024)
/* Bytes of memcached's error line quoted in a 502. */
#define UPSTREAM_QUOTE_MAX 200

/* The stats subcommands GET /upstream/stats passes on ("stats" alone when
 * none): the ones whose reply is STAT lines and END. */
static const char *const stats_subs[] = {"items", "slabs", "settings", "conns",
                                         "sizes"};
#define NSUBS (sizeof(stats_subs) / sizeof(stats_subs[0]))

/* One request in progress: a side connection to memcached. */
struct upcall {
    struct admin *ad;
    struct held held;
    struct resolver *resolver; /* the proxy's, to report a failed connect */
    evutil_socket_t fd;
    struct event *rev;
    struct event *wev;
    struct event *timer;
    struct evbuffer *out; /* the command, as far as not yet sent */
    struct evbuffer *in;  /* the reply so far */
    struct reply_framer framer;
    enum reply_kind kind;
    size_t strip;   /* bytes at the end of in that are no reply (the MN) */
    bool quiet;     /* sent with "mn": the reply ends at MN */
    bool until_eof; /* quit: memcached closes instead of answering */
    bool stats;     /* GET /upstream/stats: STAT lines as an object */
    bool connected;
    struct timespec start;
    struct upcall *prev;
    struct upcall *next;
};

/* --------------------------------------------------------------------- */
/* The body: one command                                                   */

/*
 * // body = line ["\r"] "\n" [data-block "\r\n"]   (one command)
 * Checks that text[0..len) is one memcached text command with its whole
 * data block, and appends the bytes to send to out: the line gets a
 * "\r\n" when it has no line end, and so does a data block of exactly the
 * declared length that ends the body. Sets *cmd_reply and *noreply from the
 * request parser (the proxy's own). Returns NULL, or why the body is refused.
 */
static const char *command_check(const char *text, size_t len,
                                 struct evbuffer *out,
                                 enum proto_reply *cmd_reply, bool *noreply)
{
    static const char crlf[] = "\r\n";
    struct proto_parser p;
    struct proto_cmd cmd;
    const char *why = NULL;
    size_t pos = 0;
    size_t used;
    bool have = false;
    bool partial = false; /* bytes of a line without its end */
    uint64_t data_len = 0;

    if (len == 0) {
        return "empty body: send one memcached text command";
    }
    proto_init(&p);
    while (pos < len && why == NULL) {
        switch (proto_parse(&p, text + pos, len - pos, &used, &cmd)) {
        case PROTO_BINARY:
            why = "binary protocol: send one text command";
            break;
        case PROTO_TOO_LONG:
            why = "command line too long";
            break;
        case PROTO_AGAIN:
            partial = true;
            break;
        case PROTO_CMD:
            if (have) {
                why = "more than one command: send one at a time";
                break;
            }
            have = true;
            *cmd_reply = cmd.reply;
            *noreply = cmd.noreply;
            data_len = cmd.data_len;
            break;
        case PROTO_DATA:
            /* The block's last two bytes must be its "\r\n". */
            if (proto_data_left(&p) == 0 &&
                (pos + used < 2 || text[pos + used - 2] != '\r' ||
                 text[pos + used - 1] != '\n')) {
                why = "the data block is not as long as the command says "
                      "(its bytes and then \\r\\n)";
            }
            break;
        }
        pos += used;
    }
    uint64_t left = proto_data_left(&p);
    proto_deinit(&p);
    if (why != NULL) {
        return why;
    }
    if (have && partial) {
        return "more than one command: send one at a time";
    }
    if (!have) {
        /* A line without its end gets one ("\n" after a "\r"), then is
         * checked again: it may be a command with a data block to come. */
        size_t add = text[len - 1] == '\r' ? 1 : 2;
        char *whole = malloc(len + add);
        if (whole == NULL) {
            return "out of memory";
        }
        memcpy(whole, text, len);
        memcpy(whole + len, crlf + 2 - add, add);
        why = command_check(whole, len + add, out, cmd_reply, noreply);
        free(whole);
        return why;
    }
    /* A block of the declared length may come without its "\r\n" (or
     * with its "\r" only). A body ending in "\r\n" meant that to be the
     * block's end: the block is short, not to be completed. */
    bool ends_crlf = len >= 2 && text[len - 2] == '\r' && text[len - 1] == '\n';
    evbuffer_add(out, text, len);
    if (left == 2 && data_len >= 2 && !ends_crlf) {
        evbuffer_add(out, crlf, 2);
    } else if (left == 1 && data_len >= 2 && text[len - 1] == '\r') {
        evbuffer_add(out, crlf + 1, 1);
    } else if (left > 0) {
        return "the data block is shorter than the command says";
    }
    return NULL;
}

/* --------------------------------------------------------------------- */
/* Output                                                                  */

/* Whether s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points above U+10FFFF). */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1fu;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0fu;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07u;
        } else {
            return false;
        }
        if (n - i <= k) {
            return false;
        }
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0u) != 0x80u) {
                return false;
            }
            cp = (cp << 6) | (s[i + j] & 0x3fu);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10ffff))) {
            return false;
        }
        i += k + 1;
    }
    return true;
}

/* Appends s[0..n) in standard base64 with padding, quoted. */
static void json_base64(struct evbuffer *b, const unsigned char *s, size_t n)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char buf[4096];
    size_t o = 0;

    evbuffer_add(b, "\"", 1);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)s[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= s[i + 2];
        }
        buf[o++] = abc[(v >> 18) & 63];
        buf[o++] = abc[(v >> 12) & 63];
        buf[o++] = i + 1 < n ? abc[(v >> 6) & 63] : '=';
        buf[o++] = i + 2 < n ? abc[v & 63] : '=';
        if (o + 4 > sizeof(buf)) {
            evbuffer_add(b, buf, o);
            o = 0;
        }
    }
    evbuffer_add(b, buf, o);
    evbuffer_add(b, "\"", 1);
}

/*
 * // reply = ("STAT " name [" " value] "\r\n")* "END\r\n"
 * The reply of a stats command as a JSON object of strings into b.
 * Returns true, or false when the reply is not of that shape (memcached
 * answered an error): then *bad and *bad_len give the first line that is
 * no STAT line (empty when END is missing).
 */
static bool stats_json(struct evbuffer *b, const unsigned char *p, size_t n,
                       const unsigned char **bad, size_t *bad_len)
{
    static const char stat[] = "STAT ";
    const size_t sl = sizeof(stat) - 1;
    size_t i = 0;
    bool first = true;

    *bad = (const unsigned char *)"";
    *bad_len = 0;
    evbuffer_add(b, "{", 1);
    while (i < n) {
        const unsigned char *line = p + i;
        const unsigned char *nl = memchr(line, '\n', n - i);
        size_t ln = nl != NULL ? (size_t)(nl - line) : n - i;
        i += ln + 1;
        if (ln > 0 && line[ln - 1] == '\r') {
            ln--;
        }
        if (ln == 3 && memcmp(line, "END", 3) == 0) {
            evbuffer_add(b, "}", 1);
            return true;
        }
        if (ln < sl || memcmp(line, stat, sl) != 0) {
            *bad = line;
            *bad_len = ln;
            return false;
        }
        const unsigned char *name = line + sl;
        size_t rest = ln - sl;
        const unsigned char *sp = memchr(name, ' ', rest);
        size_t nn = sp != NULL ? (size_t)(sp - name) : rest;
        if (!first) {
            evbuffer_add(b, ",", 1);
        }
        first = false;
        admin_json_str(b, (const char *)name, nn);
        evbuffer_add(b, ":", 1);
        if (sp != NULL) {
            admin_json_str(b, (const char *)sp + 1, rest - nn - 1);
        } else {
            admin_json_cstr(b, "");
        }
    }
    return false;
}

/* --------------------------------------------------------------------- */
/* The side connection                                                     */

static void upcall_free(struct upcall *u)
{
    struct admin *ad = u->ad;

    admin_held_release(&u->held);
    if (u->rev != NULL) {
        event_free(u->rev);
    }
    if (u->wev != NULL) {
        event_free(u->wev);
    }
    if (u->timer != NULL) {
        event_free(u->timer);
    }
    if (u->fd >= 0) {
        evutil_closesocket(u->fd);
    }
    if (u->out != NULL) {
        evbuffer_free(u->out);
    }
    if (u->in != NULL) {
        evbuffer_free(u->in);
    }
    if (u->prev != NULL) {
        u->prev->next = u->next;
    } else if (ad->upcalls == u) {
        ad->upcalls = u->next;
    }
    if (u->next != NULL) {
        u->next->prev = u->prev;
    }
    free(u);
}

/* Ends u with {"error": "upstream: ..."} and status code. */
static void upcall_fail(struct upcall *u, int code, const char *why)
{
    struct evhttp_request *req = admin_held_release(&u->held);

    if (req != NULL) {
        admin_reply_error(req, code, "upstream: %s", why);
    }
    upcall_free(u);
}

/* A connect that failed: the address may have moved (as conn.c). */
static void upcall_fail_connect(struct upcall *u, int err)
{
    resolver_invalidate(u->resolver);
    upcall_fail(u, 502, strerror(err));
}

static uint64_t elapsed_us(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t us = (int64_t)(now.tv_sec - since->tv_sec) * 1000000 +
                 (now.tv_nsec - since->tv_nsec) / 1000;
    return us > 0 ? (uint64_t)us : 0;
}

/* The reply is complete: answers the request and frees u. */
static void upcall_done(struct upcall *u)
{
    struct evhttp_request *req = admin_held_release(&u->held);
    size_t n = evbuffer_get_length(u->in) - u->strip;
    const unsigned char *p = evbuffer_pullup(u->in, -1);
    struct evbuffer *b = req != NULL ? evbuffer_new() : NULL;

    if (req == NULL) {
        upcall_free(u); /* the client left */
        return;
    }
    if (b == NULL) {
        admin_reply_error(req, 500, "out of memory");
        upcall_free(u);
        return;
    }
    if (u->stats) {
        const unsigned char *bad;
        size_t bn;
        evbuffer_add_printf(b, "{\"ok\":true,\"stats\":");
        if (!stats_json(b, p, n, &bad, &bn)) {
            char q[UPSTREAM_QUOTE_MAX * 4 + 1];
            evbuffer_free(b);
            admin_reply_error(req, 502, "upstream: %s",
                              bn == 0 ? "no END in the stats reply"
                                      : log_printable((const char *)bad,
                                                      bn < UPSTREAM_QUOTE_MAX
                                                          ? bn
                                                          : UPSTREAM_QUOTE_MAX,
                                                      q, sizeof(q)));
            upcall_free(u);
            return;
        }
        evbuffer_add(b, "}", 1);
    } else {
        evbuffer_add_printf(b, "{\"ok\":true,\"reply\":");
        if (utf8_valid(p, n)) {
            admin_json_str(b, (const char *)p, n);
        } else {
            evbuffer_add_printf(b, "null");
        }
        evbuffer_add_printf(b, ",\"reply_base64\":");
        json_base64(b, p, n);
        evbuffer_add_printf(b, ",\"elapsed_us\":%" PRIu64 "}",
                            elapsed_us(&u->start));
    }
    admin_reply_json(req, 200, b);
    upcall_free(u);
}

/*
 * Frames buf[0..n) read from memcached and keeps it. Returns true when
 * the reply ended (u is then answered and freed) or failed.
 */
static bool upcall_feed(struct upcall *u, const char *buf, size_t n)
{
    size_t pos = 0;

    while (pos < n) {
        size_t used;
        if (reply_idle(&u->framer)) {
            reply_expect(&u->framer, u->kind);
        }
        enum reply_event ev = reply_feed(&u->framer, buf + pos, n - pos, &used);
        if (evbuffer_get_length(u->in) + used > UPSTREAM_REPLY_MAX) {
            upcall_fail(u, 502, "reply over " UPSTREAM_REPLY_MAX_TEXT);
            return true;
        }
        evbuffer_add(u->in, buf + pos, used);
        pos += used;
        if (u->until_eof || ev == REPLY_AGAIN || ev == REPLY_LINE_DONE) {
            continue;
        }
        if (ev == REPLY_RAW) {
            upcall_done(u); /* watch: its OK; the stream is not read */
            return true;
        }
        if (!u->quiet) {
            upcall_done(u);
            return true;
        }
        if (u->framer.line == REPLY_LINE_MN) {
            u->strip = u->framer.line_len; /* our mn's, not the reply */
            upcall_done(u);
            return true;
        }
    }
    return false;
}

static void on_up_read(evutil_socket_t fd, short what, void *arg)
{
    struct upcall *u = arg;
    char buf[UPSTREAM_READ_CHUNK];
    (void)what;

    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return;
    }
    if (n < 0) {
        if (!u->connected) {
            upcall_fail_connect(u, errno);
        } else {
            upcall_fail(u, 502, strerror(errno));
        }
        return;
    }
    if (n == 0) {
        if (u->until_eof) {
            upcall_done(u);
        } else {
            upcall_fail(u, 502, "memcached closed the connection");
        }
        return;
    }
    upcall_feed(u, buf, (size_t)n);
}

static void on_up_write(evutil_socket_t fd, short what, void *arg)
{
    struct upcall *u = arg;
    (void)what;

    if (!u->connected) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
            err = errno;
        }
        if (err != 0) {
            upcall_fail_connect(u, err);
            return;
        }
        u->connected = true;
    }
    if (evbuffer_write(u->out, fd) < 0 && errno != EAGAIN &&
        errno != EWOULDBLOCK && errno != EINTR) {
        upcall_fail(u, 502, strerror(errno));
        return;
    }
    if (evbuffer_get_length(u->out) == 0) {
        event_del(u->wev);
    }
}

static void on_up_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    upcall_fail(arg, 504, "timeout");
}

/*
 * Connects to ap's memcached and sends u->out; the reply or a failure
 * answers u's request later. u is in ad->upcalls.
 */
static void upcall_start(struct upcall *u, struct app_proxy *ap, int timeout_ms)
{
    struct event_base *base = u->ad->a->base;
    struct proxy *px = &ap->px;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    struct timeval tv = {.tv_sec = timeout_ms / 1000,
                         .tv_usec = (timeout_ms % 1000) * 1000};

    clock_gettime(CLOCK_MONOTONIC, &u->start);
    u->resolver = px->resolver;
    if (px->resolver != NULL ? resolver_get(px->resolver, &ss, &len) != 0
                             : px->upstream_len == 0) {
        upcall_fail(u, 502, "upstream address not resolved");
        return;
    }
    if (px->resolver == NULL) {
        ss = px->upstream;
        len = px->upstream_len;
    }
    u->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->fd < 0) {
        upcall_fail(u, 502, strerror(errno));
        return;
    }
    if (connect(u->fd, (const struct sockaddr *)&ss, len) == 0) {
        u->connected = true;
    } else if (errno != EINPROGRESS) {
        upcall_fail_connect(u, errno);
        return;
    }
    u->rev = event_new(base, u->fd, EV_READ | EV_PERSIST, on_up_read, u);
    u->wev = event_new(base, u->fd, EV_WRITE | EV_PERSIST, on_up_write, u);
    u->timer = evtimer_new(base, on_up_timeout, u);
    if (u->rev == NULL || u->wev == NULL || u->timer == NULL ||
        event_add(u->rev, NULL) != 0 || event_add(u->wev, NULL) != 0 ||
        evtimer_add(u->timer, &tv) != 0) {
        upcall_fail(u, 502, "out of memory");
    }
}

/* --------------------------------------------------------------------- */
/* Handlers                                                                */

/* ?timeout_ms=N into *ms (default UPSTREAM_TIMEOUT_MS_DEFAULT); replies
 * 400 and returns -1 when it is not 1..UPSTREAM_TIMEOUT_MS_MAX. */
static int param_timeout(struct evhttp_request *req, struct evkeyvalq *params,
                         int *ms)
{
    const char *s = evhttp_find_header(params, "timeout_ms");
    size_t n;
    long v;

    *ms = UPSTREAM_TIMEOUT_MS_DEFAULT;
    if (s == NULL) {
        return 0;
    }
    n = strlen(s);
    if (n == 0 || n > UPSTREAM_TIMEOUT_DIGITS_MAX ||
        strspn(s, "0123456789") != n || (v = strtol(s, NULL, 10)) < 1 ||
        v > UPSTREAM_TIMEOUT_MS_MAX) {
        admin_reply_error(req, 400,
                          "'timeout_ms' must be an integer from 1 to %d, got "
                          "'%.40s'",
                          UPSTREAM_TIMEOUT_MS_MAX, s);
        return -1;
    }
    *ms = (int)v;
    return 0;
}

/* The proxy a request is for (?proxy=NAME, or the only one); NULL after
 * replying 404 or 400. */
static struct app_proxy *param_proxy(struct admin *ad,
                                     struct evhttp_request *req,
                                     struct evkeyvalq *params)
{
    struct app_proxy *ap;
    const char *name;

    if (admin_target_proxy(ad, req, params, &name, &ap) != 0) {
        return NULL;
    }
    if (ap == NULL && (ap = app_find_proxy(ad->a, NULL)) == NULL) {
        admin_reply_error(req, 400,
                          "several proxies run: say which one with "
                          "?proxy=NAME");
    }
    return ap;
}

/*
 * Sends text[0..len) (one command, checked) to ap's memcached for req;
 * stats: the reply is answered as GET /upstream/stats does.
 */
static void upcall_submit(struct admin *ad, struct evhttp_request *req,
                          struct app_proxy *ap, int timeout_ms,
                          const char *text, size_t len, bool stats)
{
    struct upcall *u = calloc(1, sizeof(*u));
    enum proto_reply kind = PROTO_REPLY_LINE;
    const char *why;

    if (u == NULL || (u->out = evbuffer_new()) == NULL ||
        (u->in = evbuffer_new()) == NULL) {
        if (u != NULL && u->out != NULL) {
            evbuffer_free(u->out);
        }
        free(u);
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    u->ad = ad;
    u->fd = -1;
    u->stats = stats;
    if ((why = command_check(text, len, u->out, &kind, &u->quiet)) != NULL) {
        admin_reply_error(req, 400, "%s", why);
        upcall_free(u);
        return;
    }
    u->kind = (enum reply_kind)kind;
    u->until_eof = kind == PROTO_REPLY_NONE;
    if (u->quiet) {
        /* Nothing answers a quiet command that went well: mn says that
         * memcached is done with it. */
        evbuffer_add(u->out, "mn\r\n", 4);
        u->kind = REPLY_KIND_ANY;
    }
    reply_init(&u->framer);
    if (admin_held_take(ad, &u->held, req) != 0) {
        admin_reply_error(req, 500, "out of memory");
        upcall_free(u);
        return;
    }
    u->next = ad->upcalls;
    if (ad->upcalls != NULL) {
        ad->upcalls->prev = u;
    }
    ad->upcalls = u;
    upcall_start(u, ap, timeout_ms);
}

void admin_upstream_command(struct admin *ad, struct evhttp_request *req,
                            struct evkeyvalq *params)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    struct app_proxy *ap;
    int timeout_ms;

    if ((ap = param_proxy(ad, req, params)) == NULL ||
        param_timeout(req, params, &timeout_ms) != 0) {
        return;
    }
    const char *text = (const char *)evbuffer_pullup(in, -1);
    upcall_submit(ad, req, ap, timeout_ms, len > 0 ? text : "", len, false);
}

void admin_upstream_stats(struct admin *ad, struct evhttp_request *req,
                          struct evkeyvalq *params)
{
    const char *sub = evhttp_find_header(params, "sub");
    struct app_proxy *ap;
    char line[64];
    int timeout_ms;
    size_t i = 0;

    if (sub != NULL) {
        while (i < NSUBS && strcmp(sub, stats_subs[i]) != 0) {
            i++;
        }
        if (i == NSUBS) {
            admin_reply_error(req, 400,
                              "'sub' must be one of items, slabs, settings, "
                              "conns, sizes (or left out), got '%.40s'",
                              sub);
            return;
        }
    }
    if ((ap = param_proxy(ad, req, params)) == NULL ||
        param_timeout(req, params, &timeout_ms) != 0) {
        return;
    }
    int n = snprintf(line, sizeof(line), "stats%s%s\r\n", sub ? " " : "",
                     sub ? sub : "");
    upcall_submit(ad, req, ap, timeout_ms, line, (size_t)n, true);
}

void admin_upstream_free_all(struct admin *ad)
{
    while (ad->upcalls != NULL) {
        struct evhttp_request *req = admin_held_release(&ad->upcalls->held);
        if (req != NULL) {
            evhttp_request_free(req);
        }
        upcall_free(ad->upcalls);
    }
}
