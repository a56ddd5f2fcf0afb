/* lib/duration: the one duration formatter, in its three forms, and the exact form read
 * back by the configuration's parser. */
#include "autoconfig.h"

#include "config.h"
#include "duration.h"
#include "testutil.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define S INT64_C(1000)
#define M (60 * S)
#define H (60 * M)
#define D (24 * H)

/* One case: milliseconds, the form, the text. */
static const struct {
	int64_t ms;
	enum duration_form form;
	const char *want;
} cases[] = {
    /* the configuration's form: the largest unit that divides exactly, up to days */
    {0, DURATION_EXACT, "0s"},
    {1500, DURATION_EXACT, "1500ms"},
    {45 * S, DURATION_EXACT, "45s"},
    {5 * M, DURATION_EXACT, "5m"},
    {90 * M, DURATION_EXACT, "90m"},
    {24 * H, DURATION_EXACT, "1d"},
    {36 * H, DURATION_EXACT, "36h"},
    {366 * D, DURATION_EXACT, "366d"},
    {-5 * S, DURATION_EXACT, "-5s"},
    {INT64_MAX, DURATION_EXACT, "9223372036854775807ms"},
    /* labels: the same up to hours */
    {24 * H, DURATION_EXACT_HOURS, "24h"},
    {4 * H, DURATION_EXACT_HOURS, "4h"},
    {90 * M, DURATION_EXACT_HOURS, "90m"},
    {45 * S, DURATION_EXACT_HOURS, "45s"},
    {1500, DURATION_EXACT_HOURS, "1500ms"},
    {366 * D, DURATION_EXACT_HOURS, "8784h"},
    /* people's form: whole seconds, two units at most, rounded toward zero */
    {0, DURATION_HUMAN, "0s"},
    {999, DURATION_HUMAN, "0s"},
    {45 * S + 999, DURATION_HUMAN, "45s"},
    {12 * M + 5 * S, DURATION_HUMAN, "12m 5s"},
    {60 * M - S, DURATION_HUMAN, "59m 59s"},
    {60 * M, DURATION_HUMAN, "1h"},
    {3 * H + 20 * M + 59 * S, DURATION_HUMAN, "3h 20m"},
    {24 * H, DURATION_HUMAN, "24h"},
    {47 * H + 59 * M, DURATION_HUMAN, "47h 59m"},
    {48 * H, DURATION_HUMAN, "2d"},
    {2 * D + 4 * H + 30 * M, DURATION_HUMAN, "2d 4h"},
    {-(12 * M + 5 * S), DURATION_HUMAN, "-12m 5s"},
    {-999, DURATION_HUMAN, "0s"},
    {INT64_MIN, DURATION_HUMAN, "-106751991167d 7h"},
};

START_TEST(duration_forms)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[DURATION_TEXT_SIZE];
		const char *got = duration_format(cases[i].ms, cases[i].form, out);
		ck_assert_ptr_eq(got, out);
		ck_assert_msg(strcmp(got, cases[i].want) == 0,
		              "case %zu (%lld ms): got %s, want %s", i, (long long)cases[i].ms, got,
		              cases[i].want);
	}
}
END_TEST

START_TEST(exact_form_reads_back)
{
	const int64_t values[] = {0, 1, 999, S, 61 * S, M, H, D, 7 * D, 24 * H + 1, INT64_MAX};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char out[DURATION_TEXT_SIZE];
		int64_t back = -1;
		const char *why = NULL;
		duration_format(values[i], DURATION_EXACT, out);
		ck_assert_msg(config_parse_duration(out, &back, &why), "%s: %s", out, why);
		ck_assert_int_eq(back, values[i]);
	}
}
END_TEST

static Suite *duration_suite(void)
{
	Suite *s = suite_create("duration");
	TCase *tc = tcase_create("format");
	tcase_add_test(tc, duration_forms);
	tcase_add_test(tc, exact_form_reads_back);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(duration_suite(), CK_NORMAL);
}
