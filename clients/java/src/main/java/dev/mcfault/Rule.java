// A fault rule: built with the factories and with* methods to send it, read
// back (with its counters) from GET /rules and GET /rules/NAME.
package dev.mcfault;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.time.Duration;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.Consumer;

/**
 * One rule, with the keys of the rule file ({@code docs/config.md}).
 *
 * <pre>{@code
 * Rule.error("oom", "SERVER_ERROR out of memory storing object")
 *     .withCommand("set", "ms").withKey("session:*").withProbability(0.25);
 * Rule.delay("slow-gets", Duration.ofMillis(500)).withJitter(Duration.ofMillis(100));
 * Rule.drop("partition").withClose(Rule.Close.RESET);  Rule.hang("stuck");
 * Rule.miss("cold").withKey("hot:*");
 * Rule.throttle("dial-up", 4096).withCommand("get");           // bytes per second
 * Rule.slice("dribble", 1, 16).withInterval(Duration.ofMillis(5));
 * Rule.truncate("cut", Rule.Keep.percent(50)).withClose(Rule.Close.RESET);
 * Rule.corrupt("bitrot").withFlips(3).withCommand("set");  Rule.evict("gone").withKey("user:*");
 * Rule.drop("ci").withClient("10.0.0.0/8").withConnections(0.25).withMinSize(1024)
 *     .withSchedule(new Rule.Schedule(Duration.ofSeconds(30), Duration.ofSeconds(10),
 *             Duration.ofSeconds(60)));
 * Rule.error("refuse", Rule.CONNECT_MESSAGE).withCommand("connect");  // new connections
 * }</pre>
 *
 * <p>A rule is immutable; each {@code with*} returns a copy. mcfault checks the
 * rule when it is sent: a bad one (a key the action does not take, such as
 * {@code rate} on a drop rule, or a value out of range) is a
 * {@link RuleRejectedException} whose problems name the key; this class only
 * refuses what cannot be written at all. {@code matched}, {@code fired},
 * {@code proxy}, {@code inForce} and {@code nextChange} are only read back (0,
 * 0, null, {@code enabled} and null on a rule built here, or changed with a
 * {@code with*} method); {@code proxy} is set on the rules that
 * {@link Mcfault#rules()} and {@link Mcfault#getRule} return, and
 * {@link #definition()} clears them, so that a rule sent and the same rule
 * read back compare equal.
 *
 * <p>The parameters of one action are null, 0 or empty on a rule of another
 * action. Where mcfault has a default, a rule of the action that takes the key
 * carries it, as mcfault reports it: {@code close} is {@link Close#FIN} on a
 * drop or truncate rule, {@code interval} 1 ms on a slice rule, {@code flips}
 * 1 on a corrupt rule. Keys left at their default are not sent.
 *
 * @param name        unique within its proxy; null lets mcfault name it {@code rule-N}
 * @param command     command-name globs; {@code ["*"]} matches every command,
 *                    {@code ["connect"]} makes a rule about new connections
 * @param key         key globs; {@code ["*"]} matches every key
 * @param action      the fault
 * @param message     the reply line of an {@code error} rule, else null
 * @param delay       the delay of a {@code delay} rule (whole microseconds), else null
 * @param jitter      a {@code delay} rule's jitter, else zero
 * @param close       how a {@code drop} or {@code truncate} rule closes the connection
 *                    ({@link Close#FIN} unless set), else null
 * @param rate        a {@code throttle} rule's rate in bytes per second, else 0
 * @param size        a {@code slice} rule's piece sizes in bytes, else null
 * @param interval    a {@code slice} rule's pause between pieces (1 ms unless set, whole
 *                    microseconds), else null
 * @param keep        how much of the reply a {@code truncate} rule lets through, else null
 * @param flips       bits a {@code corrupt} rule flips in each value (1 unless set), else 0
 * @param probability chance from 0 to 1 that a match fires
 * @param after       matches let through before the rule fires (unsigned)
 * @param limit       most times the rule fires, 0 for no limit (unsigned)
 * @param forward     the command still reaches memcached, the fault applies to its reply
 * @param enabled     a disabled rule never matches
 * @param client      the client networks the rule is limited to ({@code "10.0.0.0/8"},
 *                    {@code "::1"}; read back in CIDR form, {@code "127.0.0.1/32"});
 *                    empty for every client
 * @param connections the share of client connections the rule takes, above 0 and at
 *                    most 1 (every connection)
 * @param minSize     only commands with a data block of at least this many bytes (unsigned);
 *                    0 with a null {@code maxSize}: no size targeting
 * @param maxSize     only commands with a data block of at most this many bytes (unsigned),
 *                    null for no upper bound
 * @param schedule    when the rule is in force, null for always
 * @param matched     commands whose globs matched (read back only)
 * @param fired       faults the rule caused (read back only)
 * @param proxy       the proxy the rule belongs to (read back only)
 * @param inForce     enabled and, with a schedule, on now (read back only)
 * @param nextChange  how long until {@code inForce} changes by itself, null when it never
 *                    does (read back only)
 */
