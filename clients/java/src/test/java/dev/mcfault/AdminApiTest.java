// Every admin endpoint against a real mcfault in front of a real memcached,
// with the faults seen through a raw memcached text-protocol socket.
package dev.mcfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mcfault.junit.McfaultExtension;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

class AdminApiTest {
    @RegisterExtension
    static McfaultExtension mcfault = Suite.MCFAULT;

    private static final String PROBLEM = "body:\\d+:\\d+: .+";

    private static List<String> names(List<Rule> rules) {
        return rules.stream().map(Rule::name).toList();
    }

    @Test
    void healthReportsTheUpstream(Mcfault mc, McfaultServer server) {
        Health h = mc.health();
        assertTrue(h.ok());
        assertEquals(1, h.proxies().size());
        Health.Proxy p = h.proxies().get(0);
        assertEquals("default", p.name());
        assertEquals(server.listen(), p.listen());
        assertEquals(Suite.MEMCACHED.address(), p.upstream());
        assertTrue(p.upstreamReachable());
        assertNull(p.error());
    }

    @Test
    void rulesAreTheFileRulesWithCounters(Mcfault mc) {
        List<Rule> rules = mc.rules();
        assertEquals(1, rules.size());
        Rule r = rules.get(0);
        assertEquals("from-file", r.name());
        assertEquals(List.of("*"), r.command());
        assertEquals(List.of("file:*"), r.key());
        assertEquals(Rule.Action.ERROR, r.action());
        assertEquals("SERVER_ERROR from file", r.message());
        assertEquals(1.0, r.probability());
        assertTrue(r.enabled());
        assertFalse(r.forward());
        assertEquals(0, r.matched());
        assertEquals("default", r.proxy());
    }

    @Test
    void setRulesReplacesTheRulesAndClearRulesUndoesThem(Mcfault mc, McfaultServer server)
            throws Exception {
        try (TextClient c = new TextClient(server.listenPort())) {
            assertEquals("SERVER_ERROR from file", c.set("file:1", "v"));
            assertEquals(1, mc.setRules(Rule.error("oom", "SERVER_ERROR out of memory storing object")
                    .withCommand("set", "ms").withKey("session:*")));
            assertEquals(List.of("oom"), names(mc.rules()));
            assertEquals("SERVER_ERROR out of memory storing object", c.set("session:1", "v"));
            assertEquals("STORED", c.set("other:1", "v"));
            assertEquals("STORED", c.set("file:1", "v"));

            assertEquals(0, mc.clearRules());
            assertEquals(List.of(), mc.rules());
            assertEquals("STORED", c.set("session:1", "v"));
        }
    }

    @Test
    void setRulesTakesAMapDocumentAndYamlText(Mcfault mc, McfaultServer server) throws Exception {
        assertEquals(2, mc.setRules(Map.of("rules", List.of(
                Map.of("name", "m1", "key", "map:*", "action", "error", "message", "SERVER_ERROR m1"),
                Rule.drop("m2").withKey("never:*")))));
        assertEquals(List.of("m1", "m2"), names(mc.rules()));
        try (TextClient c = new TextClient(server.listenPort())) {
            assertEquals("SERVER_ERROR m1", c.set("map:1", "v"));
        }
        assertEquals(1, mc.setRulesYaml("rules:\n  - name: y\n    command: [get]\n    action: miss\n"));
        Rule y = mc.getRule("y");
        assertEquals(Rule.Action.MISS, y.action());
        assertEquals(List.of("get"), y.command());
    }

    @Test
    void aBadDocumentIsRefusedWithProblemsAndChangesNothing(Mcfault mc) {
        RuleRejectedException e = assertThrows(RuleRejectedException.class, () -> mc.setRulesYaml(
                "rules:\n  - name: x\n    action: delay\n    delya: 10ms\n"));
        assertEquals(400, e.status());
        assertEquals("invalid rules", e.error());
        assertEquals(2, e.problems().size(), e.problems().toString());
        assertTrue(e.problems().get(0).startsWith("body:2:5: "), e.problems().toString());
        assertTrue(e.problems().get(1).matches("body:4:5: unknown key 'delya'.*"));
        assertTrue(e.getMessage().contains("body:4:5"), e.getMessage());

        // A rule built here, refused by mcfault: a delay over 3600 s.
        e = assertThrows(RuleRejectedException.class,
                () -> mc.setRules(Rule.delay("long", Duration.ofHours(2))));
        assertTrue(e.problems().get(0).matches(PROBLEM), e.problems().toString());

        assertEquals(List.of("from-file"), names(mc.rules()));
    }

