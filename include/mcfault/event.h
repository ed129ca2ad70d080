/*
 * The event sink: one record per fault that fires, written once and fed
 * to every reader: the -v log line, the --event-log JSON line, the
 * /events ring of the admin API, and the fault counters.
 */
#ifndef MCFAULT_EVENT_H
#define MCFAULT_EVENT_H

#include "mcfault/rules.h"

/*
 * Records that rule r fired on connection conn of proxy for the command s
 * describes. Counts it always; builds the record only when something
 * reads it.
 */
void event_fault(const char *proxy, int conn, const struct rule *r,
                 const struct rules_subject *s);

#endif
