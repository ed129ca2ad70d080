// The reply of GET /health: can each proxy reach its memcached?
package dev.mcfault;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * What {@code GET /health} answered (200 and 503 alike: an unreachable
 * upstream is an answer, not an error).
 *
 * @param ok      every upstream accepted a connection
 * @param proxies one entry per proxy
 */
public record Health(boolean ok, List<Proxy> proxies) {
    public Health {
        proxies = List.copyOf(proxies);
    }

    /**
     * One proxy's probe.
     *
     * @param name              the proxy's name ("default" in the one-proxy form)
     * @param listen            where it accepts clients
     * @param upstream          its memcached
     * @param upstreamReachable a TCP connect to the upstream succeeded within 1 s
     * @param error             why not ("Connection refused", ...), else null
     * @param enabled           false while switched off ({@link Mcfault#disableProxy})
     */
    public record Proxy(String name, String listen, String upstream, boolean upstreamReachable,
            String error, boolean enabled) {
        /** A proxy that is switched on. */
        public Proxy(String name, String listen, String upstream, boolean upstreamReachable,
                String error) {
            this(name, listen, upstream, upstreamReachable, error, true);
        }
    }

    static Health fromReply(Map<String, Object> m) {
        List<Proxy> proxies = new ArrayList<>();
        for (Map<String, Object> p : Wire.objects(m, "proxies")) {
            proxies.add(new Proxy(Wire.str(p, "name"), Wire.str(p, "listen"),
                    Wire.str(p, "upstream"), Wire.bool(p, "upstream_reachable"),
                    Wire.optStr(p, "error"), Wire.optBool(p, "enabled", true)));
        }
        return new Health(Wire.bool(m, "ok"), proxies);
    }
}
