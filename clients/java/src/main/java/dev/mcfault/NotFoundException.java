// One kind of error reply from the admin API; see McfaultException.
package dev.mcfault;

import java.util.List;

/**
 * 404: no rule of that name, or {@code ?proxy=} names no proxy.
 */
public class NotFoundException extends McfaultException {
    private static final long serialVersionUID = 1L;

    public NotFoundException(String what, int status, String error, List<String> problems) {
        super(what, status, error, problems);
    }
}
