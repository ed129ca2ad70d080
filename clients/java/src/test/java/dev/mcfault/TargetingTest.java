// Targeting (client, sizes), connect rules and schedules, added as typed Rules
// through the suite's real mcfault and felt through raw memcached sockets; and
// every kind of rule sent, read back and sent again unchanged.
package dev.mcfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mcfault.junit.McfaultExtension;
import java.io.EOFException;
import java.net.InetAddress;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

class TargetingTest {
    @RegisterExtension
    static McfaultExtension mcfault = Suite.MCFAULT;

    private static final Duration READ = Duration.ofSeconds(5);

    private final Mcfault mc;
    private final int port;

    TargetingTest(Mcfault mc, McfaultServer server) {
        this.mc = mc;
        this.port = server.listenPort();
    }

    @Test
    void aClientRuleFiresOnlyForItsNetwork() throws Exception {
        Rule r = Rule.error("only-2", "SERVER_ERROR from 127.0.0.2").withCommand("set")
                .withKey("cli:*").withClient("127.0.0.2/32");
        try (Fault f = mc.fault(r);
                TextClient one = new TextClient(port, READ);
                TextClient two = new TextClient(port, READ, InetAddress.getByName("127.0.0.2"))) {
            assertEquals("STORED", one.set("cli:1", "v"));
            assertEquals("SERVER_ERROR from 127.0.0.2", two.set("cli:1", "v"));
            Rule got = mc.getRule("only-2");
            assertEquals(List.of("127.0.0.2/32"), got.client());
            // The other client's command is no match at all.
            assertEquals(1, got.matched());
            assertEquals(1, got.fired());
        }
    }

    @Test
    void minSizeFailsOnlyBigSets() throws Exception {
        try (TextClient c = new TextClient(port);
                Fault f = mc.fault(Rule.error("big", "SERVER_ERROR object too large for cache")
                        .withCommand("set").withKey("sz:*").withMinSize(100))) {
            assertEquals("STORED", c.set("sz:1", "x".repeat(99)));
            assertEquals("SERVER_ERROR object too large for cache", c.set("sz:1", "x".repeat(100)));
            assertEquals("SERVER_ERROR object too large for cache", c.set("sz:1", "x".repeat(5000)));
            assertEquals("STORED", c.set("other:1", "x".repeat(5000)));
            Rule got = mc.getRule("big");
            assertEquals(100, got.minSize());
            assertEquals(null, got.maxSize());
            assertEquals(2, got.matched());
        }
    }

    @Test
    void minAndMaxSizeBoundTheDataBlockBothWays() throws Exception {
        try (TextClient c = new TextClient(port);
                Fault f = mc.fault(Rule.error("mid", "SERVER_ERROR mid-sized")
                        .withCommand("set").withKey("mid:*").withMinSize(10).withMaxSize(20))) {
            assertEquals("STORED", c.set("mid:1", "x".repeat(9)));
            assertEquals("SERVER_ERROR mid-sized", c.set("mid:1", "x".repeat(10)));
            assertEquals("SERVER_ERROR mid-sized", c.set("mid:1", "x".repeat(20)));
            assertEquals("STORED", c.set("mid:1", "x".repeat(21)));
            assertEquals(Long.valueOf(20), mc.getRule("mid").maxSize());
        }
    }

    @Test
    void aConnectErrorRuleGreetsNewConnectionsWithItsLine() throws Exception {
        try (TextClient before = new TextClient(port)) {
            try (Fault f = mc.fault(Rule.error("full", Rule.CONNECT_MESSAGE)
                    .withCommand("connect"))) {
                try (TextClient c = new TextClient(port)) {
                    assertEquals("ERROR Too many open connections", c.line());
                    assertThrows(EOFException.class, c::line);
                }
                assertEquals("STORED", before.set("conn:1", "v"));   // open ones are untouched
                assertEquals(List.of("connect"), mc.getRule("full").command());
            }
            try (Fault f = mc.fault(Rule.error("go-away", "SERVER_ERROR go away")
                    .withCommand("connect"));
                    TextClient c = new TextClient(port)) {
                assertEquals("SERVER_ERROR go away", c.line());
            }
            try (TextClient c = new TextClient(port)) {
                assertEquals("STORED", c.set("conn:1", "v"));
            }
        }
    }