    @Test
    void addGetAndRemoveOneRule(Mcfault mc) {
        Rule slow = Rule.delay("slow", Duration.ofMillis(200)).withJitter(Duration.ofMillis(50))
                .withCommand("get", "gets").withKey("slow:*").withProbability(0.5).withAfter(3)
                .withLimit(7).withForward(true).withEnabled(false);
        assertEquals(1, mc.addRule(slow));
        assertEquals(List.of("from-file", "slow"), names(mc.rules()));

        Rule got = mc.getRule("slow");
        assertEquals(slow.withEnabled(false), new Rule(got.name(), got.command(), got.key(),
                got.action(), got.message(), got.delay(), got.jitter(), got.probability(),
                got.after(), got.limit(), got.forward(), got.enabled(), 0, 0, null));
        assertEquals("default", got.proxy());

        assertEquals(1, mc.removeRule("slow"));
        NotFoundException nf = assertThrows(NotFoundException.class, () -> mc.getRule("slow"));
        assertEquals(404, nf.status());
        assertTrue(nf.error().contains("no rule named 'slow'"), nf.error());
        assertThrows(NotFoundException.class, () -> mc.removeRule("slow"));
        assertEquals(List.of("from-file"), names(mc.rules()));
    }

    @Test
    void addSeveralRulesAllOrNone(Mcfault mc) {
        assertEquals(2, mc.addRules(Rule.drop("a").withKey("a:*"), Rule.hang("b").withKey("b:*")));
        assertEquals(List.of("from-file", "a", "b"), names(mc.rules()));
        assertEquals(1, mc.addRulesYaml("- name: c\n  action: miss\n  key: \"c:*\"\n"));
        assertEquals(List.of("from-file", "a", "b", "c"), names(mc.rules()));

        // One bad rule among good ones: none is added.
        RuleRejectedException e = assertThrows(RuleRejectedException.class, () -> mc.addRules(
                Rule.drop("d"), Rule.error("e", "SERVER_ERROR e").withCommand("sett")));
        assertEquals(400, e.status());
        assertTrue(e.problems().get(0).matches(PROBLEM), e.problems().toString());
        assertEquals(List.of("from-file", "a", "b", "c"), names(mc.rules()));
    }

    @Test
    void aTakenNameIs409(Mcfault mc) {
        RuleRejectedException e = assertThrows(RuleRejectedException.class,
                () -> mc.addRule(Rule.drop("from-file")));
        assertEquals(409, e.status());
        assertEquals(List.of("rule 'from-file' already exists"), e.problems());

        e = assertThrows(RuleRejectedException.class,
                () -> mc.addRules(Rule.drop("twice"), Rule.hang("twice")));
        assertEquals(409, e.status());
        assertEquals(List.of("from-file"), names(mc.rules()));
    }

    @Test
    void namesArePercentEncoded(Mcfault mc) {
        String odd = "odd/name ü?&#%+";
        mc.addRule(Rule.drop(odd).withKey("odd:*"));
        assertEquals(odd, mc.getRule(odd).name());
        assertEquals(1, mc.disable(odd));
        assertFalse(mc.getRule(odd).enabled());
        assertEquals(1, mc.enable(odd));
        assertTrue(mc.getRule(odd).enabled());
        assertEquals(1, mc.removeRule(odd));
    }

    @Test
    void disableAndEnableSwitchARule(Mcfault mc, McfaultServer server) throws Exception {
        try (TextClient c = new TextClient(server.listenPort())) {
            assertEquals("SERVER_ERROR from file", c.set("file:1", "v"));
            assertEquals(1, mc.disable("from-file"));
            assertFalse(mc.getRule("from-file").enabled());
            assertEquals("STORED", c.set("file:1", "v"));
            assertEquals(1, mc.enable("from-file"));
            assertEquals("SERVER_ERROR from file", c.set("file:1", "v"));
        }
        assertThrows(NotFoundException.class, () -> mc.enable("nope"));
        assertThrows(NotFoundException.class, () -> mc.disable("nope"));
    }

