// The base of every error the client raises: unchecked, so a test fails on
// it without ceremony.
package dev.mcfault;

import java.util.List;

/**
 * An admin API call failed. Subclasses say how: {@link RuleRejectedException}
 * (a refused rule change, 400/409), {@link NotFoundException} (404),
 * {@link UpstreamException} (502/504 from the upstream endpoints),
 * {@link McfaultConnectionException} (no connection, or it broke),
 * {@link McfaultTimeoutException} (no reply in time). Any other error reply
 * (400 for a bad upstream command, 405, 413, 503, ...) or a reply that is not
 * what the API promises is a plain {@code McfaultException}.
 */
public class McfaultException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final int status;
    private final String error;
    private final List<String> problems;

    /** An error without an HTTP reply (status 0). */
    public McfaultException(String message, Throwable cause) {
        super(message, cause);
        this.status = 0;
        this.error = message;
        this.problems = List.of();
    }

    /**
     * An error reply: what (method and path), the HTTP status, the reply's
     * "error" text and its "problems" (empty when it has none).
     */
    public McfaultException(String what, int status, String error, List<String> problems) {
        super(format(what, status, error, problems));
        this.status = status;
        this.error = error;
        this.problems = List.copyOf(problems);
    }

    /** The HTTP status of the error reply; 0 when there was no reply. */
    public int status() {
        return status;
    }

    /** The reply's "error" text ("invalid rules", "no rule named 'x'", ...). */
    public String error() {
        return error;
    }

    /**
     * The reply's "problems", each {@code body:LINE:COL: message} (or
     * {@code FILE:LINE:COL: ...} for the rule file); empty when none.
     */
    public List<String> problems() {
        return problems;
    }

    private static String format(String what, int status, String error, List<String> problems) {
        StringBuilder sb = new StringBuilder(what).append(": ").append(status).append(' ')
                .append(error);
        for (String p : problems) {
            sb.append("\n  ").append(p);
        }
        return sb.toString();
    }
}
