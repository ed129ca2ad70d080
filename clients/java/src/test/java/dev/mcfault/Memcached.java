// A real memcached (/usr/bin/memcached) on a free loopback port, for the tests.
package dev.mcfault;

import java.io.IOException;
import java.net.InetAddress;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

final class Memcached implements AutoCloseable {
    private final Process process;
    private final int port;

    private Memcached(Process process, int port) {
        this.process = process;
        this.port = port;
    }

    /** Starts memcached and waits until it accepts connections (5 s at most). */
    static Memcached start() {
        String bin = System.getenv().getOrDefault("MEMCACHED_BIN", "/usr/bin/memcached");
        for (int attempt = 0; attempt < 3; attempt++) {
            int port = McfaultServer.freePort();
            List<String> cmd = new ArrayList<>(List.of(bin, "-l", "127.0.0.1", "-p",
                    Integer.toString(port), "-U", "0", "-m", "16", "-t", "1"));
            if ("root".equals(System.getProperty("user.name"))) {
                cmd.addAll(List.of("-u", "nobody"));
            }
            Process p;
            try {
                p = new ProcessBuilder(cmd).redirectErrorStream(true)
                        .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
            } catch (IOException e) {
                throw new IllegalStateException("cannot start " + bin, e);
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (p.isAlive() && System.nanoTime() < deadline) {
                try (Socket s = new Socket(InetAddress.getLoopbackAddress(), port)) {
                    return new Memcached(p, port);
                } catch (IOException notYet) {
                    sleep(20);
                }
            }
            p.destroyForcibly();
        }
        throw new IllegalStateException("memcached did not start");
    }

    int port() {
        return port;
    }

    String address() {
        return "127.0.0.1:" + port;
    }

    @Override
    public void close() {
        process.destroy();
        try {
            process.waitFor(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        process.destroyForcibly();
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
