// JUnit 5 extension: injects a Mcfault client into tests and resets mcfault
// after each one, so that no fault leaks into the next test.
package dev.mcfault.junit;

import dev.mcfault.Mcfault;
import dev.mcfault.McfaultConnectionException;
import dev.mcfault.McfaultServer;
import dev.mcfault.McfaultTimeoutException;
import java.time.Duration;
import java.util.Objects;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * Gives tests a {@link Mcfault} parameter (in test methods, lifecycle methods
 * and constructors) and calls {@link Mcfault#reset()} after each test: the
 * rule file's rules come back, counters and events restart.
 *
 * <pre>{@code
 * @ExtendWith(McfaultExtension.class)     // mcfault at $MCFAULT_ADMIN (or -Dmcfault.admin)
 * class CheckoutTest {
 *     @Test
 *     void survivesOom(Mcfault mc) {
 *         mc.addRule(Rule.error("oom", "SERVER_ERROR out of memory").withCommand("set"));
 *         ...
 *     }
 * }
 * }</pre>
 *
 * Or registered in a field, to say where mcfault is or to start one:
 *
 * <pre>{@code
 * @RegisterExtension
 * static McfaultExtension mcfault = McfaultExtension.forUrl("http://127.0.0.1:8474");
 *
 * @RegisterExtension   // starts $MCFAULT_BIN in front of memcached, stops it after the run
 * static McfaultExtension mcfault = McfaultExtension.launch(
 *         McfaultServer.builder().upstream("127.0.0.1:11211"));
 * }</pre>
 *
 * A launched mcfault lives until the whole test run ends (it is kept in
 * JUnit's root store), and one extension object launches it once: share one
 * static instance between test classes for one mcfault for the suite. Its
 * {@link McfaultServer} can be injected too.
 */
public final class McfaultExtension implements BeforeAllCallback, AfterEachCallback,
        ParameterResolver {
    /** How long beforeAll waits for an mcfault started beside the tests to answer. */
    private static final Duration READY_WAIT = Duration.ofSeconds(10);

    private static final ExtensionContext.Namespace NS =
            ExtensionContext.Namespace.create(McfaultExtension.class);

    private final McfaultServer.Builder launcher;
    private final Mcfault fixed;

    /**
     * The mcfault at the system property {@code mcfault.admin}, else the
     * environment's {@code MCFAULT_ADMIN}, else {@code http://127.0.0.1:8080}.
     */
    public McfaultExtension() {
        this(urlFromEnvironment(), null);
    }

    private McfaultExtension(Mcfault client, McfaultServer.Builder launcher) {
        this.fixed = client;
        this.launcher = launcher;
    }

    /** Uses this client (its URL, timeout and proxy). */
    public static McfaultExtension forClient(Mcfault client) {
        return new McfaultExtension(Objects.requireNonNull(client), null);
    }

    /** Uses the mcfault whose admin API is at url. */
    public static McfaultExtension forUrl(String url) {
        return forClient(Mcfault.connect(url));
    }

    /** Starts an mcfault from this builder on first use; it is stopped when the run ends. */
    public static McfaultExtension launch(McfaultServer.Builder builder) {
        return new McfaultExtension(null, Objects.requireNonNull(builder));
    }

    private static Mcfault urlFromEnvironment() {
        String url = System.getProperty("mcfault.admin");
        if (url == null || url.isEmpty()) {
            url = System.getenv("MCFAULT_ADMIN");
        }
        return Mcfault.connect(url == null || url.isEmpty() ? "http://127.0.0.1:8080" : url);
    }

    /** The client (starting the launched mcfault if need be). */
    public Mcfault client(ExtensionContext context) {
        if (launcher != null) {
            return server(context).client();
        }
        return fixed;
    }

    /** The launched mcfault; IllegalStateException when this extension launches none. */
    public McfaultServer server(ExtensionContext context) {
        if (launcher == null) {
            throw new IllegalStateException("this McfaultExtension did not launch mcfault");
        }
        return context.getRoot().getStore(NS)
                .getOrComputeIfAbsent(this, k -> new Running(launcher.start()), Running.class)
                .server;
    }

    /**
     * Starts mcfault; or waits (up to 10 s) until the one at the URL answers
     * and resets it, so that the first test too starts from the rule file's
     * state whatever ran against it before.
     */
    @Override
    public void beforeAll(ExtensionContext context) {
        if (launcher != null) {
            server(context);
            return;
        }
        long deadline = System.nanoTime() + READY_WAIT.toNanos();
        while (true) {
            try {
                fixed.health();
                break;
            } catch (McfaultConnectionException | McfaultTimeoutException e) {
                if (System.nanoTime() > deadline) {
                    throw e;
                }
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
        fixed.reset();
    }

    /** {@code POST /reset}, so that the next test starts from the rule file's state. */
    @Override
    public void afterEach(ExtensionContext context) {
        client(context).reset();
    }

    @Override
    public boolean supportsParameter(ParameterContext p, ExtensionContext context) {
        Class<?> type = p.getParameter().getType();
        return type == Mcfault.class || (type == McfaultServer.class && launcher != null);
    }

    @Override
    public Object resolveParameter(ParameterContext p, ExtensionContext context) {
        return p.getParameter().getType() == McfaultServer.class ? server(context)
                : client(context);
    }

    /** Stops the launched mcfault when JUnit closes its root store. */
    private static final class Running implements ExtensionContext.Store.CloseableResource {
        final McfaultServer server;

        Running(McfaultServer server) {
            this.server = server;
        }

        @Override
        public void close() {
            server.close();
        }
    }
}
