#include "autoconfig.h"

#include "schedule.h"

const char *sched_claim_name(enum sched_claim c)
{
	static const char *const names[] = {"due", "requests", "targeted", "scan", "probe", "none"};
	return c >= SCHED_DUE && c <= SCHED_NONE ? names[c] : "none";
}

/* The batch size, none when unset. */
static size_t sched_batch(const struct sched_state *s)
{
	return s->batch_size > 0 ? (size_t)s->batch_size : 0;
}

/* A batch and a whole in-flight window. */
static size_t sched_batch_and_window(const struct sched_state *s)
{
	return sched_batch(s) + (size_t)(s->max_inflight > 0 ? s->max_inflight : 0);
}

/* The rows kept claimed ahead of the in-flight window: a batch, plus a whole window,
 * since every request in flight may be answered (and its slot refilled from the queue)
 * while the next claim runs, plus what the window took while the last claim ran (the
 * rows it will take again while the next one runs), at most another batch. */
static size_t sched_ahead(const struct sched_state *s)
{
	size_t lead = s->lead < sched_batch(s) ? s->lead : sched_batch(s);
	return sched_batch_and_window(s) + lead;
}

/* The outcomes held (queued or being written) beyond which nothing more is claimed: a
 * write under way and the next one behind it, each of a batch and a whole window (what
 * is answered while a batch is written). Fewer would stop the claims whenever one write
 * takes as long as a round of answers. */
static size_t sched_outcomes_max(const struct sched_state *s)
{
	return 2 * sched_batch_and_window(s);
}

/* An idle start: nothing in flight, queued or waiting to be written. */
static bool sched_idle_start(const struct sched_state *s)
{
	return !s->inflight && s->queued == 0 && s->outcomes_held == 0;
}

/* The room for a claim while sending as usual: up to a batch, filling the queue up to
 * what is kept ahead; while requests are in flight only once half a batch has room, and
 * then a whole batch (claims stay batches: a claim's fixed cost, its statements and
 * commit, is spread over as many rows as it may take); at an idle start at most the
 * window, so that its requests leave before a whole batch is recorded (the next claim
 * runs while they are in flight); none under backpressure. */
static int sched_room(const struct sched_state *s)
{
	if (s->outcomes_blocked || s->outcomes_held >= sched_outcomes_max(s))
		return 0;
	size_t ahead = sched_ahead(s);
	if (s->queued >= ahead)
		return 0;
	size_t room = ahead - s->queued;
	if (room > (size_t)s->batch_size)
		room = (size_t)s->batch_size;
	if (s->inflight && room < (size_t)(s->batch_size - s->batch_size / 2))
		return 0;
	if (s->inflight)
		room = (size_t)s->batch_size;
	if (sched_idle_start(s) && s->max_inflight > 0 && room > (size_t)s->max_inflight)
		room = (size_t)s->max_inflight;
	return (int)room;
}

/* A claim waits while answers are arriving and the queue still holds a batch beyond
 * what the window took during the last claim: its statements and intents would compete
 * for the CPU with the answers and the requests that refill the window (at 1,000 in
 * flight two claims of 512 ran inside every round of answers and stalled the refill),
 * and the queue covers the refill until the answers pause. Below that the claim goes at
 * once. A window smaller than half a batch claims only below that anyway (sched_room),
 * so nothing changes for it. */
static bool sched_waits_for_pause(const struct sched_state *s)
{
	size_t lead = s->lead < sched_batch(s) ? s->lead : sched_batch(s);
	return s->inflight && s->answering && s->queued >= sched_batch(s) + lead;
}

/* The claim of the given room, by the order of the claims: due rows, shop requests, the
 * notified orders, the scan; none when none is wanted or all wanted wait out a failure. */
static struct sched_choice sched_pick(const struct sched_state *s, int room)
{
	if (s->want_due && !s->waiting[SCHED_DUE])
		return (struct sched_choice){SCHED_DUE, room, false};
	if (s->want_requests && !s->waiting[SCHED_REQUESTS])
		return (struct sched_choice){SCHED_REQUESTS, room, false};
	/* notified orders before the scan: a scan's page may never reach them */
	if (s->notified > 0 && !s->waiting[SCHED_TARGETED])
		return (struct sched_choice){SCHED_TARGETED, room, false};
	if (s->want_scan && !s->waiting[SCHED_SCAN])
		return (struct sched_choice){SCHED_SCAN, room, false};
	return (struct sched_choice){SCHED_NONE, 0, false};
}

struct sched_choice sched_next(const struct sched_state *s)
{
	struct sched_choice none = {SCHED_NONE, 0, false};
	if (!s->usable)
		return none;
	if (!s->breaker_closed) {
		if (s->probe_due && s->queued == 0 && !s->waiting[SCHED_DUE])
			return (struct sched_choice){SCHED_PROBE, 1, false};
		return none;
	}
	int room = sched_room(s);
	if (room <= 0)
		return none;
	struct sched_choice c = sched_pick(s, room);
	if (c.claim != SCHED_NONE && sched_waits_for_pause(s))
		return (struct sched_choice){SCHED_NONE, 0, true};
	return c;
}

size_t sched_lead(size_t sent, bool starved, int batch_size)
{
	if (starved && batch_size > 0)
		return (size_t)batch_size;
	return sent;
}

/* The recent time of the gateway's answers (an exponentially weighted average). */
int64_t sched_latency_avg(int64_t avg_us, int64_t sample_us)
{
	if (sample_us < 0)
		sample_us = 0;
	if (avg_us <= 0)
		return sample_us;
	return avg_us + (sample_us - avg_us) / 8;
}

/* v within lo and hi. */
static int64_t clamp_us(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* How long an outcome waits for others to share its write: half the answer time,
 * within the bounds. */
int64_t sched_flush_delay_us(int64_t latency_avg_us)
{
	return clamp_us(latency_avg_us / 2, SCHED_FLUSH_MIN_US, SCHED_FLUSH_MAX_US);
}

/* How long after an answer the answers count as arriving still: a tenth of the answer
 * time, within the bounds. */
int64_t sched_pause_us(int64_t latency_avg_us)
{
	return clamp_us(latency_avg_us / 10, SCHED_PAUSE_MIN_US, SCHED_PAUSE_MAX_US);
}
