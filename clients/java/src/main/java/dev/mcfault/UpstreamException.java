// One kind of error reply from the admin API; see McfaultException.
package dev.mcfault;

import java.util.List;

/**
 * 502 or 504 from {@code /upstream/command} or {@code /upstream/stats}: mcfault could not
 * reach its memcached, memcached closed the connection, or it did not answer in time.
 */
public class UpstreamException extends McfaultException {
    private static final long serialVersionUID = 1L;

    public UpstreamException(String what, int status, String error, List<String> problems) {
        super(what, status, error, problems);
    }
}
