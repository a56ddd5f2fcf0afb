/* Unit tests of storable text (lib/text.c): ill-formed UTF-8, truncation at a character boundary,
 * random bytes. */
#include "autoconfig.h"

#include "text.h"
#include "testutil.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* text_storable of a byte string with explicit length (it may hold NULs). */
static void expect_storable(const char *in, size_t len, size_t max, enum text_nul nul,
                            const char *want)
{
	char *got = text_storable(in, len, max, nul);

	ck_assert_msg(strcmp(got, want) == 0,
	              "input of %zu bytes, max %zu: got \"%s\", want \"%s\"", len, max, got, want);
	ck_assert(testutil_utf8_valid(got));
	ck_assert_uint_le(strlen(got), max);
	free(got);
}

#define FFFD "\xEF\xBF\xBD"
/* A literal with its length (NULs included). */
#define LIT(s) s, sizeof(s) - 1

START_TEST(test_text_ill_formed)
{
	static const struct {
		const char *in;
		size_t len;
		const char *want;
	} cases[] = {
	    {LIT("plain ASCII"), "plain ASCII"},
	    {LIT("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"),
	     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"},
	    /* Latin-1 */
	    {LIT("caf\xe9"), "caf" FFFD},
	    {LIT("\xe9t\xe9 \xa0\xff"), FFFD "t" FFFD " " FFFD FFFD},
	    {LIT("<p>Fehler: Zahlung abgelehnt f\xfcr \xc4nderung</p>"),
	     "<p>Fehler: Zahlung abgelehnt f" FFFD "r " FFFD "nderung</p>"},
	    /* overlong forms */
	    {LIT("\xc0\xaf"), FFFD FFFD},
	    {LIT("\xc1\xbf"), FFFD FFFD},
	    {LIT("\xe0\x80\xaf"), FFFD FFFD FFFD},
	    {LIT("\xe0\x9f\xbf"), FFFD FFFD FFFD},
	    {LIT("\xf0\x80\x80\xaf"), FFFD FFFD FFFD FFFD},
	    {LIT("\xf0\x8f\xbf\xbf"), FFFD FFFD FFFD FFFD},
	    /* surrogates, also as a CESU-8 pair */
	    {LIT("\xed\xa0\x80"), FFFD FFFD FFFD},
	    {LIT("\xed\xbf\xbf"), FFFD FFFD FFFD},
	    {LIT("\xed\xa0\xbd\xed\xb8\x80"), FFFD FFFD FFFD FFFD FFFD FFFD},
	    {LIT("\xed\x9f\xbf"), "\xed\x9f\xbf"},
	    /* beyond U+10FFFF, bytes that never occur */
	    {LIT("\xf4\x90\x80\x80"), FFFD FFFD FFFD FFFD},
	    {LIT("\xf5\x80\x80\x80"), FFFD FFFD FFFD FFFD},
	    {LIT("\xfe\xff"), FFFD FFFD},
	    /* sequences cut short: one U+FFFD per maximal subpart */
	    {LIT("\xe2\x82"), FFFD},
	    {LIT("\xe2\x82x"), FFFD "x"},
	    {LIT("\xf0\x9f\x98"), FFFD},
	    {LIT("\xf0\x9f\x98\xf0\x9f\x98\x80"), FFFD "\xf0\x9f\x98\x80"},
	    {LIT("\xc3"), FFFD},
	    {LIT("a\x80\x80z"), "a" FFFD FFFD "z"},
	    /* NUL bytes are dropped */
	    {LIT("a\0b\0\0c"), "abc"},
	    {LIT("\0"), ""},
	    {LIT("\xc3\0\xa9"), FFFD FFFD},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_storable(cases[i].in, cases[i].len, TEXT_UNLIMITED, TEXT_NUL_DROP,
		                cases[i].want);
	/* or replaced, where the text is compared afterwards */
	expect_storable(LIT("CAPTURED\0junk"), TEXT_UNLIMITED, TEXT_NUL_REPLACE,
	                "CAPTURED" FFFD "junk");
	expect_storable(LIT("\0"), TEXT_UNLIMITED, TEXT_NUL_REPLACE, FFFD);
	expect_storable(NULL, 0, 10, TEXT_NUL_DROP, "");
	ck_assert_ptr_null(text_storable_str(NULL, 10));
	{
		char *s = text_storable_str("x\xffy", 10);
		ck_assert_str_eq(s, "x" FFFD "y");
		free(s);
	}
}
END_TEST

START_TEST(test_text_truncation)
{
	char *body, *got;
	size_t n = 65536;

	/* at a character boundary, never inside one */
	expect_storable(LIT("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"), 9, TEXT_NUL_DROP,
	                "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac");
	expect_storable(LIT("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"), 8, TEXT_NUL_DROP,
	                "\xe2\x82\xac\xe2\x82\xac");
	expect_storable(LIT("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"), 6, TEXT_NUL_DROP,
	                "\xe2\x82\xac\xe2\x82\xac");
	expect_storable(LIT("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"), 5, TEXT_NUL_DROP,
	                "\xe2\x82\xac");
	expect_storable(LIT("\xf0\x9f\x98\x80"), 3, TEXT_NUL_DROP, "");
	expect_storable(LIT("abc"), 0, TEXT_NUL_DROP, "");
	/* a replacement that does not fit is left out whole */
	expect_storable(LIT("aa\xff"), 4, TEXT_NUL_DROP, "aa");
	expect_storable(LIT("aa\xff"), 5, TEXT_NUL_DROP, "aa" FFFD);
	/* dropped NULs take no room */
	expect_storable(LIT("\0\0\0abc"), 3, TEXT_NUL_DROP, "abc");
	/* an ASCII run cut by the bound, and runs around a NUL, a replacement, a character */
	expect_storable(LIT("abcdef"), 4, TEXT_NUL_DROP, "abcd");
	expect_storable(LIT("ab\0cd\xff"
	                    "ef\xc3\xa9gh"),
	                20, TEXT_NUL_DROP, "abcd" FFFD "ef\xc3\xa9gh");
	expect_storable(LIT("ab\0cd"), 20, TEXT_NUL_REPLACE, "ab" FFFD "cd");

	/* a 64 KiB body cut by the transport in the middle of a character */
	body = malloc(n + 3);
	ck_assert_ptr_nonnull(body);
	memset(body, 'a', n - 1);
	memcpy(body + n - 1, "\xe2\x82\xac", 3);
	got = text_storable(body, n + 1, n, TEXT_NUL_DROP); /* ends in E2 82 */
	ck_assert_uint_eq(strlen(got), n - 1);
	ck_assert(testutil_utf8_valid(got));
	free(got);
	got = text_storable(body, n + 2, n, TEXT_NUL_DROP); /* the whole euro does not fit */
	ck_assert_uint_eq(strlen(got), n - 1);
	free(got);
	got = text_storable(body, n + 2, n + 2, TEXT_NUL_DROP);
	ck_assert_uint_eq(strlen(got), n + 2);
	ck_assert(memcmp(got + n - 1, "\xe2\x82\xac", 3) == 0);
	free(got);
	got = text_storable(body, n + 1, TEXT_UNLIMITED, TEXT_NUL_DROP);
	ck_assert_uint_eq(strlen(got), n - 1 + 3);
	ck_assert_str_eq(got + n - 1, FFFD);
	free(got);
	free(body);
}
END_TEST

/* Whatever the bytes: well-formed, no NUL, within the limit, and stable when applied
 * twice; well-formed input comes back unchanged. */
START_TEST(test_text_random)
{
	uint64_t rng = 0x243f6a8885a308d3u;
	unsigned char in[64];

	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(testutil_rng(&rng) % sizeof(in));
		size_t max = (size_t)(testutil_rng(&rng) % 100);
		for (size_t i = 0; i < len; i++) {
			uint64_t r = testutil_rng(&rng);
			/* mostly bytes that start or continue sequences */
			in[i] = (unsigned char)(r % 3 == 0 ? (r >> 8) : 0x80 | ((r >> 8) & 0x7f));
		}
		char *once = text_storable((const char *)in, len, max, TEXT_NUL_DROP);
		ck_assert(testutil_utf8_valid(once));
		ck_assert_uint_le(strlen(once), max);
		ck_assert_ptr_null(memchr(once, '\0', strlen(once)));
		char *twice = text_storable(once, strlen(once), max, TEXT_NUL_DROP);
		ck_assert_str_eq(once, twice);
		free(twice);
		free(once);
	}
}
END_TEST

/* One byte that is not plain ASCII at every position of ASCII text of every length up
 * to a few words (the checks go eight bytes at a time): kept, replaced or dropped
 * exactly at its place. */
START_TEST(test_text_one_odd_byte)
{
	static const struct {
		unsigned char byte;
		const char *drop, *replace; /* what it becomes */
	} odd[] = {{0x00, "", "\xEF\xBF\xBD"},
	           {0x80, "\xEF\xBF\xBD", "\xEF\xBF\xBD"},
	           {0xFF, "\xEF\xBF\xBD", "\xEF\xBF\xBD"},
	           {0x7F, "\x7F", "\x7F"}};
	char in[40], want[64];

	for (size_t len = 1; len < sizeof(in); len++) {
		for (size_t at = 0; at < len; at++) {
			for (size_t k = 0; k < sizeof(odd) / sizeof(odd[0]); k++) {
				for (size_t i = 0; i < len; i++)
					in[i] = (char)('a' + i % 26);
				in[at] = (char)odd[k].byte;
				for (int nul = 0; nul < 2; nul++) {
					const char *as = nul ? odd[k].replace : odd[k].drop;
					snprintf(want, sizeof(want), "%.*s%s%.*s", (int)at, in, as,
					         (int)(len - at - 1), in + at + 1);
					char *got =
					    text_storable(in, len, TEXT_UNLIMITED,
					                  nul ? TEXT_NUL_REPLACE : TEXT_NUL_DROP);
					ck_assert_msg(strcmp(got, want) == 0,
					              "len %zu at %zu byte %02x", len, at,
					              odd[k].byte);
					free(got);
				}
			}
		}
	}
}
END_TEST

/* Builds the suite. */
static Suite *text_suite(void)
{
	Suite *s = suite_create("text");
	testutil_tcase(s, "text", 60,
	               (const TTest *const[]){test_text_ill_formed, test_text_truncation,
	                                      test_text_random, test_text_one_odd_byte, NULL});
	return s;
}

int main(void)
{
	return testutil_run_suite(text_suite(), CK_NORMAL);
}
