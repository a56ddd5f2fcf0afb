/* Unit tests of the claim scheduler (lib/schedule.c): which claim runs next and how many
 * rows it may lease, from the engine's state: the order of the claims, failing claims
 * skipped, room ahead of the in-flight window, backpressure, the breaker's probe. */
#include "autoconfig.h"

#include "schedule.h"
#include "testutil.h"

#include <check.h>

/* Asserts what the scheduler picks in state `s`. */
static void expect_pick(const char *what, struct sched_state s, enum sched_claim claim, int room)
{
	struct sched_choice c = sched_next(&s);
	ck_assert_msg(c.claim == claim && c.room == room, "%s: got %s/%d, want %s/%d", what,
	              sched_claim_name(c.claim), c.room, sched_claim_name(claim), room);
}

/* The scheduler's choices (lib/schedule.c), one situation per line. */
START_TEST(scheduler_choices)
{
	/* an idle engine with room, breaker closed, nothing waiting out a failure */
	const struct sched_state idle = {.usable = true, .breaker_closed = true, .batch_size = 10};
	struct sched_state s = idle;
	expect_pick("nothing wanted", s, SCHED_NONE, 0);
	s.want_scan = true;
	s.notified = 3;
	s.want_requests = true;
	s.want_due = true;
	expect_pick("everything wanted: due first", s, SCHED_DUE, 10);
	s.want_due = false;
	expect_pick("then requests", s, SCHED_REQUESTS, 10);
	s.want_requests = false;
	expect_pick("notified orders before the scan", s, SCHED_TARGETED, 10);
	s.notified = 0;
	expect_pick("then the scan", s, SCHED_SCAN, 10);

	s = idle;
	s.want_due = s.want_requests = s.want_scan = true;
	s.notified = 1;
	s.waiting[SCHED_DUE] = s.waiting[SCHED_REQUESTS] = s.waiting[SCHED_SCAN] = true;
	expect_pick("failing claims wait, the others go on", s, SCHED_TARGETED, 10);
	s.waiting[SCHED_TARGETED] = true;
	expect_pick("all waiting", s, SCHED_NONE, 0);

	s = idle;
	s.want_scan = true;
	s.queued = 4;
	expect_pick("room is the batch beyond the queue", s, SCHED_SCAN, 6);
	s.queued = 6;
	s.inflight = true;
	expect_pick("claims in batches: half the queue must go out first", s, SCHED_NONE, 0);
	s.queued = 12;
	s.inflight = false;
	expect_pick("no room", s, SCHED_NONE, 0);
	/* claims run ahead of the window: a batch beyond a whole window stays claimed */
	s = idle;
	s.want_scan = true;
	s.max_inflight = 20;
	s.inflight = true;
	s.queued = 15;
	expect_pick("a window and a batch ahead: a whole batch", s, SCHED_SCAN, 10);
	s.queued = 22;
	expect_pick("ahead: the rest up to a window and a batch", s, SCHED_SCAN, 8);
	s.queued = 26;
	expect_pick("ahead: less than half a batch waits", s, SCHED_NONE, 0);
	s.inflight = false;
	expect_pick("ahead: nothing in flight, any room", s, SCHED_SCAN, 4);
	s.queued = 30;
	expect_pick("ahead: full", s, SCHED_NONE, 0);
	s = idle;
	s.want_scan = true;
	s.outcomes_blocked = true;
	expect_pick("backpressure: outcomes cannot be written", s, SCHED_NONE, 0);
	s = idle;
	s.want_scan = true;
	s.usable = false;
	expect_pick("a claim running, draining or no database", s, SCHED_NONE, 0);

	s = idle;
	s.want_scan = s.want_due = true;
	s.breaker_closed = false;
	expect_pick("breaker open, pause not over", s, SCHED_NONE, 0);
	s.probe_due = true;
	expect_pick("breaker open, pause over: one probe", s, SCHED_PROBE, 1);
	s.queued = 1;
	expect_pick("probe only with an empty queue", s, SCHED_NONE, 0);
	s.queued = 0;
	s.waiting[SCHED_DUE] = true;
	expect_pick("probe claim waiting out a failure", s, SCHED_NONE, 0);
	ck_assert_str_eq(sched_claim_name(SCHED_TARGETED), "targeted");
}
END_TEST

/* Builds the suite. */
static Suite *sched_suite(void)
{
	Suite *s = suite_create("sched");
	testutil_tcase(s, "sched", 60, (const TTest *const[]){scheduler_choices, NULL});
	return s;
}

int main(void)
{
	return testutil_run_suite(sched_suite(), CK_NORMAL);
}
