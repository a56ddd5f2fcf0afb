/* Retry scheduling: exponential backoff with full jitter, bounded by the authorization
 * deadline. Pure apart from backoff_random. */
#ifndef SP_BACKOFF_H
#define SP_BACKOFF_H

#include <stdint.h>

struct backoff_policy {
	int64_t base_ms;            /* first ceiling of the jitter window */
	int64_t max_ms;             /* largest ceiling of the jitter window */
	int max_attempts;           /* give up once this many attempts were made */
	int64_t deadline_margin_ms; /* the last attempt must land this long before the deadline */
};

enum backoff_decision { BACKOFF_RETRY, BACKOFF_GIVE_UP };

/* Decides when to try again after attempts_done attempts.
 * GIVE_UP with *why "retries exhausted" when attempts_done >= max_attempts, or
 * "authorization deadline passed" when deadline_ms (unix ms, 0 = none) is given and
 * now_ms >= deadline_ms; *next_at_ms is then -1.
 * Otherwise RETRY at *next_at_ms = now + delay, where
 *   delay = random % (min(max_ms, base_ms * 2^attempts_done) + 1)   (full jitter)
 * raised to retry_after_ms (-1 none; honoured up to one hour) when given, and pulled
 * in to max(now, deadline - margin) when it would land later than that.
 * *why then says which rule set the time: "backoff", "retry-after" or
 * "deadline pull-in". next_at_ms and why may be NULL. */
enum backoff_decision backoff_next(const struct backoff_policy *p, int attempts_done,
                                   int64_t now_ms, int64_t deadline_ms, int64_t retry_after_ms,
                                   uint64_t random, int64_t *next_at_ms, const char **why);

/* A uniformly random 64-bit value from the kernel's CSPRNG, for backoff_next. */
uint64_t backoff_random(void);

#endif
