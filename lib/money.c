#include "autoconfig.h"

#include "money.h"

#include <stdlib.h>
#include <string.h>

/* The most digits an amount may have in minor units: 10^18 - 1 fits an int64_t. */
#define MONEY_MAX_DIGITS 18

struct currency {
	char code[4];
	int exponent;
};

/*
 * ISO 4217 list one: every active currency and fund code with a defined minor unit,
 * sorted by code for bsearch. Codes whose minor unit is "N.A." (gold, SDR, bond-market
 * units, XTS, XXX, ...) are not money that can be paid and are left out. A few codes
 * withdrawn since 2023 (ANG, BGN, CUC, HRK, SLL, ZWL) are kept so that amounts
 * authorized just before a changeover can still be captured or refunded.
 */
static const struct currency currencies[] = {
    {"AED", 2}, {"AFN", 2}, {"ALL", 2}, {"AMD", 2}, {"ANG", 2}, {"AOA", 2}, {"ARS", 2}, {"AUD", 2},
    {"AWG", 2}, {"AZN", 2}, {"BAM", 2}, {"BBD", 2}, {"BDT", 2}, {"BGN", 2}, {"BHD", 3}, {"BIF", 0},
    {"BMD", 2}, {"BND", 2}, {"BOB", 2}, {"BOV", 2}, {"BRL", 2}, {"BSD", 2}, {"BTN", 2}, {"BWP", 2},
    {"BYN", 2}, {"BZD", 2}, {"CAD", 2}, {"CDF", 2}, {"CHE", 2}, {"CHF", 2}, {"CHW", 2}, {"CLF", 4},
    {"CLP", 0}, {"CNY", 2}, {"COP", 2}, {"COU", 2}, {"CRC", 2}, {"CUC", 2}, {"CUP", 2}, {"CVE", 2},
    {"CZK", 2}, {"DJF", 0}, {"DKK", 2}, {"DOP", 2}, {"DZD", 2}, {"EGP", 2}, {"ERN", 2}, {"ETB", 2},
    {"EUR", 2}, {"FJD", 2}, {"FKP", 2}, {"GBP", 2}, {"GEL", 2}, {"GHS", 2}, {"GIP", 2}, {"GMD", 2},
    {"GNF", 0}, {"GTQ", 2}, {"GYD", 2}, {"HKD", 2}, {"HNL", 2}, {"HRK", 2}, {"HTG", 2}, {"HUF", 2},
    {"IDR", 2}, {"ILS", 2}, {"INR", 2}, {"IQD", 3}, {"IRR", 2}, {"ISK", 0}, {"JMD", 2}, {"JOD", 3},
    {"JPY", 0}, {"KES", 2}, {"KGS", 2}, {"KHR", 2}, {"KMF", 0}, {"KPW", 2}, {"KRW", 0}, {"KWD", 3},
    {"KYD", 2}, {"KZT", 2}, {"LAK", 2}, {"LBP", 2}, {"LKR", 2}, {"LRD", 2}, {"LSL", 2}, {"LYD", 3},
    {"MAD", 2}, {"MDL", 2}, {"MGA", 2}, {"MKD", 2}, {"MMK", 2}, {"MNT", 2}, {"MOP", 2}, {"MRU", 2},
    {"MUR", 2}, {"MVR", 2}, {"MWK", 2}, {"MXN", 2}, {"MXV", 2}, {"MYR", 2}, {"MZN", 2}, {"NAD", 2},
    {"NGN", 2}, {"NIO", 2}, {"NOK", 2}, {"NPR", 2}, {"NZD", 2}, {"OMR", 3}, {"PAB", 2}, {"PEN", 2},
    {"PGK", 2}, {"PHP", 2}, {"PKR", 2}, {"PLN", 2}, {"PYG", 0}, {"QAR", 2}, {"RON", 2}, {"RSD", 2},
    {"RUB", 2}, {"RWF", 0}, {"SAR", 2}, {"SBD", 2}, {"SCR", 2}, {"SDG", 2}, {"SEK", 2}, {"SGD", 2},
    {"SHP", 2}, {"SLE", 2}, {"SLL", 2}, {"SOS", 2}, {"SRD", 2}, {"SSP", 2}, {"STN", 2}, {"SVC", 2},
    {"SYP", 2}, {"SZL", 2}, {"THB", 2}, {"TJS", 2}, {"TMT", 2}, {"TND", 3}, {"TOP", 2}, {"TRY", 2},
    {"TTD", 2}, {"TWD", 2}, {"TZS", 2}, {"UAH", 2}, {"UGX", 0}, {"USD", 2}, {"USN", 2}, {"UYI", 0},
    {"UYU", 2}, {"UYW", 4}, {"UZS", 2}, {"VED", 2}, {"VES", 2}, {"VND", 0}, {"VUV", 0}, {"WST", 2},
    {"XAD", 2}, {"XAF", 0}, {"XCD", 2}, {"XCG", 2}, {"XOF", 0}, {"XPF", 0}, {"YER", 2}, {"ZAR", 2},
    {"ZMW", 2}, {"ZWG", 2}, {"ZWL", 2},
};

