// The mcfault admin API client: one method per endpoint of docs/admin-api.md,
// typed results, typed unchecked errors, a timeout on every call.
package dev.mcfault;

import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A client of mcfault's admin HTTP API.
 *
 * <pre>{@code
 * Mcfault mc = Mcfault.builder().url("http://127.0.0.1:8080")
 *         .timeout(Duration.ofSeconds(5)).build();
 * try (Fault f = mc.fault(Rule.error("oom", "SERVER_ERROR out of memory").withCommand("set"))) {
 *     // every set through the proxy now fails
 * }   // and here the rule is gone again
 * }</pre>
 *
 * <p>Each method is one HTTP request. Errors are unchecked:
 * {@link RuleRejectedException} (400/409 on a rule change, with
 * {@code problems()}), {@link NotFoundException} (404),
 * {@link UpstreamException} (502/504), {@link McfaultConnectionException},
 * {@link McfaultTimeoutException}, else {@link McfaultException}.
 *
 * <p>A client is immutable and safe to share between threads. Where the API
 * takes {@code ?proxy=NAME}, a client made by {@link #proxy(String)} sends
 * it; other calls are the same on every proxy-bound client.
 */
public final class Mcfault {
    /** Default per-call timeout. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(5);

    /** How long mcfault waits for memcached on the upstream endpoints by default (5000 ms). */
    private static final Duration UPSTREAM_DEFAULT = Duration.ofMillis(5000);

    /** How long GET /health's probes may take (1 s per the API). */
    private static final Duration HEALTH_PROBE = Duration.ofSeconds(1);

    private final HttpClient http;
    private final String base;
    private final Duration timeout;
    private final String proxy;

    private Mcfault(HttpClient http, String base, Duration timeout, String proxy) {
        this.http = http;
        this.base = base;
        this.timeout = timeout;
        this.proxy = proxy;
    }

    /** A builder: {@code Mcfault.builder().url("http://127.0.0.1:8080").build()}. */
    public static Builder builder() {
        return new Builder();
    }

    /** Shorthand for {@code builder().url(url).build()}. */
    public static Mcfault connect(String url) {
        return builder().url(url).build();
    }

    /** Configures a {@link Mcfault}. */
    public static final class Builder {
        private String url = "http://127.0.0.1:8080";
        private Duration timeout = DEFAULT_TIMEOUT;
        private String proxy;

        private Builder() {
        }

        /**
         * The admin API's base URL, {@code http://HOST:PORT} (a bare
         * {@code HOST:PORT} gets {@code http://}). Default
         * {@code http://127.0.0.1:8080}.
         */
        public Builder url(String url) {
            Objects.requireNonNull(url, "url");
            String u = url.contains("://") ? url : "http://" + url;
            while (u.endsWith("/")) {
                u = u.substring(0, u.length() - 1);
            }
            URI parsed = URI.create(u);
            if (!"http".equals(parsed.getScheme()) || parsed.getHost() == null) {
                throw new IllegalArgumentException("not an http://HOST:PORT URL: " + url);
            }
            this.url = u;
            return this;
        }

        /** The admin API's base URL. */
        public Builder url(URI url) {
            return url(url.toString());
        }

        /**
         * The longest any call waits: to connect, and for the whole reply.
         * Calls that make mcfault wait (health probes, the upstream
         * endpoints) get that wait added. Default 5 s.
         */
        public Builder timeout(Duration timeout) {
            if (timeout.isNegative() || timeout.isZero()) {
                throw new IllegalArgumentException("timeout must be positive");
            }
            this.timeout = timeout;
            return this;
        }

        /** Bind the client to one proxy: see {@link Mcfault#proxy(String)}. */
        public Builder proxy(String name) {
            this.proxy = name;
            return this;
        }

        public Mcfault build() {
            HttpClient http = HttpClient.newBuilder()
                    .version(HttpClient.Version.HTTP_1_1)
                    .connectTimeout(timeout)
                    .followRedirects(HttpClient.Redirect.NEVER)
                    .build();
            return new Mcfault(http, url, timeout, proxy);
        }
    }

    /**
     * A client that sends {@code ?proxy=name} where the API takes it (the
     * rule and upstream endpoints); it shares this client's connections.
     * Null: no proxy named (mcfault then means every proxy, or the only one).
     */
    public Mcfault proxy(String name) {
        return new Mcfault(http, base, timeout, name);
    }

    /** The admin API's base URL. */
    public String url() {
        return base;
    }

    /** The per-call timeout. */
    public Duration timeout() {
        return timeout;
    }

    /** The proxy this client is bound to, or null. */
    public String proxyName() {
        return proxy;
    }

    @Override
    public String toString() {
        return "Mcfault[" + base + (proxy != null ? ", proxy=" + proxy : "") + "]";
    }

    // ------------------------------------------------------------ endpoints

    /**
     * {@code GET /health}: can each proxy reach its memcached? A 503 (an
     * upstream unreachable) is returned as {@code ok() == false}, not thrown.
     */
    public Health health() {
        Reply r = send("GET", "/health", null, null, null, HEALTH_PROBE, Kind.PLAIN, 503);
        Map<String, Object> m = r.json();
        if (r.status() == 503 && !m.containsKey("proxies")) {
            // Not a probe result: "too many admin connections".
            throw error(r.what(), r.status(), r.body(), Kind.PLAIN);
        }
        return Health.fromReply(m);
    }

    /**
     * {@code GET /rules[?proxy=]}: the rules in force with their counters, in
     * priority order, each with {@link Rule#proxy()} set.
     */
    public List<Rule> rules() {
        Map<String, Object> m = call("GET", "/rules", withProxy(), null, null, Kind.PLAIN);
        List<Rule> out = new ArrayList<>();
        for (Map<String, Object> p : Wire.objects(m, "proxies")) {
            String name = Wire.str(p, "name");
            for (Map<String, Object> r : Wire.objects(p, "rules")) {
                out.add(Rule.fromReply(r, name));
            }
        }
        return List.copyOf(out);
    }

    /** {@code PUT /rules[?proxy=]}: replace the rules with these. Returns the rules in force. */
    public int setRules(Collection<Rule> rules) {
        return setRules(Map.of("rules", List.copyOf(rules)));
    }

    /** {@code PUT /rules[?proxy=]}: replace the rules with these. Returns the rules in force. */
    public int setRules(Rule... rules) {
        return setRules(Arrays.asList(rules));
    }

    /**
     * {@code PUT /rules[?proxy=]}: replace the rules with a rule document
     * ({@code docs/config.md}) given as maps and lists, sent as JSON
     * ({@code Map.of("rules", List.of(Map.of("name", "x", "action", "drop")))};
     * {@link Rule}s may stand for rule maps). Returns the rules in force.
     */
    public int setRules(Map<String, ?> document) {
        return setRulesText(Json.write(document), "application/json");
    }

    /** {@code PUT /rules[?proxy=]}: replace the rules with a YAML (or JSON) document. */
    public int setRulesYaml(String document) {
        return setRulesText(document, "application/yaml");
    }

    private int setRulesText(String body, String type) {
        Map<String, Object> m = call("PUT", "/rules", withProxy(), utf8(body), type, Kind.RULES);
        return count(m, "rules");
    }

    /**
     * {@code POST /rules[?proxy=]}: append one rule after the proxy's rules.
     * Returns how many were added (1). A taken name: {@link RuleRejectedException}
     * with status 409, and nothing changes.
     */
    public int addRule(Rule rule) {
        return addRulesText(Json.write(rule), "application/json");
    }

    /** {@code POST /rules[?proxy=]}: append rules, all or none. Returns how many were added. */
    public int addRules(Collection<Rule> rules) {
        return addRulesText(Json.write(Map.of("rules", List.copyOf(rules))), "application/json");
    }

    /** {@code POST /rules[?proxy=]}: append rules, all or none. Returns how many were added. */
    public int addRules(Rule... rules) {
        return addRules(Arrays.asList(rules));
    }

    /**
     * {@code POST /rules[?proxy=]}: append the rules of a YAML (or JSON)
     * body: one rule mapping, a list of them, or {@code rules: [...]}.
     */
    public int addRulesYaml(String document) {
        return addRulesText(document, "application/yaml");
    }

    private int addRulesText(String body, String type) {
        Map<String, Object> m = call("POST", "/rules", withProxy(), utf8(body), type, Kind.RULES);
        return count(m, "added");
    }

    /**
     * {@code GET /rules/NAME[?proxy=]}: one rule with its counters and
     * {@link Rule#proxy()}. {@link NotFoundException} when there is none.
     */
    public Rule getRule(String name) {
        Map<String, Object> m = call("GET", "/rules/" + Wire.encode(name), withProxy(), null,
                null, Kind.PLAIN);
        return Rule.fromReply(m, null);
    }

    /**
     * {@code DELETE /rules/NAME[?proxy=]}: remove the rule of that name (from
     * every proxy that has it, or the bound one). Returns from how many proxies;
     * {@link NotFoundException} when none had it.
     */
    public int removeRule(String name) {
        Map<String, Object> m = call("DELETE", "/rules/" + Wire.encode(name), withProxy(), null,
                null, Kind.RULES);
        return count(m, "removed");
    }

    /** {@code DELETE /rules[?proxy=]}: remove every rule. Returns the rules in force. */
    public int clearRules() {
        Map<String, Object> m = call("DELETE", "/rules", withProxy(), null, null, Kind.RULES);
        return count(m, "rules");
    }

    /**
     * {@code POST /rules/NAME/enable}: switch the rule on in every proxy that
     * has it. Returns in how many; {@link NotFoundException} when none.
     */
    public int enable(String name) {
        return toggle(name, "enable");
    }

    /**
     * {@code POST /rules/NAME/disable}: switch the rule off (it keeps its
     * counters and never matches). Returns in how many proxies;
     * {@link NotFoundException} when none has it.
     */
    public int disable(String name) {
        return toggle(name, "disable");
    }

    private int toggle(String name, String what) {
        Map<String, Object> m = call("POST", "/rules/" + Wire.encode(name) + "/" + what, null,
                null, null, Kind.RULES);
        return count(m, "changed");
    }

    /**
     * {@code POST /reload}: re-read the rule file (as SIGHUP). Returns the
     * rules in force. A bad file, or none ({@code mcfault} without {@code -c}):
     * {@link RuleRejectedException} (400 with problems, or 409), old rules kept.
     */
    public int reload() {
        return count(call("POST", "/reload", null, null, null, Kind.RULES), "rules");
    }

    /**
     * {@code POST /reset}: back to a fresh start without a restart: the rule
     * file's rules (none without {@code -c}), every proxy switched on, every
     * counter zeroed, the event sequence restarted. Returns the rules in
     * force. A bad rule file: {@link RuleRejectedException}, and nothing is
     * reset.
     */
    public int reset() {
        return count(call("POST", "/reset", null, null, null, Kind.RULES), "rules");
    }

    /**
     * {@code POST /proxies/NAME/disable}: switch a whole proxy off, as if its
     * memcached went away: every client connection of it is closed at once
     * ({@link ProxySwitch#closed()} counts them) and new ones are refused
     * until {@link #enableProxy} or {@link #reset()}. Switching off a proxy
     * that is off is no error. {@link NotFoundException} when there is no
     * proxy of that name.
     */
    public ProxySwitch disableProxy(String name) {
        return switchProxy(name, "disable");
    }

    /**
     * {@code POST /proxies/NAME/enable}: the proxy listens on the same
     * address and port again. A {@link McfaultException} with status 409 when
     * the port was taken meanwhile (the proxy stays off);
     * {@link NotFoundException} when there is no proxy of that name.
     */
    public ProxySwitch enableProxy(String name) {
        return switchProxy(name, "enable");
    }

    private ProxySwitch switchProxy(String name, String what) {
        if (name == null || name.isEmpty()) {
            throw new IllegalArgumentException("a proxy name cannot be empty");
        }
        return ProxySwitch.fromReply(call("POST", "/proxies/" + Wire.encode(name) + "/" + what,
                null, null, null, Kind.PLAIN));
    }

    /** {@code GET /stats}: the counters. */
    public Stats stats() {
        return Stats.fromReply(call("GET", "/stats", null, null, null, Kind.PLAIN));
    }

    /** {@code GET /metrics}: the counters in the Prometheus text format. */
    public String metrics() {
        return send("GET", "/metrics", null, null, null, Duration.ZERO, Kind.PLAIN, 0).text();
    }

    /** {@code GET /events}: every fault still remembered (the last 1,024). */
    public Events events() {
        return events(0);
    }

    /** {@code GET /events?since=N}: the faults after sequence number since. */
    public Events events(long since) {
        if (since < 0) {
            throw new IllegalArgumentException("since must not be negative");
        }
        Map<String, String> q = new LinkedHashMap<>();
        q.put("since", Long.toString(since));
        return Events.fromReply(call("GET", "/events", q, null, null, Kind.PLAIN));
    }

    /**
     * {@code POST /upstream/command[?proxy=]}: send ONE memcached text command
     * (with its data block, if any: {@code "set k 0 0 2\r\nhi\r\n"}) to the
     * proxy's memcached, past the rules, and return its reply. mcfault waits
     * 5 s for memcached ({@link UpstreamException} 504 then); a malformed
     * body is a {@link McfaultException} with status 400.
     */
    public UpstreamReply upstreamCommand(String command) {
        return upstreamCommand(command.getBytes(StandardCharsets.UTF_8), null);
    }

    /** As {@link #upstreamCommand(String)}, waiting up to upstreamTimeout for memcached. */
    public UpstreamReply upstreamCommand(String command, Duration upstreamTimeout) {
        return upstreamCommand(command.getBytes(StandardCharsets.UTF_8), upstreamTimeout);
    }

    /**
     * As {@link #upstreamCommand(String)} for a command with binary data;
     * upstreamTimeout null for mcfault's default (5 s).
     */
    public UpstreamReply upstreamCommand(byte[] command, Duration upstreamTimeout) {
        Map<String, String> q = withProxy();
        Duration wait = UPSTREAM_DEFAULT;
        if (upstreamTimeout != null) {
            long ms = upstreamTimeout.toMillis();
            if (ms <= 0) {
                throw new IllegalArgumentException("upstreamTimeout must be at least 1 ms");
            }
            q = q == null ? new LinkedHashMap<>() : q;
            q.put("timeout_ms", Long.toString(ms));
            wait = upstreamTimeout;
        }
        Reply r = send("POST", "/upstream/command", q, command.clone(),
                "application/octet-stream", wait, Kind.UPSTREAM, 0);
        return UpstreamReply.fromReply(r.json());
    }

    /** {@code GET /upstream/stats[?proxy=]}: memcached's "stats", values as sent. */
    public Map<String, String> upstreamStats() {
        return upstreamStats(null);
    }

    /**
     * {@code GET /upstream/stats?sub=SUB[&proxy=]}: memcached's "stats SUB"
     * ({@code items}, {@code slabs}, {@code settings}, {@code conns},
     * {@code sizes}; null for plain "stats").
     */
    public Map<String, String> upstreamStats(String sub) {
        Map<String, String> q = new LinkedHashMap<>();
        if (sub != null) {
            q.put("sub", sub);
        }
        if (proxy != null) {
            q.put("proxy", proxy);
        }
        Reply r = send("GET", "/upstream/stats", q, null, null, UPSTREAM_DEFAULT, Kind.UPSTREAM, 0);
        return Wire.texts(r.json(), "stats");
    }

    // --------------------------------------------------------- scoped fault

    /**
     * Adds the rules ({@code POST /rules}, all or none) and returns a
     * {@link Fault} whose {@code close()} removes exactly those rules by name,
     * so that try-with-resources undoes the fault however the block ends:
     *
     * <pre>{@code
     * try (var f = mc.fault(Rule.drop("partition").withKey("user:*"))) {
     *     assertThrows(CacheUnavailable.class, () -> service.load("user:1"));
     * }
     * }</pre>
     *
     * A rule without a name gets a unique one ({@code fault-XXXXXXXX}) so that
     * it can be removed; {@link Fault#rules()} has the rules as sent.
     */
    public Fault fault(Rule... rules) {
        return fault(Arrays.asList(rules));
    }

    /** As {@link #fault(Rule...)}. */
    public Fault fault(Collection<Rule> rules) {
        if (rules.isEmpty()) {
            throw new IllegalArgumentException("a fault needs at least one rule");
        }
        List<Rule> named = new ArrayList<>();
        for (Rule r : rules) {
            String fresh = String.format("fault-%08x", ThreadLocalRandom.current().nextInt());
            named.add(r.name() != null ? r : r.withName(fresh));
        }
        addRules(named);
        return new Fault(this, named);
    }

    // ------------------------------------------------------------ transport

    /** How to read an error reply: which exception a 4xx/5xx becomes. */
    private enum Kind {
        PLAIN, RULES, UPSTREAM
    }

    /** A reply with a 2xx status (or the one extra status the caller accepts). */
    private record Reply(String what, int status, byte[] body) {
        String text() {
            return new String(body, StandardCharsets.UTF_8);
        }

        Map<String, Object> json() {
            try {
                return Wire.obj(Json.parse(text()), "the reply");
            } catch (Json.JsonException e) {
                throw new McfaultException(what + ": unexpected reply from mcfault: "
                        + e.getMessage(), e);
            }
        }
    }

    private Map<String, Object> call(String method, String path, Map<String, String> query,
            byte[] body, String type, Kind kind) {
        return send(method, path, query, body, type, Duration.ZERO, kind, 0).json();
    }

    /**
     * Sends one request; extra is added to the timeout for calls that make
     * mcfault wait. A status outside 200..299 (other than also) throws.
     */
    private Reply send(String method, String path, Map<String, String> query, byte[] body,
            String type, Duration extra, Kind kind, int also) {
        StringBuilder target = new StringBuilder(path);
        if (query != null && !query.isEmpty()) {
            char sep = '?';
            for (Map.Entry<String, String> e : query.entrySet()) {
                target.append(sep).append(e.getKey()).append('=').append(Wire.encode(e.getValue()));
                sep = '&';
            }
        }
        String what = method + " " + target;
        HttpRequest.Builder rb = HttpRequest.newBuilder(URI.create(base + target))
                .timeout(timeout.plus(extra))
                .header("Accept", "application/json");
        if (body != null) {
            rb.header("Content-Type", type)
                    .method(method, HttpRequest.BodyPublishers.ofByteArray(body));
        } else {
            rb.method(method, HttpRequest.BodyPublishers.noBody());
        }
        HttpResponse<byte[]> resp;
        try {
            resp = http.send(rb.build(), HttpResponse.BodyHandlers.ofByteArray());
        } catch (HttpTimeoutException e) {
            throw new McfaultTimeoutException(what + ": no reply from " + base + " within "
                    + timeout.plus(extra).toMillis() + " ms", e);
        } catch (ConnectException e) {
            throw new McfaultConnectionException(what + ": cannot connect to " + base + ": "
                    + reason(e), e);
        } catch (IOException e) {
            throw new McfaultConnectionException(what + ": connection to " + base
                    + " failed: " + reason(e), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new McfaultException(what + ": interrupted", e);
        }
        int status = resp.statusCode();
        if ((status >= 200 && status < 300) || status == also) {
            return new Reply(what, status, resp.body());
        }
        throw error(what, status, resp.body(), kind);
    }

    private static McfaultException error(String what, int status, byte[] body, Kind kind) {
        String error = null;
        List<String> problems = List.of();
        try {
            Map<String, Object> m = Wire.obj(Json.parse(new String(body, StandardCharsets.UTF_8)),
                    "the reply");
            error = Wire.str(m, "error");
            if (m.get("problems") != null) {
                problems = Wire.strings(m, "problems");
            }
        } catch (RuntimeException notJson) {
            // 413 comes from libevent as HTML: keep the status, say so.
            String text = new String(body, StandardCharsets.UTF_8).strip();
            error = "HTTP " + status + (text.isEmpty() ? "" : ": "
                    + (text.length() > 200 ? text.substring(0, 200) + "..." : text));
        }
        if (status == 404) {
            return new NotFoundException(what, status, error, problems);
        }
        if (kind == Kind.RULES && (status == 400 || status == 409)) {
            return new RuleRejectedException(what, status, error, problems);
        }
        if (kind == Kind.UPSTREAM && (status == 502 || status == 504)) {
            return new UpstreamException(what, status, error, problems);
        }
        return new McfaultException(what, status, error, problems);
    }

    private static String reason(IOException e) {
        Throwable t = e;
        while (t.getMessage() == null && t.getCause() != null) {
            t = t.getCause();
        }
        return t.getMessage() != null ? t.getMessage() : t.getClass().getSimpleName();
    }

    private Map<String, String> withProxy() {
        if (proxy == null) {
            return null;
        }
        Map<String, String> q = new LinkedHashMap<>();
        q.put("proxy", proxy);
        return q;
    }

    private static int count(Map<String, Object> m, String key) {
        long n = Wire.lng(m, key);
        if (n < 0 || n > Integer.MAX_VALUE) {
            throw new McfaultException("unexpected reply from mcfault: '" + key + "' is " + n,
                    null);
        }
        return (int) n;
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }
}