    @Test
    void reloadRereadsTheRuleFile(Mcfault mc) {
        try {
            Suite.writeRuleFile(Suite.FILE_RULES + "  - name: second\n    action: drop\n"
                    + "    key: \"second:*\"\n");
            assertEquals(2, mc.reload());
            assertEquals(List.of("from-file", "second"), names(mc.rules()));

            Suite.writeRuleFile("rules:\n  - name: bad\n    action: explode\n");
            RuleRejectedException e = assertThrows(RuleRejectedException.class, mc::reload);
            assertEquals(400, e.status());
            assertTrue(e.problems().get(0).startsWith(Suite.RULE_FILE + ":3:"), e.problems().toString());
            assertEquals(List.of("from-file", "second"), names(mc.rules()));
        } finally {
            Suite.writeRuleFile(Suite.FILE_RULES);
        }
        assertEquals(1, mc.reload());
    }

    @Test
    void resetGoesBackToAFreshStart(Mcfault mc, McfaultServer server) throws Exception {
        mc.addRule(Rule.error("extra", "SERVER_ERROR extra").withKey("extra:*"));
        mc.disable("from-file");
        try (TextClient c = new TextClient(server.listenPort())) {
            assertEquals("SERVER_ERROR extra", c.set("extra:1", "v"));
            assertEquals("STORED", c.set("file:1", "v"));
            assertTrue(mc.stats().faultsTotal() > 0);
            assertTrue(mc.events().last() > 0);

            assertEquals(1, mc.reset());
            List<Rule> rules = mc.rules();
            assertEquals(List.of("from-file"), names(rules));
            assertTrue(rules.get(0).enabled());
            assertEquals(0, rules.get(0).matched());
            Stats s = mc.stats();
            assertEquals(0, s.faultsTotal());
            assertEquals(0, s.command("set"));
            assertEquals(new Events(0, List.of()), mc.events());

            assertEquals("STORED", c.set("extra:1", "v"));
            assertEquals("SERVER_ERROR from file", c.set("file:1", "v"));
            assertEquals(1, mc.events().events().get(0).seq());
        }
    }

    @Test
    void resetWithABadRuleFileResetsNothing(Mcfault mc) {
        mc.addRule(Rule.drop("kept").withKey("kept:*"));
        try {
            Suite.writeRuleFile("rules: [\n");
            RuleRejectedException e = assertThrows(RuleRejectedException.class, mc::reset);
            assertEquals(400, e.status());
            assertFalse(e.problems().isEmpty());
            assertEquals(List.of("from-file", "kept"), names(mc.rules()));
        } finally {
            Suite.writeRuleFile(Suite.FILE_RULES);
        }
    }

    @Test
    void statsCountCommandsAndFaults(Mcfault mc, McfaultServer server) throws Exception {
        try (TextClient c = new TextClient(server.listenPort())) {
            c.set("stats:1", "v");
            c.get("stats:1");
            c.get("stats:2");
            c.set("file:1", "v");
        }
        Stats s = mc.stats();
        assertFalse(s.version().isEmpty());
        assertEquals(1, s.rules());
        assertEquals(2, s.command("get"));
        assertEquals(2, s.command("set"));
        assertEquals(0, s.command("mg"));
        assertEquals(1, s.faultsTotal());
        assertEquals(1, s.faults("error"));
        assertEquals(0, s.faults("drop"));
        assertTrue(s.connectionsTotal() >= 1);
        assertTrue(s.clientBytesIn() > 0 && s.upstreamBytesIn() > 0);
        Stats.Proxy p = s.proxies().get(0);
        assertEquals("default", p.name());
        assertEquals(List.of(new Stats.RuleCounters("from-file", true, 1, 1)), p.rules());
    }

    @Test
    void metricsAreThePrometheusText(Mcfault mc, McfaultServer server) throws Exception {
        try (TextClient c = new TextClient(server.listenPort())) {
            c.set("file:1", "v");
        }
        String m = mc.metrics();
        assertTrue(m.contains("# TYPE mcfault_faults_total counter"), m);
        assertTrue(m.contains("mcfault_rules 1\n"), m);
        assertTrue(m.contains("mcfault_rule_fired_total{proxy=\"default\",rule=\"from-file\"} 1\n"), m);
    }

