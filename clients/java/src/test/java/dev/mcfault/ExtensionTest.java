// The JUnit extension: the client is injected, and mcfault is reset after
// every test, so a rule added by one test is gone in the next.
package dev.mcfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import dev.mcfault.junit.McfaultExtension;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.RegisterExtension;

@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ExtensionTest {
    @RegisterExtension
    static McfaultExtension mcfault = Suite.MCFAULT;

    private Mcfault fromBeforeEach;

    @BeforeEach
    void before(Mcfault mc) {
        fromBeforeEach = mc;
    }

    @Test
    @Order(1)
    void aTestLeavesARuleBehind(Mcfault mc, McfaultServer server) throws Exception {
        assertSame(server.client(), mc);
        assertSame(mc, fromBeforeEach);
        mc.addRule(Rule.drop("left-behind"));
        mc.disable("from-file");
        try (TextClient c = new TextClient(server.listenPort())) {
            c.command("version");
        } catch (java.io.EOFException dropped) {
            // the rule fired: a fault counted
        }
    }

    @Test
    @Order(2)
    void theNextTestStartsFresh(Mcfault mc) {
        List<Rule> rules = mc.rules();
        assertEquals(List.of("from-file"), rules.stream().map(Rule::name).toList());
        assertEquals(true, rules.get(0).enabled());
        assertEquals(0, mc.stats().faultsTotal());
    }

    @Test
    void theDefaultConstructorReadsMcfaultAdmin() {
        String old = System.getProperty("mcfault.admin");
        try {
            System.setProperty("mcfault.admin", "http://127.0.0.1:9/");
            assertEquals("http://127.0.0.1:9", new McfaultExtension().client(null).url());
        } finally {
            if (old == null) {
                System.clearProperty("mcfault.admin");
            } else {
                System.setProperty("mcfault.admin", old);
            }
        }
    }
}
