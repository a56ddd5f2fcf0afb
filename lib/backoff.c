#include "autoconfig.h"

#include "backoff.h"

#include "classify.h"
#include "uuid.h"

#include <stddef.h>

/* The jitter window's ceiling: min(max_ms, base_ms * 2^attempts), without overflow. */
static int64_t window_ceiling(const struct backoff_policy *p, int attempts)
{
	int64_t max = p->max_ms > 0 ? p->max_ms : 0;
	int64_t c = p->base_ms > 0 ? p->base_ms : 0;

	if (c >= max)
		return max;
	for (int i = 0; i < attempts && c < max; i++) {
		if (c > max / 2)
			return max;
		c *= 2;
	}
	return c < max ? c : max;
}

enum backoff_decision backoff_next(const struct backoff_policy *p, int attempts_done,
                                   int64_t now_ms, int64_t deadline_ms, int64_t retry_after_ms,
                                   uint64_t random, int64_t *next_at_ms, const char **why)
{
	int64_t ceiling, delay, next;
	const char *rule = "backoff";

	if (next_at_ms != NULL)
		*next_at_ms = -1;
	if (attempts_done >= p->max_attempts) {
		if (why != NULL)
			*why = "retries exhausted";
		return BACKOFF_GIVE_UP;
	}
	if (deadline_ms > 0 && now_ms >= deadline_ms) {
		if (why != NULL)
			*why = "authorization deadline passed";
		return BACKOFF_GIVE_UP;
	}

	ceiling = window_ceiling(p, attempts_done < 0 ? 0 : attempts_done);
	delay = (int64_t)(random % ((uint64_t)ceiling + 1));
	if (retry_after_ms >= 0) {
		int64_t ra = retry_after_ms < CLASSIFY_RETRY_AFTER_MAX_MS
		                 ? retry_after_ms
		                 : CLASSIFY_RETRY_AFTER_MAX_MS;
		if (ra > delay) {
			delay = ra;
			rule = "retry-after";
		}
	}
	next = now_ms > 0 && delay > INT64_MAX - now_ms ? INT64_MAX : now_ms + delay;
	if (deadline_ms > 0) {
		int64_t margin = p->deadline_margin_ms > 0 ? p->deadline_margin_ms : 0;
		int64_t latest = deadline_ms - margin;
		if (next > latest) {
			next = latest > now_ms ? latest : now_ms;
			rule = "deadline pull-in";
		}
	}
	if (next_at_ms != NULL)
		*next_at_ms = next;
	if (why != NULL)
		*why = rule;
	return BACKOFF_RETRY;
}

uint64_t backoff_random(void)
{
	uint64_t r;

	uuid_random_bytes(&r, sizeof(r));
	return r;
}
