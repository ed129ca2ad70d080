// The reply of POST /proxies/NAME/disable and /enable.
package dev.mcfault;

import java.util.Map;

/**
 * A proxy's state after {@link Mcfault#disableProxy} or
 * {@link Mcfault#enableProxy}.
 *
 * @param proxy   the proxy's name
 * @param enabled whether it listens now
 * @param listen  the address it listens on when enabled
 * @param closed  the client connections a disable closed (0 for an enable)
 */
public record ProxySwitch(String proxy, boolean enabled, String listen, long closed) {
    static ProxySwitch fromReply(Map<String, Object> m) {
        return new ProxySwitch(Wire.str(m, "proxy"), Wire.bool(m, "enabled"),
                Wire.str(m, "listen"), Wire.optLng(m, "closed", 0));
    }
}