public record Rule(String name, List<String> command, List<String> key, Action action,
        String message, Duration delay, Duration jitter, Close close, long rate,
        SizeRange size, Duration interval, Keep keep, int flips, double probability,
        long after, long limit, boolean forward, boolean enabled, List<String> client,
        double connections, long minSize, Long maxSize, Schedule schedule, long matched,
        long fired, String proxy, boolean inForce, Duration nextChange) {

    private static final List<String> ANY = List.of("*");

    /** A slice rule's pause between pieces when none is given. */
    private static final Duration DEFAULT_INTERVAL = Duration.ofMillis(1);

    /**
     * What an error rule on {@code command: connect} answers when the rule
     * file gives no message: memcached's own words when it is out of
     * connections. {@code Rule.error("refuse", CONNECT_MESSAGE).withCommand("connect")}
     * is the rule mcfault makes of {@code {command: connect, action: error}}.
     */
    public static final String CONNECT_MESSAGE = "ERROR Too many open connections";

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
        /** The reply reaches the client at {@code rate} bytes per second. */
        THROTTLE,
        /** The reply reaches the client in pieces of {@code size}, {@code interval} apart. */
        SLICE,
        /** The first {@code keep} bytes of the reply, then the connection closes. */
        TRUNCATE,
        /** {@code flips} bits flipped in each value (of a reply, or of a stored data block). */
        CORRUPT,
        /** The command's matching keys are deleted from memcached first. */
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

    /** How a drop or truncate rule closes the client's connection. */
    public enum Close {
        /** A FIN: the client reads end of file. */
        FIN,
        /** A reset (RST): the client's read fails with ECONNRESET. */
        RESET;

        /** The name in rule documents and replies: "fin" or "reset". */
        public String wireName() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }

        /** The value of that wire name; IllegalArgumentException for another. */
        public static Close fromWireName(String s) {
            for (Close c : values()) {
                if (c.wireName().equals(s)) {
                    return c;
                }
            }
            throw new IllegalArgumentException("unknown close '" + s + "'");
        }
    }

    /**
     * The sizes of a slice rule's pieces: each from {@code min} to {@code max}
     * bytes (mcfault allows 1 byte to 1 MiB).
     *
     * @param min the smallest piece, at least 1
     * @param max the largest piece, at least {@code min}
     */
    public record SizeRange(int min, int max) {
        /** Checks that 1 &le; min &le; max. */
        public SizeRange {
            if (min < 1 || max < min) {
                throw new IllegalArgumentException("size range " + min + "-" + max
                        + " must have 1 <= min <= max");
            }
        }

        /** Pieces of exactly n bytes. */
        public static SizeRange of(int n) {
            return new SizeRange(n, n);
        }

        /** Pieces of min to max bytes. */
        public static SizeRange of(int min, int max) {
            return new SizeRange(min, max);
        }

        /** The rule file's form: {@code "16"} or {@code "1-16"}. */
        @Override
        public String toString() {
            return min == max ? Integer.toString(min) : min + "-" + max;
        }
    }

    /**
     * How much of the reply a truncate rule lets through before it closes
     * the connection: a number of bytes ({@link #bytes}) or a share of the
     * reply's length ({@link #percent}).
     */
    public sealed interface Keep permits Keep.Bytes, Keep.Percent {
        /** The first n bytes of the reply. */
        static Keep bytes(long n) {
            return new Bytes(n);
        }

        /** That percentage (0 to 100) of the reply's length: {@code percent(12.5)} is "12.5%". */
        static Keep percent(double percent) {
            return new Percent(percent);
        }

        /**
         * A number of bytes.
         *
         * @param count bytes kept, 0 or more
         */
        record Bytes(long count) implements Keep {
            /** Checks that count is not negative. */
            public Bytes {
                if (count < 0) {
                    throw new IllegalArgumentException("keep " + count + " is negative");
                }
            }

            /** The rule file's form: {@code "100"}. */
            @Override
            public String toString() {
                return Long.toString(count);
            }
        }

        /**
         * A share of the reply's length.
         *
         * @param percent from 0 ({@code 0%}: no byte of the reply) to 100
         */
        record Percent(double percent) implements Keep {
            /** Checks that percent is from 0 to 100. */
            public Percent {
                if (!(percent >= 0 && percent <= 100)) {
                    throw new IllegalArgumentException("keep " + percent
                            + "% is not from 0% to 100%");
                }
            }

            /** The rule file's form: {@code "50%"}, {@code "12.5%"}. */
            @Override
            public String toString() {
                return plain(percent) + "%";
            }
        }
    }

    /**
     * When a rule is in force, counted from when the rule was first loaded:
     * from {@code start}, for {@code duration} (zero: for good), again every
     * {@code every} (zero: once). With {@code every}, {@code duration} must
     * be above zero and at most {@code every}; each at most 30 days (mcfault
     * checks both).
     *
     * <pre>{@code
     * new Rule.Schedule(Duration.ofSeconds(30), Duration.ofSeconds(10), Duration.ofSeconds(60))
     * }</pre>
     *
     * @param start    when it first comes in force (whole microseconds; null is zero)
     * @param duration how long it stays in force (whole microseconds; null or zero: for good)
     * @param every    the period it comes back with (whole microseconds; null or zero: once)
     */
    public record Schedule(Duration start, Duration duration, Duration every) {
        /** Zero for null; refuses negative durations and fractions of a microsecond. */
        public Schedule {
            start = start == null ? Duration.ZERO : start;
            duration = duration == null ? Duration.ZERO : duration;
            every = every == null ? Duration.ZERO : every;
            requireMicros("schedule start", start);
            requireMicros("schedule duration", duration);
            requireMicros("schedule every", every);
        }
    }

    /** Checks the shape and fills in the defaults of the action; mcfault checks the meaning. */
    public Rule {
        Objects.requireNonNull(action, "action");
        command = List.copyOf(Objects.requireNonNull(command, "command"));
        key = List.copyOf(Objects.requireNonNull(key, "key"));
        jitter = jitter == null ? Duration.ZERO : jitter;
        client = client == null ? List.of() : List.copyOf(client);
        if (close == null && (action == Action.DROP || action == Action.TRUNCATE)) {
            close = Close.FIN;
        }
        if (interval == null && action == Action.SLICE) {
            interval = DEFAULT_INTERVAL;
        }
        if (flips == 0 && action == Action.CORRUPT) {
            flips = 1;
        }
        requireMicros("delay", delay);
        requireMicros("jitter", jitter);
        requireMicros("interval", interval);
        if (!(probability >= 0 && probability <= 1)) {
            throw new IllegalArgumentException("probability " + probability + " is not in 0..1");
        }
        if (!(connections > 0 && connections <= 1)) {
            throw new IllegalArgumentException("connections " + connections
                    + " is not above 0 and at most 1");
        }
        if (rate < 0) {
            throw new IllegalArgumentException("rate " + rate + " is negative");
        }
        if (flips < 0) {
            throw new IllegalArgumentException("flips " + flips + " is negative");
        }
    }

    /**
     * A rule as this record was before the newer actions' parameters and
     * targeting: those are left out (at their defaults).
     */
    public Rule(String name, List<String> command, List<String> key, Action action,
            String message, Duration delay, Duration jitter, double probability, long after,
            long limit, boolean forward, boolean enabled, long matched, long fired,
            String proxy, boolean inForce, Duration nextChange) {
        this(name, command, key, action, message, delay, jitter, null, 0, null, null, null, 0,
                probability, after, limit, forward, enabled, List.of(), 1, 0, null, null,
                matched, fired, proxy, inForce, nextChange);
    }

    /**
     * A rule without read-back state (in force when enabled, as far as this
     * side knows), and without the newer actions' parameters and targeting.
     */
    public Rule(String name, List<String> command, List<String> key, Action action,
            String message, Duration delay, Duration jitter, double probability, long after,
            long limit, boolean forward, boolean enabled, long matched, long fired,
            String proxy) {
        this(name, command, key, action, message, delay, jitter, probability, after, limit,
                forward, enabled, matched, fired, proxy, enabled, null);
    }

    private static Rule of(String name, Action action, Consumer<Draft> params) {
        Draft d = new Draft(new Rule(name, ANY, ANY, action, null, null, Duration.ZERO, 1, 0,
                0, false, true, 0, 0, null));
        params.accept(d);
        return d.build();
    }

    // -------------------------------------------------------------- actions

    /** Answer matching commands with message as the reply line (mcfault adds "\r\n"). */
    public static Rule error(String name, String message) {
        Objects.requireNonNull(message, "message");
        return of(name, Action.ERROR, d -> d.message = message);
    }

    /** Answer matching commands delay later (at most 3600 s, whole microseconds). */
    public static Rule delay(String name, Duration delay) {
        Objects.requireNonNull(delay, "delay");
        return of(name, Action.DELAY, d -> d.delay = delay);
    }

    /** Close the connection of a matching command (with a FIN unless {@link #withClose}). */
    public static Rule drop(String name) {
        return of(name, Action.DROP, d -> { });
    }

    /** Never answer a matching command, nor anything after it on that connection. */
    public static Rule hang(String name) {
        return of(name, Action.HANG, d -> { });
    }

    /** Answer matching keys of retrievals (get, gets, gat, gats, mg) as misses. */
    public static Rule miss(String name) {
        return of(name, Action.MISS, d -> { });
    }

    /** Let the reply reach the client at bytesPerSecond (1 B/s to 1 GiB/s). */
    public static Rule throttle(String name, long bytesPerSecond) {
        return of(name, Action.THROTTLE, d -> d.rate = bytesPerSecond);
    }

    /**
     * Let the reply reach the client in pieces of size bytes (1 to 1 MiB),
     * 1 ms apart unless {@link #withInterval}.
     */
    public static Rule slice(String name, int size) {
        return slice(name, SizeRange.of(size));
    }

    /** Let the reply reach the client in pieces of min to max bytes each (drawn per piece). */
    public static Rule slice(String name, int min, int max) {
        return slice(name, SizeRange.of(min, max));
    }

    /** Let the reply reach the client in pieces of that size range. */
    public static Rule slice(String name, SizeRange size) {
        Objects.requireNonNull(size, "size");
        return of(name, Action.SLICE, d -> d.size = size);
    }

    /**
     * Let the first keep bytes of the reply through, then close the
     * connection (with a FIN unless {@link #withClose}).
     */
    public static Rule truncate(String name, Keep keep) {
        Objects.requireNonNull(keep, "keep");
        return of(name, Action.TRUNCATE, d -> d.keep = keep);
    }

    /**
     * Flip one bit (or {@link #withFlips} bits) in each value: of the
     * matching keys in a retrieval's reply, or in a storage command's data
     * block (memcached then stores the bad value).
     */
    public static Rule corrupt(String name) {
        return of(name, Action.CORRUPT, d -> { });
    }

    /** Delete the command's keys that match {@code key} from memcached before it runs. */
    public static Rule evict(String name) {
        return of(name, Action.EVICT, d -> { });
    }

    // ----------------------------------------------------------- with, keys

    public Rule withName(String name) {
        return edit(d -> d.name = name);
    }

    /**
     * Command-name globs, matched without regard to ASCII case ("get", "g*",
     * ...). {@code "connect"} alone makes a rule about new connections
     * (error, delay, drop or hang; no key or sizes).
     */
    public Rule withCommand(String... globs) {
        List<String> g = globs(globs);
        return edit(d -> d.command = g);
    }

    /** Key globs, matched byte for byte ("session:*", ...). */
    public Rule withKey(String... globs) {
        List<String> g = globs(globs);
        return edit(d -> d.key = g);
    }

    /** A delay rule's jitter: each delay drawn from delay - jitter to delay + jitter. */
    public Rule withJitter(Duration jitter) {
        return edit(d -> d.jitter = jitter);
    }

    /** How a drop or truncate rule closes the connection. */
    public Rule withClose(Close close) {
        Objects.requireNonNull(close, "close");
        return edit(d -> d.close = close);
    }

    /** A throttle rule's rate, in bytes per second. */
    public Rule withRate(long bytesPerSecond) {
        return edit(d -> d.rate = bytesPerSecond);
    }

    /** A slice rule's piece sizes. */
    public Rule withSize(SizeRange size) {
        Objects.requireNonNull(size, "size");
        return edit(d -> d.size = size);
    }

    /** A slice rule's pause between two pieces (at most 3600 s, whole microseconds). */
    public Rule withInterval(Duration interval) {
        Objects.requireNonNull(interval, "interval");
        return edit(d -> d.interval = interval);
    }

    /** How much of the reply a truncate rule lets through. */
    public Rule withKeep(Keep keep) {
        Objects.requireNonNull(keep, "keep");
        return edit(d -> d.keep = keep);
    }

    /** Bits a corrupt rule flips in each value (1 to 1024). */
    public Rule withFlips(int flips) {
        return edit(d -> d.flips = flips);
    }

    /** Chance from 0 to 1 that a match (past {@code after}) fires. */
    public Rule withProbability(double probability) {
        return edit(d -> d.probability = probability);
    }

    /** Let the first n matches through untouched. */
    public Rule withAfter(long n) {
        return edit(d -> d.after = n);
    }

    /** Fire at most n times (0: no limit). */
    public Rule withLimit(long n) {
        return edit(d -> d.limit = n);
    }

    /** Whether the command still reaches memcached (the fault then applies to its reply). */
    public Rule withForward(boolean forward) {
        return edit(d -> d.forward = forward);
    }

    /** Whether the rule is loaded enabled; a disabled rule never matches. */
    public Rule withEnabled(boolean enabled) {
        return edit(d -> d.enabled = enabled);
    }

    // ------------------------------------------------------ with, targeting

    /**
     * Only commands from clients in these networks: IPv4 or IPv6 addresses,
     * each with an optional {@code /prefix} ({@code "127.0.0.2"},
     * {@code "10.0.0.0/8"}, {@code "fd00::/8"}); no host names. At least one.
     */
    public Rule withClient(String... networks) {
        List<String> n = atLeastOne("network", networks);
        return edit(d -> d.client = n);
    }

    /** Only commands from clients in these networks; an empty list: every client. */
    public Rule withClient(List<String> networks) {
        List<String> n = List.copyOf(networks);
        return edit(d -> d.client = n);
    }

    /**
     * Only commands on this share of the connections (above 0, at most 1):
     * each connection draws once when it opens, so a connection is either
     * always or never taken, and smaller shares nest in larger ones.
     */
    public Rule withConnections(double share) {
        return edit(d -> d.connections = share);
    }

    /** Only commands with a data block ({@code set}, {@code ms}, ...) of at least n bytes. */
    public Rule withMinSize(long n) {
        return edit(d -> d.minSize = n);
    }

    /** Only commands with a data block of at most n bytes. */
    public Rule withMaxSize(long n) {
        return edit(d -> d.maxSize = n);
    }

    /** In force only while the schedule says so; null: always. */
    public Rule withSchedule(Schedule schedule) {
        return edit(d -> d.schedule = schedule);
    }

    /**
     * In force from start after the rule is loaded, for duration (zero: for
     * good), again every every (zero: once).
     */
    public Rule withSchedule(Duration start, Duration duration, Duration every) {
        return withSchedule(new Schedule(start, duration, every));
    }

    /**
     * This rule as it is sent: without what is only read back ({@code matched}
     * and {@code fired} 0, {@code proxy} null, {@code inForce} as
     * {@code enabled}, {@code nextChange} null). A rule read back from
     * mcfault and the rule that was sent are equal this way (client networks
     * written in CIDR form, as mcfault reports them).
     */
    public Rule definition() {
        return edit(d -> {
            d.matched = 0;
            d.fired = 0;
            d.proxy = null;
        });
    }

    // ----------------------------------------------------------------- wire

    /**
     * The rule as a rule-file mapping, ready for {@link Json#write}: keys
     * left at their defaults are left out (mcfault refuses {@code forward}
     * with {@code miss} even when false), durations in microseconds
     * ({@code "500000us"}), the rate as {@code "N/s"}, a slice size as
     * {@code "N"} or {@code "MIN-MAX"}, keep as a byte count or
     * {@code "N%"}, {@code after}, {@code limit}, {@code min_size} and
     * {@code max_size} unsigned, shares in plain decimals.
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
        boolean closes = action == Action.DROP || action == Action.TRUNCATE;
        if (close != null && !(close == Close.FIN && closes)) {
            m.put("close", close.wireName());
        }
        if (rate != 0) {
            m.put("rate", rate + "/s");
        }
        if (size != null) {
            m.put("size", size.toString());
        }
        if (interval != null && !(action == Action.SLICE && interval.equals(DEFAULT_INTERVAL))) {
            m.put("interval", micros(interval) + "us");
        }
        if (keep instanceof Keep.Bytes b) {
            m.put("keep", b.count());
        } else if (keep instanceof Keep.Percent p) {
            m.put("keep", p.toString());
        }
        if (flips != 0 && !(action == Action.CORRUPT && flips == 1)) {
            m.put("flips", flips);
        }
        if (probability != 1) {
            m.put("probability", share(probability));
        }
        if (after != 0) {
            m.put("after", unsigned(after));
        }
        if (limit != 0) {
            m.put("limit", unsigned(limit));
        }
        if (forward) {
            m.put("forward", true);
        }
        if (!enabled) {
            m.put("enabled", false);
        }
        if (!client.isEmpty()) {
            m.put("client", client.size() == 1 ? client.get(0) : client);
        }
        if (connections != 1) {
            m.put("connections", share(connections));
        }
        if (minSize != 0) {
            m.put("min_size", unsigned(minSize));
        }
        if (maxSize != null) {
            m.put("max_size", unsigned(maxSize));
        }
        if (schedule != null) {
            Map<String, Object> s = new LinkedHashMap<>();
            s.put("start", micros(schedule.start()) + "us");
            s.put("duration", micros(schedule.duration()) + "us");
            s.put("every", micros(schedule.every()) + "us");
            m.put("schedule", s);
        }
        return m;
    }

    /** A rule object of GET /rules; proxy is the proxy it came from. */
    static Rule fromReply(Map<String, Object> m, String proxy) {
        Action action;
        Close close;
        try {
            action = Action.fromWireName(Wire.str(m, "action"));
            close = m.get("close") == null ? null : Close.fromWireName(Wire.str(m, "close"));
        } catch (IllegalArgumentException e) {
            throw new McfaultException("unexpected reply from mcfault: " + e.getMessage(), e);
        }
        Duration delay = null;
        Duration jitter = Duration.ZERO;
        if (action == Action.DELAY) {
            delay = ofMicros(Wire.lng(m, "delay_us"));
            jitter = ofMicros(Wire.optLng(m, "jitter_us", 0));
        }
        SizeRange size = null;
        if (m.get("size") != null) {
            Map<String, Object> s = Wire.obj(m, "size");
            size = new SizeRange(sliceEnd(s, "min"), sliceEnd(s, "max"));
        }
        Schedule schedule = null;
        if (m.get("schedule") != null) {
            Map<String, Object> s = Wire.obj(m, "schedule");
            schedule = new Schedule(ofMicros(Wire.lng(s, "start_us")),
                    ofMicros(Wire.lng(s, "duration_us")), ofMicros(Wire.lng(s, "every_us")));
        }
        long flips = Wire.optLng(m, "flips", 0);
        if (flips < 0 || flips > Integer.MAX_VALUE) {
            throw new McfaultException("unexpected reply from mcfault: 'flips' is " + flips, null);
        }
        return new Rule(Wire.str(m, "name"), Wire.strings(m, "command"), Wire.strings(m, "key"),
                action, action == Action.ERROR ? Wire.str(m, "message") : Wire.optStr(m, "message"),
                delay, jitter, close, Wire.optLng(m, "rate_bps", 0), size,
                m.get("interval_us") == null ? null : ofMicros(Wire.lng(m, "interval_us")),
                keepOf(m), (int) flips, Wire.dbl(m, "probability"), Wire.lng(m, "after"),
                Wire.lng(m, "limit"), Wire.bool(m, "forward"), Wire.bool(m, "enabled"),
                m.get("client") == null ? List.of() : Wire.strings(m, "client"),
                m.get("connections") == null ? 1 : Wire.dbl(m, "connections"),
                Wire.optLng(m, "min_size", 0),
                m.get("max_size") == null ? null : Wire.lng(m, "max_size"),
                schedule, Wire.lng(m, "matched"), Wire.lng(m, "fired"),
                proxy != null ? proxy : Wire.optStr(m, "proxy"),
                // An mcfault from before schedules: in force when enabled.
                Wire.optBool(m, "in_force", Wire.bool(m, "enabled")),
                m.get("next_change_ms") == null ? null
                        : Duration.ofMillis(Wire.lng(m, "next_change_ms")));
    }

    /** "keep": a byte count (a number) or a share ("50%"); null when absent. */
    private static Keep keepOf(Map<String, Object> m) {
        Object v = m.get("keep");
        if (v == null) {
            return null;
        }
        try {
            if (v instanceof String s && s.endsWith("%")) {
                return Keep.percent(Double.parseDouble(s.substring(0, s.length() - 1)));
            }
            return Keep.bytes(Wire.lng(m, "keep"));
        } catch (IllegalArgumentException e) {
            throw new McfaultException("unexpected reply from mcfault: 'keep' is " + v
                    + ", not a byte count or a percentage", e);
        }
    }

    private static int sliceEnd(Map<String, Object> s, String end) {
        long n = Wire.lng(s, end);
        if (n < 1 || n > Integer.MAX_VALUE) {
            throw new McfaultException("unexpected reply from mcfault: 'size' " + end + " is "
                    + n, null);
        }
        return (int) n;
    }

    // -------------------------------------------------------------- helpers

    /** The record's components, to change some and build a copy. */
    private static final class Draft {
        String name;
        List<String> command;
        List<String> key;
        Action action;
        String message;
        Duration delay;
        Duration jitter;
        Close close;
        long rate;
        SizeRange size;
        Duration interval;
        Keep keep;
        int flips;
        double probability;
        long after;
        long limit;
        boolean forward;
        boolean enabled;
        List<String> client;
        double connections;
        long minSize;
        Long maxSize;
        Schedule schedule;
        long matched;
        long fired;
        String proxy;

        Draft(Rule r) {
            name = r.name;
            command = r.command;
            key = r.key;
            action = r.action;
            message = r.message;
            delay = r.delay;
            jitter = r.jitter;
            close = r.close;
            rate = r.rate;
            size = r.size;
            interval = r.interval;
            keep = r.keep;
            flips = r.flips;
            probability = r.probability;
            after = r.after;
            limit = r.limit;
            forward = r.forward;
            enabled = r.enabled;
            client = r.client;
            connections = r.connections;
            minSize = r.minSize;
            maxSize = r.maxSize;
            schedule = r.schedule;
            matched = r.matched;
            fired = r.fired;
            proxy = r.proxy;
        }

        /** The rule, in force when enabled as far as this side knows. */
        Rule build() {
            return new Rule(name, command, key, action, message, delay, jitter, close, rate,
                    size, interval, keep, flips, probability, after, limit, forward, enabled,
                    client, connections, minSize, maxSize, schedule, matched, fired, proxy,
                    enabled, null);
        }
    }

    /** A copy with change applied; read-back inForce and nextChange are reset. */
    private Rule edit(Consumer<Draft> change) {
        Draft d = new Draft(this);
        change.accept(d);
        return d.build();
    }

    private static List<String> globs(String... globs) {
        return atLeastOne("glob", globs);
    }

    private static List<String> atLeastOne(String what, String... values) {
        if (values.length == 0) {
            throw new IllegalArgumentException("at least one " + what);
        }
        return Arrays.asList(values);
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

    private static Duration ofMicros(long us) {
        return Duration.ofNanos(Math.multiplyExact(us, 1000L));
    }

    private static BigInteger unsigned(long n) {
        return new BigInteger(Long.toUnsignedString(n));
    }

    /**
     * A probability or share for the document: a JSON number, or, where
     * Java would write an exponent (below 0.001), a string of the plain
     * decimal, since mcfault reads no exponents.
     */
    private static Object share(double d) {
        return Double.toString(d).indexOf('E') < 0 ? (Object) d : plain(d);
    }

    /** d as a plain decimal, without exponent or trailing zeros: "50", "12.5", "0.00001". */
    private static String plain(double d) {
        return BigDecimal.valueOf(d).stripTrailingZeros().toPlainString();
    }
}
