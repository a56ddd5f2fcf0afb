/* libFuzzer harness: money_parse and money_format against a reference written here,
 * and their round trips: format(parse(t)) is t's canonical form, parse(format(x)) == x.
 *
 * Input: a three-letter currency code, then the amount text (up to a NUL), e.g.
 * "EUR40.50". An unknown code must be refused; the text is then also tried in the
 * currency of the table picked by the first byte, so every input exercises a parse.
 * The first eight bytes, read as an int64, are formatted and parsed back too. */
#include "autoconfig.h"

#include "fuzz.h"
#include "money.h"
#include "xmalloc.h"

#include <stdbool.h>
#include <string.h>

#define MAX_DIGITS 18

/* True for an ASCII decimal digit. */
static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The reference parser: fills `canon` with the canonical text money_format must give
 * for `text` (leading zeros dropped, exactly `exponent` fraction digits) and returns
 * true when money_parse must accept it. */
static bool reference_parse(const char *text, int exponent, char *canon, size_t cap)
{
	const char *p = text;
	while (is_digit(*p))
		p++;
	size_t nint = (size_t)(p - text);
	const char *frac = NULL;
	size_t nfrac = 0;
	if (*p == '.') {
		frac = ++p;
		while (is_digit(*p))
			p++;
		nfrac = (size_t)(p - frac);
		if (nfrac == 0)
			return false;
	}
	if (*p != '\0' || nint == 0)
		return false;
	for (size_t i = (size_t)exponent; i < nfrac; i++) {
		if (frac[i] != '0')
			return false;
	}
	/* all digits in minor units, without leading zeros */
	char digits[2 * MAX_DIGITS + 8];
	size_t n = 0;
	for (size_t i = 0; i < nint + (size_t)exponent; i++) {
		char d = i < nint ? text[i] : (i - nint < nfrac ? frac[i - nint] : '0');
		if (n == 0 && d == '0')
			continue;
		if (n == MAX_DIGITS)
			return false;
		digits[n++] = d;
	}
	/* back to major units: pad to at least exponent + 1 digits, insert the point */
	size_t width = n > (size_t)exponent ? n : (size_t)exponent + 1;
	size_t pad = width - n, o = 0;
	for (size_t i = 0; i < width; i++) {
		if (exponent > 0 && i == width - (size_t)exponent)
			canon[o++] = '.';
		canon[o++] = i < pad ? '0' : digits[i - pad];
	}
	FUZZ_CHECK(o < cap);
	canon[o] = '\0';
	return true;
}

/* Checks parse against the reference, and format(parse(text)) == canonical text. */
static void check_parse(const char *text, const char *currency)
{
	int exponent = money_exponent(currency);
	int64_t minor = -1;
	const char *why = NULL;
	bool ok = money_parse(text, currency, &minor, &why);
	if (exponent < 0) {
		FUZZ_CHECK(!ok && why != NULL && strcmp(why, "unknown currency") == 0);
		char out[MONEY_TEXT_MAX];
		FUZZ_CHECK(!money_format(1, currency, out));
		return;
	}
	char canon[2 * MAX_DIGITS + 8];
	bool want = reference_parse(text, exponent, canon, sizeof(canon));
	FUZZ_CHECK(ok == want);
	if (!ok) {
		FUZZ_CHECK(why != NULL && *why != '\0');
		return;
	}
	FUZZ_CHECK(minor >= 0);
	char out[MONEY_TEXT_MAX];
	FUZZ_CHECK(money_format(minor, currency, out));
	FUZZ_CHECK(strcmp(out, canon) == 0);
	int64_t back = -1;
	FUZZ_CHECK(money_parse(out, currency, &back, &why) && back == minor);
}

/* Checks parse(format(x)) == x: amounts of more than 18 digits format but do not parse
 * back; negative ones format with a '-' before the text of their magnitude. */
static void check_format(int64_t x, const char *currency)
{
	char out[MONEY_TEXT_MAX];
	FUZZ_CHECK(money_format(x, currency, out));
	FUZZ_CHECK(strlen(out) < MONEY_TEXT_MAX);
	const char *why = NULL;
	int64_t back = -1;
	if (x < 0) {
		FUZZ_CHECK(out[0] == '-');
		if (x == INT64_MIN)
			return;
		bool ok = money_parse(out + 1, currency, &back, &why);
		FUZZ_CHECK(ok == (-x < INT64_C(1000000000000000000)));
		FUZZ_CHECK(!ok || back == -x);
		return;
	}
	bool ok = money_parse(out, currency, &back, &why);
	FUZZ_CHECK(ok == (x < INT64_C(1000000000000000000)));
	FUZZ_CHECK(!ok || back == x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	char code[4] = {(char)data[0], (char)data[1], (char)data[2], '\0'};
	char *text = xstrndup((const char *)data + 3, size - 3);
	check_parse(text, code);

	const char *table_code;
	int table_exponent;
	FUZZ_CHECK(
	    money_currency_at(data[0] % money_currency_count(), &table_code, &table_exponent));
	FUZZ_CHECK(money_exponent(table_code) == table_exponent);
	if (strcmp(table_code, code) != 0)
		check_parse(text, table_code);

	if (size >= 8) {
		int64_t x;
		memcpy(&x, data, sizeof(x));
		check_format(x, table_code);
	}
	free(text);
	return 0;
}
