/* Unit tests of the claim scheduler (lib/schedule.c): which claim runs next and how many
 * rows it may lease, from the engine's state: the order of the claims, failing claims
 * skipped, room ahead of the in-flight window, claims waiting for the answers to pause,
 * backpressure, the breaker's probe. */
#include "autoconfig.h"

#include "schedule.h"
#include "testutil.h"

#include <check.h>

/* An idle engine with room, breaker closed, nothing waiting out a failure, and what
 * it wants. */
#define ROOM .usable = true, .batch_size = 10
#define IDLE ROOM, .breaker_closed = true
#define ALL_WANTED .want_due = true, .want_requests = true, .want_scan = true

/* The scheduler's choices (lib/schedule.c), one situation per row. */
static const struct {
	const char *what;
	struct sched_state state;
	enum sched_claim claim;
	int room;
	bool deferred; /* a claim waits for the answers to pause */
} choices[] = {
    {"nothing wanted", {IDLE}, SCHED_NONE, 0, false},
    {"everything wanted: due first", {IDLE, ALL_WANTED, .notified = 3}, SCHED_DUE, 10, false},
    {"then requests",
     {IDLE, .want_requests = true, .want_scan = true, .notified = 3},
     SCHED_REQUESTS,
     10,
     false},
    {"notified orders before the scan",
     {IDLE, .want_scan = true, .notified = 3},
     SCHED_TARGETED,
     10,
     false},
    {"then the scan", {IDLE, .want_scan = true}, SCHED_SCAN, 10, false},
    {"failing claims wait, the others go on",
     {IDLE, ALL_WANTED, .notified = 1,
      .waiting = {[SCHED_DUE] = true, [SCHED_REQUESTS] = true, [SCHED_SCAN] = true}},
     SCHED_TARGETED,
     10,
     false},
    {"all waiting",
     {IDLE, ALL_WANTED, .notified = 1, .waiting = {true, true, true, true}},
     SCHED_NONE,
     0,
     false},
    {"room is the batch beyond the queue",
     {IDLE, .want_scan = true, .queued = 4},
     SCHED_SCAN,
     6,
     false},
    {"claims in batches: half the queue must go out first",
     {IDLE, .want_scan = true, .queued = 6, .inflight = true},
     SCHED_NONE,
     0,
     false},
    {"no room", {IDLE, .want_scan = true, .queued = 12}, SCHED_NONE, 0, false},
    /* claims run ahead of the window: a batch beyond a whole window stays claimed */
    {"a window and a batch ahead: a whole batch",
     {IDLE, .want_scan = true, .max_inflight = 20, .inflight = true, .queued = 15},
     SCHED_SCAN,
     10,
     false},
    {"ahead: a whole batch once half a batch has room",
     {IDLE, .want_scan = true, .max_inflight = 20, .inflight = true, .queued = 25},
     SCHED_SCAN,
     10,
     false},
    {"ahead: less than half a batch waits",
     {IDLE, .want_scan = true, .max_inflight = 20, .inflight = true, .queued = 26},
     SCHED_NONE,
     0,
     false},
    {"ahead: nothing in flight, any room",
     {IDLE, .want_scan = true, .max_inflight = 20, .queued = 26},
     SCHED_SCAN,
     4,
     false},
    {"ahead: full",
     {IDLE, .want_scan = true, .max_inflight = 20, .queued = 30},
     SCHED_NONE,
     0,
     false},
    /* a window that took rows from the queue while the last claim ran keeps as many
     * more claimed (at most a batch more), in whole batches */
    {"lead: that much more stays claimed, a whole batch at a time",
     {IDLE, .want_scan = true, .max_inflight = 20, .inflight = true, .queued = 30, .lead = 6},
     SCHED_SCAN,
     10,
     false},
    {"lead: less than half a batch of room waits",
     {IDLE, .want_scan = true, .max_inflight = 20, .inflight = true, .queued = 32, .lead = 6},
     SCHED_NONE,
     0,
     false},
    {"lead: at most a batch more",
     {IDLE, .want_scan = true, .max_inflight = 20, .inflight = true, .queued = 35, .lead = 50},
     SCHED_SCAN,
     10,
     false},
    {"lead: beyond a batch more, full",
     {IDLE, .want_scan = true, .max_inflight = 20, .inflight = true, .queued = 36, .lead = 50},
     SCHED_NONE,
     0,
     false},
    {"lead, nothing in flight: the rest",
     {IDLE, .want_scan = true, .max_inflight = 20, .queued = 36, .lead = 7},
     SCHED_SCAN,
     1,
     false},
    /* an idle start claims at most the window, its requests leave sooner */
    {"idle start: at most the window",
     {IDLE, .want_scan = true, .max_inflight = 4},
     SCHED_SCAN,
     4,
     false},
    {"idle start, notified orders: at most the window",
     {IDLE, .notified = 30, .max_inflight = 4},
     SCHED_TARGETED,
     4,
     false},
    {"not idle: outcomes held, a batch",
     {IDLE, .want_scan = true, .max_inflight = 4, .outcomes_held = 1},
     SCHED_SCAN,
     10,
     false},
    {"not idle: rows queued, up to a batch",
     {IDLE, .want_scan = true, .max_inflight = 4, .queued = 1},
     SCHED_SCAN,
     10,
     false},
    /* while answers arrive a claim waits for them to pause, as long as the queue holds a
     * batch beyond the lead */
    {"answers arriving, a batch queued: the claim waits for a pause",
     {IDLE, .want_scan = true, .max_inflight = 20, .inflight = true, .answering = true,
      .queued = 10},
     SCHED_NONE,
     0,
     true},
    {"answers arriving, less than a batch queued: the claim goes",
     {IDLE, .want_scan = true, .max_inflight = 20, .inflight = true, .answering = true,
      .queued = 9},
     SCHED_SCAN,
     10,
     false},
    {"answers paused, a batch queued: the claim goes",
     {IDLE, .want_scan = true, .max_inflight = 20, .inflight = true, .queued = 10},
     SCHED_SCAN,
     10,
     false},
    {"answers arriving, a batch beyond the lead queued: waits",
     {IDLE, .notified = 5, .max_inflight = 20, .inflight = true, .answering = true, .queued = 16,
      .lead = 6},
     SCHED_NONE,
     0,
     true},
    {"answers arriving, less than a batch beyond the lead: goes",
     {IDLE, .notified = 5, .max_inflight = 20, .inflight = true, .answering = true, .queued = 15,
      .lead = 6},
     SCHED_TARGETED,
     10,
     false},
    {"answers arriving, a window under half a batch: claims as usual",
     {IDLE, .want_scan = true, .max_inflight = 4, .inflight = true, .answering = true, .queued = 9},
     SCHED_SCAN,
     10,
     false},
    {"answers arriving, nothing wanted: nothing waits",
     {IDLE, .max_inflight = 20, .inflight = true, .answering = true, .queued = 10},
     SCHED_NONE,
     0,
     false},
    {"answers arriving, no room: nothing waits",
     {IDLE, .want_scan = true, .max_inflight = 20, .inflight = true, .answering = true,
      .queued = 26},
     SCHED_NONE,
     0,
     false},
    {"backpressure: outcomes cannot be written",
     {IDLE, .want_scan = true, .outcomes_blocked = true},
     SCHED_NONE,
     0,
     false},
    {"backpressure: two writes of a window and a batch held",
     {IDLE, .want_scan = true, .max_inflight = 20, .outcomes_held = 60},
     SCHED_NONE,
     0,
     false},
    {"held outcomes: fewer than two writes' worth",
     {IDLE, .want_scan = true, .max_inflight = 20, .outcomes_held = 59},
     SCHED_SCAN,
     10,
     false},
    {"a claim running, draining or no database",
     {.breaker_closed = true, .batch_size = 10, .want_scan = true},
     SCHED_NONE,
     0,
     false},
    {"breaker open, pause not over",
     {ROOM, .want_scan = true, .want_due = true},
     SCHED_NONE,
     0,
     false},
    {"breaker open, pause over: one probe",
     {ROOM, .want_scan = true, .want_due = true, .probe_due = true},
     SCHED_PROBE,
     1,
     false},
    {"probe only with an empty queue",
     {ROOM, .want_scan = true, .want_due = true, .probe_due = true, .queued = 1},
     SCHED_NONE,
     0,
     false},
    {"probe claim waiting out a failure",
     {ROOM, .want_scan = true, .want_due = true, .probe_due = true,
      .waiting = {[SCHED_DUE] = true}},
     SCHED_NONE,
     0,
     false},
};

