/*
 * Address arguments: "HOST:PORT", "[V6]:PORT", "HOST" (default port).
 * Parsing is pure; resolution uses getaddrinfo.
 */
#ifndef MCFAULT_ADDR_H
#define MCFAULT_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Longest host part accepted (DNS names are at most 253 bytes). */
#define ADDR_HOST_MAX 256
#define ADDR_PORT_MAX 8

struct addr_spec {
    char host[ADDR_HOST_MAX];
    char port[ADDR_PORT_MAX];
};

/*
 * Splits s into host and port. IPv6 literals must be in brackets. When no
 * port is given, default_port is used. Returns 0, or -1 when s is malformed
 * (empty host, bad brackets, port not a number in 1..65535, too long).
 */
int addr_parse(const char *s, const char *default_port, struct addr_spec *out);

/* Flags of addr_resolve (0: an address to connect to, names looked up). */
#define ADDR_PASSIVE 1 /* an address to bind (a listener) */
#define ADDR_NUMERIC 2 /* no name lookup: a numeric address or an error */

/*
 * Resolves spec with getaddrinfo (blocking when it has to look a name up)
 * into the first usable address; flags are ADDR_* bits. Returns 0, or a
 * getaddrinfo error code (see gai_strerror; EAI_NONAME for a name when
 * ADDR_NUMERIC is given).
 */
int addr_resolve(const struct addr_spec *spec, int flags,
                 struct sockaddr_storage *ss, socklen_t *len);

/* Formats an address as "host:port" / "[v6]:port" into buf. */
const char *addr_format(const struct sockaddr *sa, char *buf, size_t size);

#endif
