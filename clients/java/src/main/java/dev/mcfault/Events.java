// The reply of GET /events: the faults that fired since a sequence number.
package dev.mcfault;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * What {@code GET /events?since=N} answered.
 *
 * @param last   the newest sequence number handed out: pass it as {@code since} next time
 * @param events the events after {@code since} that are still remembered (the last 1,024),
 *               oldest first
 */
public record Events(long last, List<Event> events) {
    public Events {
        events = List.copyOf(events);
    }

    static Events fromReply(Map<String, Object> m) {
        List<Event> events = new ArrayList<>();
        for (Map<String, Object> e : Wire.objects(m, "events")) {
            events.add(Event.fromReply(e));
        }
        return new Events(Wire.lng(m, "last"), events);
    }
}
