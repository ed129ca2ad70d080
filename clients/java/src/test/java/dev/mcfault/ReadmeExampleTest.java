// The README's first example, as it runs here: the same test, with the
// suite's launched mcfault instead of one at $MCFAULT_ADMIN.
package dev.mcfault;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mcfault.junit.McfaultExtension;
import java.io.IOException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

class ReadmeExampleTest {
    @RegisterExtension
    static McfaultExtension mcfault = Suite.MCFAULT;

    /** The code under test: saves sessions in memcached, reports whether it could. */
    static final class SessionStore {
        private final int port;

        SessionStore(int port) {
            this.port = port;
        }

        boolean save(String id, String user) {
            try (TextClient c = new TextClient(port)) {
                return c.set(id, user).equals("STORED");
            } catch (IOException e) {
                return false;
            }
        }
    }

    @Test
    void savingASessionSurvivesAFullCache(Mcfault mc, McfaultServer server) {
        SessionStore store = new SessionStore(server.listenPort());

        try (var oom = mc.fault(Rule.error("oom", "SERVER_ERROR out of memory storing object")
                .withCommand("set").withKey("session:*"))) {
            assertFalse(store.save("session:1", "alice"));   // the write failed, and said so
        }
        assertTrue(store.save("session:1", "alice"));        // the fault is gone
    }
}
