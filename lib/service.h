/* The service manager's view of the daemon: sd_notify READY/STATUS/RELOADING/STOPPING and
 * the watchdog, pinged from the event loop. A no-op without libsystemd or NOTIFY_SOCKET. */
#ifndef SP_SERVICE_H
#define SP_SERVICE_H

#include <event2/event.h>

struct engine;
struct service; /* opaque */

/* Starts the watchdog and status timers when the service manager asks for them. */
struct service *service_new(struct event_base *base, const struct engine *engine);
void service_free(struct service *s);
/* READY=1 with a status line (also after a reload). */
void service_ready(struct service *s);
void service_reloading(struct service *s);
void service_stopping(struct service *s);

#endif
