// ?proxy=NAME: an mcfault with two proxies, one of them in front of a dead
// upstream, for the per-proxy calls and the upstream error paths.
package dev.mcfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class MultiProxyTest {
    private static McfaultServer server;
    private static Mcfault mc;
    private static Path config;
    private static int portA;
    private static ServerSocket silent;

    @BeforeAll
    static void start() throws Exception {
        portA = McfaultServer.freePort();
        // An upstream that accepts and never answers: for the upstream timeout.
        silent = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        config = Files.createTempFile("mcfault-java-proxies-", ".yaml");
        Files.writeString(config, "proxies:\n"
                + "  - name: a\n"
                + "    listen: 127.0.0.1:" + portA + "\n"
                + "    upstream: " + Suite.MEMCACHED.address() + "\n"
                + "  - name: b\n"
                + "    listen: 127.0.0.1:" + McfaultServer.freePort() + "\n"
                + "    upstream: 127.0.0.1:" + McfaultServer.freePort() + "\n"
                + "  - name: c\n"
                + "    listen: 127.0.0.1:" + McfaultServer.freePort() + "\n"
                + "    upstream: 127.0.0.1:" + silent.getLocalPort() + "\n");
        server = McfaultServer.builder().binary(Suite.BIN).config(config)
                .args("--grace", "0").start();
        mc = server.client();
    }

    @AfterAll
    static void stop() throws Exception {
        server.close();
        silent.close();
        Files.deleteIfExists(config);
    }

    @AfterEach
    void reset() {
        mc.reset();
    }

    @Test
    void healthIs503WhenAnUpstreamIsDown() {
        Health h = mc.health();
        assertFalse(h.ok());
        assertEquals(List.of("a", "b", "c"),
                h.proxies().stream().map(Health.Proxy::name).toList());
        assertTrue(h.proxies().get(0).upstreamReachable());
        assertFalse(h.proxies().get(1).upstreamReachable());
        assertEquals("Connection refused", h.proxies().get(1).error());
    }

    @Test
    void aProxyBoundClientSendsProxy() throws Exception {
        Mcfault a = mc.proxy("a");
        Mcfault b = mc.proxy("b");
        assertEquals(1, a.addRule(Rule.drop("both").withKey("both:*")));
        assertEquals(1, b.addRule(Rule.drop("both").withKey("both:*")));
        assertEquals(1, b.addRule(Rule.hang("only-b")));
        assertEquals(List.of("a"), a.rules().stream().map(Rule::proxy).distinct().toList());
        assertEquals(3, mc.rules().size());
        assertEquals("b", b.getRule("only-b").proxy());
        assertThrows(NotFoundException.class, () -> a.getRule("only-b"));

        assertEquals(3, a.setRules(Rule.error("a-err", "SERVER_ERROR a"))); // over both proxies
        try (TextClient c = new TextClient(portA)) {
            assertEquals("SERVER_ERROR a", c.set("k", "v"));
        }
        assertEquals(List.of("a-err", "both", "only-b"), mc.rules().stream().map(Rule::name).toList());

        assertEquals(1, b.removeRule("both"));
        b.addRule(Rule.drop("a-err"));
        assertEquals(2, mc.removeRule("a-err"));
        assertEquals(1, a.clearRules()); // the rules in force over both proxies: only-b
        assertEquals(List.of("only-b"), mc.rules().stream().map(Rule::name).toList());
    }

    @Test
    void anUnknownProxyIs404() {
        Mcfault nope = mc.proxy("nope");
        assertThrows(NotFoundException.class, nope::rules);
        assertThrows(NotFoundException.class, () -> nope.addRule(Rule.drop("x")));
        assertThrows(NotFoundException.class, () -> nope.setRules(Rule.drop("x")));
        assertThrows(NotFoundException.class, nope::clearRules);
        assertThrows(NotFoundException.class, () -> nope.upstreamCommand("version"));
    }

    @Test
    void upstreamCallsPickTheProxy() {
        assertTrue(mc.proxy("a").upstreamCommand("version").text().startsWith("VERSION "));
        assertTrue(mc.proxy("a").upstreamStats().containsKey("pid"));
        UpstreamException e = assertThrows(UpstreamException.class,
                () -> mc.proxy("b").upstreamCommand("version"));
        assertEquals(502, e.status());
        assertTrue(e.error().startsWith("upstream: "), e.error());
        assertEquals(502, assertThrows(UpstreamException.class,
                () -> mc.proxy("b").upstreamStats("settings")).status());

        long t0 = System.nanoTime();
        e = assertThrows(UpstreamException.class,
                () -> mc.proxy("c").upstreamCommand("version", Duration.ofMillis(300)));
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertEquals(504, e.status());
        assertEquals("upstream: timeout", e.error());
        assertTrue(ms >= 250 && ms < 3000, ms + " ms");
    }
}
