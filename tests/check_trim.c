/* lib/trim: cutting trailing newlines and blanks, the one trimmer every caller uses. */
#include "autoconfig.h"

#include "testutil.h"
#include "trim.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

/* One trim_end case: the text, the set, what is left. */
static const struct {
	const char *text, *set, *want;
} end_cases[] = {
    {"ERROR:  relation \"x\" does not exist\n", "\n", "ERROR:  relation \"x\" does not exist"},
    {"could not connect \n\n", "\n ", "could not connect"},
    {"could not connect \n\n", "\n", "could not connect "}, /* the space stays */
    {"key\r\n", "\r\n", "key"},
    {"key\n\r\n\r", "\r\n", "key"},
    {"key \r\n", "\r\n", "key "},
    {"\n\n\n", "\n", ""},
    {"", "\n ", ""},
    {"no newline", "\n", "no newline"},
    {"inner\nline\n", "\n", "inner\nline"}, /* only the end */
    {"tab\t", " \t\r\n", "tab"},
};

START_TEST(trim_end_cuts_only_the_set_at_the_end)
{
	for (size_t i = 0; i < sizeof(end_cases) / sizeof(end_cases[0]); i++) {
		char *s = strdup(end_cases[i].text);
		ck_assert_ptr_eq(trim_end(s, end_cases[i].set), s);
		ck_assert_msg(strcmp(s, end_cases[i].want) == 0, "case %zu: got \"%s\"", i, s);
		free(s);
	}
}
END_TEST

START_TEST(trim_lengths_of_buffers)
{
	/* a header line as curl hands it over: not terminated, ends in CRLF */
	const char header[] = "  120 \r\nGARBAGE";
	size_t len = 8; /* "  120 \r\n" */
	size_t start = trim_start_len(header, len, " \t");
	size_t end = trim_end_len(header, len, " \t\r\n");
	ck_assert_uint_eq(start, 2);
	ck_assert_uint_eq(end, 5);
	ck_assert(memcmp(header + start, "120", end - start) == 0);

	/* a NUL byte is never in the set: trimming stops at it */
	const char nul[] = {'a', '\0', '\n', '\n'};
	ck_assert_uint_eq(trim_end_len(nul, sizeof(nul), "\n"), 2);
	const char lead[] = {'\0', ' ', 'x'};
	ck_assert_uint_eq(trim_start_len(lead, sizeof(lead), " "), 0);

	/* all of it, and none of it */
	ck_assert_uint_eq(trim_start_len(" \t\r\n", 4, " \t\r\n"), 4);
	ck_assert_uint_eq(trim_end_len(" \t\r\n", 4, " \t\r\n"), 0);
	ck_assert_uint_eq(trim_start_len("x", 0, " "), 0);
	ck_assert_uint_eq(trim_end_len("x", 0, " "), 0);
}
END_TEST

static Suite *trim_suite(void)
{
	Suite *s = suite_create("trim");
	TCase *tc = tcase_create("trim");
	tcase_add_test(tc, trim_end_cuts_only_the_set_at_the_end);
	tcase_add_test(tc, trim_lengths_of_buffers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(trim_suite(), CK_NORMAL);
}
