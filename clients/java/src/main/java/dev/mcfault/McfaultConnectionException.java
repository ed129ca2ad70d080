// A call that got no HTTP reply; see McfaultException.
package dev.mcfault;

/**
 * The admin API could not be reached: connection refused, reset or closed before a reply
 * (status 0).
 */
public class McfaultConnectionException extends McfaultException {
    private static final long serialVersionUID = 1L;

    public McfaultConnectionException(String message, Throwable cause) {
        super(message, cause);
    }
}
