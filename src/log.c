/*
 * Logging to stderr at the levels chosen by -v / -vv.
 */
#include "mcfault/log.h"

#include <stdarg.h>
#include <stdio.h>

int log_level = LOG_ERROR;

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;

    if (!log_enabled(level)) {
        return;
    }
    va_start(ap, fmt);
    fputs("mcfault: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Longest line shown in a trace; longer ones end with "...". */
#define LOG_TRACE_MAX 512

void log_trace(char dir, int fd, const char *text, size_t len)
{
    char buf[LOG_TRACE_MAX + 4];
    size_t n = 0;

    if (!log_enabled(LOG_TRACE)) {
        return;
    }
    for (size_t i = 0; i < len && n < LOG_TRACE_MAX; i++) {
        unsigned char ch = (unsigned char)text[i];
        buf[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '.';
    }
    if (len > LOG_TRACE_MAX) {
        buf[n++] = '.';
        buf[n++] = '.';
        buf[n++] = '.';
    }
    fprintf(stderr, "%c%d %.*s\n", dir, fd, (int)n, buf);
}