/* Each row: the claim and the room the scheduler picks. */
START_TEST(scheduler_choices)
{
	struct sched_choice c = sched_next(&choices[_i].state);
	ck_assert_msg(c.claim == choices[_i].claim && c.room == choices[_i].room &&
	                  c.deferred == choices[_i].deferred,
	              "%s: got %s/%d%s, want %s/%d%s", choices[_i].what, sched_claim_name(c.claim),
	              c.room, c.deferred ? " deferred" : "", sched_claim_name(choices[_i].claim),
	              choices[_i].room, choices[_i].deferred ? " deferred" : "");
}
END_TEST

/* The wait for an outcome write: half the answer time, within 2 and 30 ms. */
START_TEST(flush_delay_follows_the_answer_time)
{
	ck_assert_int_eq(sched_flush_delay_us(0), SCHED_FLUSH_MIN_US);
	ck_assert_int_eq(sched_flush_delay_us(1000), SCHED_FLUSH_MIN_US);
	ck_assert_int_eq(sched_flush_delay_us(20000), 10000);
	ck_assert_int_eq(sched_flush_delay_us(50000), 25000);
	ck_assert_int_eq(sched_flush_delay_us(500000), SCHED_FLUSH_MAX_US);
	/* the average starts at the first answer and moves an eighth of the way */
	ck_assert_int_eq(sched_latency_avg(0, 50000), 50000);
	ck_assert_int_eq(sched_latency_avg(50000, 58000), 51000);
	ck_assert_int_eq(sched_latency_avg(50000, 42000), 49000);
	ck_assert_int_eq(sched_latency_avg(50000, -5), 50000 - 50000 / 8);
	int64_t avg = 0;
	for (int i = 0; i < 100; i++)
		avg = sched_latency_avg(avg, i < 50 ? 500000 : 1000);
	ck_assert_int_lt(avg, 2000);
}
END_TEST

