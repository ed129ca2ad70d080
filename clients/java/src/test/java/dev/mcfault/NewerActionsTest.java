// The newer actions (throttle, slice, truncate, corrupt, evict), each added as
// a typed Rule through the suite's real mcfault and felt through a raw
// memcached text-protocol socket.
package dev.mcfault;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mcfault.junit.McfaultExtension;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Locale;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

class NewerActionsTest {
    @RegisterExtension
    static McfaultExtension mcfault = Suite.MCFAULT;

    private final Mcfault mc;
    private final int port;

    NewerActionsTest(Mcfault mc, McfaultServer server) {
        this.mc = mc;
        this.port = server.listenPort();
    }

    private static long millisSince(long t0) {
        return (System.nanoTime() - t0) / 1_000_000L;
    }

    @Test
    void throttleDeliversTheSameValueAtTheRate() throws Exception {
        String value = "t".repeat(2000);
        try (TextClient c = new TextClient(port)) {
            assertEquals("STORED", c.set("thr:1", value));
            // About 2030 bytes of reply at 4000 B/s: half a second.
            try (Fault f = mc.fault(Rule.throttle("dial-up", 4000).withCommand("get")
                    .withKey("thr:*"))) {
                long t0 = System.nanoTime();
                assertEquals(value, c.get("thr:1"));
                long ms = millisSince(t0);
                assertTrue(ms >= 250, "a throttled get took only " + ms + " ms");
                assertEquals(1, mc.getRule("dial-up").fired());
            }
        }
    }

    @Test
    void sliceDeliversTheSameValueInPieces() throws Exception {
        String value = "s".repeat(100);
        try (TextClient c = new TextClient(port)) {
            assertEquals("STORED", c.set("slc:1", value));
            // 126 bytes of reply in pieces of at most 16 bytes: at least 8
            // pieces, so at least 7 pauses of 20 ms.
            try (Fault f = mc.fault(Rule.slice("dribble", 1, 16)
                    .withInterval(Duration.ofMillis(20)).withCommand("get").withKey("slc:*"))) {
                long t0 = System.nanoTime();
                assertEquals(value, c.get("slc:1"));
                long ms = millisSince(t0);
                assertTrue(ms >= 100, "a sliced get took only " + ms + " ms");
                assertEquals(1, mc.getRule("dribble").fired());
            }
        }
    }

    @Test
    void truncateWithResetCutsTheReplyAndResets() throws Exception {
        try (TextClient c = new TextClient(port)) {
            assertEquals("STORED", c.set("trc:1", "x".repeat(100)));
        }
        try (Fault f = mc.fault(Rule.truncate("cut", Rule.Keep.bytes(10))
                .withClose(Rule.Close.RESET).withCommand("get").withKey("trc:*"));
                TextClient c = new TextClient(port)) {
            c.send("get trc:1\r\n");
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            IOException end = c.readUntilClosed(got);
            assertTrue(got.size() <= 10, got.size() + " bytes came");
            assertInstanceOf(SocketException.class, end, end.toString());
            assertTrue(end.getMessage().toLowerCase(Locale.ROOT).contains("reset"),
                    end.toString());
        }
    }

    @Test
    void truncateWithFinKeepsExactlyItsBytes() throws Exception {
        try (TextClient c = new TextClient(port)) {
            assertEquals("STORED", c.set("trf:1", "x".repeat(100)));
        }
        try (Fault f = mc.fault(Rule.truncate("cut", Rule.Keep.bytes(10)).withCommand("get")
                .withKey("trf:*"));
                TextClient c = new TextClient(port)) {
            c.send("get trf:1\r\n");
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            IOException end = c.readUntilClosed(got);
            assertInstanceOf(EOFException.class, end, end.toString());
            assertEquals("VALUE trf:", got.toString(StandardCharsets.UTF_8));
        }
    }

    @Test
    void truncateByPercentageKeepsThatShare() throws Exception {
        // "VALUE trp:1 0 95\r\n" (18) + 95 + "\r\n" (2) + "END\r\n" (5): 120 bytes.
        try (TextClient c = new TextClient(port)) {
            assertEquals("STORED", c.set("trp:1", "y".repeat(95)));
        }
        try (Fault f = mc.fault(Rule.truncate("half", Rule.Keep.percent(50)).withCommand("get")
                .withKey("trp:*"));
                TextClient c = new TextClient(port)) {
            c.send("get trp:1\r\n");
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            IOException end = c.readUntilClosed(got);
            assertInstanceOf(EOFException.class, end, end.toString());
            assertEquals(60, got.size());
        }
    }

    @Test
    void corruptOnASetStoresAValueFlippedInExactlyFlipsBits() throws Exception {
        String value = "a".repeat(64);
        try (TextClient c = new TextClient(port)) {
            try (Fault f = mc.fault(Rule.corrupt("bitrot").withFlips(3).withCommand("set")
                    .withKey("cor:*"))) {
                assertEquals("STORED", c.set("cor:1", value));
            }
            byte[] stored = c.getBytes("cor:1");
            byte[] sent = value.getBytes(StandardCharsets.US_ASCII);
            assertEquals(sent.length, stored.length);
            int bits = 0;
            for (int i = 0; i < sent.length; i++) {
                bits += Integer.bitCount((sent[i] ^ stored[i]) & 0xff);
            }
            assertEquals(3, bits);
        }
    }

    @Test
    void corruptWithoutFlipsFlipsOneBitOfARetrieval() throws Exception {
        String value = "b".repeat(32);
        try (TextClient c = new TextClient(port)) {
            assertEquals("STORED", c.set("cog:1", value));
            byte[] got;
            try (Fault f = mc.fault(Rule.corrupt("flaky-read").withCommand("get")
                    .withKey("cog:*"))) {
                got = c.getBytes("cog:1");
            }
            byte[] sent = value.getBytes(StandardCharsets.US_ASCII);
            int bits = 0;
            for (int i = 0; i < sent.length; i++) {
                bits += Integer.bitCount((sent[i] ^ got[i]) & 0xff);
            }
            assertEquals(1, bits);
            assertArrayEquals(sent, c.getBytes("cog:1"));   // memcached still has it right
        }
    }

    @Test
    void evictMakesAStoredKeyAMiss() throws Exception {
        try (TextClient c = new TextClient(port)) {
            assertEquals("STORED", c.set("ev:1", "here"));
            assertEquals("STORED", c.set("kept:1", "here too"));
            assertEquals("here", c.get("ev:1"));
            try (Fault f = mc.fault(Rule.evict("gone").withCommand("get").withKey("ev:*"))) {
                assertNull(c.get("ev:1"));
                assertEquals("here too", c.get("kept:1"));
            }
            // Deleted from memcached, not hidden.
            assertNull(c.get("ev:1"));
            assertEquals("END\r\n", mc.upstreamCommand("get ev:1").text());
            assertFalse(mc.rules().stream().anyMatch(r -> r.name().equals("gone")));
        }
    }
}
