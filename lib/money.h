/* Exact amounts: integer minor units inside, decimal text outside. No floating point. */
#ifndef SP_MONEY_H
#define SP_MONEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest formatted amount: sign, 18 digits, point, NUL, with room to spare. */
#define MONEY_TEXT_MAX 32

/* Returns the ISO 4217 minor-unit exponent of a currency (EUR 2, JPY 0, KWD 3),
 * or -1 when the code is not a known currency. */
int money_exponent(const char *currency);

/* Parses decimal text ("40", "40.5", "40.00") in major units of `currency` into
 * minor units. Accepts only [0-9]+ optionally followed by '.' and digits; fraction
 * digits beyond the currency's exponent are accepted only when they are zero
 * (so numeric(18,2) text "1000.00" parses for JPY). At most 18 significant digits.
 * Refuses signs, exponents, spaces, empty text. On failure returns false and sets
 * *why to a static, human-readable reason. */
bool money_parse(const char *text, const char *currency, int64_t *minor, const char **why)
    __attribute__((warn_unused_result));

/* Formats minor units as major-unit decimal text with exactly the currency's
 * exponent of fraction digits: 4000 EUR -> "40.00", 500 JPY -> "500",
 * 1234 KWD -> "1.234". Negative amounts get a leading '-'. Returns false for an
 * unknown currency. `out` must hold MONEY_TEXT_MAX bytes. */
bool money_format(int64_t minor, const char *currency, char out[MONEY_TEXT_MAX]);

/* The currency table behind money_exponent, for those that must mirror it (smartpayctl
 * migrate fills smartpay.currencies from it): the number of currencies, and the i-th
 * one in code order (0 <= i < money_currency_count()). money_currency_at sets *code to
 * a static NUL-terminated three-letter code and *exponent to its minor-unit exponent,
 * and returns true; it returns false, leaving both untouched, when i is out of range. */
size_t money_currency_count(void);
bool money_currency_at(size_t i, const char **code, int *exponent);

#endif
