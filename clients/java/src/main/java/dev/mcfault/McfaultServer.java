// Runs an mcfault binary beside a test suite: free loopback ports, wait until
// its admin API answers, stop it at the end.
package dev.mcfault;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeUnit;

/**
 * An mcfault process listening on free loopback ports.
 *
 * <pre>{@code
 * try (McfaultServer server = McfaultServer.builder().upstream("127.0.0.1:11211").start()) {
 *     Mcfault mc = server.client();          // the admin API
 *     String proxy = server.listen();        // point the memcached client here
 * }
 * }</pre>
 *
 * <p>The binary is {@code $MCFAULT_BIN}, else {@code mcfault} on the PATH. Its
 * output goes to a temporary log file ({@link #log()}), which is quoted when it
 * fails to start.
 */
public final class McfaultServer implements AutoCloseable {
    /** Tries before giving up when mcfault exits at once (a free port taken meanwhile). */
    private static final int START_ATTEMPTS = 3;

    private final Process process;
    private final String listen;
    private final String adminUrl;
    private final Path logFile;
    private final Mcfault client;

    private McfaultServer(Process process, String listen, String adminUrl, Path logFile,
            Duration timeout) {
        this.process = process;
        this.listen = listen;
        this.adminUrl = adminUrl;
        this.logFile = logFile;
        this.client = Mcfault.builder().url(adminUrl).timeout(timeout).build();
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Configures and starts a {@link McfaultServer}. */
    public static final class Builder {
        private String binary = System.getenv("MCFAULT_BIN") != null
                ? System.getenv("MCFAULT_BIN") : "mcfault";
        private String upstream;
        private Path config;
        private final List<String> args = new ArrayList<>();
        private Duration startTimeout = Duration.ofSeconds(15);
        private Duration clientTimeout = Mcfault.DEFAULT_TIMEOUT;

        private Builder() {
        }

        /** The mcfault binary. Default {@code $MCFAULT_BIN}, else {@code mcfault}. */
        public Builder binary(String path) {
            this.binary = Objects.requireNonNull(path);
            return this;
        }

        /**
         * memcached's {@code HOST:PORT}, passed as {@code -u}, with {@code -l}
         * on a free loopback port. Leave it unset for a rule file in the
         * {@code proxies:} form, which names its own addresses.
         */
        public Builder upstream(String hostPort) {
            this.upstream = hostPort;
            return this;
        }

        /** A rule file, passed as {@code -c} (and re-read by reload and reset). */
        public Builder config(Path file) {
            this.config = file;
            return this;
        }

        /** More command-line arguments ({@code "-v"}, {@code "--event-log", path}, ...). */
        public Builder args(String... more) {
            args.addAll(Arrays.asList(more));
            return this;
        }

        /** How long to wait for the admin API to answer. Default 15 s. */
        public Builder startTimeout(Duration d) {
            this.startTimeout = d;
            return this;
        }

        /** The timeout of {@link McfaultServer#client()}. Default 5 s. */
        public Builder clientTimeout(Duration d) {
            this.clientTimeout = d;
            return this;
        }

        /**
         * Starts mcfault and waits until {@code GET /health} answers.
         * Throws {@link McfaultException} with its log when it exits or does
         * not answer in time.
         */
        public McfaultServer start() {
            McfaultException last = null;
            for (int attempt = 0; attempt < START_ATTEMPTS; attempt++) {
                try {
                    return startOnce();
                } catch (ExitedEarly e) {
                    last = e;
                    if (e.exitCode != 1) {
                        break; // bad options (2), not a port taken meanwhile (1)
                    }
                }
            }
            throw last;
        }

        private McfaultServer startOnce() {
            String listen = upstream != null ? "127.0.0.1:" + freePort() : null;
            String admin = "127.0.0.1:" + freePort();
            List<String> cmd = new ArrayList<>();
            cmd.add(binary);
            if (upstream != null) {
                cmd.addAll(List.of("-l", listen, "-u", upstream));
            }
            cmd.addAll(List.of("--admin", admin));
            if (config != null) {
                cmd.addAll(List.of("-c", config.toString()));
            }
            cmd.addAll(args);
            Path log;
            Process p;
            try {
                log = Files.createTempFile("mcfault-", ".log");
                p = new ProcessBuilder(cmd).redirectErrorStream(true)
                        .redirectOutput(log.toFile()).start();
            } catch (IOException e) {
                throw new McfaultException("cannot start " + String.join(" ", cmd) + ": "
                        + e.getMessage(), e);
            }
            McfaultServer s = new McfaultServer(p, listen, "http://" + admin, log, clientTimeout);
            Mcfault probe = Mcfault.builder().url(admin).timeout(Duration.ofSeconds(2)).build();
            long deadline = System.nanoTime() + startTimeout.toNanos();
            while (true) {
                if (!p.isAlive()) {
                    String output = s.log();
                    s.close();
                    throw new ExitedEarly(String.join(" ", cmd) + " exited with " + p.exitValue()
                            + ":\n" + output, p.exitValue());
                }
                try {
                    probe.health();
                    return s;
                } catch (McfaultConnectionException | McfaultTimeoutException notYet) {
                    // not listening yet
                } catch (McfaultException answered) {
                    return s; // it answers (503: too many connections, ...)
                }
                if (System.nanoTime() > deadline) {
                    String output = s.log();
                    s.close();
                    throw new McfaultException(String.join(" ", cmd)
                            + ": admin API not answering after " + startTimeout.toMillis()
                            + " ms:\n" + output, null);
                }
                sleep(50);
            }
        }
    }

    private static final class ExitedEarly extends McfaultException {
        private static final long serialVersionUID = 1L;

        final int exitCode;

        ExitedEarly(String message, int exitCode) {
            super(message, null);
            this.exitCode = exitCode;
        }
    }

    /** A client of this mcfault's admin API. */
    public Mcfault client() {
        return client;
    }

    /** The admin API's URL, {@code http://127.0.0.1:PORT}. */
    public String adminUrl() {
        return adminUrl;
    }

    /** Where the proxy listens, {@code 127.0.0.1:PORT}; null when the rule file names it. */
    public String listen() {
        return listen;
    }

    /** The proxy's port (from {@link #listen()}). */
    public int listenPort() {
        return Integer.parseInt(listen.substring(listen.lastIndexOf(':') + 1));
    }

    /** The process (to signal it, or to read its pid). */
    public Process process() {
        return process;
    }

    /** What mcfault has logged so far. */
    public String log() {
        try {
            return Files.readString(logFile, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    /**
     * Stops mcfault: SIGTERM, up to 10 s for it to exit (it lets in-flight
     * commands finish for its {@code --grace}), then SIGKILL. Removes the log.
     */
    @Override
    public void close() {
        process.destroy();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
        try {
            Files.deleteIfExists(logFile);
        } catch (IOException ignored) {
            // a temp file; nothing else to do
        }
    }

    @Override
    public String toString() {
        return "McfaultServer[pid=" + process.pid() + ", listen=" + listen + ", admin=" + adminUrl
                + "]";
    }

    /** A loopback port that was free a moment ago (the kernel's choice). */
    public static int freePort() {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new McfaultException("no free loopback port: " + e.getMessage(), e);
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new McfaultException("interrupted", e);
        }
    }
}
