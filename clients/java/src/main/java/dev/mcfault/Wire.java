// Typed access to the fields of a parsed reply: a field that is missing or of
// the wrong type is an error naming it, never a ClassCastException.
package dev.mcfault;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

final class Wire {
    /** 2^64: integers the API sends are unsigned 64-bit. */
    private static final BigInteger TWO_64 = BigInteger.ONE.shiftLeft(64);

    private Wire() {
    }

    /** v as a JSON object, or an error saying what was expected. */
    @SuppressWarnings("unchecked")
    static Map<String, Object> obj(Object v, String what) {
        if (!(v instanceof Map)) {
            throw bad(what + " is not an object");
        }
        return (Map<String, Object>) v;
    }

    static Map<String, Object> obj(Map<String, Object> m, String key) {
        return obj(need(m, key), "'" + key + "'");
    }

    static List<Object> list(Map<String, Object> m, String key) {
        Object v = need(m, key);
        if (!(v instanceof List)) {
            throw bad("'" + key + "' is not an array");
        }
        @SuppressWarnings("unchecked")
        List<Object> l = (List<Object>) v;
        return l;
    }

    static List<Map<String, Object>> objects(Map<String, Object> m, String key) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (Object v : list(m, key)) {
            out.add(obj(v, "an item of '" + key + "'"));
        }
        return out;
    }

    static List<String> strings(Map<String, Object> m, String key) {
        List<String> out = new ArrayList<>();
        for (Object v : list(m, key)) {
            if (!(v instanceof String s)) {
                throw bad("an item of '" + key + "' is not a string");
            }
            out.add(s);
        }
        return List.copyOf(out);
    }

    static String str(Map<String, Object> m, String key) {
        Object v = need(m, key);
        if (!(v instanceof String s)) {
            throw bad("'" + key + "' is not a string");
        }
        return s;
    }

    /** The string, or null when the field is missing or null. */
    static String optStr(Map<String, Object> m, String key) {
        return m.get(key) == null ? null : str(m, key);
    }

    /** The boolean, or dflt when the field is missing or null. */
    static boolean optBool(Map<String, Object> m, String key, boolean dflt) {
        return m.get(key) == null ? dflt : bool(m, key);
    }

    static boolean bool(Map<String, Object> m, String key) {
        Object v = need(m, key);
        if (!(v instanceof Boolean b)) {
            throw bad("'" + key + "' is not a boolean");
        }
        return b;
    }

    /**
     * An integer field; values from 2^63 to 2^64-1 (the API's integers are
     * unsigned) come back as the negative long of the same bits.
     */
    static long lng(Map<String, Object> m, String key) {
        Object v = need(m, key);
        if (v instanceof Long l) {
            return l;
        }
        if (v instanceof BigInteger b && b.signum() >= 0 && b.compareTo(TWO_64) < 0) {
            return b.longValue();
        }
        throw bad("'" + key + "' is not an integer from 0 to 2^64-1");
    }

    static long optLng(Map<String, Object> m, String key, long dflt) {
        return m.get(key) == null ? dflt : lng(m, key);
    }

    static double dbl(Map<String, Object> m, String key) {
        Object v = need(m, key);
        if (!(v instanceof Number n)) {
            throw bad("'" + key + "' is not a number");
        }
        return n.doubleValue();
    }

    static BigDecimal decimal(Map<String, Object> m, String key) {
        Object v = need(m, key);
        if (v instanceof BigDecimal d) {
            return d;
        }
        if (v instanceof Long || v instanceof BigInteger) {
            return new BigDecimal(v.toString());
        }
        throw bad("'" + key + "' is not a number");
    }

    /** An object whose values are all integers, in the reply's order. */
    static Map<String, Long> counters(Map<String, Object> m, String key) {
        Map<String, Object> o = obj(m, key);
        Map<String, Long> out = new LinkedHashMap<>();
        for (String k : o.keySet()) {
            out.put(k, lng(o, k));
        }
        return java.util.Collections.unmodifiableMap(out);
    }

    /** An object whose values are all strings, in the reply's order. */
    static Map<String, String> texts(Map<String, Object> m, String key) {
        Map<String, Object> o = obj(m, key);
        Map<String, String> out = new LinkedHashMap<>();
        for (String k : o.keySet()) {
            out.put(k, str(o, k));
        }
        return java.util.Collections.unmodifiableMap(out);
    }

    /**
     * Percent-encodes s as UTF-8 for a path segment or a query value: every
     * byte but RFC 3986's unreserved characters becomes %XX.
     */
    static String encode(String s) {
        StringBuilder sb = new StringBuilder();
        for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
            int c = b & 0xff;
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                    || c == '-' || c == '.' || c == '_' || c == '~') {
                sb.append((char) c);
            } else {
                sb.append('%').append("0123456789ABCDEF".charAt(c >> 4))
                        .append("0123456789ABCDEF".charAt(c & 15));
            }
        }
        return sb.toString();
    }

    private static Object need(Map<String, Object> m, String key) {
        Object v = m.get(key);
        if (v == null) {
            throw bad("'" + key + "' is missing");
        }
        return v;
    }

    private static McfaultException bad(String why) {
        return new McfaultException("unexpected reply from mcfault: " + why, null);
    }
}
