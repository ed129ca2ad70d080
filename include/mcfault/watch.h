/*
 * Live rule files: notices when the rule file changes, without a signal.
 * inotify watches the file's directory (and the directory its symlinks end
 * in), so an editor's rename-on-save and Kubernetes' ConfigMap update (an
 * atomic swap of the "..data" symlink) are both seen.
 */
#ifndef MCFAULT_WATCH_H
#define MCFAULT_WATCH_H

#include <event2/event.h>

/* Events closer together than this are one change: an editor writes a
 * file in several steps, a ConfigMap update is several renames. */
#define WATCH_DEBOUNCE_MS 200

struct watch;

/*
 * Watches path in base: changed(arg) runs on the loop once the file's
 * content differs from what it was when last seen (WATCH_DEBOUNCE_MS after
 * the last event), never for a touch that changes nothing. A file that
 * cannot be read is logged once and watched on. Returns NULL with the
 * reason logged when inotify cannot be set up.
 */
struct watch *watch_create(struct event_base *base, const char *path,
                           void (*changed)(void *arg), void *arg);

/* Stops watching. NULL is allowed. */
void watch_destroy(struct watch *w);

#endif
