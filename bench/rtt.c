/*
 * A sequential memcached client for the benchmarks: one TCP_NODELAY
 * connection per address, one request at a time, every reply awaited,
 * checked byte for byte and timed. Given several addresses it interleaves
 * them request by request, so machine noise hits every target alike.
 *
 * Usage: rtt [-n N] [-w W] [-e K] [-v SIZE] [-k KEY] IP:PORT...
 *   -n N     timed rounds (default 10000); a round is one request to each
 *            address, the order rotating from round to round
 *   -w W     untimed rounds first (default 100)
 *   -e K     every K-th round is a "set KEY 0 0 SIZE" (the first one
 *            included, so the key exists), the others "get KEY"; 0: gets
 *            only, the key must already hold SIZE bytes of 'v' (default 10)
 *   -v SIZE  value size (default 100)
 *   -k KEY   key (default mcfault_bench)
 *
 * Prints one line per address: address, rounds, then the median, 99th
 * percentile, mean and maximum round-trip time in microseconds, tab
 * separated. Exits 1 on any error or unexpected reply.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* More addresses than any bench run has targets. */
#define RTT_ADDRS_MAX 16
/* A key is at most 250 bytes in memcached; values stay small here. */
#define RTT_KEY_MAX 250
#define RTT_VALUE_MAX (1024 * 1024)

struct msg {
    char *bytes;
    size_t len;
};

static _Noreturn void die(const char *what)
{
    perror(what);
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// IPV4:PORT
static int connect_addr(const char *s)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    struct sockaddr_in sin = {.sin_family = AF_INET};
    int one = 1;
    int fd;

    if (colon == NULL || (size_t)(colon - s) >= sizeof(host)) {
        fprintf(stderr, "rtt: bad address '%s'\n", s);
        exit(2);
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    sin.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "rtt: bad address '%s'\n", s);
        exit(2);
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        die(s);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Sends req, reads exactly want.len bytes into scratch and compares them;
 * returns the round trip in nanoseconds. */
static uint64_t round_trip(int fd, const struct msg *req,
                           const struct msg *want, char *scratch,
                           const char *addr)
{
    uint64_t t0 = now_ns();
    size_t off = 0;

    while (off < req->len) {
        ssize_t w = send(fd, req->bytes + off, req->len - off, MSG_NOSIGNAL);
        if (w < 0 && errno != EINTR) {
            die(addr);
        }
        off += w > 0 ? (size_t)w : 0;
    }
    off = 0;
    while (off < want->len) {
        ssize_t r = recv(fd, scratch + off, want->len - off, 0);
        if (r == 0) {
            fprintf(stderr, "rtt: %s closed the connection\n", addr);
            exit(1);
        }
        if (r < 0 && errno != EINTR) {
            die(addr);
        }
        off += r > 0 ? (size_t)r : 0;
    }
    if (memcmp(scratch, want->bytes, want->len) != 0) {
        fprintf(stderr, "rtt: %s: unexpected reply '%.*s'\n", addr,
                (int)(want->len > 80 ? 80 : want->len), scratch);
        exit(1);
    }
    return now_ns() - t0;
}

/* A message formatted into a fresh buffer of cap bytes (never freed). */
static struct msg msg_printf(size_t cap, const char *fmt, ...)
{
    struct msg m = {.bytes = malloc(cap)};
    va_list ap;
    int n;

    if (m.bytes == NULL) {
        die("malloc");
    }
    va_start(ap, fmt);
    n = vsnprintf(m.bytes, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "rtt: message too long\n");
        exit(2);
    }
    m.len = (size_t)n;
    return m;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    long n = 10000, warm = 100, every = 10, size = 100;
    const char *key = "mcfault_bench";
    int fds[RTT_ADDRS_MAX];
    uint64_t *samples[RTT_ADDRS_MAX];
    struct msg get, set, value_reply, stored = {"STORED\r\n", 8};
    char *value, *scratch;
    int opt, naddr;

    while ((opt = getopt(argc, argv, "n:w:e:v:k:")) != -1) {
        switch (opt) {
        case 'n':
            n = atol(optarg);
            break;
        case 'w':
            warm = atol(optarg);
            break;
        case 'e':
            every = atol(optarg);
            break;
        case 'v':
            size = atol(optarg);
            break;
        case 'k':
            key = optarg;
            break;
        default:
            return 2;
        }
    }
    naddr = argc - optind;
    if (naddr < 1 || naddr > RTT_ADDRS_MAX || n < 1 || warm < 0 || every < 0 ||
        size < 0 || size > RTT_VALUE_MAX || strlen(key) > RTT_KEY_MAX) {
        fprintf(stderr, "usage: rtt [-n N] [-w W] [-e K] [-v SIZE] [-k KEY] "
                        "IP:PORT...\n");
        return 2;
    }
    value = malloc((size_t)size + 1);
    scratch = malloc((size_t)size + RTT_KEY_MAX + 64);
    if (value == NULL || scratch == NULL) {
        die("malloc");
    }
    memset(value, 'v', (size_t)size);
    value[size] = '\0';
    get = msg_printf(RTT_KEY_MAX + 16, "get %s\r\n", key);
    set = msg_printf((size_t)size + RTT_KEY_MAX + 64,
                     "set %s 0 0 %zu\r\n%s\r\n", key, (size_t)size, value);
    value_reply =
        msg_printf((size_t)size + RTT_KEY_MAX + 64,
                   "VALUE %s 0 %zu\r\n%s\r\nEND\r\n", key, (size_t)size, value);
    for (int a = 0; a < naddr; a++) {
        fds[a] = connect_addr(argv[optind + a]);
        samples[a] = malloc((size_t)n * sizeof(uint64_t));
        if (samples[a] == NULL) {
            die("malloc");
        }
    }
    for (long i = 0; i < warm + n; i++) {
        /* Round i counts from the first untimed one, so the very first
         * request to each address is the set that creates the key. */
        int is_set = every > 0 && i % every == 0;
        const struct msg *req = is_set ? &set : &get;
        const struct msg *want = is_set ? &stored : &value_reply;

        for (int k = 0; k < naddr; k++) {
            int a = (int)((i + k) % naddr);
            uint64_t t =
                round_trip(fds[a], req, want, scratch, argv[optind + a]);
            if (i >= warm) {
                samples[a][i - warm] = t;
            }
        }
    }
    for (int a = 0; a < naddr; a++) {
        uint64_t *s = samples[a];
        double sum = 0;

        qsort(s, (size_t)n, sizeof(*s), cmp_u64);
        for (long i = 0; i < n; i++) {
            sum += (double)s[i];
        }
        /* Nearest rank: the smallest sample with at least q of all at or
         * below it. */
        printf("%s\t%ld\t%.2f\t%.2f\t%.2f\t%.2f\n", argv[optind + a], n,
               (double)s[(n + 1) / 2 - 1] / 1e3,
               (double)s[(99 * n + 99) / 100 - 1] / 1e3, sum / (double)n / 1e3,
               (double)s[n - 1] / 1e3);
        close(fds[a]);
    }
    return 0;
}
