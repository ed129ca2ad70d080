// The scoped helper, and each action proven through a raw memcached socket:
// in force inside the try block, gone after it, whatever the block did.
package dev.mcfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mcfault.junit.McfaultExtension;
import java.io.EOFException;
import java.net.SocketTimeoutException;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

class FaultTest {
    @RegisterExtension
    static McfaultExtension mcfault = Suite.MCFAULT;

    private final Mcfault mc;
    private final int port;

    FaultTest(Mcfault mc, McfaultServer server) {
        this.mc = mc;
        this.port = server.listenPort();
    }

    private List<String> names() {
        return mc.rules().stream().map(Rule::name).toList();
    }

    @Test
    void anErrorFaultHoldsForTheBlockOnly() throws Exception {
        try (TextClient c = new TextClient(port)) {
            assertEquals("STORED", c.set("session:1", "v"));
            try (Fault f = mc.fault(Rule.error("oom", "SERVER_ERROR out of memory storing object")
                    .withCommand("set").withKey("session:*"))) {
                assertEquals(List.of("oom"), f.names());
                assertEquals(List.of("from-file", "oom"), names());
                assertEquals("SERVER_ERROR out of memory storing object", c.set("session:1", "v"));
                assertEquals("v", c.get("session:1"));
            }
            assertEquals(List.of("from-file"), names());
            assertEquals("STORED", c.set("session:1", "v"));
        }
    }

    @Test
    void theFaultIsUndoneWhenTheBlockThrows() {
        assertThrows(IllegalStateException.class, () -> {
            try (Fault f = mc.fault(Rule.drop("boom"), Rule.hang("stuck").withKey("stuck:*"))) {
                assertEquals(List.of("from-file", "boom", "stuck"), names());
                throw new IllegalStateException("the test failed");
            }
        });
        assertEquals(List.of("from-file"), names());
    }

    @Test
    void unnamedRulesGetAName() {
        try (Fault f = mc.fault(Rule.drop(null).withKey("anon:*"))) {
            String name = f.names().get(0);
            assertTrue(name.matches("fault-[0-9a-f]{8}"), name);
            assertEquals(List.of("from-file", name), names());
        }
        assertEquals(List.of("from-file"), names());
    }

    @Test
    void aTakenNameAddsNothingAndRemovesNothing() {
        RuleRejectedException e = assertThrows(RuleRejectedException.class,
                () -> mc.fault(Rule.drop("new-one"), Rule.drop("from-file")));
        assertEquals(409, e.status());
        assertEquals(List.of("from-file"), names());
    }

    @Test
    void closingAfterTheRulesWentIsNoError() {
        Fault f = mc.fault(Rule.drop("gone").withKey("gone:*"));
        mc.clearRules();
        f.close();
        f.close();
        assertEquals(List.of(), names());
    }

    @Test
    void delay() throws Exception {
        try (TextClient c = new TextClient(port)) {
            c.set("delay:1", "v");
            try (Fault f = mc.fault(Rule.delay("slow", Duration.ofMillis(300)).withCommand("get"))) {
                long t0 = System.nanoTime();
                assertEquals("v", c.get("delay:1"));
                assertTrue(System.nanoTime() - t0 >= 300_000_000L);
            }
            long t0 = System.nanoTime();
            assertEquals("v", c.get("delay:1"));
            assertTrue(System.nanoTime() - t0 < 300_000_000L);
        }
    }

    @Test
    void drop() throws Exception {
        try (Fault f = mc.fault(Rule.drop("partition").withKey("drop:*"));
                TextClient c = new TextClient(port)) {
            assertThrows(EOFException.class, () -> c.get("drop:1"));
        }
        try (TextClient c = new TextClient(port)) {
            assertNull(c.get("drop:1"));
        }
    }

    @Test
    void hang() throws Exception {
        try (Fault f = mc.fault(Rule.hang("stuck").withKey("hang:*"));
                TextClient c = new TextClient(port, Duration.ofMillis(300))) {
            assertThrows(SocketTimeoutException.class, () -> c.get("hang:1"));
        }
        try (TextClient c = new TextClient(port, Duration.ofMillis(2000))) {
            assertNull(c.get("hang:1"));
        }
    }

    @Test
    void miss() throws Exception {
        try (TextClient c = new TextClient(port)) {
            assertEquals("STORED", c.set("miss:1", "there"));
            try (Fault f = mc.fault(Rule.miss("cold").withKey("miss:*"))) {
                assertNull(c.get("miss:1"));
            }
            assertEquals("there", c.get("miss:1"));
        }
    }

    @Test
    void afterAndLimitGateTheFault() throws Exception {
        try (TextClient c = new TextClient(port);
                Fault f = mc.fault(Rule.error("twice", "SERVER_ERROR gated").withCommand("set")
                        .withKey("gate:*").withAfter(1).withLimit(2))) {
            assertEquals("STORED", c.set("gate:1", "v"));
            assertEquals("SERVER_ERROR gated", c.set("gate:1", "v"));
            assertEquals("SERVER_ERROR gated", c.set("gate:1", "v"));
            assertEquals("STORED", c.set("gate:1", "v"));
            Rule r = mc.getRule("twice");
            assertEquals(4, r.matched());
            assertEquals(2, r.fired());
        }
    }

    @Test
    void forwardAppliesTheFaultToTheReply() throws Exception {
        try (TextClient c = new TextClient(port)) {
            try (Fault f = mc.fault(Rule.error("lost-ack", "SERVER_ERROR lost").withCommand("set")
                    .withKey("fwd:*").withForward(true))) {
                assertEquals("SERVER_ERROR lost", c.set("fwd:1", "stored anyway"));
            }
            assertEquals("stored anyway", c.get("fwd:1"));
        }
    }
}
