/*
 * Request parser for the memcached text protocol (classic and meta).
 * Pure: bytes in, command descriptions out; no libevent, no sockets.
 */
#ifndef MCFAULT_PROTO_H
#define MCFAULT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* memcached's KEY_MAX_LENGTH. */
#define PROTO_KEY_MAX 250
/* memcached closes a connection holding more than this many bytes without a
 * newline, unless the line starts with "get " or "gets " (try_read_command). */
#define PROTO_LINE_MAX 2048
/* memcached lets get/gets lines grow without bound; we stop at 1 MiB and
 * close, which no real client reaches (about 4,000 keys of 250 bytes). */
#define PROTO_GETLINE_MAX (1024 * 1024)
/* memcached tokenizes at most this many tokens (MAX_TOKENS, with the
 * terminal one); the rest of the line stays one token. */
#define PROTO_MAX_TOKENS 24
/* meta commands with more tokens than this are refused
 * (MFLAG_MAX_OPT_LENGTH). */
#define PROTO_META_MAX_TOKENS 20

/* What a command is, by its name. */
enum proto_op {
    PROTO_OP_UNKNOWN = 0,
    PROTO_OP_GET,
    PROTO_OP_GETS,
    PROTO_OP_GAT,
    PROTO_OP_GATS,
    PROTO_OP_SET,
    PROTO_OP_ADD,
    PROTO_OP_REPLACE,
    PROTO_OP_APPEND,
    PROTO_OP_PREPEND,
    PROTO_OP_CAS,
    PROTO_OP_DELETE,
    PROTO_OP_INCR,
    PROTO_OP_DECR,
    PROTO_OP_TOUCH,
    PROTO_OP_MG,
    PROTO_OP_MS,
    PROTO_OP_MD,
    PROTO_OP_MA,
    PROTO_OP_MN,
    PROTO_OP_ME,
    PROTO_OP_STATS,
    PROTO_OP_FLUSH_ALL,
    PROTO_OP_VERSION,
    PROTO_OP_VERBOSITY,
    PROTO_OP_QUIT,
    PROTO_OP_SHUTDOWN,
    PROTO_OP_CACHE_MEMLIMIT,
    PROTO_OP_SLABS,
    PROTO_OP_LRU,
    PROTO_OP_LRU_CRAWLER,
    PROTO_OP_WATCH,
    PROTO_OP_MISBEHAVE,
    PROTO_OP_BGET,
    PROTO_OP__COUNT
};

/* How the reply to a command is framed (see reply.h). */
enum proto_reply {
    PROTO_REPLY_LINE = 0, /* one line */
    PROTO_REPLY_VALUES,   /* VALUE lines with data blocks, then END */
    PROTO_REPLY_LIST,     /* STAT/ITEM/PREFIX/key= lines, then END */
    PROTO_REPLY_META,     /* one line; VA carries a data block */
    PROTO_REPLY_WATCH,    /* one line; OK turns the stream raw */
    PROTO_REPLY_NONE      /* no reply: the server closes (quit) */
};

/* A token: offset and length inside proto_cmd.line. */
struct proto_tok {
    uint32_t off;
    uint32_t len;
};

/* One parsed command line. Pointers stay valid until the next proto_parse
 * call on the same parser. */
struct proto_cmd {
    const char *line; /* command line without its \r\n */
    size_t line_len;
    enum proto_op op;
    enum proto_reply reply;
    struct proto_tok name;
    uint32_t ntokens; /* tokens found, at most PROTO_MAX_TOKENS - 1 */
    struct proto_tok tok[PROTO_MAX_TOKENS - 1];
    uint32_t key_index;      /* index in tok of the first key */
    uint32_t nkeys;          /* number of keys (multi-key retrievals) */
    uint64_t data_len;       /* bytes after the line (data block + \r\n) */
    bool noreply;            /* reply may be suppressed: noreply or meta q */
    bool key_base64;         /* meta b flag */
    struct proto_tok opaque; /* meta O token including the 'O'; len 0 none */
    bool meta_k;             /* meta k flag: echo the key */
};

enum proto_status {
    PROTO_AGAIN = 0, /* all input consumed, need more */
    PROTO_CMD,       /* a command line is complete: see cmd */
    PROTO_DATA,      /* bytes of the current data block were consumed */
    PROTO_BINARY,    /* first byte 0x80: binary protocol, tunnel it */
    PROTO_TOO_LONG   /* line over the limit: memcached closes */
};

struct proto_parser {
    int state;
    uint64_t data_left; /* bytes of data block still to come */
    bool started;       /* saw the first byte of the connection */
    char *buf;          /* partial line across calls */
    size_t buf_len;
    size_t buf_cap;
};

/* Prepares a parser for a new connection. */
void proto_init(struct proto_parser *p);

/* Frees what the parser holds; it may be initialised again. */
void proto_deinit(struct proto_parser *p);

/*
 * Parses the next piece of the request stream from buf[0..len).
 * *consumed is set to how many bytes were used. Returns:
 * - PROTO_CMD: a line ended within the consumed bytes (the line is the bytes
 *   consumed by this call plus those consumed by earlier PROTO_AGAIN calls);
 *   cmd describes it. A data block of cmd->data_len bytes follows.
 * - PROTO_DATA: the consumed bytes belong to the current data block.
 * - PROTO_AGAIN: every byte was consumed into a partial line.
 * - PROTO_BINARY / PROTO_TOO_LONG: nothing consumed; the connection leaves
 *   the text protocol (tunnel or close, as memcached does).
 */
enum proto_status proto_parse(struct proto_parser *p, const char *buf,
                              size_t len, size_t *consumed,
                              struct proto_cmd *cmd);

/* Bytes of the current data block still expected (0 between commands). */
uint64_t proto_data_left(const struct proto_parser *p);

/*
 * Iterates over the keys of cmd. Start with *pos = 0; each call stores the
 * next key in *key (an offset/length into cmd->line) and returns true, or
 * returns false when there is none left. Multi-key retrievals are walked to
 * the end of the line, past the tokens held in cmd->tok.
 */
bool proto_cmd_next_key(const struct proto_cmd *cmd, size_t *pos,
                        struct proto_tok *key);

/* The command's canonical name ("get", "mg", ...), "unknown" otherwise. */
const char *proto_op_name(enum proto_op op);

/*
 * Parses a decimal like memcached's safe_strtol / safe_strtoul (leading
 * white space and sign allowed, trailing white space allowed, 64-bit range,
 * result truncated to 32 bits as memcached does). Returns false on failure.
 */
bool proto_strtol32(const char *s, size_t len, int32_t *out);
bool proto_strtoul32(const char *s, size_t len, uint32_t *out);
bool proto_strtoull(const char *s, size_t len, uint64_t *out);

#endif
