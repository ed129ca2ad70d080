// Rules as documents (what is sent) and as replies (what is read), and the
// percent-encoding of names; no server needed.
package dev.mcfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

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
                                + "\"limit\":18446744073709551615}"));
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
