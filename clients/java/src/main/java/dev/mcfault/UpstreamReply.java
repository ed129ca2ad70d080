// The reply of POST /upstream/command: memcached's answer, past the rules.
package dev.mcfault;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.Base64;
import java.util.Map;

/**
 * memcached's reply to a command sent on a side connection, past the rules.
 *
 * @param reply     the reply's bytes, exactly ("VALUE k 0 2\r\nhi\r\nEND\r\n"); empty for a
 *                  noreply command
 * @param elapsedUs how long memcached took, in microseconds
 */
public record UpstreamReply(byte[] reply, long elapsedUs) {
    public UpstreamReply {
        reply = reply.clone();
    }

    /** A copy of the reply's bytes. */
    @Override
    public byte[] reply() {
        return reply.clone();
    }

    /** The reply decoded as UTF-8 (a byte that is not UTF-8 reads as U+FFFD). */
    public String text() {
        return new String(reply, StandardCharsets.UTF_8);
    }

    /** How long memcached took. */
    public Duration elapsed() {
        return Duration.ofNanos(elapsedUs * 1000);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof UpstreamReply u && u.elapsedUs == elapsedUs
                && Arrays.equals(u.reply, reply);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(reply) * 31 + Long.hashCode(elapsedUs);
    }

    @Override
    public String toString() {
        return "UpstreamReply[reply=" + text().replace("\r\n", "\\r\\n") + ", elapsedUs="
                + elapsedUs + "]";
    }

    static UpstreamReply fromReply(Map<String, Object> m) {
        byte[] bytes;
        try {
            bytes = Base64.getDecoder().decode(Wire.str(m, "reply_base64"));
        } catch (IllegalArgumentException e) {
            throw new McfaultException("unexpected reply from mcfault: bad reply_base64", e);
        }
        return new UpstreamReply(bytes, Wire.lng(m, "elapsed_us"));
    }
}