    @Test
    void eventsListTheFaultsSinceASequenceNumber(Mcfault mc, McfaultServer server)
            throws Exception {
        Instant before = Instant.now().minusSeconds(1);
        try (TextClient c = new TextClient(server.listenPort())) {
            c.set("file:1", "v");
            c.set("file:2", "v");
        }
        Events all = mc.events();
        assertEquals(2, all.last());
        assertEquals(2, all.events().size());
        Event e = all.events().get(0);
        assertEquals(1, e.seq());
        assertEquals("default", e.proxy());
        assertEquals("from-file", e.rule());
        assertEquals(Rule.Action.ERROR, e.action());
        assertFalse(e.forward());
        assertEquals("set", e.command());
        assertEquals("file:1", e.key());
        assertEquals(1, e.keys());
        assertTrue(e.time().isAfter(before) && e.time().isBefore(Instant.now().plusSeconds(1)),
                e.time().toString());

        Events later = mc.events(1);
        assertEquals(2, later.last());
        assertEquals(List.of(all.events().get(1)), later.events());
        assertEquals(new Events(2, List.of()), mc.events(all.last()));
    }

    @Test
    void upstreamCommandGoesPastTheRules(Mcfault mc, McfaultServer server) throws Exception {
        mc.setRules(Rule.error("everything", "SERVER_ERROR nothing gets through"));
        try (TextClient c = new TextClient(server.listenPort())) {
            assertEquals("SERVER_ERROR nothing gets through", c.set("up:1", "v"));
        }
        UpstreamReply set = mc.upstreamCommand("set up:1 0 0 2\r\nhi\r\n");
        assertEquals("STORED\r\n", set.text());
        assertTrue(set.elapsedUs() >= 0);
        assertEquals("VALUE up:1 0 2\r\nhi\r\nEND\r\n", mc.upstreamCommand("get up:1").text());
        assertEquals("VALUE up:1 0 2\r\nhi\r\nEND\r\n",
                mc.upstreamCommand("get up:1", Duration.ofSeconds(1)).text());
    }

    @Test
    void upstreamCommandCarriesBinaryData(Mcfault mc) {
        byte[] cmd = "set bin:1 0 0 3\r\n\u0000\u0000\u0000\r\n".getBytes(StandardCharsets.US_ASCII);
        cmd[17] = (byte) 0xff;
        cmd[19] = (byte) 0xc0;
        assertEquals("STORED\r\n", mc.upstreamCommand(cmd, null).text());
        byte[] reply = mc.upstreamCommand("get bin:1").reply();
        byte[] want = "VALUE bin:1 0 3\r\n\u0000\u0000\u0000\r\nEND\r\n"
                .getBytes(StandardCharsets.US_ASCII);
        want[17] = (byte) 0xff;
        want[19] = (byte) 0xc0;
        assertEquals(new String(want, StandardCharsets.ISO_8859_1),
                new String(reply, StandardCharsets.ISO_8859_1));
    }

    @Test
    void upstreamCommandNoreplyAnswersEmpty(Mcfault mc) {
        assertEquals(0, mc.upstreamCommand("set nr:1 0 0 1 noreply\r\nx\r\n").reply().length);
        assertEquals("VALUE nr:1 0 1\r\nx\r\nEND\r\n", mc.upstreamCommand("get nr:1").text());
    }

    @Test
    void upstreamCommandRefusesABadBody(Mcfault mc) {
        for (String body : List.of("", "get a\r\nget b\r\n", "set k 0 0 5\r\nhi\r\n")) {
            McfaultException e = assertThrows(McfaultException.class, () -> mc.upstreamCommand(body));
            assertEquals(McfaultException.class, e.getClass(), e.toString());
            assertEquals(400, e.status(), body);
        }
    }

    @Test
    void upstreamStatsAreMemcachedsStats(Mcfault mc) {
        Map<String, String> s = mc.upstreamStats();
        assertTrue(s.get("pid").matches("\\d+"), s.toString());
        assertTrue(s.containsKey("curr_connections"));
        Map<String, String> settings = mc.upstreamStats("settings");
        assertEquals("16777216", settings.get("maxbytes"));
        McfaultException e = assertThrows(McfaultException.class, () -> mc.upstreamStats("bogus"));
        assertEquals(400, e.status());
    }
}
