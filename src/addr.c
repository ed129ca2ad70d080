/*
 * Address arguments: parsing "HOST:PORT" forms and resolving them.
 */
#include "mcfault/addr.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int copy_part(char *dst, size_t cap, const char *s, size_t n)
{
    if (n == 0 || n >= cap) {
        return -1;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

static int valid_port(const char *p)
{
    char *end;
    long v;

    if (*p < '0' || *p > '9') {
        return 0;
    }
    v = strtol(p, &end, 10);
    return *end == '\0' && v >= 1 && v <= 65535;
}

int addr_parse(const char *s, const char *default_port, struct addr_spec *out)
{
    const char *host;
    size_t host_len;
    const char *port = NULL;

    memset(out, 0, sizeof(*out));
    if (s == NULL || *s == '\0') {
        return -1;
    }
    if (s[0] == '[') {
        /* // '[' v6 ']' [':' port] */
        const char *close = strchr(s, ']');
        if (close == NULL) {
            return -1;
        }
        host = s + 1;
        host_len = (size_t)(close - host);
        if (close[1] == ':') {
            port = close + 2;
        } else if (close[1] != '\0') {
            return -1;
        }
    } else {
        const char *colon = strrchr(s, ':');
        if (colon != NULL && strchr(s, ':') != colon) {
            return -1; /* a bare IPv6 literal needs brackets */
        }
        host = s;
        host_len = colon ? (size_t)(colon - s) : strlen(s);
        if (colon != NULL) {
            port = colon + 1;
        }
    }
    if (port == NULL) {
        port = default_port;
    }
    if (copy_part(out->host, sizeof(out->host), host, host_len) != 0 ||
        copy_part(out->port, sizeof(out->port), port, strlen(port)) != 0 ||
        !valid_port(out->port)) {
        return -1;
    }
    return 0;
}

int addr_resolve(const struct addr_spec *spec, int flags,
                 struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (flags & ADDR_PASSIVE) {
        hints.ai_flags |= AI_PASSIVE;
    }
    if (flags & ADDR_NUMERIC) {
        hints.ai_flags |= AI_NUMERICHOST;
    }
    rc = getaddrinfo(spec->host, spec->port, &hints, &res);
    if (rc != 0) {
        return rc;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

const char *addr_format(const struct sockaddr *sa, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(buf, size, "[%s]:%u", host, ntohs(a->sin6_port));
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(buf, size, "%s:%u", host, ntohs(a->sin_port));
    } else {
        snprintf(buf, size, "unknown");
    }
    return buf;
}
