// One fault that fired, as GET /events and --event-log report it.
package dev.mcfault;

import java.math.BigDecimal;
import java.time.Instant;
import java.util.Map;

/**
 * A fault that fired.
 *
 * @param seq     its sequence number (1, 2, ...; restarts at 1 after a reset)
 * @param time    when it fired (microsecond precision)
 * @param proxy   the proxy's name
 * @param conn    the client connection's number
 * @param rule    the rule's name
 * @param action  what the rule did
 * @param forward the command was forwarded to memcached
 * @param command the command's name as the client sent it
 * @param key     the first key the rule matched, "" for none (a byte that is not UTF-8 reads
 *                as the char of the same value, see {@code docs/admin-api.md})
 * @param keys    how many keys the command had
 */
public record Event(long seq, Instant time, String proxy, long conn, String rule,
        Rule.Action action, boolean forward, String command, String key, long keys) {

    static Event fromReply(Map<String, Object> item) {
        Map<String, Object> e = Wire.obj(item, "event");
        BigDecimal t = Wire.decimal(e, "time");
        BigDecimal secs = new BigDecimal(t.toBigInteger());
        Instant time = Instant.ofEpochSecond(secs.longValueExact(),
                t.subtract(secs).movePointRight(9).intValue());
        Rule.Action action;
        try {
            action = Rule.Action.fromWireName(Wire.str(e, "action"));
        } catch (IllegalArgumentException ex) {
            throw new McfaultException("unexpected reply from mcfault: " + ex.getMessage(), ex);
        }
        return new Event(Wire.lng(item, "seq"), time, Wire.str(e, "proxy"), Wire.lng(e, "conn"),
                Wire.str(e, "rule"), action, Wire.bool(e, "forward"), Wire.str(e, "command"),
                Wire.str(e, "key"), Wire.lng(e, "keys"));
    }
}
