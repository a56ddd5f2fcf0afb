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

/* Builds the suite. */
static Suite *breaker_suite(void)
{
	Suite *s = suite_create("breaker");
	testutil_tcase(s, "breaker", 60, (const TTest *const[]){breaker_transitions, NULL});
	return s;
}

int main(void)
{
	return testutil_run_suite(breaker_suite(), CK_NORMAL);
}
