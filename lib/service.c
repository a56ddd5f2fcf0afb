#include "autoconfig.h"

#include "service.h"

#include "clock.h"
#include "engine.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

/* How often the STATUS= line is refreshed. */
#define STATUS_INTERVAL_S 5

struct service {
	const struct engine *engine;
	struct event *ev_watchdog;
	struct event *ev_status;
	bool stopping;
};

/* Sends one notification; silently nothing when not run by a service manager. */
static void service_notify(const char *text)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, text);
#else
	(void)text;
#endif
}

/* Sends STATUS= with the live counts. */
static void service_status(struct service *s)
{
	const struct engine_stats *st = engine_stats(s->engine);
	char line[256];
	snprintf(
	    line, sizeof(line),
	    "STATUS=%s; database %s; in flight %u; succeeded %llu, refused %llu, retries %llu, "
	    "needs attention %llu",
	    s->stopping          ? "draining"
	    : st->gateway_paused ? "paused: credentials rejected"
	                         : "running",
	    st->db_up ? "up" : "down", st->inflight, (unsigned long long)st->succeeded,
	    (unsigned long long)(st->refused + st->refused_locally),
	    (unsigned long long)st->retries, (unsigned long long)st->needs_attention);
	service_notify(line);
}

/* The watchdog ping runs on the loop, so a hung loop stops pinging and gets restarted. */
static void service_watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	service_notify("WATCHDOG=1");
}

static void service_status_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	service_status(arg);
}

struct service *service_new(struct event_base *base, const struct engine *engine)
{
	struct service *s = xcalloc(1, sizeof(*s));
	s->engine = engine;
#ifdef HAVE_SYSTEMD
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		/* ping at half the interval, as sd_watchdog_enabled(3) advises */
		struct timeval tv = {.tv_sec = (time_t)(usec / 2 / 1000000),
		                     .tv_usec = (suseconds_t)(usec / 2 % 1000000)};
		s->ev_watchdog = event_new(base, -1, EV_PERSIST, service_watchdog_cb, s);
		event_add(s->ev_watchdog, &tv);
	}
	if (getenv("NOTIFY_SOCKET")) {
		struct timeval tv = {.tv_sec = STATUS_INTERVAL_S, .tv_usec = 0};
		s->ev_status = event_new(base, -1, EV_PERSIST, service_status_cb, s);
		event_add(s->ev_status, &tv);
	}
#else
	(void)base;
#endif
	return s;
}

void service_free(struct service *s)
{
	if (s == NULL)
		return;
	if (s->ev_watchdog)
		event_free(s->ev_watchdog);
	if (s->ev_status)
		event_free(s->ev_status);
	free(s);
}

void service_ready(struct service *s)
{
	service_notify("READY=1");
	service_status(s);
}

void service_reloading(struct service *s)
{
	char line[64];
	snprintf(line, sizeof(line), "RELOADING=1\nMONOTONIC_USEC=%llu",
	         (unsigned long long)clock_mono_us());
	service_notify(line);
}

void service_stopping(struct service *s)
{
	s->stopping = true;
	service_notify("STOPPING=1");
	service_status(s);
}
