/*
 * Logging to stderr: levels for -v and -vv, and memcached-style traces
 * of command and reply lines ("<19 get foo", ">19 END").
 */
#ifndef MCFAULT_LOG_H
#define MCFAULT_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level {
    LOG_ERROR = 0, /* always shown */
    LOG_INFO = 1,  /* -v: connections, upstream errors */
    LOG_TRACE = 2  /* -vv: every command and reply line */
};

/* The current level; set once from the command line. */
extern int log_level;

/*
 * --log-file: log lines go to path (appended, line-buffered) instead of
 * stderr. log_reopen reopens the same path (SIGUSR1, log rotation).
 * Return 0 or -1 with errno; on failure the current output stays.
 */
int log_open(const char *path);
int log_reopen(void);
void log_close(void);

/* Prints one line at level (with a trailing newline) if enabled. */
void log_msg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "<fd text" (dir '<') or ">fd text" (dir '>'), bytes made
 * printable, at LOG_TRACE. */
void log_trace(char dir, int fd, const char *text, size_t len);

/*
 * Writes bytes of s[0..n) into out (room for cap bytes, NUL-terminated)
 * made printable: bytes outside 0x20..0x7e become \xHH. Returns out.
 */
char *log_printable(const char *s, size_t n, char *out, size_t cap);

/* Writes JSON's escaping of byte ch (at most 6 bytes, no NUL) into out and
 * returns its length: the building block of log_json_escape. */
size_t log_json_byte(unsigned char ch, char *out);

/*
 * Writes s[0..n) into out (room for cap bytes, NUL-terminated) as the
 * inside of a JSON string: quotes, backslashes and control bytes escaped,
 * bytes of 0x80 and above as \u00HH so the line is always valid JSON.
 * Returns out.
 */
char *log_json_escape(const char *s, size_t n, char *out, size_t cap);

/*
 * The --event-log file: one JSON object per line, line-buffered so a test
 * harness sees each event as it happens. log_event_open opens (appends
 * to) path, replacing any open file; returns 0 or -1 with errno.
 * log_event_reopen reopens the same path (log rotation); log_event writes
 * one line (a newline is added) when a file is open.
 */
int log_event_open(const char *path);
int log_event_reopen(void);
void log_event(const char *json);
void log_event_close(void);
bool log_event_enabled(void);

/* True when messages of this level are printed. */
static inline int log_enabled(int level)
{
    return log_level >= level;
}

#endif
