// @ExtendWith(McfaultExtension.class), as the README's first example uses it:
// the mcfault at -Dmcfault.admin (or $MCFAULT_ADMIN), reset after each test. Run
// as an inner suite through the JUnit launcher, once the URL is known.
package dev.mcfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import dev.mcfault.junit.McfaultExtension;
import java.util.List;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;
import org.junit.platform.launcher.listeners.TestExecutionSummary;

class ExtendWithTest {
    @RegisterExtension
    static McfaultExtension mcfault = Suite.MCFAULT;

    @ExtendWith(McfaultExtension.class)
    @EnabledIfSystemProperty(named = "mcfault.java.inner", matches = "true")
    @TestMethodOrder(MethodOrderer.OrderAnnotation.class)
    static class Inner {
        @Test
        @Order(1)
        void addsARule(Mcfault mc) {
            mc.addRule(Rule.drop("inner"));
            assertEquals(List.of("from-file", "inner"), mc.rules().stream().map(Rule::name).toList());
        }

        @Test
        @Order(2)
        void findsItGone(Mcfault mc) {
            assertEquals(List.of("from-file"), mc.rules().stream().map(Rule::name).toList());
        }
    }

    @Test
    void extendWithUsesMcfaultAdminAndResetsAfterEachTest(McfaultServer server) {
        System.setProperty("mcfault.admin", server.adminUrl());
        System.setProperty("mcfault.java.inner", "true");
        try {
            Launcher launcher = LauncherFactory.create();
            SummaryGeneratingListener listener = new SummaryGeneratingListener();
            launcher.execute(LauncherDiscoveryRequestBuilder.request()
                    .selectors(selectClass(Inner.class)).build(), listener);
            TestExecutionSummary summary = listener.getSummary();
            summary.getFailures().forEach(f -> f.getException().printStackTrace());
            assertEquals(2, summary.getTestsSucceededCount());
            assertEquals(0, summary.getTotalFailureCount());
        } finally {
            System.clearProperty("mcfault.admin");
            System.clearProperty("mcfault.java.inner");
        }
    }
}
