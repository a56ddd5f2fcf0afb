/* Durations as text for people and for configuration files: the one formatter. Pure.
 * (Reading them back is config_parse_duration, config.h.) */
#ifndef SP_DURATION_H
#define SP_DURATION_H

#include <stdint.h>

/* The size of duration_format's buffer: every int64 in every form fits. */
#define DURATION_TEXT_SIZE 32

/* How a duration is written. */
enum duration_form {
	/* In the largest unit up to days that divides it exactly: "1d", "5m", "1500ms",
	 * "0s". config_parse_duration reads it back to the same value. */
	DURATION_EXACT,
	/* The same with hours as the largest unit: "24h", "90m", "45s" (alert and metric
	 * labels of thresholds). */
	DURATION_EXACT_HOURS,
	/* People's form, whole seconds, rounded toward zero to at most two units: "45s",
	 * "12m 5s", "3h 20m", "47h", "2d 4h" (hours up to 48h, then days). */
	DURATION_HUMAN,
};

/* Writes `ms` milliseconds in `form` into out and returns out. */
const char *duration_format(int64_t ms, enum duration_form form, char out[DURATION_TEXT_SIZE]);

#endif
