// A small, strict JSON reader and writer (RFC 8259) for the admin API's
// documents: Java has none in its standard library and the client takes no
// dependencies.
package dev.mcfault;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads and writes JSON text.
 *
 * <p>Values map onto Java this way, both ways: object - {@code Map<String, Object>}
 * (insertion ordered, unmodifiable when read), array - {@code List<Object>}
 * (unmodifiable when read), string - {@link String}, {@code true}/{@code false} -
 * {@link Boolean}, {@code null} - {@code null}; a number without fraction or
 * exponent - {@link Long}, or {@link BigInteger} when it does not fit; any
 * other number - {@link BigDecimal} (so {@code 1732183225.904513} keeps its
 * microseconds). The writer also takes other {@link Number}s, arrays of
 * objects, any {@link Collection} and {@link Rule}s (as their rule document).
 *
 * <p>The reader is strict: exactly one value, nothing after it but
 * whitespace; no trailing commas, comments, single quotes, leading zeros,
 * unescaped control characters, unpaired surrogates, duplicate object keys,
 * NaN or Infinity; nesting at most {@value #MAX_DEPTH} deep. Any breach is a
 * {@link JsonException} naming the offset.
 */
public final class Json {
    /** Arrays and objects nested deeper are refused: the reader recurses. */
    public static final int MAX_DEPTH = 256;

    /** A JSON text that is not well formed, or a value that cannot be written. */
    public static final class JsonException extends IllegalArgumentException {
        private static final long serialVersionUID = 1L;

        JsonException(String message) {
            super(message);
        }
    }

    private final String in;
    private int pos;
    private int depth;

    private Json(String in) {
        this.in = in;
    }

    /**
     * Parses one JSON text. Returns the value (see the class comment for the
     * types); throws {@link JsonException} when the text is not well formed.
     */
    public static Object parse(String text) {
        Json p = new Json(text);
        p.skipSpace();
        Object v = p.value();
        p.skipSpace();
        if (p.pos != text.length()) {
            throw p.fail("unexpected '" + describe(text.charAt(p.pos)) + "' after the value");
        }
        return v;
    }

    /**
     * Writes value as compact JSON text (no spaces). Throws
     * {@link JsonException} for a value of a type it cannot write, a map key
     * that is not a string, a non-finite number or a string with an unpaired
     * surrogate.
     */
    public static String write(Object value) {
        StringBuilder out = new StringBuilder();
        writeValue(out, value, 0);
        return out.toString();
    }

    // ---------------------------------------------------------------- reader

    // value = object / array / string / number / "true" / "false" / "null"
    private Object value() {
        if (pos >= in.length()) {
            throw fail("unexpected end of input, expected a value");
        }
        char c = in.charAt(pos);
        switch (c) {
            case '{':
                return object();
            case '[':
                return array();
            case '"':
                return string();
            case 't':
                return literal("true", Boolean.TRUE);
            case 'f':
                return literal("false", Boolean.FALSE);
            case 'n':
                return literal("null", null);
            default:
                if (c == '-' || (c >= '0' && c <= '9')) {
                    return number();
                }
                throw fail("unexpected '" + describe(c) + "', expected a value");
        }
    }

    // object = "{" [ string ":" value *( "," string ":" value ) ] "}"
    private Map<String, Object> object() {
        enter();
        pos++;
        Map<String, Object> map = new LinkedHashMap<>();
        skipSpace();
        if (peek() == '}') {
            pos++;
            depth--;
            return Collections.unmodifiableMap(map);
        }
        while (true) {
            skipSpace();
            if (peek() != '"') {
                throw fail("expected a string as object key");
            }
            int keyAt = pos;
            String key = string();
            if (map.containsKey(key)) {
                pos = keyAt;
                throw fail("duplicate key \"" + key + "\"");
            }
            skipSpace();
            expect(':');
            skipSpace();
            map.put(key, value());
            skipSpace();
            char c = peek();
            pos++;
            if (c == '}') {
                break;
            }
            if (c != ',') {
                pos--;
                throw fail("expected ',' or '}' in object");
            }
        }
        depth--;
        return Collections.unmodifiableMap(map);
    }

    // array = "[" [ value *( "," value ) ] "]"
    private List<Object> array() {
        enter();
        pos++;
        List<Object> list = new ArrayList<>();
        skipSpace();
        if (peek() == ']') {
            pos++;
            depth--;
            return Collections.unmodifiableList(list);
        }
        while (true) {
            skipSpace();
            list.add(value());
            skipSpace();
            char c = peek();
            pos++;
            if (c == ']') {
                break;
            }
            if (c != ',') {
                pos--;
                throw fail("expected ',' or ']' in array");
            }
        }
        depth--;
        return Collections.unmodifiableList(list);
    }

    // string = '"' *( unescaped / "\" ( ["\/bfnrt] / "u" 4HEXDIG ) ) '"'
    private String string() {
        pos++;
        StringBuilder sb = new StringBuilder();
        while (true) {
            if (pos >= in.length()) {
                throw fail("unterminated string");
            }
            char c = in.charAt(pos++);
            if (c == '"') {
                return sb.toString();
            }
            if (c < 0x20) {
                pos--;
                throw fail("unescaped control character " + describe(c) + " in string");
            }
            if (c != '\\') {
                if (Character.isHighSurrogate(c) && pos < in.length()
                        && Character.isLowSurrogate(in.charAt(pos))) {
                    sb.append(c).append(in.charAt(pos++));
                } else if (Character.isSurrogate(c)) {
                    pos--;
                    throw fail("unpaired surrogate in string");
                } else {
                    sb.append(c);
                }
                continue;
            }
            if (pos >= in.length()) {
                throw fail("unterminated string");
            }
            char e = in.charAt(pos++);
            switch (e) {
                case '"': sb.append('"'); break;
                case '\\': sb.append('\\'); break;
                case '/': sb.append('/'); break;
                case 'b': sb.append('\b'); break;
                case 'f': sb.append('\f'); break;
                case 'n': sb.append('\n'); break;
                case 'r': sb.append('\r'); break;
                case 't': sb.append('\t'); break;
                case 'u': {
                    int escAt = pos - 2;
                    char u = hex4();
                    if (Character.isHighSurrogate(u)) {
                        if (in.startsWith("\\u", pos)) {
                            pos += 2;
                            char low = hex4();
                            if (Character.isLowSurrogate(low)) {
                                sb.append(u).append(low);
                                break;
                            }
                        }
                        pos = escAt;
                        throw fail("unpaired surrogate escape in string");
                    }
                    if (Character.isLowSurrogate(u)) {
                        pos = escAt;
                        throw fail("unpaired surrogate escape in string");
                    }
                    sb.append(u);
                    break;
                }
                default:
                    pos -= 2;
                    throw fail("bad escape '\\" + describe(e) + "' in string");
            }
        }
    }

    private char hex4() {
        if (pos + 4 > in.length()) {
            throw fail("\\u needs four hex digits");
        }
        int v = 0;
        for (int i = 0; i < 4; i++) {
            char h = in.charAt(pos + i);
            int d = h >= '0' && h <= '9' ? h - '0'
                    : h >= 'a' && h <= 'f' ? h - 'a' + 10
                    : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
            if (d < 0) {
                throw fail("\\u needs four hex digits");
            }
            v = v * 16 + d;
        }
        pos += 4;
        return (char) v;
    }

    // number = [ "-" ] ( "0" / [1-9] *DIGIT ) [ "." 1*DIGIT ] [ [eE] [+-] 1*DIGIT ]
    private Object number() {
        int start = pos;
        if (peek() == '-') {
            pos++;
        }
        if (peek() == '0') {
            pos++;
            if (isDigit(peek())) {
                throw fail("leading zero in number");
            }
        } else if (isDigit(peek())) {
            digits();
        } else {
            throw fail("expected a digit");
        }
        boolean integral = true;
        if (peek() == '.') {
            pos++;
            integral = false;
            if (!isDigit(peek())) {
                throw fail("expected a digit after '.'");
            }
            digits();
        }
        if (peek() == 'e' || peek() == 'E') {
            pos++;
            integral = false;
            if (peek() == '+' || peek() == '-') {
                pos++;
            }
            if (!isDigit(peek())) {
                throw fail("expected a digit in exponent");
            }
            digits();
        }
        String text = in.substring(start, pos);
        if (integral) {
            BigInteger big = new BigInteger(text);
            return big.bitLength() < 64 ? (Object) big.longValue() : big;
        }
        try {
            return new BigDecimal(text);
        } catch (NumberFormatException | ArithmeticException ex) {
            pos = start;
            throw fail("number out of range");
        }
    }

    private void digits() {
        while (isDigit(peek())) {
            pos++;
        }
    }

    private Object literal(String word, Object v) {
        if (!in.startsWith(word, pos)) {
            throw fail("unexpected '" + describe(in.charAt(pos)) + "', expected a value");
        }
        pos += word.length();
        return v;
    }

    private void enter() {
        if (++depth > MAX_DEPTH) {
            throw fail("nested deeper than " + MAX_DEPTH);
        }
    }

    private void expect(char c) {
        if (peek() != c) {
            throw fail("expected '" + c + "'");
        }
        pos++;
    }

    /** The next char, or 0 at the end (0 is never valid outside a string). */
    private char peek() {
        return pos < in.length() ? in.charAt(pos) : 0;
    }

    private void skipSpace() {
        while (pos < in.length()) {
            char c = in.charAt(pos);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                return;
            }
            pos++;
        }
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9';
    }

    private JsonException fail(String why) {
        return new JsonException("bad JSON at offset " + pos + ": " + why);
    }

    private static String describe(char c) {
        return c < 0x20 || c == 0x7f ? String.format("\\u%04x", (int) c) : String.valueOf(c);
    }

    // ---------------------------------------------------------------- writer

    private static void writeValue(StringBuilder out, Object v, int depth) {
        if (depth > MAX_DEPTH) {
            throw new JsonException("value nested deeper than " + MAX_DEPTH);
        }
        if (v == null) {
            out.append("null");
        } else if (v instanceof String s) {
            writeString(out, s);
        } else if (v instanceof Boolean b) {
            out.append(b.booleanValue() ? "true" : "false");
        } else if (v instanceof Number n) {
            writeNumber(out, n);
        } else if (v instanceof Map<?, ?> m) {
            out.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : m.entrySet()) {
                if (!(e.getKey() instanceof String key)) {
                    throw new JsonException("object key is not a string: " + e.getKey());
                }
                if (!first) {
                    out.append(',');
                }
                first = false;
                writeString(out, key);
                out.append(':');
                writeValue(out, e.getValue(), depth + 1);
            }
            out.append('}');
        } else if (v instanceof Collection<?> c) {
            writeArray(out, c, depth);
        } else if (v instanceof Object[] a) {
            writeArray(out, java.util.Arrays.asList(a), depth);
        } else if (v instanceof Rule r) {
            writeValue(out, r.toDocument(), depth);
        } else {
            throw new JsonException("cannot write a " + v.getClass().getName() + " as JSON");
        }
    }

    private static void writeArray(StringBuilder out, Collection<?> c, int depth) {
        out.append('[');
        boolean first = true;
        for (Object item : c) {
            if (!first) {
                out.append(',');
            }
            first = false;
            writeValue(out, item, depth + 1);
        }
        out.append(']');
    }

    private static void writeNumber(StringBuilder out, Number n) {
        if (n instanceof Long || n instanceof Integer || n instanceof Short
                || n instanceof Byte || n instanceof BigInteger) {
            out.append(n.toString());
        } else if (n instanceof BigDecimal d) {
            out.append(d.toString());
        } else if (n instanceof Double || n instanceof Float) {
            double d = n.doubleValue();
            if (Double.isNaN(d) || Double.isInfinite(d)) {
                throw new JsonException("JSON has no " + d);
            }
            // Whole numbers without ".0"; others in the shortest form that
            // reads back as the same double.
            if (d == Math.rint(d) && Math.abs(d) < 1e15) {
                out.append((long) d);
            } else {
                out.append(Double.toString(d).replace("E", "e"));
            }
        } else {
            throw new JsonException("cannot write a " + n.getClass().getName() + " as JSON");
        }
    }

    private static void writeString(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                case '\b': out.append("\\b"); break;
                case '\f': out.append("\\f"); break;
                default:
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else if (Character.isHighSurrogate(c) && i + 1 < s.length()
                            && Character.isLowSurrogate(s.charAt(i + 1))) {
                        out.append(c).append(s.charAt(++i));
                    } else if (Character.isSurrogate(c)) {
                        throw new JsonException("unpaired surrogate at index " + i
                                + " of a string");
                    } else {
                        out.append(c);
                    }
            }
        }
        out.append('"');
    }
}
