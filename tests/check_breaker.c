/* Unit tests of the credentials circuit breaker (lib/breaker.c): episodes and their one
 * alert, the pause and its doubling up to the cap, probes claimed, unsent, failed and
 * rejected, reloads. */
#include "autoconfig.h"

#include "breaker.h"
#include "testutil.h"

#include <check.h>

/* The breaker's transitions (lib/breaker.c). */
START_TEST(breaker_transitions)
{
	struct breaker b = {0};
	ck_assert(breaker_may_send(&b));
	ck_assert(breaker_rejected(&b, 0, 1000, 600000));
	ck_assert_int_eq(b.state, BREAKER_OPEN);
	ck_assert_int_eq(b.until_ms, 1000 + BREAKER_FIRST_PAUSE_MS);
	ck_assert(!breaker_may_send(&b));
	/* more 401s of the same episode: no second alert, no earlier probe */
	ck_assert(!breaker_rejected(&b, 0, 2000, 600000));
	ck_assert(!breaker_probe_due(&b, 2000 + BREAKER_FIRST_PAUSE_MS - 1));
	ck_assert(breaker_probe_due(&b, 2000 + BREAKER_FIRST_PAUSE_MS));
	breaker_probe_claimed(&b);
	ck_assert(breaker_may_send(&b));
	ck_assert(!breaker_probe_due(&b, 99999999));
	/* the probe was a capture past its deadline, expired locally: the next probe at once */
	breaker_probe_unsent(&b, 50000, false);
	ck_assert_int_eq(b.state, BREAKER_OPEN);
	ck_assert(breaker_probe_due(&b, 50000));
	/* a rejected probe doubles the pause, up to the cap */
	breaker_probe_claimed(&b);
	ck_assert(!breaker_rejected(&b, 0, 60000, 50000));
	ck_assert_int_eq(b.pause_ms, 50000);
	ck_assert_int_eq(b.until_ms, 110000);
	/* a probe without any HTTP answer: again after the same pause */
	breaker_probe_claimed(&b);
	breaker_probe_failed(&b, 200000);
	ck_assert_int_eq(b.state, BREAKER_OPEN);
	ck_assert_int_eq(b.until_ms, 250000);
	/* a reload: probe at once, answers to the old credentials do not count */
	breaker_reload(&b, 210000);
	ck_assert(breaker_probe_due(&b, 210000));
	ck_assert(!breaker_rejected(&b, 0, 210001, 50000));
	ck_assert(!breaker_accepted(&b, 0));
	ck_assert(breaker_probe_due(&b, 210001));
	breaker_probe_claimed(&b);
	ck_assert(!breaker_rejected(&b, 1, 220000, 600000));
	ck_assert_int_eq(b.pause_ms, BREAKER_FIRST_PAUSE_MS);
	/* an accepted answer with the new credentials closes it; the next 401 is a new
	 * episode */
	ck_assert(breaker_accepted(&b, 1));
	ck_assert_int_eq(b.state, BREAKER_CLOSED);
	ck_assert(!breaker_accepted(&b, 1));
	ck_assert(breaker_rejected(&b, 1, 300000, 600000));
	/* nothing left to probe with: closed, the next real request tests the key */
	ck_assert(breaker_probe_due(&b, 300000 + BREAKER_FIRST_PAUSE_MS));
	breaker_probe_claimed(&b);
	breaker_probe_unsent(&b, 400000, true);
	ck_assert_int_eq(b.state, BREAKER_CLOSED);
	ck_assert(breaker_may_send(&b));
}
END_TEST

/* A rejected probe doubles the pause up to the cap; 401s to requests that are not the
 * probe keep the pause and push its end. */
START_TEST(pause_doubles_up_to_the_cap)
{
	static const struct {
		int64_t now_ms, pause_ms;
	} probes[] = {{30000, 60000}, {90000, 100000}, {190000, 100000}};
	struct breaker b = {0};
	ck_assert(breaker_rejected(&b, 0, 0, 100000));
	ck_assert_int_eq(b.pause_ms, BREAKER_FIRST_PAUSE_MS);
	ck_assert(!breaker_rejected(&b, 0, 10000, 100000));
	ck_assert_int_eq(b.pause_ms, BREAKER_FIRST_PAUSE_MS);
	ck_assert_int_eq(b.until_ms, 10000 + BREAKER_FIRST_PAUSE_MS);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		breaker_probe_claimed(&b);
		ck_assert(!breaker_rejected(&b, 0, probes[i].now_ms, 100000));
		ck_assert_int_eq(b.pause_ms, probes[i].pause_ms);
		ck_assert_int_eq(b.until_ms, probes[i].now_ms + probes[i].pause_ms);
	}
}
END_TEST

/* The timer looks again only while the breaker is open, at the end of the pause. */
START_TEST(wake_at_only_while_open)
{
	struct breaker b = {0};
	ck_assert_int_eq(breaker_wake_at(&b), 0);
	breaker_rejected(&b, 0, 1000, 600000);
	ck_assert_int_eq(breaker_wake_at(&b), 1000 + BREAKER_FIRST_PAUSE_MS);
	breaker_probe_claimed(&b);
	ck_assert_int_eq(breaker_wake_at(&b), 0);
	breaker_probe_failed(&b, 40000);
	ck_assert_int_eq(breaker_wake_at(&b), 40000 + BREAKER_FIRST_PAUSE_MS);
	ck_assert(breaker_accepted(&b, 0));
	ck_assert_int_eq(breaker_wake_at(&b), 0);
}
END_TEST

/* What happens to a probe means nothing when no probe is under way. */
START_TEST(probe_events_without_a_probe_change_nothing)
{
	struct breaker b = {0};
	breaker_probe_unsent(&b, 5000, false);
	breaker_probe_failed(&b, 5000);
	ck_assert_int_eq(b.state, BREAKER_CLOSED);
	ck_assert_int_eq(b.until_ms, 0);
	breaker_rejected(&b, 0, 1000, 600000);
	breaker_probe_unsent(&b, 2000, true);
	breaker_probe_failed(&b, 2000);
	ck_assert_int_eq(b.state, BREAKER_OPEN);
	ck_assert_int_eq(b.until_ms, 1000 + BREAKER_FIRST_PAUSE_MS);
	/* a reload of a closed breaker only moves the credentials on */
	struct breaker c = {0};
	breaker_reload(&c, 3000);
	ck_assert_int_eq(c.state, BREAKER_CLOSED);
	ck_assert_int_eq(c.epoch, 1);
	ck_assert(!breaker_rejected(&c, 0, 4000, 600000));
	ck_assert(breaker_may_send(&c));
}
END_TEST

/* Builds the suite. */
static Suite *breaker_suite(void)
{
	Suite *s = suite_create("breaker");
	testutil_tcase(s, "breaker", 60,
	               (const TTest *const[]){breaker_transitions, pause_doubles_up_to_the_cap,
	                                      wake_at_only_while_open,
	                                      probe_events_without_a_probe_change_nothing, NULL});
	return s;
}

int main(void)
{
	return testutil_run_suite(breaker_suite(), CK_NORMAL);
}
