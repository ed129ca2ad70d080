// One kind of error reply from the admin API; see McfaultException.
package dev.mcfault;

import java.util.List;

/**
 * A rule change was refused (400 or 409): the document had problems, a name was taken, or
 * there is no rule file to reload. Nothing changed; {@link #problems()} says why, each {@code
 * body:LINE:COL: ...}.
 */
public class RuleRejectedException extends McfaultException {
    private static final long serialVersionUID = 1L;

    public RuleRejectedException(String what, int status, String error, List<String> problems) {
        super(what, status, error, problems);
    }
}
