// A fault rule: built with the factories and with* methods to send it, read
// back (with its counters) from GET /rules and GET /rules/NAME.
package dev.mcfault;

import java.time.Duration;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * One rule, with the keys of the rule file ({@code docs/config.md}).
 *
 * <pre>{@code
 * Rule.error("oom", "SERVER_ERROR out of memory storing object")
 *     .withCommand("set", "ms").withKey("session:*").withProbability(0.25);
 * Rule.delay("slow-gets", Duration.ofMillis(500)).withJitter(Duration.ofMillis(100));
 * Rule.drop("partition");  Rule.hang("stuck");  Rule.miss("cold").withKey("hot:*");
 * }</pre>
 *
 * <p>A rule is immutable; each {@code with*} returns a copy. mcfault checks the
 * rule when it is sent: a bad one is a {@link RuleRejectedException} whose
 * problems name the key. {@code matched}, {@code fired}, {@code proxy},
 * {@code inForce} and {@code nextChange} are only read back (0, 0, null,
 * {@code enabled} and null on a rule built here, or changed with a
 * {@code with*} method); {@code proxy} is set on the rules that
 * {@link Mcfault#rules()} and {@link Mcfault#getRule} return.
 *
 * <p>Rules of the newer actions (throttle, slice, truncate, corrupt, evict),
 * and rules with targeting or a schedule, are read back with their action,
 * but those parameters are not part of this record: send such rules as
 * YAML ({@link Mcfault#addRulesYaml}).

 *
 * @param name        unique within its proxy; null lets mcfault name it {@code rule-N}
 * @param command     command-name globs; {@code ["*"]} matches every command
 * @param key         key globs; {@code ["*"]} matches every key
 * @param action      the fault
 * @param message     the reply line of an {@code error} rule, else null
 * @param delay       the delay of a {@code delay} rule (whole microseconds), else null
 * @param jitter      a {@code delay} rule's jitter, else zero
 * @param probability chance from 0 to 1 that a match fires
 * @param after       matches let through before the rule fires (unsigned)
 * @param limit       most times the rule fires, 0 for no limit (unsigned)
 * @param forward     the command still reaches memcached, the fault applies to its reply
 * @param enabled     a disabled rule never matches
 * @param matched     commands whose globs matched (read back only)
 * @param fired       faults the rule caused (read back only)
 * @param proxy       the proxy the rule belongs to (read back only)
 * @param inForce     enabled and, with a schedule, on now (read back only)
 * @param nextChange  how long until {@code inForce} changes by itself, null when it never
 *                    does (read back only)
 */
public record Rule(String name, List<String> command, List<String> key, Action action,
        String message, Duration delay, Duration jitter, double probability, long after,
        long limit, boolean forward, boolean enabled, long matched, long fired, String proxy,
        boolean inForce, Duration nextChange) {

    private static final List<String> ANY = List.of("*");

    /** What a rule does to the commands it fires on. */
    public enum Action {
        /** Answer with the rule's message as the reply line. */
        ERROR,
        /** Answer, but later. */
        DELAY,
        /** Close the client connection. */
        DROP,
        /** Never answer on this connection. */
        HANG,
        /** Retrievals answer matching keys as misses. */
        MISS,
        /** The reply reaches the client at a rate (read back; send as YAML). */
        THROTTLE,
        /** The reply reaches the client in pieces (read back; send as YAML). */
        SLICE,
        /** The reply is cut short, then the connection closes (read back; send as YAML). */
        TRUNCATE,
        /** Bits of values are flipped (read back; send as YAML). */
        CORRUPT,
        /** The matching keys are deleted first (read back; send as YAML). */
        EVICT;

        /** The name in rule documents and replies: "error", "delay", ... */
        public String wireName() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }

        /** The action of that wire name; IllegalArgumentException for another. */
        public static Action fromWireName(String s) {
            for (Action a : values()) {
                if (a.wireName().equals(s)) {
                    return a;
                }
            }
            throw new IllegalArgumentException("unknown action '" + s + "'");
        }
    }

    /**
     * A rule without read-back state: in force when enabled, as far as this
     * side knows.
     */
    public Rule(String name, List<String> command, List<String> key, Action action,
            String message, Duration delay, Duration jitter, double probability, long after,
            long limit, boolean forward, boolean enabled, long matched, long fired,
            String proxy) {
        this(name, command, key, action, message, delay, jitter, probability, after, limit,
                forward, enabled, matched, fired, proxy, enabled, null);
    }

    /** Checks the shape; mcfault checks the meaning. */
    public Rule {
        Objects.requireNonNull(action, "action");
        command = List.copyOf(Objects.requireNonNull(command, "command"));
        key = List.copyOf(Objects.requireNonNull(key, "key"));
        jitter = jitter == null ? Duration.ZERO : jitter;
        requireMicros("delay", delay);
        requireMicros("jitter", jitter);
        if (!(probability >= 0 && probability <= 1)) {
            throw new IllegalArgumentException("probability " + probability + " is not in 0..1");
        }
    }

    private static Rule of(String name, Action action, String message, Duration delay) {
        return new Rule(name, ANY, ANY, action, message, delay, Duration.ZERO, 1, 0, 0, false,
                true, 0, 0, null);
    }

    /** Answer matching commands with message as the reply line (mcfault adds "\r\n"). */
    public static Rule error(String name, String message) {
        return of(name, Action.ERROR, Objects.requireNonNull(message, "message"), null);
    }

    /** Answer matching commands delay later (at most 3600 s, whole microseconds). */
    public static Rule delay(String name, Duration delay) {
        return of(name, Action.DELAY, null, Objects.requireNonNull(delay, "delay"));
    }

    /** Close the connection of a matching command. */
    public static Rule drop(String name) {
        return of(name, Action.DROP, null, null);
    }

    /** Never answer a matching command, nor anything after it on that connection. */
    public static Rule hang(String name) {
        return of(name, Action.HANG, null, null);
    }

    /** Answer matching keys of retrievals (get, gets, gat, gats, mg) as misses. */
    public static Rule miss(String name) {
        return of(name, Action.MISS, null, null);
    }

    public Rule withName(String name) {
        return new Rule(name, command, key, action, message, delay, jitter, probability, after,
                limit, forward, enabled, matched, fired, proxy);
    }

    /** Command-name globs, matched without regard to ASCII case ("get", "g*", ...). */
    public Rule withCommand(String... globs) {
        return new Rule(name, globs(globs), key, action, message, delay, jitter, probability,
                after, limit, forward, enabled, matched, fired, proxy);
    }

    /** Key globs, matched byte for byte ("session:*", ...). */
    public Rule withKey(String... globs) {
        return new Rule(name, command, globs(globs), action, message, delay, jitter,
                probability, after, limit, forward, enabled, matched, fired, proxy);
    }

    /** A delay rule's jitter: each delay drawn from delay - jitter to delay + jitter. */
    public Rule withJitter(Duration jitter) {
        return new Rule(name, command, key, action, message, delay, jitter, probability, after,
                limit, forward, enabled, matched, fired, proxy);
    }

    /** Chance from 0 to 1 that a match (past {@code after}) fires. */
    public Rule withProbability(double probability) {
        return new Rule(name, command, key, action, message, delay, jitter, probability, after,
                limit, forward, enabled, matched, fired, proxy);
    }

    /** Let the first n matches through untouched. */
    public Rule withAfter(long n) {
        return new Rule(name, command, key, action, message, delay, jitter, probability, n,
                limit, forward, enabled, matched, fired, proxy);
    }

    /** Fire at most n times (0: no limit). */
    public Rule withLimit(long n) {
        return new Rule(name, command, key, action, message, delay, jitter, probability, after,
                n, forward, enabled, matched, fired, proxy);
    }

    /** Whether the command still reaches memcached (the fault then applies to its reply). */
    public Rule withForward(boolean forward) {
        return new Rule(name, command, key, action, message, delay, jitter, probability, after,
                limit, forward, enabled, matched, fired, proxy);
    }

    /** Whether the rule is loaded enabled; a disabled rule never matches. */
    public Rule withEnabled(boolean enabled) {
        return new Rule(name, command, key, action, message, delay, jitter, probability, after,
                limit, forward, enabled, matched, fired, proxy);
    }

    /**
     * The rule as a rule-file mapping, ready for {@link Json#write}: keys
     * left at their defaults are left out (mcfault refuses {@code forward}
     * with {@code miss} even when false), delays in microseconds
     * ({@code "500000us"}), {@code after} and {@code limit} unsigned.
     */
    public Map<String, Object> toDocument() {
        Map<String, Object> m = new LinkedHashMap<>();
        if (name != null) {
            m.put("name", name);
        }
        if (!command.equals(ANY)) {
            m.put("command", command.size() == 1 ? command.get(0) : command);
        }
        if (!key.equals(ANY)) {
            m.put("key", key.size() == 1 ? key.get(0) : key);
        }
        m.put("action", action.wireName());
        if (message != null) {
            m.put("message", message);
        }
        if (delay != null) {
            m.put("delay", micros(delay) + "us");
        }
        if (!jitter.isZero()) {
            m.put("jitter", micros(jitter) + "us");
        }
        if (probability != 1) {
            m.put("probability", probability);
        }
        if (after != 0) {
            m.put("after", new java.math.BigInteger(Long.toUnsignedString(after)));
        }
        if (limit != 0) {
            m.put("limit", new java.math.BigInteger(Long.toUnsignedString(limit)));
        }
        if (forward) {
            m.put("forward", true);
        }
        if (!enabled) {
            m.put("enabled", false);
        }
        return m;
    }

    /** A rule object of GET /rules; proxy is the proxy it came from. */
    static Rule fromReply(Map<String, Object> m, String proxy) {
        Action action;
        try {
            action = Action.fromWireName(Wire.str(m, "action"));
        } catch (IllegalArgumentException e) {
            throw new McfaultException("unexpected reply from mcfault: " + e.getMessage(), e);
        }
        Duration delay = null;
        Duration jitter = Duration.ZERO;
        if (action == Action.DELAY) {
            delay = Duration.ofNanos(Math.multiplyExact(Wire.lng(m, "delay_us"), 1000L));
            jitter = Duration.ofNanos(Math.multiplyExact(Wire.optLng(m, "jitter_us", 0), 1000L));
        }
        return new Rule(Wire.str(m, "name"), Wire.strings(m, "command"), Wire.strings(m, "key"),
                action, action == Action.ERROR ? Wire.str(m, "message") : Wire.optStr(m, "message"),
                delay, jitter, Wire.dbl(m, "probability"), Wire.lng(m, "after"),
                Wire.lng(m, "limit"), Wire.bool(m, "forward"), Wire.bool(m, "enabled"),
                Wire.lng(m, "matched"), Wire.lng(m, "fired"),
                proxy != null ? proxy : Wire.optStr(m, "proxy"),
                // An mcfault from before schedules: in force when enabled.
                Wire.optBool(m, "in_force", Wire.bool(m, "enabled")),
                m.get("next_change_ms") == null ? null
                        : Duration.ofMillis(Wire.lng(m, "next_change_ms")));
    }

    private static List<String> globs(String... globs) {
        if (globs.length == 0) {
            throw new IllegalArgumentException("at least one glob");
        }
        return Arrays.asList(globs);
    }

    private static void requireMicros(String what, Duration d) {
        if (d != null && (d.isNegative() || d.getNano() % 1000 != 0)) {
            throw new IllegalArgumentException(what + " " + d
                    + " is negative or not a whole number of microseconds");
        }
    }

    private static long micros(Duration d) {
        return Math.addExact(Math.multiplyExact(d.getSeconds(), 1_000_000L), d.getNano() / 1000);
    }
}
