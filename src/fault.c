/*
 * Replies made by faults, shaped like memcached 1.6.18's own: classic
 * status lines as written, meta codes with the O and k flags echoed.
 */
#include "mcfault/fault.h"

#include <stdint.h>
#include <string.h>

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z') {
        return ch - 'A';
    }
    if (ch >= 'a' && ch <= 'z') {
        return ch - 'a' + 26;
    }
    if (ch >= '0' && ch <= '9') {
        return ch - '0' + 52;
    }
    if (ch == '+') {
        return 62;
    }
    if (ch == '/') {
        return 63;
    }
    return -1;
}

bool fault_b64_decode(const char *src, size_t len, char *dst, size_t cap,
                      size_t *out_len)
{
    size_t o = 0;

    if (len % 4 != 0) {
        return false;
    }
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            unsigned char ch = (unsigned char)src[i + (size_t)j];
            if (ch == '=' && i + 4 == len && j >= 2) {
                v[j] = 0;
                pad++;
                continue;
            }
            if (pad > 0 || (v[j] = b64_value(ch)) < 0) {
                return false;
            }
        }
        uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) |
                     ((uint32_t)v[2] << 6) | (uint32_t)v[3];
        size_t n = 3 - (size_t)pad;
        if (o + n > cap) {
            return false;
        }
        dst[o++] = (char)(w >> 16);
        if (n > 1) {
            dst[o++] = (char)(w >> 8);
        }
        if (n > 2) {
            dst[o++] = (char)w;
        }
    }
    *out_len = o;
    return true;
}

/* Classic status words and the meta code memcached uses for each. */
static const struct {
    const char *word;
    const char *code;
} meta_codes[] = {
    {"NOT_STORED", "NS"}, {"EXISTS", "EX"},  {"NOT_FOUND", "NF"},
    {"STORED", "HD"},     {"DELETED", "HD"}, {"TOUCHED", "HD"},
    {"END", "EN"},        {"NS", "NS"},      {"EX", "EX"},
    {"NF", "NF"},         {"HD", "HD"},      {"EN", "EN"},
};

static bool is_meta_keyed(enum proto_op op)
{
    return op == PROTO_OP_MG || op == PROTO_OP_MS || op == PROTO_OP_MD ||
           op == PROTO_OP_MA;
}

static const char *meta_code(const char *msg, size_t len)
{
    for (size_t i = 0; i < sizeof(meta_codes) / sizeof(meta_codes[0]); i++) {
        if (strlen(meta_codes[i].word) == len &&
            memcmp(meta_codes[i].word, msg, len) == 0) {
            return meta_codes[i].code;
        }
    }
    return NULL;
}

static size_t put(char *out, size_t cap, size_t at, const char *s, size_t n)
{
    if (at + n <= cap) {
        memcpy(out + at, s, n);
    }
    return at + n;
}

/* "CODE O.. k.." + \r\n: the flags echoed in the order the request gave
 * them, the way memcached's meta handlers walk their flag tokens. Returns
 * the length, which may exceed cap (then out holds a part). */
static size_t render_meta(const struct proto_cmd *cmd, const char *code,
                          char *out, size_t cap)
{
    uint32_t first = cmd->op == PROTO_OP_MS ? 3 : 2;
    size_t n = put(out, cap, 0, code, 2);

    for (uint32_t i = first; i < cmd->ntokens; i++) {
        const struct proto_tok *t = &cmd->tok[i];
        const char *p = cmd->line + t->off;
        if (p[0] == 'O') {
            n = put(out, cap, n, " ", 1);
            n = put(out, cap, n, p, t->len);
        } else if (p[0] == 'k' && cmd->key_index > 0) {
            const struct proto_tok *k = &cmd->tok[cmd->key_index];
            n = put(out, cap, n, " k", 2);
            n = put(out, cap, n, cmd->line + k->off, k->len);
            if (cmd->key_base64) {
                n = put(out, cap, n, " b", 2);
            }
        }
    }
    return put(out, cap, n, "\r\n", 2);
}

static enum fault_outcome outcome(size_t n, size_t cap, size_t *len)
{
    *len = n;
    return n <= cap ? FAULT_REPLY : FAULT_NO_ROOM;
}

enum fault_outcome fault_render_error(const struct proto_cmd *cmd,
                                      const char *msg, size_t msg_len,
                                      char *out, size_t cap, size_t *len)
{
    *len = 0;
    if (is_meta_keyed(cmd->op)) {
        const char *code = meta_code(msg, msg_len);
        if (code != NULL) {
            bool hidden = cmd->op == PROTO_OP_MG ? strcmp(code, "EN") == 0
                                                 : strcmp(code, "HD") == 0;
            if (cmd->noreply && hidden) {
                return FAULT_SILENT;
            }
            return outcome(render_meta(cmd, code, out, cap), cap, len);
        }
    } else if (cmd->noreply && cmd->reply != PROTO_REPLY_META) {
        return FAULT_SILENT; /* classic noreply: memcached sends nothing */
    }
    size_t n = put(out, cap, 0, msg, msg_len);
    return outcome(put(out, cap, n, "\r\n", 2), cap, len);
}

enum fault_outcome fault_render_miss(const struct proto_cmd *cmd, char *out,
                                     size_t cap, size_t *len)
{
    *len = 0;
    if (cmd->op == PROTO_OP_MG) {
        if (cmd->noreply) {
            return FAULT_SILENT;
        }
        return outcome(render_meta(cmd, "EN", out, cap), cap, len);
    }
    return outcome(put(out, cap, 0, "END\r\n", 5), cap, len);
}

bool fault_refused_by_memcached(const struct proto_cmd *cmd)
{
    size_t pos = 0;
    struct proto_tok key;

    if (is_meta_keyed(cmd->op) && cmd->opaque.len > FAULT_OPAQUE_MAX) {
        return true;
    }
    if (cmd->key_base64) {
        return false;
    }
    if (cmd->ntokens < PROTO_MAX_TOKENS - 1 && cmd->key_index > 0 &&
        cmd->key_index + cmd->nkeys <= cmd->ntokens) {
        /* The whole line is in tok[]: the keys are tokens. */
        for (uint32_t i = 0; i < cmd->nkeys; i++) {
            if (cmd->tok[cmd->key_index + i].len > PROTO_KEY_MAX) {
                return true;
            }
        }
        return false;
    }
    while (proto_cmd_next_key(cmd, &pos, &key)) {
        if (key.len > PROTO_KEY_MAX) {
            return true;
        }
    }
    return false;
}
