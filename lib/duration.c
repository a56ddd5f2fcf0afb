#include "autoconfig.h"

#include "duration.h"

#include <stdio.h>

/* The units of the exact forms, largest first. */
static const struct {
	int64_t ms;
	const char *unit;
} exact_units[] = {
    {INT64_C(86400000), "d"}, {INT64_C(3600000), "h"}, {INT64_C(60000), "m"}, {INT64_C(1000), "s"}};

/* The exact forms: the largest unit from exact_units[first] on that divides ms. */
static const char *format_exact(int64_t ms, size_t first, char out[DURATION_TEXT_SIZE])
{
	if (ms == 0) {
		snprintf(out, DURATION_TEXT_SIZE, "0s");
		return out;
	}
	for (size_t i = first; i < sizeof(exact_units) / sizeof(exact_units[0]); i++) {
		if (ms % exact_units[i].ms == 0) {
			snprintf(out, DURATION_TEXT_SIZE, "%lld%s",
			         (long long)(ms / exact_units[i].ms), exact_units[i].unit);
			return out;
		}
	}
	snprintf(out, DURATION_TEXT_SIZE, "%lldms", (long long)ms);
	return out;
}

/* People's form: whole seconds in one or two units, the smaller one left out when 0. */
static const char *format_human(int64_t ms, char out[DURATION_TEXT_SIZE])
{
	int64_t seconds = ms / 1000;
	const char *sign = seconds < 0 ? "-" : "";
	unsigned long long s =
	    seconds < 0 ? 0ULL - (unsigned long long)seconds : (unsigned long long)seconds;
	unsigned long long big, small;
	char big_unit, small_unit;

	if (s < 60) {
		snprintf(out, DURATION_TEXT_SIZE, "%s%llus", sign, s);
		return out;
	}
	if (s < 3600) {
		big = s / 60, small = s % 60, big_unit = 'm', small_unit = 's';
	} else if (s < 48 * 3600) {
		big = s / 3600, small = s % 3600 / 60, big_unit = 'h', small_unit = 'm';
	} else {
		big = s / 86400, small = s % 86400 / 3600, big_unit = 'd', small_unit = 'h';
	}
	if (small == 0)
		snprintf(out, DURATION_TEXT_SIZE, "%s%llu%c", sign, big, big_unit);
	else
		snprintf(out, DURATION_TEXT_SIZE, "%s%llu%c %llu%c", sign, big, big_unit, small,
		         small_unit);
	return out;
}

const char *duration_format(int64_t ms, enum duration_form form, char out[DURATION_TEXT_SIZE])
{
	switch (form) {
	case DURATION_EXACT:
		return format_exact(ms, 0, out);
	case DURATION_EXACT_HOURS:
		return format_exact(ms, 1, out);
	case DURATION_HUMAN:
		return format_human(ms, out);
	}
	return format_exact(ms, 0, out);
}