#define CURRENCY_COUNT (sizeof(currencies) / sizeof(currencies[0]))

size_t money_currency_count(void)
{
	return CURRENCY_COUNT;
}

bool money_currency_at(size_t i, const char **code, int *exponent)
{
	if (i >= CURRENCY_COUNT)
		return false;
	*code = currencies[i].code;
	*exponent = currencies[i].exponent;
	return true;
}

/* bsearch comparator: a code string against a table entry. */
static int currency_cmp(const void *key, const void *elem)
{
	const struct currency *c = elem;
	return strcmp(key, c->code);
}

int money_exponent(const char *currency)
{
	if (currency == NULL || strlen(currency) != 3)
		return -1;
	const struct currency *c =
	    bsearch(currency, currencies, sizeof(currencies) / sizeof(currencies[0]),
	            sizeof(currencies[0]), currency_cmp);
	return c ? c->exponent : -1;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Stores a failure reason when the caller asked for one. */
static bool refuse(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return false;
}

/* Explains why `text` is not plain decimal text, checking the most specific cause first. */
static const char *syntax_reason(const char *text)
{
	size_t len = strlen(text);
	if (text[0] == ' ' || text[0] == '\t' || text[len - 1] == ' ' || text[len - 1] == '\t' ||
	    text[len - 1] == '\n' || text[len - 1] == '\r')
		return "leading or trailing whitespace";
	if (text[0] == '-')
		return "negative amount";
	if (text[0] == '+')
		return "explicit sign";
	if (strpbrk(text, "eE") != NULL && is_digit(text[0]))
		return "exponent notation";
	if (strchr(text, ',') != NULL && is_digit(text[0]))
		return "comma in amount (use '.' as the decimal point, no thousands separators)";
	const char *dot = strchr(text, '.');
	if (dot != NULL && strchr(dot + 1, '.') != NULL)
		return "more than one decimal point";
	return "not a decimal number";
}

bool money_parse(const char *text, const char *currency, int64_t *minor, const char **why)
{
	int exponent = money_exponent(currency);
	if (exponent < 0)
		return refuse(why, "unknown currency");
	if (text == NULL || text[0] == '\0')
		return refuse(why, "empty amount");

	/* Split into integer digits [int_start, int_end) and fraction digits [frac, frac_end). */
	const char *p = text;
	const char *int_start = p;
	while (is_digit(*p))
		p++;
	const char *int_end = p;
	const char *frac = p, *frac_end = p;
	bool point = false;
	if (*p == '.') {
		point = true;
		frac = ++p;
		while (is_digit(*p))
			p++;
		frac_end = p;
	}
	if (*p != '\0')
		return refuse(why, syntax_reason(text));
	if (int_end == int_start)
		return refuse(why, frac_end > frac ? "no digits before the decimal point"
		                                   : "not a decimal number");
	if (point && frac_end == frac)
		return refuse(why, "no digits after the decimal point");

	/* Fraction digits past the currency's exponent may only be zeros ("1000.00" JPY). */
	size_t nint = (size_t)(int_end - int_start);
	size_t nfrac = (size_t)(frac_end - frac);
	for (size_t i = (size_t)exponent; i < nfrac; i++) {
		if (frac[i] != '0')
			return refuse(why, "more fraction digits than the currency has");
	}

	/* The amount in minor units is the integer digits followed by exactly `exponent`
	 * fraction digits (zero-padded). At most 18 of them after leading zeros, so the
	 * accumulation cannot overflow. */
	int64_t value = 0;
	int significant = 0;
	for (size_t i = 0; i < nint + (size_t)exponent; i++) {
		char d;
		if (i < nint)
			d = int_start[i];
		else
			d = i - nint < nfrac ? frac[i - nint] : '0';
		if (significant == 0 && d == '0')
			continue;
		if (++significant > MONEY_MAX_DIGITS)
			return refuse(why, "more than 18 significant digits");
		value = value * 10 + (d - '0');
	}
	*minor = value;
	return true;
}

bool money_format(int64_t minor, const char *currency, char out[MONEY_TEXT_MAX])
{
	int exponent = money_exponent(currency);
	if (exponent < 0) {
		out[0] = '\0';
		return false;
	}
	/* Magnitude as unsigned, so INT64_MIN does not overflow. */
	uint64_t mag = minor < 0 ? (uint64_t)(-(minor + 1)) + 1 : (uint64_t)minor;

	char digits[24];
	int n = 0;
	do {
		digits[n++] = (char)('0' + mag % 10);
		mag /= 10;
	} while (mag > 0);
	while (n < exponent + 1)
		digits[n++] = '0';

	char *o = out;
	if (minor < 0)
		*o++ = '-';
	for (int i = n - 1; i >= 0; i--) {
		*o++ = digits[i];
		if (i == exponent && exponent > 0)
			*o++ = '.';
	}
	*o = '\0';
	return true;
}
