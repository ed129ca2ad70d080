/*
 * Logging to stderr: levels for -v and -vv, and memcached-style traces
 * of command and reply lines ("<19 get foo", ">19 END").
 */
#ifndef MCFAULT_LOG_H
#define MCFAULT_LOG_H

#include <stddef.h>

enum log_level {
    LOG_ERROR = 0, /* always shown */
    LOG_INFO = 1,  /* -v: connections, upstream errors */
    LOG_TRACE = 2  /* -vv: every command and reply line */
};

/* The current level; set once from the command line. */
extern int log_level;

/* Prints one line at level (with a trailing newline) if enabled. */
void log_msg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "<fd text" (dir '<') or ">fd text" (dir '>'), bytes made
 * printable, at LOG_TRACE. */
void log_trace(char dir, int fd, const char *text, size_t len);

/* True when messages of this level are printed. */
static inline int log_enabled(int level)
{
    return log_level >= level;
}

#endif
