// The JSON reader and writer, table-driven: what each text reads as, what
// each malformed text is refused for, and what each value writes as.
package dev.mcfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class JsonTest {
    private static Map<String, Object> map(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return m;
    }

    static Stream<Arguments> valid() {
        return Stream.of(
                Arguments.of("null", null),
                Arguments.of(" true ", true),
                Arguments.of("\t\r\nfalse\n", false),
                Arguments.of("0", 0L),
                Arguments.of("-0", 0L),
                Arguments.of("42", 42L),
                Arguments.of("-9223372036854775808", Long.MIN_VALUE),
                Arguments.of("9223372036854775807", Long.MAX_VALUE),
                Arguments.of("18446744073709551615", new BigInteger("18446744073709551615")),
                Arguments.of("0.25", new BigDecimal("0.25")),
                Arguments.of("1e3", new BigDecimal("1e3")),
                Arguments.of("-1.5E-2", new BigDecimal("-1.5E-2")),
                Arguments.of("1732183225.904513", new BigDecimal("1732183225.904513")),
                Arguments.of("\"\"", ""),
                Arguments.of("\"caf\u00e9\"", "caf\u00e9"),
                Arguments.of("\"k\\u00ffz\"", "k\u00ffz"),
                Arguments.of("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t"),
                Arguments.of("\"\\u0000\\u001F\"", "\u0000\u001f"),
                Arguments.of("\"\\ud83d\\ude00 \ud83d\ude00\"", "\ud83d\ude00 \ud83d\ude00"),
                Arguments.of("[]", List.of()),
                Arguments.of("[1, \"a\", [null]]", Arrays.asList(1L, "a", Arrays.asList((Object) null))),
                Arguments.of("{}", Map.of()),
                Arguments.of("{\"b\":1,\"a\":{\"c\":[]}}", map("b", 1L, "a", map("c", List.of()))),
                Arguments.of("{\"ok\":true,\"rules\":2}", map("ok", true, "rules", 2L)));
    }

    @ParameterizedTest
    @MethodSource("valid")
    void parsesWellFormedText(String text, Object want) {
        assertEquals(want, Json.parse(text));
    }

    @Test
    void objectsKeepTheirOrder() {
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) Json.parse("{\"z\":1,\"a\":2,\"m\":3}");
        assertEquals(List.of("z", "a", "m"), new ArrayList<>(m.keySet()));
    }

    static Stream<Arguments> invalid() {
        return Stream.of(
                Arguments.of("", "end of input"),
                Arguments.of("   ", "end of input"),
                Arguments.of("nul", "expected a value"),
                Arguments.of("True", "expected a value"),
                Arguments.of("1 2", "after the value"),
                Arguments.of("{} x", "after the value"),
                Arguments.of("01", "leading zero"),
                Arguments.of("-", "expected a digit"),
                Arguments.of("+1", "expected a value"),
                Arguments.of("1.", "after '.'"),
                Arguments.of(".5", "expected a value"),
                Arguments.of("1e", "exponent"),
                Arguments.of("1e+", "exponent"),
                Arguments.of("NaN", "expected a value"),
                Arguments.of("Infinity", "expected a value"),
                Arguments.of("\"abc", "unterminated string"),
                Arguments.of("\"a\\", "unterminated string"),
                Arguments.of("\"tab\there\"", "control character"),
                Arguments.of("\"nl\n\"", "control character"),
                Arguments.of("\"\\x41\"", "bad escape"),
                Arguments.of("\"\\'\"", "bad escape"),
                Arguments.of("\"\\u12\"", "four hex digits"),
                Arguments.of("\"\\u12g4\"", "four hex digits"),
                Arguments.of("\"\\ud800\"", "unpaired surrogate"),
                Arguments.of("\"\\ud800\\u0041\"", "unpaired surrogate"),
                Arguments.of("\"\\udc00\"", "unpaired surrogate"),
                Arguments.of("\"\ud800\"", "unpaired surrogate"),
                Arguments.of("'a'", "expected a value"),
                Arguments.of("[1,]", "expected a value"),
                Arguments.of("[1 2]", "expected ',' or ']'"),
                Arguments.of("[", "end of input"),
                Arguments.of("{\"a\":1,}", "string as object key"),
                Arguments.of("{a:1}", "string as object key"),
                Arguments.of("{\"a\" 1}", "expected ':'"),
                Arguments.of("{\"a\":1 \"b\":2}", "expected ',' or '}'"),
                Arguments.of("{\"a\":1,\"a\":2}", "duplicate key \"a\""),
                Arguments.of("// c\n1", "expected a value"),
                Arguments.of("1e99999999999", "out of range"),
                Arguments.of("[".repeat(Json.MAX_DEPTH + 1) + "]".repeat(Json.MAX_DEPTH + 1),
                        "nested deeper"));
    }

    @ParameterizedTest
    @MethodSource("invalid")
    void refusesMalformedText(String text, String why) {
        Json.JsonException e = assertThrows(Json.JsonException.class, () -> Json.parse(text));
        assertTrue(e.getMessage().contains(why), e.getMessage());
        assertTrue(e.getMessage().startsWith("bad JSON at offset "), e.getMessage());
    }

    @Test
    void namesTheOffset() {
        assertEquals("bad JSON at offset 9: expected ',' or ']' in array",
                assertThrows(Json.JsonException.class, () -> Json.parse("[1, 2, 3 4]")).getMessage());
        assertTrue(assertThrows(Json.JsonException.class, () -> Json.parse("{\"a\":1,\"a\":2}"))
                .getMessage().startsWith("bad JSON at offset 7:"));
    }

    @Test
    void nestingUpToTheLimitIsFine() {
        String deep = "[".repeat(Json.MAX_DEPTH) + "]".repeat(Json.MAX_DEPTH);
        assertEquals(deep, Json.write(Json.parse(deep)));
    }

    static Stream<Arguments> writes() {
        return Stream.of(
                Arguments.of(null, "null"),
                Arguments.of(true, "true"),
                Arguments.of(7, "7"),
                Arguments.of(-7L, "-7"),
                Arguments.of(new BigInteger("18446744073709551615"), "18446744073709551615"),
                Arguments.of(0.25, "0.25"),
                Arguments.of(1.0, "1"),
                Arguments.of(1e-7, "1.0e-7"),
                Arguments.of(1e300, "1.0e300"),
                Arguments.of(2.5f, "2.5"),
                Arguments.of(new BigDecimal("1.50"), "1.50"),
                Arguments.of("a\"b\\c\nd\te\u0001\u001f\u007f", "\"a\\\"b\\\\c\\nd\\te\\u0001\\u001f\u007f\""),
                Arguments.of("caf\u00e9 \ud83d\ude00 /", "\"caf\u00e9 \ud83d\ude00 /\""),
                Arguments.of(List.of(), "[]"),
                Arguments.of(new Object[] {1, "x", null}, "[1,\"x\",null]"),
                Arguments.of(map("b", 1, "a", List.of(true)), "{\"b\":1,\"a\":[true]}"),
                Arguments.of(Map.of("rules", List.of(Rule.drop("d"))),
                        "{\"rules\":[{\"name\":\"d\",\"action\":\"drop\"}]}"));
    }

    @ParameterizedTest
    @MethodSource("writes")
    void writesCompactJson(Object value, String want) {
        assertEquals(want, Json.write(value));
    }

    static Stream<Arguments> unwritable() {
        return Stream.of(
                Arguments.of(Double.NaN, "no NaN"),
                Arguments.of(Double.POSITIVE_INFINITY, "no Infinity"),
                Arguments.of("\ud800x", "unpaired surrogate"),
                Arguments.of(Map.of(1, 2), "not a string"),
                Arguments.of(new Object(), "cannot write"),
                Arguments.of(new java.util.concurrent.atomic.AtomicLong(1), "cannot write"));
    }

    @ParameterizedTest
    @MethodSource("unwritable")
    void refusesWhatJsonCannotSay(Object value, String why) {
        Json.JsonException e = assertThrows(Json.JsonException.class, () -> Json.write(value));
        assertTrue(e.getMessage().contains(why), e.getMessage());
    }

    @Test
    void roundTrips() {
        String[] texts = {
            "{\"proxies\":[{\"name\":\"default\",\"rules\":[{\"name\":\"oom\",\"command\":[\"set\"],"
                    + "\"probability\":0.25,\"after\":0,\"limit\":18446744073709551615,"
                    + "\"forward\":false,\"message\":\"SERVER_ERROR \\\"x\\\"\\\\\"}]}]}",
            "[-1,0.5,1e+300,\"\\u0000\",\"\u00ff\",{}]",
        };
        for (String t : texts) {
            Object v = Json.parse(t);
            assertEquals(v, Json.parse(Json.write(v)), t);
        }
    }
}
