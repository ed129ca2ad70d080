// The suite's fixture: one memcached and one mcfault (with a rule file) for
// the whole run, shared by every test class through one McfaultExtension.
package dev.mcfault;

import dev.mcfault.junit.McfaultExtension;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

final class Suite {
    /** The rule file's first contents; tests that change the file put these back. */
    static final String FILE_RULES = "rules:\n"
            + "  - name: from-file\n"
            + "    key: \"file:*\"\n"
            + "    action: error\n"
            + "    message: SERVER_ERROR from file\n";

    static final String BIN = binary();
    static final Memcached MEMCACHED = memcached();
    static final Path RULE_FILE = ruleFile();

    /** Shared by every class: one mcfault, started on first use, stopped when the run ends. */
    static final McfaultExtension MCFAULT = McfaultExtension.launch(McfaultServer.builder()
            .binary(BIN).upstream(MEMCACHED.address()).config(RULE_FILE)
            .args("--grace", "0", "-v"));

    private Suite() {
    }

    /** $MCFAULT_BIN, else ../../build/mcfault from the client's directory. */
    static String binary() {
        String bin = System.getenv("MCFAULT_BIN");
        if (bin == null || bin.isEmpty()) {
            bin = Path.of("../../build/mcfault").toAbsolutePath().normalize().toString();
        }
        if (!Files.isExecutable(Path.of(bin))) {
            throw new IllegalStateException("no mcfault binary at " + bin + " (set MCFAULT_BIN)");
        }
        return bin;
    }

    private static Memcached memcached() {
        Memcached m = Memcached.start();
        Runtime.getRuntime().addShutdownHook(new Thread(m::close));
        return m;
    }

    private static Path ruleFile() {
        try {
            Path p = Files.createTempFile("mcfault-java-rules-", ".yaml");
            Files.writeString(p, FILE_RULES);
            p.toFile().deleteOnExit();
            return p;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static void writeRuleFile(String text) {
        try {
            Files.writeString(RULE_FILE, text);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
