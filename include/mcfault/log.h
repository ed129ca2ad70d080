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

/* The longest escape log_json_char writes (\u00HH). */
#define LOG_JSON_CHAR_MAX 6

/*
 * Writes JSON's form of the character that starts s[0..n) (n > 0) into
 * out (room for LOG_JSON_CHAR_MAX bytes; no NUL) and returns its length;
 * *used gets the number of bytes of s it stands for (1 to 4). A
 * well-formed UTF-8 sequence is copied as it is. Quotes and backslashes
 * are escaped with a backslash; control bytes, DEL and every byte that is
 * not part of a well-formed UTF-8 sequence (overlong, surrogate, above
 * U+10FFFF, truncated, a lone continuation byte) become \u00HH, the byte
 * read as Latin-1, one escape per byte. So any bytes give valid JSON in
 * valid UTF-8, at most 6 output bytes per input byte: the building block
 * of log_json_escape and the admin API's strings.
 */
size_t log_json_char(const char *s, size_t n, size_t *used, char *out);

/*
 * Writes s[0..n) into out (room for cap bytes, NUL-terminated) as the
 * inside of a JSON string, as log_json_char does character by character;
 * 6 * n + 1 bytes of room always suffice. When out is too small the text
 * is cut before a whole character, never inside one. Returns out.
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