    @Test
    void aScheduledRuleReadsBackWhetherItIsInForceAndUntilWhen() throws Exception {
        Rule later = Rule.error("later", "SERVER_ERROR later").withCommand("set")
                .withKey("sch:*").withSchedule(Duration.ofHours(1), Duration.ofSeconds(1),
                        Duration.ZERO);
        Rule now = Rule.error("now", "SERVER_ERROR now").withCommand("set").withKey("now:*")
                .withSchedule(new Rule.Schedule(Duration.ZERO, Duration.ofHours(1),
                        Duration.ofHours(2)));
        mc.addRules(later, now);

        Rule r = mc.getRule("later");
        assertEquals(new Rule.Schedule(Duration.ofHours(1), Duration.ofSeconds(1), Duration.ZERO),
                r.schedule());
        assertFalse(r.inForce());
        assertTrue(r.nextChange().compareTo(Duration.ofMinutes(59)) > 0
                && r.nextChange().compareTo(Duration.ofHours(1)) <= 0, r.nextChange().toString());

        r = mc.getRule("now");
        assertEquals(Duration.ofHours(2), r.schedule().every());
        assertTrue(r.inForce());
        assertTrue(r.nextChange().compareTo(Duration.ofMinutes(59)) > 0
                && r.nextChange().compareTo(Duration.ofHours(1)) <= 0, r.nextChange().toString());

        try (TextClient c = new TextClient(port)) {
            assertEquals("STORED", c.set("sch:1", "v"));            // not in force yet
            assertEquals("SERVER_ERROR now", c.set("now:1", "v"));  // in force
        }
        assertEquals(0, mc.getRule("later").matched());
    }

    /** One rule of every action, with every key this client sends. */
    static List<Rule> everyKind() {
        Rule.Schedule blink = new Rule.Schedule(Duration.ofSeconds(10), Duration.ofSeconds(2),
                Duration.ofSeconds(30));
        return List.of(
                Rule.error("rt-error", "SERVER_ERROR x").withCommand("set", "ms")
                        .withKey("e:*").withProbability(0.25).withAfter(2).withLimit(9)
                        .withForward(true),
                Rule.delay("rt-delay", Duration.ofMillis(2)).withJitter(Duration.ofMillis(1))
                        .withMinSize(5).withKey("d:*"),
                Rule.drop("rt-drop").withClose(Rule.Close.RESET).withConnections(0.25)
                        .withMinSize(10).withMaxSize(1000).withSchedule(blink).withKey("x:*"),
                Rule.hang("rt-hang").withKey("h:*")
                        .withSchedule(Duration.ZERO, Duration.ZERO, Duration.ZERO),
                Rule.miss("rt-miss").withCommand("get").withKey("m:*").withConnections(0.5),
                Rule.throttle("rt-throttle", 10240).withCommand("get", "mg").withKey("t:*")
                        .withLimit(5),
                Rule.slice("rt-slice", 4, 64).withInterval(Duration.ofMillis(3))
                        .withKey("s:*").withProbability(0.5),
                Rule.slice("rt-slice-one", 16).withKey("s1:*"),
                Rule.truncate("rt-keep-bytes", Rule.Keep.bytes(100))
                        .withClose(Rule.Close.RESET).withKey("k:*"),
                Rule.truncate("rt-keep-share", Rule.Keep.percent(12.5)).withKey("k2:*"),
                Rule.corrupt("rt-corrupt").withFlips(7).withCommand("set").withKey("c:*"),
                Rule.evict("rt-evict").withKey("v:*")
                        .withClient("127.0.0.2/32", "10.0.0.0/8", "fd00::/8"),
                Rule.error("rt-connect", Rule.CONNECT_MESSAGE).withCommand("connect")
                        .withClient("10.0.0.0/8").withEnabled(false));
    }

