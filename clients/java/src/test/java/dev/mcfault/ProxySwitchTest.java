// The proxy switch (disableProxy, enableProxy) and the rules' inForce /
// nextChange against the suite's mcfault, felt through raw memcached sockets.
package dev.mcfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mcfault.junit.McfaultExtension;
import java.io.IOException;
import java.net.ConnectException;
import java.net.SocketException;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

class ProxySwitchTest {
    @RegisterExtension
    static McfaultExtension mcfault = Suite.MCFAULT;

    @Test
    void disableCutsClientsAndRefusesNewOnesEnableBringsItBack(Mcfault mc,
            McfaultServer server) throws Exception {
        int port = server.listenPort();
        try (TextClient c = new TextClient(port)) {
            assertEquals("STORED", c.set("px:1", "v"));
            ProxySwitch off = mc.disableProxy("default");
            assertEquals("default", off.proxy());
            assertFalse(off.enabled());
            assertEquals(server.listen(), off.listen());
            assertTrue(off.closed() >= 1, off.toString());
            // EOF, or a reset when the command crossed the close.
            IOException cut = assertThrows(IOException.class, () -> c.get("px:1"));
            assertTrue(cut instanceof java.io.EOFException || cut instanceof SocketException,
                    cut.toString());
        }
        assertThrows(ConnectException.class, () -> new TextClient(port).close());
        Health h = mc.health();
        assertTrue(h.ok(), "health is about the upstream");
        assertFalse(h.proxies().get(0).enabled());
        Stats.Proxy p = mc.stats().proxies().get(0);
        assertFalse(p.enabled());
        assertEquals(0, p.connectionsNow());
        assertEquals(0, mc.disableProxy("default").closed());

        ProxySwitch on = mc.enableProxy("default");
        assertEquals(new ProxySwitch("default", true, server.listen(), 0), on);
        assertTrue(mc.enableProxy("default").enabled());
        try (TextClient c = new TextClient(port)) {
            assertEquals("v", c.get("px:1"));
        }
        assertTrue(mc.health().proxies().get(0).enabled());
    }

    @Test
    void resetSwitchesEveryProxyBackOn(Mcfault mc, McfaultServer server) throws Exception {
        mc.disableProxy("default");
        assertThrows(ConnectException.class, () -> new TextClient(server.listenPort()).close());
        mc.reset();
        assertTrue(mc.stats().proxies().get(0).enabled());
        new TextClient(server.listenPort()).close();
    }

    @Test
    void anUnknownProxyIsNotFound(Mcfault mc) {
        NotFoundException e = assertThrows(NotFoundException.class,
                () -> mc.disableProxy("nope"));
        assertEquals("no proxy named 'nope'", e.error());
        assertThrows(NotFoundException.class, () -> mc.enableProxy("nope"));
        assertThrows(IllegalArgumentException.class, () -> mc.disableProxy(""));
    }

    @Test
    void rulesSayWhetherTheyAreInForceAndUntilWhen(Mcfault mc) {
        mc.addRule(Rule.drop("plain").withKey("nothing"));
        Rule r = mc.getRule("plain");
        assertTrue(r.inForce());
        assertNull(r.nextChange());
        mc.disable("plain");
        r = mc.getRule("plain");
        assertFalse(r.inForce());
        assertNull(r.nextChange());
        mc.addRulesYaml("name: later\nkey: nothing\naction: drop\n"
                + "schedule: {start: 3600s, duration: 1s}\n");
        r = mc.getRule("later");
        assertFalse(r.inForce());
        assertTrue(r.nextChange().compareTo(Duration.ofMinutes(59)) > 0
                && r.nextChange().compareTo(Duration.ofHours(1)) <= 0, r.nextChange().toString());
    }
}
