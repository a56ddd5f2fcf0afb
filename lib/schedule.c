#include "autoconfig.h"

#include "schedule.h"

const char *sched_claim_name(enum sched_claim c)
{
	static const char *const names[] = {"due", "requests", "targeted", "scan", "probe", "none"};
	return c >= SCHED_DUE && c <= SCHED_NONE ? names[c] : "none";
}

/* The room for a claim while sending as usual: a batch beyond what the queue holds,
 * once half the queue has gone out (or when idle); none under backpressure. */
static int sched_room(const struct sched_state *s)
{
	if (s->outcomes_blocked)
		return 0;
	if (s->queued > (size_t)(s->batch_size / 2) && s->inflight)
		return 0;
	int room = s->batch_size - (int)s->queued;
	return room < 0 ? 0 : room;
}

struct sched_choice sched_next(const struct sched_state *s)
{
	struct sched_choice none = {SCHED_NONE, 0};
	if (!s->usable)
		return none;
	if (!s->breaker_closed) {
		if (s->probe_due && s->queued == 0 && !s->waiting[SCHED_DUE])
			return (struct sched_choice){SCHED_PROBE, 1};
		return none;
	}
	int room = sched_room(s);
	if (room <= 0)
		return none;
	if (s->want_due && !s->waiting[SCHED_DUE])
		return (struct sched_choice){SCHED_DUE, room};
	if (s->want_requests && !s->waiting[SCHED_REQUESTS])
		return (struct sched_choice){SCHED_REQUESTS, room};
	/* notified orders before the scan: a scan's page may never reach them */
	if (s->notified > 0 && !s->waiting[SCHED_TARGETED])
		return (struct sched_choice){SCHED_TARGETED, room};
	if (s->want_scan && !s->waiting[SCHED_SCAN])
		return (struct sched_choice){SCHED_SCAN, room};
	return none;
}
