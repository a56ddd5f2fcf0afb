/* Time text for the simulator: ISO-8601 UTC timestamps and durations. */
#ifndef SIM_TIMEUTIL_H
#define SIM_TIMEUTIL_H

#include <stdbool.h>
#include <stdint.h>

/* Longest formatted timestamp, "YYYY-MM-DDTHH:MM:SS.mmmZ" plus NUL, with room for any year. */
#define SIM_TIME_TEXT_MAX 80

/* Wall-clock milliseconds since the epoch (CLOCK_REALTIME). */
int64_t sim_time_real_ms(void);

/* Monotonic microseconds (CLOCK_MONOTONIC): the deadlines of delayed answers. */
int64_t sim_time_mono_us(void);

/* Formats epoch milliseconds as "2020-12-16T08:09:19.296Z". */
void sim_time_format(int64_t ms, char out[SIM_TIME_TEXT_MAX]);

/* Parses "YYYY-MM-DDTHH:MM:SS" with optional ".fff" (1 to 9 digits, kept to
 * milliseconds) and a zone "Z" or "+HH:MM"/"-HH:MM". False for anything else. */
bool sim_time_parse(const char *text, int64_t *ms);

/* Parses a duration: a non-negative integer followed by ms, s, m, h or d ("96h"). */
bool sim_duration_parse(const char *text, int64_t *ms);

#endif
