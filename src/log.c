/*
 * Logging to stderr (or --log-file) at the levels chosen by -v / -vv, and
 * the --event-log file of JSON lines.
 */
#include "mcfault/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int log_level = LOG_ERROR;

/* --log-file: NULL means stderr. */
static FILE *log_file;
static char *log_path;

static FILE *log_out(void)
{
    return log_file != NULL ? log_file : stderr;
}

/* Opens path for appending, line-buffered. */
static FILE *open_append(const char *path)
{
    FILE *f = fopen(path, "a");

    if (f != NULL) {
        setvbuf(f, NULL, _IOLBF, 0);
    }
    return f;
}

int log_open(const char *path)
{
    FILE *f = open_append(path);
    char *p = f != NULL ? strdup(path) : NULL;

    if (p == NULL) {
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    log_close();
    log_file = f;
    log_path = p;
    return 0;
}

int log_reopen(void)
{
    if (log_path == NULL) {
        return 0;
    }
    FILE *f = open_append(log_path);
    if (f == NULL) {
        return -1;
    }
    fclose(log_file);
    log_file = f;
    return 0;
}

void log_close(void)
{
    if (log_file != NULL) {
        fclose(log_file);
        log_file = NULL;
    }
    free(log_path);
    log_path = NULL;
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;

    if (!log_enabled(level)) {
        return;
    }
    va_start(ap, fmt);
    fputs("mcfault: ", log_out());
    vfprintf(log_out(), fmt, ap);
    fputc('\n', log_out());
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
    fprintf(log_out(), "%c%d %.*s\n", dir, fd, (int)n, buf);
}

char *log_printable(const char *s, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    if (cap > 0) {
        out[o < cap ? o : cap - 1] = '\0';
    }
    return out;
}

/*
 * The length (2 to 4) of the well-formed UTF-8 sequence s[0..n) starts
 * with, or 0 when it starts none. Unicode's table of well-formed byte
 * sequences (3-7): the second byte's range depends on the first, which
 * rules out overlong forms (C0, C1, E0 80..9F, F0 80..8F), surrogates
 * (ED A0..BF) and code points above U+10FFFF (F4 90.., F5..FF).
 */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    size_t len;

    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return len;
}

size_t log_json_char(const char *s, size_t n, size_t *used, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char ch = (unsigned char)s[0];
    size_t len;

    *used = 1;
    if (ch == '"' || ch == '\\') {
        out[0] = '\\';
        out[1] = (char)ch;
        return 2;
    }
    if (ch >= 0x20 && ch < 0x7f) {
        out[0] = (char)ch;
        return 1;
    }
    if (ch >= 0x80 && (len = utf8_seq_len((const unsigned char *)s, n)) > 0) {
        memcpy(out, s, len);
        *used = len;
        return len;
    }
    /* A control byte, DEL, or a byte that is no part of valid UTF-8: its
     * value as a code point (Latin-1), so no byte is lost. */
    memcpy(out, "\\u00", 4);
    out[4] = hex[ch >> 4];
    out[5] = hex[ch & 15];
    return 6;
}

char *log_json_escape(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    size_t i = 0;

    /* Whole characters only: a cut line is still valid JSON and UTF-8. */
    while (i < n && o + LOG_JSON_CHAR_MAX < cap) {
        size_t used;
        o += log_json_char(s + i, n - i, &used, out + o);
        i += used;
    }
    if (cap > 0) {
        out[o < cap ? o : cap - 1] = '\0';
    }
    return out;
}

static FILE *event_file;
static char *event_path;

int log_event_open(const char *path)
{
    FILE *f = open_append(path);

    if (f == NULL) {
        return -1;
    }
    char *p = strdup(path);
    if (p == NULL) {
        fclose(f);
        return -1;
    }
    log_event_close();
    event_file = f;
    event_path = p;
    return 0;
}

int log_event_reopen(void)
{
    if (event_path == NULL) {
        return 0;
    }
    FILE *f = open_append(event_path);
    if (f == NULL) {
        return -1;
    }
    fclose(event_file);
    event_file = f;
    return 0;
}

void log_event(const char *json)
{
    if (event_file != NULL) {
        fputs(json, event_file);
        fputc('\n', event_file);
    }
}

void log_event_close(void)
{
    if (event_file != NULL) {
        fclose(event_file);
        event_file = NULL;
    }
    free(event_path);
    event_path = NULL;
}

bool log_event_enabled(void)
{
    return event_file != NULL;
}
