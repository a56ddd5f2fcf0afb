#include "autoconfig.h"

#include "money.h"
#include "testutil.h"

#include <check.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_exponents)
{
	static const struct {
		const char *code;
		int exponent;
	} cases[] = {
	    {"EUR", 2}, {"USD", 2}, {"GBP", 2}, {"CHF", 2}, {"SEK", 2}, {"JPY", 0}, {"KRW", 0},
	    {"CLP", 0}, {"ISK", 0}, {"VND", 0}, {"XOF", 0}, {"XAF", 0}, {"XPF", 0}, {"PYG", 0},
	    {"UGX", 0}, {"KWD", 3}, {"BHD", 3}, {"JOD", 3}, {"OMR", 3}, {"TND", 3}, {"IQD", 3},
	    {"LYD", 3}, {"CLF", 4}, {"UYW", 4}, {"UYI", 0}, {"SLE", 2}, {"VED", 2}, {"ZWG", 2},
	    {"XCG", 2}, {"AED", 2}, {"ZMW", 2}, {"XAD", 2},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(money_exponent(cases[i].code) == cases[i].exponent, "%s: got %d",
		              cases[i].code, money_exponent(cases[i].code));
}
END_TEST

START_TEST(test_unknown_currencies)
{
	static const char *const bad[] = {"",    "EU",  "EURO", "eur", "Eur", "XXX", "XTS",
	                                  "XAU", "XDR", "ABC",  "DEM", "FRF", "EU ", " EU"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(money_exponent(bad[i]) == -1, "'%s' accepted", bad[i]);
	ck_assert_int_eq(money_exponent(NULL), -1);

	int64_t v = 7;
	const char *why = NULL;
	ck_assert(!money_parse("1.00", "XXX", &v, &why));
	ck_assert_str_eq(why, "unknown currency");
	ck_assert_int_eq(v, 7);
	char out[MONEY_TEXT_MAX];
	ck_assert(!money_format(100, "eur", out));
}
END_TEST

/* Parses `text` and asserts the outcome. */
static void parse_ok(const char *text, const char *cur, int64_t expect)
{
	int64_t v = -12345;
	const char *why = "unset";
	ck_assert_msg(money_parse(text, cur, &v, &why), "'%s' %s refused: %s", text, cur, why);
	ck_assert_msg(v == expect, "'%s' %s: got %" PRId64 ", want %" PRId64, text, cur, v, expect);
}

static void parse_bad(const char *text, const char *cur, const char *reason)
{
	int64_t v = -12345;
	const char *why = NULL;
	ck_assert_msg(!money_parse(text, cur, &v, &why), "'%s' %s accepted as %" PRId64, text, cur,
	              v);
	ck_assert_msg(v == -12345, "'%s': output written on failure", text);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(strcmp(why, reason) == 0, "'%s' %s: reason '%s', want '%s'", text, cur, why,
	              reason);
}

START_TEST(test_parse_valid)
{
	parse_ok("40", "EUR", 4000);
	parse_ok("40.5", "EUR", 4050);
	parse_ok("40.00", "EUR", 4000);
	parse_ok("0.05", "EUR", 5);
	parse_ok("0", "EUR", 0);
	parse_ok("0.00", "EUR", 0);
	parse_ok("35.99", "EUR", 3599);
	parse_ok("1.000", "EUR", 100);    /* extra zeros are fine */
	parse_ok("007.10", "EUR", 710);   /* leading zeros do not count */
	parse_ok("1000.00", "JPY", 1000); /* numeric(18,2) text for a zero-exponent currency */
	parse_ok("500", "JPY", 500);
	parse_ok("0.0", "JPY", 0);
	parse_ok("1.234", "KWD", 1234);
	parse_ok("1.2", "KWD", 1200);
	parse_ok("1.23", "BHD", 1230);
	parse_ok("12", "CLP", 12);
	parse_ok("12.0000", "ISK", 12);
	parse_ok("1.2345", "CLF", 12345);
	/* 18 significant digits in minor units: the largest accepted amounts. */
	parse_ok("9999999999999999.99", "EUR", INT64_C(999999999999999999));
	parse_ok("999999999999999999", "JPY", INT64_C(999999999999999999));
	parse_ok("999999999999999.999", "KWD", INT64_C(999999999999999999));
	parse_ok("00000000000000000000000000001.00", "EUR", 100);
	parse_ok("0.000000000000000000000000", "EUR", 0);
}
END_TEST

START_TEST(test_parse_refused)
{
	parse_bad("1.005", "EUR", "more fraction digits than the currency has");
	parse_bad("1000.5", "JPY", "more fraction digits than the currency has");
	parse_bad("1.2345", "KWD", "more fraction digits than the currency has");
	parse_bad("-1", "EUR", "negative amount");
	parse_bad("-0.01", "EUR", "negative amount");
	parse_bad("+1", "EUR", "explicit sign");
	parse_bad("1e3", "EUR", "exponent notation");
	parse_bad("1E3", "EUR", "exponent notation");
	parse_bad("1.5e2", "EUR", "exponent notation");
	parse_bad("abc", "EUR", "not a decimal number");
	parse_bad("0x10", "EUR", "not a decimal number");
	parse_bad("", "EUR", "empty amount");
	parse_bad(NULL, "EUR", "empty amount");
	parse_bad(" 1", "EUR", "leading or trailing whitespace");
	parse_bad("1 ", "EUR", "leading or trailing whitespace");
	parse_bad("1\n", "EUR", "leading or trailing whitespace");
	parse_bad("1.", "EUR", "no digits after the decimal point");
	parse_bad("1.", "JPY", "no digits after the decimal point");
	parse_bad(".5", "EUR", "no digits before the decimal point");
	parse_bad(".", "EUR", "not a decimal number");
	parse_bad("1.2.3", "EUR", "more than one decimal point");
	parse_bad("1,50", "EUR",
	          "comma in amount (use '.' as the decimal point, no thousands separators)");
	parse_bad("1 000", "EUR", "not a decimal number");
	parse_bad("NaN", "EUR", "not a decimal number");
	parse_bad("inf", "EUR", "not a decimal number");
	/* 19 significant digits, in every position. */
	parse_bad("10000000000000000.00", "EUR", "more than 18 significant digits");
	parse_bad("1000000000000000000", "JPY", "more than 18 significant digits");
	parse_bad("9223372036854775807", "JPY", "more than 18 significant digits");
	parse_bad("99999999999999999999999999", "JPY", "more than 18 significant digits");
	parse_bad("1000000000000000.000", "KWD", "more than 18 significant digits");
	parse_bad("92233720368547758.07", "EUR", "more than 18 significant digits");
}
END_TEST

/* Formats and asserts the text. */
static void format_is(int64_t minor, const char *cur, const char *expect)
{
	char out[MONEY_TEXT_MAX];
	memset(out, 'x', sizeof(out));
	ck_assert_msg(money_format(minor, cur, out), "%" PRId64 " %s refused", minor, cur);
	ck_assert_msg(strcmp(out, expect) == 0, "%" PRId64 " %s: got '%s', want '%s'", minor, cur,
	              out, expect);
}

START_TEST(test_format)
{
	format_is(4000, "EUR", "40.00");
	format_is(5, "EUR", "0.05");
	format_is(50, "EUR", "0.50");
	format_is(0, "EUR", "0.00");
	format_is(3599, "EUR", "35.99");
	format_is(500, "JPY", "500");
	format_is(0, "JPY", "0");
	format_is(1234, "KWD", "1.234");
	format_is(1, "KWD", "0.001");
	format_is(12345, "CLF", "1.2345");
	format_is(-1, "EUR", "-0.01");
	format_is(-4000, "EUR", "-40.00");
	format_is(-500, "JPY", "-500");
	format_is(-1234, "KWD", "-1.234");
	format_is(INT64_MAX, "EUR", "92233720368547758.07");
	format_is(INT64_MIN, "EUR", "-92233720368547758.08");
	format_is(INT64_MAX, "JPY", "9223372036854775807");
	format_is(INT64_MIN, "JPY", "-9223372036854775808");
	format_is(INT64_MIN, "CLF", "-922337203685477.5808");
	format_is(INT64_MIN + 1, "KWD", "-9223372036854775.807");

	char out[MONEY_TEXT_MAX];
	ck_assert(money_format(INT64_MIN, "EUR", out));
	ck_assert_int_lt(strlen(out), MONEY_TEXT_MAX);
}
END_TEST

/* Every amount formatted and parsed back is the same amount, for every exponent. */
START_TEST(test_round_trip)
{
	static const char *const curs[] = {"JPY", "EUR", "KWD", "CLF", "ISK", "BHD", "USD"};
	static const int64_t values[] = {0,
	                                 1,
	                                 9,
	                                 10,
	                                 99,
	                                 100,
	                                 101,
	                                 999,
	                                 1000,
	                                 1001,
	                                 4000,
	                                 12345,
	                                 100000,
	                                 INT64_C(123456789012345678),
	                                 INT64_C(100000000000000000),
	                                 INT64_C(999999999999999999)};
	for (size_t c = 0; c < sizeof(curs) / sizeof(curs[0]); c++) {
		for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
			char text[MONEY_TEXT_MAX];
			int64_t back = -1;
			const char *why = NULL;
			ck_assert(money_format(values[i], curs[c], text));
			ck_assert_msg(money_parse(text, curs[c], &back, &why), "%s %s refused: %s",
			              text, curs[c], why);
			ck_assert_msg(back == values[i], "%s: %" PRId64 " -> %s -> %" PRId64,
			              curs[c], values[i], text, back);
		}
	}
	/* And the other way: canonical text survives parse then format. */
	static const struct {
		const char *text, *cur;
	} texts[] = {{"40.00", "EUR"}, {"0.01", "EUR"},  {"500", "JPY"},
	             {"1.234", "KWD"}, {"0.000", "BHD"}, {"1.0001", "CLF"}};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		int64_t v;
		const char *why;
		char out[MONEY_TEXT_MAX];
		ck_assert(money_parse(texts[i].text, texts[i].cur, &v, &why));
		ck_assert(money_format(v, texts[i].cur, out));
		ck_assert_str_eq(out, texts[i].text);
	}
}
END_TEST

static Suite *money_suite(void)
{
	Suite *s = suite_create("money");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_exponents);
	tcase_add_test(tc, test_unknown_currencies);
	tcase_add_test(tc, test_parse_valid);
	tcase_add_test(tc, test_parse_refused);
	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(money_suite(), CK_NORMAL);
}
