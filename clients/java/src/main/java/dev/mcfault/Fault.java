// A fault in force for the length of a try-with-resources block.
package dev.mcfault;

import java.util.ArrayList;
import java.util.List;

/**
 * Rules added by {@link Mcfault#fault(Rule...)}; {@link #close()} removes
 * exactly those, by name, leaving every other rule as it was.
 */
public final class Fault implements AutoCloseable {
    private final Mcfault client;
    private final List<Rule> rules;
    private boolean closed;

    Fault(Mcfault client, List<Rule> rules) {
        this.client = client;
        this.rules = List.copyOf(rules);
    }

    /** The rules as they were added (each with its name). */
    public List<Rule> rules() {
        return rules;
    }

    /** The names of the rules, in order. */
    public List<String> names() {
        List<String> names = new ArrayList<>();
        for (Rule r : rules) {
            names.add(r.name());
        }
        return names;
    }

    /**
     * Removes the rules ({@code DELETE /rules/NAME} each). A rule already
     * gone (removed, cleared or reset by the test) is no error. Every rule
     * is tried; the first failure is thrown, later ones suppressed in it.
     * A second close does nothing.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        McfaultException first = null;
        for (Rule r : rules) {
            try {
                client.removeRule(r.name());
            } catch (NotFoundException gone) {
                // Nothing to undo.
            } catch (McfaultException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }

    @Override
    public String toString() {
        return "Fault" + names();
    }
}