/* How long the answers count as arriving after one: a tenth of the answer time, within
 * 2 and 50 ms. */
START_TEST(pause_follows_the_answer_time)
{
	ck_assert_int_eq(sched_pause_us(0), SCHED_PAUSE_MIN_US);
	ck_assert_int_eq(sched_pause_us(10000), SCHED_PAUSE_MIN_US);
	ck_assert_int_eq(sched_pause_us(50000), 5000);
	ck_assert_int_eq(sched_pause_us(250000), 25000);
	ck_assert_int_eq(sched_pause_us(500000), SCHED_PAUSE_MAX_US);
	ck_assert_int_eq(sched_pause_us(90000000), SCHED_PAUSE_MAX_US);
}
END_TEST

/* The next claims' lead: what the window took while the last claim ran, a whole batch
 * when the queue ran dry with room in the window meanwhile. */
START_TEST(lead_of_a_starved_claim_is_a_batch)
{
	ck_assert_uint_eq(sched_lead(300, false, 512), 300);
	ck_assert_uint_eq(sched_lead(700, false, 512), 700);
	ck_assert_uint_eq(sched_lead(300, true, 512), 512);
	ck_assert_uint_eq(sched_lead(0, true, 512), 512);
	ck_assert_uint_eq(sched_lead(40, true, 0), 40);
	/* batch 10, window 20, 31 rows queued: after a claim that took 4 the next waits
	 * (too little room), after a starved one it claims a whole batch */
	struct sched_state s = {IDLE,
	                        .want_scan = true,
	                        .max_inflight = 20,
	                        .inflight = true,
	                        .queued = 31,
	                        .lead = sched_lead(4, false, 10)};
	ck_assert_int_eq(sched_next(&s).claim, SCHED_NONE);
	s.lead = sched_lead(4, true, 10);
	ck_assert_int_eq(sched_next(&s).claim, SCHED_SCAN);
	ck_assert_int_eq(sched_next(&s).room, 10);
}
END_TEST

/* The claims' names, as logs and alerts write them. */
START_TEST(claim_names)
{
	static const char *const names[] = {"due", "requests", "targeted", "scan", "probe", "none"};
	for (int k = SCHED_DUE; k <= SCHED_NONE; k++)
		ck_assert_str_eq(sched_claim_name((enum sched_claim)k), names[k]);
	ck_assert_str_eq(sched_claim_name((enum sched_claim)99), "none");
}
END_TEST

/* Builds the suite. */
static Suite *sched_suite(void)
{
	Suite *s = suite_create("sched");
	TCase *tc =
	    testutil_tcase(s, "sched", 60,
	                   (const TTest *const[]){claim_names, flush_delay_follows_the_answer_time,
	                                          pause_follows_the_answer_time,
	                                          lead_of_a_starved_claim_is_a_batch, NULL});
	tcase_add_loop_test(tc, scheduler_choices, 0, (int)(sizeof(choices) / sizeof(choices[0])));
	return s;
}

int main(void)
{
	return testutil_run_suite(sched_suite(), CK_NORMAL);
}
