/*
 * What a fault puts on the wire: the reply an `error` or `miss` makes for a
 * given command, the key list a `miss` leaves, base64 keys decoded for
 * matching. Pure: bytes in, bytes out.
 */
#ifndef MCFAULT_FAULT_H
#define MCFAULT_FAULT_H

#include <stdbool.h>
#include <stddef.h>

#include "mcfault/proto.h"

/* A meta reply echoes at most the O token (32 bytes in memcached) and the
 * key (250 bytes) with " b": this much room beyond the message suffices. */
#define FAULT_ECHO_MAX 320

/*
 * Decodes a base64 key (memcached's standard alphabet with '=' padding)
 * from src[0..len) into dst (room for cap bytes). Returns true and
 * *out_len, or false when src is not valid base64 or does not fit.
 */
bool fault_b64_decode(const char *src, size_t len, char *dst, size_t cap,
                      size_t *out_len);

/* memcached refuses a meta O token longer than this, 'O' included
 * (MFLAG_MAX_OPAQUE_LENGTH): "CLIENT_ERROR opaque token too long". */
#define FAULT_OPAQUE_MAX 32

/* What rendering a fault's reply came to. */
enum fault_outcome {
    FAULT_REPLY = 0, /* out[0..*len) is the reply */
    FAULT_SILENT,    /* the protocol sends nothing (noreply, quiet mode) */
    FAULT_NO_ROOM    /* out is too small: *len bytes are needed; try again */
};

/*
 * The reply memcached would give to cmd if it had answered with the status
 * line msg[0..msg_len) (written in classic form, no \r\n), rendered into
 * out (room for cap bytes). Rules:
 * - classic noreply commands get nothing;
 * - meta commands (mg ms md ma) get the meta code for a classic status
 *   word (NOT_STORED NS, EXISTS EX, NOT_FOUND NF, STORED / DELETED /
 *   TOUCHED HD, END EN; a meta code is taken as is) followed by the
 *   request's O and k flags in request order, as memcached echoes them;
 *   with q, the codes q hides (EN for mg, HD for the others) give nothing;
 * - everything else (SERVER_ERROR ..., CLIENT_ERROR ..., ERROR, other
 *   commands) is the line as written.
 * msg_len + FAULT_ECHO_MAX + 2 bytes always suffice for a command
 * fault_refused_by_memcached does not refuse.
 */
enum fault_outcome fault_render_error(const struct proto_cmd *cmd,
                                      const char *msg, size_t msg_len,
                                      char *out, size_t cap, size_t *len);

/*
 * The reply to a retrieval whose every key is a miss: "END\r\n" for
 * get/gets/gat/gats, "EN" with echoed flags for mg (nothing with q).
 */
enum fault_outcome fault_render_miss(const struct proto_cmd *cmd, char *out,
                                     size_t cap, size_t *len);

/*
 * True when memcached refuses cmd before acting on it (a meta O token
 * over FAULT_OPAQUE_MAX, a key over PROTO_KEY_MAX): no fault applies to
 * such a command, memcached answers it in its own words.
 */
bool fault_refused_by_memcached(const struct proto_cmd *cmd);

#endif
