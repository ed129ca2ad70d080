// A call that got no HTTP reply; see McfaultException.
package dev.mcfault;

/**
 * No reply from the admin API within the client's timeout (status 0). The request may still
 * take effect.
 */
public class McfaultTimeoutException extends McfaultException {
    private static final long serialVersionUID = 1L;

    public McfaultTimeoutException(String message, Throwable cause) {
        super(message, cause);
    }
}
