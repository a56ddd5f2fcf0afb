#include "autoconfig.h"

#include "clock.h"

#include <time.h>

/* One clock read in units of 1 / `per_second` of a second. */
static int64_t clock_read(clockid_t clock, int64_t per_second)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * per_second + ts.tv_nsec / (1000000000 / per_second);
}

int64_t clock_real_ms(void)
{
	return clock_read(CLOCK_REALTIME, 1000);
}

int64_t clock_mono_ms(void)
{
	return clock_read(CLOCK_MONOTONIC, 1000);
}

int64_t clock_mono_us(void)
{
	return clock_read(CLOCK_MONOTONIC, 1000000);
}