    private Map<String, Rule> readBack(List<Rule> sent) {
        List<String> names = sent.stream().map(Rule::name).toList();
        return mc.rules().stream().filter(r -> names.contains(r.name()))
                .collect(Collectors.toMap(Rule::name, Function.identity()));
    }

    @Test
    void everyKindOfRuleReadsBackAsSentAndCanBeSentAgain() {
        List<Rule> sent = everyKind();
        assertEquals(sent.size(), mc.addRules(sent));

        Map<String, Rule> got = readBack(sent);
        assertEquals(sent.size(), got.size());
        for (Rule s : sent) {
            Rule r = got.get(s.name());
            assertEquals("default", r.proxy());
            assertEquals(s, r.definition());
            assertEquals(s, mc.getRule(s.name()).definition());
        }

        // What was read back, sent again: the same rules.
        mc.clearRules();
        assertEquals(sent.size(), mc.addRules(List.copyOf(got.values())));
        Map<String, Rule> again = readBack(sent);
        for (Rule s : sent) {
            assertEquals(s, again.get(s.name()).definition());
        }
    }

    @Test
    void componentsReadBackAsTheirTypes() {
        mc.addRules(everyKind());
        assertEquals(Rule.Close.RESET, mc.getRule("rt-drop").close());
        assertEquals(0.25, mc.getRule("rt-drop").connections());
        assertEquals(Long.valueOf(1000), mc.getRule("rt-drop").maxSize());
        assertEquals(Duration.ofSeconds(30), mc.getRule("rt-drop").schedule().every());
        assertEquals(Rule.Close.FIN, mc.getRule("rt-keep-share").close());
        assertEquals(Rule.Keep.percent(12.5), mc.getRule("rt-keep-share").keep());
        assertEquals(Rule.Keep.bytes(100), mc.getRule("rt-keep-bytes").keep());
        assertEquals(10240, mc.getRule("rt-throttle").rate());
        assertEquals(Rule.SizeRange.of(4, 64), mc.getRule("rt-slice").size());
        assertEquals(Duration.ofMillis(1), mc.getRule("rt-slice-one").interval());
        assertEquals(7, mc.getRule("rt-corrupt").flips());
        assertEquals(List.of("127.0.0.2/32", "10.0.0.0/8", "fd00::/8"),
                mc.getRule("rt-evict").client());
        assertEquals(null, mc.getRule("rt-delay").maxSize());
        assertEquals(5, mc.getRule("rt-delay").minSize());
        assertEquals(1.0, mc.getRule("rt-evict").connections());
        assertEquals(null, mc.getRule("rt-evict").schedule());
    }

    @Test
    void mcfaultRefusesAKeyTheActionDoesNotTake() {
        RuleRejectedException e = assertThrows(RuleRejectedException.class,
                () -> mc.addRule(Rule.drop("x").withRate(100)));
        assertTrue(e.problems().get(0).contains("'rate' does not apply to action drop"),
                e.problems().toString());
        e = assertThrows(RuleRejectedException.class,
                () -> mc.addRule(Rule.delay("y", Duration.ofMillis(1)).withClose(Rule.Close.FIN)));
        assertTrue(e.problems().get(0).contains("'close' does not apply to action delay"),
                e.problems().toString());
        e = assertThrows(RuleRejectedException.class, () -> mc.addRule(Rule.drop("z")
                .withSchedule(Duration.ZERO, Duration.ZERO, Duration.ofSeconds(1))));
        assertTrue(e.problems().get(0).contains("'every' needs a 'duration' above 0"),
                e.problems().toString());
    }
}
