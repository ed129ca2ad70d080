// The error paths that need no rule: nothing listening, no answer in time, a
// reply that is not the API's, and an mcfault without a rule file.
package dev.mcfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class ErrorsTest {
    @Test
    void aDeadAdminPortIsAConnectionError() {
        Mcfault mc = Mcfault.builder().url("127.0.0.1:" + McfaultServer.freePort())
                .timeout(Duration.ofSeconds(2)).build();
        McfaultConnectionException e = assertThrows(McfaultConnectionException.class, mc::health);
        assertEquals(0, e.status());
        assertTrue(e.getMessage().startsWith("GET /health: cannot connect to http://127.0.0.1:"),
                e.getMessage());
        assertThrows(McfaultConnectionException.class, () -> mc.addRule(Rule.drop("x")));
    }

    @Test
    void noReplyInTimeIsATimeoutError() throws Exception {
        List<Socket> held = new ArrayList<>();
        try (ServerSocket silent = new ServerSocket(0, 8, InetAddress.getLoopbackAddress())) {
            Thread acceptor = new Thread(() -> {
                try {
                    while (true) {
                        held.add(silent.accept());
                    }
                } catch (Exception closed) {
                    // the test is over
                }
            });
            acceptor.setDaemon(true);
            acceptor.start();
            Mcfault mc = Mcfault.builder().url("127.0.0.1:" + silent.getLocalPort())
                    .timeout(Duration.ofMillis(300)).build();
            long t0 = System.nanoTime();
            McfaultTimeoutException e = assertThrows(McfaultTimeoutException.class, mc::stats);
            long ms = (System.nanoTime() - t0) / 1_000_000;
            assertTrue(ms >= 250 && ms < 3000, ms + " ms");
            assertEquals(0, e.status());
            assertThrows(McfaultTimeoutException.class, () -> mc.removeRule("x"));
        } finally {
            for (Socket s : held) {
                s.close();
            }
        }
    }

    @Test
    void aReplyThatIsNotTheApisIsAnError() throws Exception {
        HttpServer fake = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        fake.createContext("/", ex -> {
            byte[] body = switch (ex.getRequestURI().getPath()) {
                case "/stats" -> "<html>not json</html>".getBytes(StandardCharsets.UTF_8);
                case "/rules" -> "{\"proxies\":[{\"name\":\"p\",\"rules\":[{\"action\":\"drop\",\"name\":1}]}]}"
                        .getBytes(StandardCharsets.UTF_8);
                default -> "<html>too big</html>".getBytes(StandardCharsets.UTF_8);
            };
            int status = ex.getRequestURI().getPath().equals("/reload") ? 413 : 200;
            ex.sendResponseHeaders(status, body.length);
            try (OutputStream o = ex.getResponseBody()) {
                o.write(body);
            }
        });
        fake.start();
        try {
            Mcfault mc = Mcfault.connect("127.0.0.1:" + fake.getAddress().getPort());
            McfaultException e = assertThrows(McfaultException.class, mc::stats);
            assertTrue(e.getMessage().contains("unexpected reply"), e.getMessage());
            e = assertThrows(McfaultException.class, mc::rules);
            assertTrue(e.getMessage().contains("'name' is not a string"), e.getMessage());
            e = assertThrows(McfaultException.class, mc::reload);
            assertEquals(McfaultException.class, e.getClass());
            assertEquals(413, e.status());
            assertEquals("HTTP 413: <html>too big</html>", e.error());
        } finally {
            fake.stop(0);
        }
    }

    @Test
    void withoutARuleFileReloadIs409AndResetClearsTheRules() throws Exception {
        try (Memcached m = Memcached.start();
                McfaultServer server = McfaultServer.builder().binary(Suite.BIN)
                        .upstream(m.address()).args("--grace", "0").start()) {
            Mcfault mc = server.client();
            RuleRejectedException e = assertThrows(RuleRejectedException.class, mc::reload);
            assertEquals(409, e.status());
            mc.addRule(Rule.drop("x"));
            assertEquals(0, mc.reset());
            assertEquals(List.of(), mc.rules());
        }
    }

    @Test
    void aFailedStartSaysWhy() {
        McfaultException e = assertThrows(McfaultException.class, () -> McfaultServer.builder()
                .binary(Suite.BIN).upstream("127.0.0.1:1").args("--no-such-flag").start());
        assertTrue(e.getMessage().contains("exited with 2"), e.getMessage());
        assertTrue(e.getMessage().contains("unrecognized option '--no-such-flag'"), e.getMessage());
    }
}
