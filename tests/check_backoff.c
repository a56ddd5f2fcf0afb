/* Unit tests of the retry schedule (lib/backoff.c): jitter bounds, growth and cap, attempts,
 * deadlines, Retry-After, the random source. */
#include "autoconfig.h"

#include "backoff.h"
#include "testutil.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct backoff_policy policy = {
    .base_ms = 1000, .max_ms = 60000, .max_attempts = 8, .deadline_margin_ms = 600000};

START_TEST(test_backoff_jitter_bounds)
{
	uint64_t rng = 12345;
	const int64_t now = INT64_C(1700000000000);
	int64_t ceiling = 1000;

	for (int attempts = 0; attempts < 8; attempts++) {
		int64_t lo = INT64_MAX, hi = -1;
		int bad = 0;
		for (int i = 0; i < 20000; i++) {
			int64_t next = -1;
			const char *why = NULL;
			/* counted rather than asserted one by one: Check's asserts are slow */
			if (backoff_next(&policy, attempts, now, 0, -1, testutil_rng(&rng), &next,
			                 &why) != BACKOFF_RETRY ||
			    why == NULL || strcmp(why, "backoff") != 0)
				bad++;
			if (next - now < lo)
				lo = next - now;
			if (next - now > hi)
				hi = next - now;
		}
		ck_assert_int_eq(bad, 0);
		ck_assert_int_ge(lo, 0);
		ck_assert_int_le(hi, ceiling);
		/* the whole window is used: full jitter, not "equal jitter" */
		ck_assert_int_lt(lo, ceiling / 20 + 1);
		ck_assert_int_gt(hi, ceiling - ceiling / 20 - 1);
		ceiling = ceiling * 2 > 60000 ? 60000 : ceiling * 2;
	}
}
END_TEST

START_TEST(test_backoff_growth_and_cap)
{
	static const struct {
		int attempts;
		int64_t ceiling;
	} cases[] = {{0, 1000},
	             {1, 2000},
	             {2, 4000},
	             {3, 8000},
	             {4, 16000},
	             {5, 32000},
	             {6, 60000},
	             {7, 60000},
	             {62, 60000},
	             {63, 60000},
	             {64, 60000},
	             {1000, 60000},
	             {INT32_MAX - 1, 60000}};
	struct backoff_policy p = policy;
	int64_t next;

	p.max_attempts = INT32_MAX;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* random == ceiling gives the top of the window, ceiling + 1 wraps to 0 */
		ck_assert_int_eq(backoff_next(&p, cases[i].attempts, 0, 0, -1,
		                              (uint64_t)cases[i].ceiling, &next, NULL),
		                 BACKOFF_RETRY);
		ck_assert_int_eq(next, cases[i].ceiling);
		ck_assert_int_eq(backoff_next(&p, cases[i].attempts, 0, 0, -1,
		                              (uint64_t)cases[i].ceiling + 1, &next, NULL),
		                 BACKOFF_RETRY);
		ck_assert_int_eq(next, 0);
		ck_assert_int_eq(
		    backoff_next(&p, cases[i].attempts, 0, 0, -1, UINT64_MAX, &next, NULL),
		    BACKOFF_RETRY);
		ck_assert_int_le(next, cases[i].ceiling);
	}
	/* huge base and max do not overflow */
	p.base_ms = INT64_MAX / 3;
	p.max_ms = INT64_MAX;
	ck_assert_int_eq(backoff_next(&p, 5, 0, 0, -1, UINT64_MAX, &next, NULL), BACKOFF_RETRY);
	ck_assert_int_ge(next, 0);
	ck_assert_int_eq(
	    backoff_next(&p, 5, INT64_C(1700000000000), 0, -1, (uint64_t)INT64_MAX, &next, NULL),
	    BACKOFF_RETRY);
	ck_assert_int_eq(next, INT64_MAX);
}
END_TEST

START_TEST(test_backoff_attempts)
{
	int64_t next = 0;
	const char *why = NULL;

	ck_assert_int_eq(backoff_next(&policy, 7, 1000, 0, -1, 5, &next, &why), BACKOFF_RETRY);
	ck_assert_int_eq(next, 1005);
	ck_assert_int_eq(backoff_next(&policy, 8, 1000, 0, -1, 5, &next, &why), BACKOFF_GIVE_UP);
	ck_assert_str_eq(why, "retries exhausted");
	ck_assert_int_eq(next, -1);
	ck_assert_int_eq(backoff_next(&policy, 9, 1000, 0, 7000, 5, &next, &why), BACKOFF_GIVE_UP);
	ck_assert_str_eq(why, "retries exhausted");
}
END_TEST

