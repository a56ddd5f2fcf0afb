/* Unit tests of the status calls' rate cap (lib/status_call.c): the gap between two calls. */
#include "autoconfig.h"

#include "status_call.h"
#include "testutil.h"

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* The gap for a cap, and that the number of calls the gateway can see arrive in one
 * second stays within the cap even when one call arrives up to 4% of a gap late. */
START_TEST(test_gap_keeps_the_cap_with_jitter)
{
	static const struct {
		int per_second;
		int64_t gap_ms;
	} cases[] = {{0, 1050}, {1, 1050}, {2, 525},  {3, 350}, {5, 210},
	             {7, 150},  {50, 21},  {100, 10}, {999, 2}, {1000, 1}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t gap = status_call_gap_ms(cases[i].per_second);
		ck_assert_msg(gap == cases[i].gap_ms, "%d per second: gap %lld, not %lld",
		              cases[i].per_second, (long long)gap, (long long)cases[i].gap_ms);
		int cap = cases[i].per_second < 1 ? 1 : cases[i].per_second;
		/* cap + 1 calls sent a gap apart span cap gaps; the first one late by 4% of that
		 * still leaves them more than a second apart (at up to 50 per second: above,
		 * the gap's whole milliseconds leave less room) */
		if (cap <= 50)
			ck_assert_int_ge(cap * gap - (cap * gap) / 25, 1000);
	}
}
END_TEST

/* The suite. */
static Suite *status_call_suite(void)
{
	Suite *s = suite_create("status_call");
	testutil_tcase(s, "gap", 0,
	               (const TTest *const[]){test_gap_keeps_the_cap_with_jitter, NULL});
	return s;
}

int main(void)
{
	return testutil_run_suite(status_call_suite(), CK_NORMAL);
}
