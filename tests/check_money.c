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

/* Amounts money_parse accepts, with their minor units. */
static const struct parse_case {
	const char *text, *cur;
	int64_t minor;
} parse_valid[] = {
    {"40", "EUR", 4000},
    {"40.5", "EUR", 4050},
    {"40.00", "EUR", 4000},
    {"0.05", "EUR", 5},
    {"0", "EUR", 0},
    {"0.00", "EUR", 0},
    {"35.99", "EUR", 3599},
    {"1.000", "EUR", 100},    /* extra zeros are fine */
    {"007.10", "EUR", 710},   /* leading zeros do not count */
    {"1000.00", "JPY", 1000}, /* numeric(18,2) text for a zero-exponent currency */
    {"500", "JPY", 500},
    {"0.0", "JPY", 0},
    {"1.234", "KWD", 1234},
    {"1.2", "KWD", 1200},
    {"1.23", "BHD", 1230},
    {"12", "CLP", 12},
    {"12.0000", "ISK", 12},
    {"1.2345", "CLF", 12345},
    /* 18 significant digits in minor units: the largest accepted amounts. */
    {"9999999999999999.99", "EUR", INT64_C(999999999999999999)},
    {"999999999999999999", "JPY", INT64_C(999999999999999999)},
    {"999999999999999.999", "KWD", INT64_C(999999999999999999)},
    {"00000000000000000000000000001.00", "EUR", 100},
    {"0.000000000000000000000000", "EUR", 0},
};

START_TEST(test_parse_valid)
{
	parse_ok(parse_valid[_i].text, parse_valid[_i].cur, parse_valid[_i].minor);
}
END_TEST

/* Amounts money_parse refuses, with the reason it gives. */
static const struct refused_case {
	const char *text, *cur, *reason;
} parse_refused[] = {
    {"1.005", "EUR", "more fraction digits than the currency has"},
    {"1000.5", "JPY", "more fraction digits than the currency has"},
    {"1.2345", "KWD", "more fraction digits than the currency has"},
    {"-1", "EUR", "negative amount"},
    {"-0.01", "EUR", "negative amount"},
    {"+1", "EUR", "explicit sign"},
    {"1e3", "EUR", "exponent notation"},
    {"1E3", "EUR", "exponent notation"},
    {"1.5e2", "EUR", "exponent notation"},
    {"abc", "EUR", "not a decimal number"},
    {"0x10", "EUR", "not a decimal number"},
    {"", "EUR", "empty amount"},
    {NULL, "EUR", "empty amount"},
    {" 1", "EUR", "leading or trailing whitespace"},
    {"1 ", "EUR", "leading or trailing whitespace"},
    {"1\n", "EUR", "leading or trailing whitespace"},
    {"1.", "EUR", "no digits after the decimal point"},
    {"1.", "JPY", "no digits after the decimal point"},
    {".5", "EUR", "no digits before the decimal point"},
    {".", "EUR", "not a decimal number"},
    {"1.2.3", "EUR", "more than one decimal point"},
    {"1,50", "EUR", "comma in amount (use '.' as the decimal point, no thousands separators)"},
    {"1 000", "EUR", "not a decimal number"},
    {"NaN", "EUR", "not a decimal number"},
    {"inf", "EUR", "not a decimal number"},
    /* 19 significant digits, in every position. */
    {"10000000000000000.00", "EUR", "more than 18 significant digits"},
    {"1000000000000000000", "JPY", "more than 18 significant digits"},
    {"9223372036854775807", "JPY", "more than 18 significant digits"},
    {"99999999999999999999999999", "JPY", "more than 18 significant digits"},
    {"1000000000000000.000", "KWD", "more than 18 significant digits"},
    {"92233720368547758.07", "EUR", "more than 18 significant digits"},
};

START_TEST(test_parse_refused)
{
	parse_bad(parse_refused[_i].text, parse_refused[_i].cur, parse_refused[_i].reason);
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

/* Minor units and the text money_format gives for them. */
static const struct format_case {
	int64_t minor;
	const char *cur, *text;
} formats[] = {
    {4000, "EUR", "40.00"},
    {5, "EUR", "0.05"},
    {50, "EUR", "0.50"},
    {0, "EUR", "0.00"},
    {3599, "EUR", "35.99"},
    {500, "JPY", "500"},
    {0, "JPY", "0"},
    {1234, "KWD", "1.234"},
    {1, "KWD", "0.001"},
    {12345, "CLF", "1.2345"},
    {-1, "EUR", "-0.01"},
    {-4000, "EUR", "-40.00"},
    {-500, "JPY", "-500"},
    {-1234, "KWD", "-1.234"},
    {INT64_MAX, "EUR", "92233720368547758.07"},
    {INT64_MIN, "EUR", "-92233720368547758.08"},
    {INT64_MAX, "JPY", "9223372036854775807"},
    {INT64_MIN, "JPY", "-9223372036854775808"},
    {INT64_MIN, "CLF", "-922337203685477.5808"},
    {INT64_MIN + 1, "KWD", "-9223372036854775.807"},
};

START_TEST(test_format)
{
	format_is(formats[_i].minor, formats[_i].cur, formats[_i].text);
}
END_TEST

/* The text of the longest amount fits MONEY_TEXT_MAX. */
START_TEST(test_format_longest)
{
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
	TCase *tc =
	    testutil_tcase(s, "core", 0,
	                   (const TTest *const[]){test_exponents, test_unknown_currencies,
	                                          test_format_longest, test_round_trip, NULL});
	tcase_add_loop_test(tc, test_parse_valid, 0,
	                    (int)(sizeof(parse_valid) / sizeof(parse_valid[0])));
	tcase_add_loop_test(tc, test_parse_refused, 0,
	                    (int)(sizeof(parse_refused) / sizeof(parse_refused[0])));
	tcase_add_loop_test(tc, test_format, 0, (int)(sizeof(formats) / sizeof(formats[0])));
	return s;
}

int main(void)
{
	return testutil_run_suite(money_suite(), CK_NORMAL);
}
