// Rules as documents (what is sent) and as replies (what is read), and the
// percent-encoding of names; no server needed.
package dev.mcfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class RuleTest {
    static Stream<Arguments> documents() {
        return Stream.of(
                Arguments.of(Rule.drop("d"), "{\"name\":\"d\",\"action\":\"drop\"}"),
                Arguments.of(Rule.hang(null), "{\"action\":\"hang\"}"),
                Arguments.of(Rule.miss("m").withKey("hot:*").withCommand("get", "mg"),
                        "{\"name\":\"m\",\"command\":[\"get\",\"mg\"],\"key\":\"hot:*\",\"action\":\"miss\"}"),
                Arguments.of(Rule.error("oom", "SERVER_ERROR out of memory").withCommand("set")
                        .withProbability(0.25).withAfter(10).withLimit(3),
                        "{\"name\":\"oom\",\"command\":\"set\",\"action\":\"error\","
                                + "\"message\":\"SERVER_ERROR out of memory\",\"probability\":0.25,"
                                + "\"after\":10,\"limit\":3}"),
                Arguments.of(Rule.delay("slow", Duration.ofMillis(500))
                        .withJitter(Duration.ofNanos(1000)).withForward(true).withEnabled(false),
                        "{\"name\":\"slow\",\"action\":\"delay\",\"delay\":\"500000us\","
                                + "\"jitter\":\"1us\",\"forward\":true,\"enabled\":false}"),
                Arguments.of(Rule.delay("s", Duration.ZERO).withProbability(0).withLimit(-1),
                        "{\"name\":\"s\",\"action\":\"delay\",\"delay\":\"0us\",\"probability\":0,"
                                + "\"limit\":18446744073709551615}"),
                // The newer actions' parameters; their defaults are left out.
                Arguments.of(Rule.drop("d").withClose(Rule.Close.RESET),
                        "{\"name\":\"d\",\"action\":\"drop\",\"close\":\"reset\"}"),
                Arguments.of(Rule.drop("d").withClose(Rule.Close.FIN),
                        "{\"name\":\"d\",\"action\":\"drop\"}"),
                Arguments.of(Rule.throttle("t", 10240).withCommand("get"),
                        "{\"name\":\"t\",\"command\":\"get\",\"action\":\"throttle\","
                                + "\"rate\":\"10240/s\"}"),
                Arguments.of(Rule.slice("s", 16),
                        "{\"name\":\"s\",\"action\":\"slice\",\"size\":\"16\"}"),
                Arguments.of(Rule.slice("s", 1, 16).withInterval(Duration.ofMillis(5)),
                        "{\"name\":\"s\",\"action\":\"slice\",\"size\":\"1-16\","
                                + "\"interval\":\"5000us\"}"),
                Arguments.of(Rule.slice("s", Rule.SizeRange.of(2, 3))
                        .withInterval(Duration.ofMillis(1)),
                        "{\"name\":\"s\",\"action\":\"slice\",\"size\":\"2-3\"}"),
                Arguments.of(Rule.truncate("k", Rule.Keep.bytes(100)).withClose(Rule.Close.RESET),
                        "{\"name\":\"k\",\"action\":\"truncate\",\"close\":\"reset\","
                                + "\"keep\":100}"),
                Arguments.of(Rule.truncate("k", Rule.Keep.percent(50)),
                        "{\"name\":\"k\",\"action\":\"truncate\",\"keep\":\"50%\"}"),
                Arguments.of(Rule.truncate("k", Rule.Keep.percent(12.5)),
                        "{\"name\":\"k\",\"action\":\"truncate\",\"keep\":\"12.5%\"}"),
                Arguments.of(Rule.truncate("k", Rule.Keep.percent(0.00001)),
                        "{\"name\":\"k\",\"action\":\"truncate\",\"keep\":\"0.00001%\"}"),
                Arguments.of(Rule.corrupt("c"), "{\"name\":\"c\",\"action\":\"corrupt\"}"),
                Arguments.of(Rule.corrupt("c").withFlips(3),
                        "{\"name\":\"c\",\"action\":\"corrupt\",\"flips\":3}"),
                Arguments.of(Rule.evict("e").withKey("user:*"),
                        "{\"name\":\"e\",\"key\":\"user:*\",\"action\":\"evict\"}"),
                // Targeting and schedules.
                Arguments.of(Rule.evict("e").withClient("127.0.0.2"),
                        "{\"name\":\"e\",\"action\":\"evict\",\"client\":\"127.0.0.2\"}"),
                Arguments.of(Rule.drop("d").withClient("10.0.0.0/8", "::1").withConnections(0.25)
                        .withMinSize(1024).withMaxSize(-1),
                        "{\"name\":\"d\",\"action\":\"drop\",\"client\":[\"10.0.0.0/8\",\"::1\"],"
                                + "\"connections\":0.25,\"min_size\":1024,"
                                + "\"max_size\":18446744073709551615}"),
                Arguments.of(Rule.miss("m").withMaxSize(10).withClient(List.of()),
                        "{\"name\":\"m\",\"action\":\"miss\",\"max_size\":10}"),
                Arguments.of(Rule.hang("h").withSchedule(Duration.ofSeconds(30),
                        Duration.ofMillis(1500), Duration.ofMinutes(1)),
                        "{\"name\":\"h\",\"action\":\"hang\",\"schedule\":{\"start\":\"30000000us\","
                                + "\"duration\":\"1500000us\",\"every\":\"60000000us\"}}"),
                Arguments.of(Rule.hang("h").withSchedule(new Rule.Schedule(null, null, null)),
                        "{\"name\":\"h\",\"action\":\"hang\",\"schedule\":{\"start\":\"0us\","
                                + "\"duration\":\"0us\",\"every\":\"0us\"}}"),
                Arguments.of(Rule.error("c", Rule.CONNECT_MESSAGE).withCommand("connect"),
                        "{\"name\":\"c\",\"command\":\"connect\",\"action\":\"error\","
                                + "\"message\":\"ERROR Too many open connections\"}"),
                // mcfault reads no exponents: tiny shares are plain decimals.
                Arguments.of(Rule.drop("p").withProbability(0.0001).withConnections(1e-7),
                        "{\"name\":\"p\",\"action\":\"drop\",\"probability\":\"0.0001\","
                                + "\"connections\":\"0.0000001\"}"),
                // A key another action takes is sent, for mcfault to refuse.
                Arguments.of(Rule.delay("x", Duration.ofMillis(1)).withClose(Rule.Close.FIN)
                        .withFlips(1).withInterval(Duration.ofMillis(1)).withRate(5),
                        "{\"name\":\"x\",\"action\":\"delay\",\"delay\":\"1000us\","
                                + "\"close\":\"fin\",\"rate\":\"5/s\",\"interval\":\"1000us\","
                                + "\"flips\":1}"));
    }

    @ParameterizedTest
    @MethodSource("documents")
    void writesTheRuleFileKeysThatAreNotDefaults(Rule rule, String json) {
        assertEquals(json, Json.write(rule));
    }

    @Test
    void refusesWhatCannotBeARule() {
        assertThrows(IllegalArgumentException.class, () -> Rule.drop("x").withProbability(1.5));
        assertThrows(IllegalArgumentException.class, () -> Rule.drop("x").withProbability(Double.NaN));
        assertThrows(IllegalArgumentException.class, () -> Rule.delay("x", Duration.ofNanos(1500)));
        assertThrows(IllegalArgumentException.class, () -> Rule.delay("x", Duration.ofMillis(-1)));
        assertThrows(IllegalArgumentException.class, () -> Rule.drop("x").withKey());
        assertThrows(NullPointerException.class, () -> Rule.drop("x").withKey("a", null));
        assertThrows(NullPointerException.class, () -> Rule.error("x", null));
    }

    @Test
    void readsARuleOfGetRules() {
        Map<String, Object> reply = Wire.obj(Json.parse("{\"name\":\"slow-gets\","
                + "\"command\":[\"get\",\"gets\",\"mg\"],\"key\":[\"*\"],\"action\":\"delay\","
                + "\"delay_us\":500000,\"jitter_us\":100000,\"probability\":1,\"after\":0,"
                + "\"limit\":18446744073709551615,\"forward\":false,\"enabled\":true,"
                + "\"matched\":40,\"fired\":40,\"proxy\":\"default\"}"), "rule");
        Rule r = Rule.fromReply(reply, null);
        assertEquals(new Rule("slow-gets", List.of("get", "gets", "mg"), List.of("*"),
                Rule.Action.DELAY, null, Duration.ofMillis(500), Duration.ofMillis(100), 1, 0, -1,
                false, true, 40, 40, "default"), r);
    }

    @Test
    void readsInForceNextChangeAndANewerAction() {
        Map<String, Object> reply = Wire.obj(Json.parse("{\"name\":\"blink\","
                + "\"command\":[\"*\"],\"key\":[\"*\"],\"action\":\"throttle\","
                + "\"rate_bps\":1024,\"schedule\":{\"start_us\":0,\"duration_us\":1000000,"
                + "\"every_us\":5000000},\"probability\":1,\"after\":0,\"limit\":0,"
                + "\"forward\":false,\"enabled\":true,\"matched\":0,\"fired\":0,"
                + "\"in_force\":false,\"next_change_ms\":1500}"), "rule");
        Rule r = Rule.fromReply(reply, "default");
        assertEquals(Rule.Action.THROTTLE, r.action());
        assertEquals("throttle", r.action().wireName());
        assertEquals(false, r.inForce());
        assertEquals(Duration.ofMillis(1500), r.nextChange());
        // A rule built here, or changed: in force when enabled.
        assertEquals(true, r.withLimit(3).inForce());
        assertEquals(null, r.withLimit(3).nextChange());
        assertEquals(false, Rule.drop("d").withEnabled(false).inForce());
    }

    @Test
    void refusesWhatCannotBeANewerRule() {
        assertThrows(IllegalArgumentException.class, () -> Rule.throttle("t", -1));
        assertThrows(IllegalArgumentException.class, () -> Rule.slice("s", 0));
        assertThrows(IllegalArgumentException.class, () -> Rule.slice("s", 5, 4));
        assertThrows(IllegalArgumentException.class,
                () -> Rule.slice("s", 4).withInterval(Duration.ofNanos(1500)));
        assertThrows(NullPointerException.class, () -> Rule.slice("s", null));
        assertThrows(IllegalArgumentException.class, () -> Rule.Keep.bytes(-1));
        assertThrows(IllegalArgumentException.class, () -> Rule.Keep.percent(100.5));
        assertThrows(IllegalArgumentException.class, () -> Rule.Keep.percent(-1));
        assertThrows(IllegalArgumentException.class, () -> Rule.Keep.percent(Double.NaN));
        assertThrows(NullPointerException.class, () -> Rule.truncate("k", null));
        assertThrows(IllegalArgumentException.class, () -> Rule.corrupt("c").withFlips(-1));
        assertThrows(IllegalArgumentException.class, () -> Rule.drop("d").withConnections(0));
        assertThrows(IllegalArgumentException.class, () -> Rule.drop("d").withConnections(1.5));
        assertThrows(IllegalArgumentException.class, () -> Rule.drop("d").withClient());
        assertThrows(NullPointerException.class, () -> Rule.drop("d").withClient("::1", null));
        assertThrows(IllegalArgumentException.class,
                () -> new Rule.Schedule(Duration.ofSeconds(-1), null, null));
        assertThrows(IllegalArgumentException.class,
                () -> new Rule.Schedule(null, Duration.ofNanos(1), null));
        assertThrows(IllegalArgumentException.class, () -> Rule.Close.fromWireName("rst"));
    }

    @Test
    void theActionsDefaultsAreItsComponents() {
        assertEquals(Rule.Close.FIN, Rule.drop("d").close());
        assertEquals(Rule.Close.FIN, Rule.truncate("t", Rule.Keep.bytes(1)).close());
        assertEquals(null, Rule.delay("d", Duration.ZERO).close());
        assertEquals(Duration.ofMillis(1), Rule.slice("s", 1).interval());
        assertEquals(null, Rule.drop("d").interval());
        assertEquals(1, Rule.corrupt("c").flips());
        assertEquals(0, Rule.evict("e").flips());
        Rule plain = Rule.hang("h");
        assertEquals(List.of(), plain.client());
        assertEquals(1.0, plain.connections());
        assertEquals(0, plain.minSize());
        assertEquals(null, plain.maxSize());
        assertEquals(null, plain.schedule());
        assertEquals(0, plain.rate());
        assertEquals(null, plain.size());
        assertEquals(null, plain.keep());
        // The constructors of before keep working, with those defaults.
        assertEquals(Rule.drop("d"), new Rule("d", List.of("*"), List.of("*"), Rule.Action.DROP,
                null, null, null, 1, 0, 0, false, true, 0, 0, null));
        assertEquals(Rule.corrupt("c").withEnabled(false), new Rule("c", List.of("*"),
                List.of("*"), Rule.Action.CORRUPT, null, null, null, 1, 0, 0, false, false, 0, 0,
                null, false, null));
        assertEquals("12.5%", Rule.Keep.percent(12.5).toString());
        assertEquals("100", Rule.Keep.bytes(100).toString());
        assertEquals("1-16", Rule.SizeRange.of(1, 16).toString());
        assertEquals("16", Rule.SizeRange.of(16).toString());
    }

    private static Rule read(String fields) {
        return Rule.fromReply(Wire.obj(Json.parse("{\"name\":\"r\",\"command\":[\"*\"],"
                + "\"key\":[\"*\"]," + fields + ",\"probability\":1,\"after\":0,\"limit\":0,"
                + "\"forward\":false,\"enabled\":true,\"matched\":3,\"fired\":2,"
                + "\"in_force\":true,\"next_change_ms\":null}"), "rule"), "default");
    }

    @Test
    void readsTheNewerActionsParameters() {
        Rule r = read("\"action\":\"throttle\",\"rate_bps\":1024");
        assertEquals(Rule.throttle("r", 1024), r.definition());
        assertEquals(3, r.matched());
        assertEquals(2, r.fired());
        assertEquals("default", r.proxy());

        r = read("\"action\":\"slice\",\"size\":{\"min\":1,\"max\":16},\"interval_us\":5000");
        assertEquals(Rule.slice("r", 1, 16).withInterval(Duration.ofMillis(5)), r.definition());
        assertEquals(Rule.SizeRange.of(1, 16), r.size());

        r = read("\"action\":\"truncate\",\"close\":\"reset\",\"keep\":100");
        assertEquals(Rule.Keep.bytes(100), r.keep());
        assertEquals(Rule.Close.RESET, r.close());
        assertEquals(Rule.truncate("r", Rule.Keep.bytes(100)).withClose(Rule.Close.RESET),
                r.definition());

        r = read("\"action\":\"truncate\",\"close\":\"fin\",\"keep\":\"50%\"");
        assertEquals(Rule.Keep.percent(50), r.keep());
        assertEquals(Rule.truncate("r", Rule.Keep.percent(50)), r.definition());
        // As mcfault writes a tiny share: with an exponent.
        assertEquals(Rule.Keep.percent(0.00001),
                read("\"action\":\"truncate\",\"close\":\"fin\",\"keep\":\"1e-05%\"").keep());

        r = read("\"action\":\"corrupt\",\"flips\":3");
        assertEquals(Rule.corrupt("r").withFlips(3), r.definition());
        r = read("\"action\":\"drop\",\"close\":\"fin\"");
        assertEquals(Rule.drop("r"), r.definition());
        r = read("\"action\":\"evict\"");
        assertEquals(Rule.evict("r"), r.definition());
    }

    @Test
    void readsTargetingAndSchedules() {
        Rule r = read("\"action\":\"evict\",\"client\":[\"10.0.0.0/8\",\"127.0.0.1/32\","
                + "\"fd00::/8\"],\"connections\":0.25,\"min_size\":10,\"max_size\":null,"
                + "\"schedule\":{\"start_us\":30000000,\"duration_us\":10000000,"
                + "\"every_us\":60000000}");
        assertEquals(List.of("10.0.0.0/8", "127.0.0.1/32", "fd00::/8"), r.client());
        assertEquals(0.25, r.connections());
        assertEquals(10, r.minSize());
        assertEquals(null, r.maxSize());
        assertEquals(new Rule.Schedule(Duration.ofSeconds(30), Duration.ofSeconds(10),
                Duration.ofMinutes(1)), r.schedule());
        assertEquals(Rule.evict("r").withClient("10.0.0.0/8", "127.0.0.1/32", "fd00::/8")
                .withConnections(0.25).withMinSize(10).withSchedule(Duration.ofSeconds(30),
                        Duration.ofSeconds(10), Duration.ofMinutes(1)), r.definition());

        r = read("\"action\":\"miss\",\"min_size\":0,\"max_size\":18446744073709551614");
        assertEquals(0, r.minSize());
        assertEquals(Long.valueOf(-2), r.maxSize());   // unsigned, as after and limit
        assertEquals("{\"name\":\"r\",\"action\":\"miss\",\"max_size\":18446744073709551614}",
                Json.write(r));

        // A connect rule: its error message is mcfault's default when none was given.
        r = Rule.fromReply(Wire.obj(Json.parse("{\"name\":\"c\",\"command\":[\"connect\"],"
                + "\"key\":[\"*\"],\"action\":\"error\",\"message\":\"ERROR Too many open "
                + "connections\",\"probability\":1,\"after\":0,\"limit\":0,\"forward\":false,"
                + "\"enabled\":true,\"matched\":0,\"fired\":0,\"in_force\":false,"
                + "\"next_change_ms\":2500,\"schedule\":{\"start_us\":2500000,\"duration_us\":0,"
                + "\"every_us\":0}}"), "rule"), null);
        assertEquals(Rule.error("c", Rule.CONNECT_MESSAGE).withCommand("connect")
                .withSchedule(Duration.ofMillis(2500), Duration.ZERO, Duration.ZERO),
                r.definition());
        assertEquals(false, r.inForce());
        assertEquals(Duration.ofMillis(2500), r.nextChange());
        assertEquals(true, r.definition().inForce());
        assertEquals(null, r.definition().nextChange());
    }

    @Test
    void aRuleReadBackWritesTheDocumentItWasSentAs() {
        Rule sent = Rule.drop("d").withClose(Rule.Close.RESET).withClient("10.0.0.0/8")
                .withConnections(0.5).withMinSize(1).withMaxSize(2)
                .withSchedule(Duration.ofSeconds(1), Duration.ofSeconds(2), Duration.ofSeconds(3));
        Rule got = read("\"action\":\"drop\",\"close\":\"reset\",\"client\":[\"10.0.0.0/8\"],"
                + "\"connections\":0.5,\"min_size\":1,\"max_size\":2,\"schedule\":{"
                + "\"start_us\":1000000,\"duration_us\":2000000,\"every_us\":3000000}");
        assertEquals(Json.write(sent.withName("r")), Json.write(got));
    }

    @Test
    void aBadNewerFieldSaysWhich() {
        McfaultException e = assertThrows(McfaultException.class,
                () -> read("\"action\":\"truncate\",\"keep\":\"half\""));
        assertTrue(e.getMessage().contains("'keep'"), e.getMessage());
        e = assertThrows(McfaultException.class,
                () -> read("\"action\":\"drop\",\"close\":\"slam\""));
        assertTrue(e.getMessage().contains("unknown close 'slam'"), e.getMessage());
        e = assertThrows(McfaultException.class,
                () -> read("\"action\":\"slice\",\"size\":{\"min\":1},\"interval_us\":1"));
        assertTrue(e.getMessage().contains("'max' is missing"), e.getMessage());
        e = assertThrows(McfaultException.class,
                () -> read("\"action\":\"drop\",\"schedule\":{\"start_us\":1,\"every_us\":0}"));
        assertTrue(e.getMessage().contains("'duration_us' is missing"), e.getMessage());
    }

    @Test
    void aReplyMissingAFieldSaysWhich() {
        Map<String, Object> reply = Wire.obj(Json.parse("{\"name\":\"e\",\"command\":[\"*\"],"
                + "\"key\":[\"*\"],\"action\":\"error\",\"probability\":1}"), "rule");
        McfaultException e = assertThrows(McfaultException.class, () -> Rule.fromReply(reply, "p"));
        assertEquals("unexpected reply from mcfault: 'message' is missing", e.getMessage());
    }

    static Stream<Arguments> encodings() {
        return Stream.of(
                Arguments.of("oom", "oom"),
                Arguments.of("a-b.c_d~e", "a-b.c_d~e"),
                Arguments.of("odd/name", "odd%2Fname"),
                Arguments.of("a b+c?d#e&f=g%h", "a%20b%2Bc%3Fd%23e%26f%3Dg%25h"),
                Arguments.of("caf\u00e9", "caf%C3%A9"));
    }

    @ParameterizedTest
    @MethodSource("encodings")
    void percentEncodesNames(String name, String encoded) {
        assertEquals(encoded, Wire.encode(name));
    }
}
