/* libFuzzer harness: the configuration's duration parser (config_parse_duration) against
 * a reference written here, and the round trip through the text the loader's messages
 * use (duration_format's DURATION_EXACT, lib/duration.h).
 *
 * Input: the duration text, up to a NUL ("90s", "120h"). The first eight bytes, read as
 * an int64, are also formatted as a duration and parsed back. */
#include "autoconfig.h"

#include "config.h"
#include "config_internal.h"
#include "duration.h"
#include "fuzz.h"
#include "xmalloc.h"

#include <stdbool.h>
#include <string.h>

/* The reference parser: a whole number and one of the units, no more, no overflow. */
static bool reference_parse(const char *text, int64_t *ms)
{
	static const struct {
		const char *unit;
		int64_t mult;
	} units[] = {{"ms", 1}, {"s", MS_PER_S}, {"m", MS_PER_M}, {"h", MS_PER_H}, {"d", MS_PER_D}};
	const char *p = text;
	unsigned __int128 value = 0;
	while (*p >= '0' && *p <= '9') {
		value = value * 10 + (unsigned)(*p - '0');
		if (value > INT64_MAX)
			return false;
		p++;
	}
	if (p == text)
		return false;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].unit) == 0) {
			value *= (unsigned)units[i].mult;
			if (value > INT64_MAX)
				return false;
			*ms = (int64_t)value;
			return true;
		}
	}
	return false;
}

/* Checks config_parse_duration against the reference. */
static void check_parse(const char *text)
{
	int64_t got = -1, want = -1;
	const char *why = NULL;
	bool ok = config_parse_duration(text, &got, &why);
	FUZZ_CHECK(ok == reference_parse(text, &want));
	if (!ok) {
		FUZZ_CHECK(why != NULL && *why != '\0');
		return;
	}
	FUZZ_CHECK(got == want && got >= 0);
	char buf[DURATION_TEXT_SIZE];
	int64_t back = -1;
	FUZZ_CHECK(config_parse_duration(duration_format(got, DURATION_EXACT, buf), &back, &why));
	FUZZ_CHECK(back == got);
}

/* Checks parse(text(ms)) == ms for a non-negative duration. */
static void check_text(int64_t ms)
{
	char buf[DURATION_TEXT_SIZE];
	const char *text = duration_format(ms, DURATION_EXACT, buf);
	FUZZ_CHECK(strlen(text) < sizeof(buf) - 1);
	int64_t back = -1;
	const char *why = NULL;
	FUZZ_CHECK(config_parse_duration(text, &back, &why) && back == ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xstrndup((const char *)data, size);
	check_parse(text);
	free(text);
	if (size >= 8) {
		int64_t ms;
		memcpy(&ms, data, sizeof(ms));
		if (ms == INT64_MIN)
			ms = 0;
		check_text(ms < 0 ? -ms : ms);
	}
	return 0;
}