START_TEST(test_backoff_deadline)
{
	const int64_t now = INT64_C(1700000000000);
	const int64_t deadline = now + 700000; /* margin 600 s: latest attempt now + 100 s */
	int64_t next;
	const char *why;

	/* well before the deadline: untouched */
	ck_assert_int_eq(backoff_next(&policy, 6, now, deadline, -1, 59999, &next, &why),
	                 BACKOFF_RETRY);
	ck_assert_int_eq(next, now + 59999);
	ck_assert_str_eq(why, "backoff");
	/* would land past deadline - margin: pulled in */
	ck_assert_int_eq(backoff_next(&policy, 6, now + 90000, deadline, -1, 59999, &next, &why),
	                 BACKOFF_RETRY);
	ck_assert_int_eq(next, now + 100000);
	ck_assert_str_eq(why, "deadline pull-in");
	/* already inside the margin: try at once */
	ck_assert_int_eq(backoff_next(&policy, 6, now + 650000, deadline, -1, 59999, &next, &why),
	                 BACKOFF_RETRY);
	ck_assert_int_eq(next, now + 650000);
	ck_assert_str_eq(why, "deadline pull-in");
	/* a Retry-After beyond the deadline is pulled in too */
	ck_assert_int_eq(backoff_next(&policy, 0, now, deadline, 3600000, 0, &next, &why),
	                 BACKOFF_RETRY);
	ck_assert_int_eq(next, now + 100000);
	/* at or past the deadline: give up */
	ck_assert_int_eq(backoff_next(&policy, 1, deadline, deadline, -1, 0, &next, &why),
	                 BACKOFF_GIVE_UP);
	ck_assert_str_eq(why, "authorization deadline passed");
	ck_assert_int_eq(backoff_next(&policy, 1, deadline + 1, deadline, -1, 0, &next, &why),
	                 BACKOFF_GIVE_UP);
	/* no deadline: no pull-in */
	ck_assert_int_eq(backoff_next(&policy, 6, now + 650000, 0, -1, 59999, &next, &why),
	                 BACKOFF_RETRY);
	ck_assert_int_eq(next, now + 650000 + 59999);
}
END_TEST

START_TEST(test_backoff_retry_after)
{
	int64_t next;
	const char *why;

	/* Retry-After raises a short jitter */
	ck_assert_int_eq(backoff_next(&policy, 0, 1000, 0, 7000, 10, &next, &why), BACKOFF_RETRY);
	ck_assert_int_eq(next, 8000);
	ck_assert_str_eq(why, "retry-after");
	/* and is honoured beyond max_ms, up to one hour */
	ck_assert_int_eq(backoff_next(&policy, 0, 1000, 0, 600000, 10, &next, &why), BACKOFF_RETRY);
	ck_assert_int_eq(next, 601000);
	ck_assert_int_eq(backoff_next(&policy, 0, 1000, 0, 86400000, 10, &next, &why),
	                 BACKOFF_RETRY);
	ck_assert_int_eq(next, 1000 + 3600000);
	/* a longer jitter wins over a short Retry-After */
	ck_assert_int_eq(backoff_next(&policy, 5, 1000, 0, 100, 30000, &next, &why), BACKOFF_RETRY);
	ck_assert_int_eq(next, 31000);
	ck_assert_str_eq(why, "backoff");
	/* Retry-After: 0 means no minimum */
	ck_assert_int_eq(backoff_next(&policy, 0, 1000, 0, 0, 0, &next, &why), BACKOFF_RETRY);
	ck_assert_int_eq(next, 1000);
}
END_TEST

START_TEST(test_backoff_random_source)
{
	uint64_t sum_low = 0;
	const int n = 20000;
	uint64_t a = backoff_random(), b = backoff_random();

	ck_assert(a != b);
	/* uniform enough: the mean of a 0..1000 window is near 500 */
	for (int i = 0; i < n; i++) {
		int64_t next = 0;
		if (backoff_next(&policy, 0, 0, 0, -1, backoff_random(), &next, NULL) !=
		        BACKOFF_RETRY ||
		    next < 0 || next > 1000)
			ck_abort_msg("out of the window: %lld", (long long)next);
		sum_low += (uint64_t)next;
	}
	ck_assert_int_gt(sum_low / (uint64_t)n, 450);
	ck_assert_int_lt(sum_low / (uint64_t)n, 550);
}
END_TEST

/* Builds the suite. */
static Suite *backoff_suite(void)
{
	Suite *s = suite_create("backoff");
	testutil_tcase(s, "backoff", 60,
	               (const TTest *const[]){test_backoff_jitter_bounds,
	                                      test_backoff_growth_and_cap, test_backoff_attempts,
	                                      test_backoff_deadline, test_backoff_retry_after,
	                                      test_backoff_random_source, NULL});
	return s;
}

int main(void)
{
	return testutil_run_suite(backoff_suite(), CK_NORMAL);
}
