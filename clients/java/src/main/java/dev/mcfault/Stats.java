// The reply of GET /stats: mcfault's counters.
package dev.mcfault;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * What {@code GET /stats} answered; the fields are those of
 * {@code docs/admin-api.md}. Counters count from the start of the process
 * (or the last {@link Mcfault#reset()}).
 *
 * @param commands commands parsed, by name ({@code unknown} for others); names never seen are
 *                 absent: use {@link #command(String)}
 * @param faults   faults fired, by action ("error", "delay", ...): see {@link #faults(String)}
 */
public record Stats(String version, long uptimeSeconds, long rules, long connectionsTotal,
        long connectionsNow, long clientBytesIn, long clientBytesOut, long upstreamBytesOut,
        long upstreamBytesIn, long upstreamErrors, long faultsTotal, long reloadsOk,
        long reloadsFailed, Map<String, Long> commands, Map<String, Long> faults,
        List<Proxy> proxies) {

    public Stats {
        commands = Map.copyOf(commands);
        faults = Map.copyOf(faults);
        proxies = List.copyOf(proxies);
    }

    /** Commands of that name parsed so far (0 when none). */
    public long command(String name) {
        return commands.getOrDefault(name, 0L);
    }

    /** Faults of that action ("error", "delay", "drop", "hang", "miss") fired so far. */
    public long faults(String action) {
        return faults.getOrDefault(action, 0L);
    }

    /**
     * One proxy's connections and rule counters.
     *
     * @param enabled false while switched off ({@link Mcfault#disableProxy})
     */
    public record Proxy(String name, long connectionsNow, long connectionsTotal,
            List<RuleCounters> rules, boolean enabled) {
        public Proxy {
            rules = List.copyOf(rules);
        }

        /** A proxy that is switched on. */
        public Proxy(String name, long connectionsNow, long connectionsTotal,
                List<RuleCounters> rules) {
            this(name, connectionsNow, connectionsTotal, rules, true);
        }
    }

    /**
     * One rule's counters.
     *
     * @param inForce enabled and, with a schedule, on now
     */
    public record RuleCounters(String name, boolean enabled, long matched, long fired,
            boolean inForce) {
        /** A rule without a schedule: in force when enabled. */
        public RuleCounters(String name, boolean enabled, long matched, long fired) {
            this(name, enabled, matched, fired, enabled);
        }
    }

    static Stats fromReply(Map<String, Object> m) {
        List<Proxy> proxies = new ArrayList<>();
        for (Map<String, Object> p : Wire.objects(m, "proxies")) {
            List<RuleCounters> rules = new ArrayList<>();
            for (Map<String, Object> r : Wire.objects(p, "rules")) {
                boolean enabled = Wire.bool(r, "enabled");
                rules.add(new RuleCounters(Wire.str(r, "name"), enabled,
                        Wire.lng(r, "matched"), Wire.lng(r, "fired"),
                        Wire.optBool(r, "in_force", enabled)));
            }
            proxies.add(new Proxy(Wire.str(p, "name"), Wire.lng(p, "connections_now"),
                    Wire.lng(p, "connections_total"), rules,
                    Wire.optBool(p, "enabled", true)));
        }
        return new Stats(Wire.str(m, "version"), Wire.lng(m, "uptime_seconds"),
                Wire.lng(m, "rules"), Wire.lng(m, "connections_total"),
                Wire.lng(m, "connections_now"), Wire.lng(m, "client_bytes_in"),
                Wire.lng(m, "client_bytes_out"), Wire.lng(m, "upstream_bytes_out"),
                Wire.lng(m, "upstream_bytes_in"), Wire.lng(m, "upstream_errors"),
                Wire.lng(m, "faults_total"), Wire.lng(m, "reloads_ok"),
                Wire.lng(m, "reloads_failed"), Wire.counters(m, "commands"),
                Wire.counters(m, "faults"), proxies);
    }
}
