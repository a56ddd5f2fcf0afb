/* Classifying a gateway answer: accepted, refused, unknown, or credentials rejected. Pure. */
#ifndef SP_CLASSIFY_H
#define SP_CLASSIFY_H

#include <stdbool.h>
#include <stdint.h>

enum outcome { OUTCOME_ACCEPTED, OUTCOME_REFUSED, OUTCOME_UNKNOWN, OUTCOME_AUTH_REJECTED };

/* "accepted", "refused", "unknown", "auth_rejected". */
const char *outcome_name(enum outcome o);

/* Longest Retry-After honoured: one hour. */
#define CLASSIFY_RETRY_AFTER_MAX_MS INT64_C(3600000)

struct classification {
	enum outcome outcome;
	/* static text: "http 200", "http 503", "timeout", "connection error",
	 * "unreadable body", "refused: http 422", "credentials rejected: http 401" ... */
	const char *reason;
	int64_t retry_after_ms; /* -1 none; else 0 .. CLASSIFY_RETRY_AFTER_MAX_MS */
};

/* Classifies one attempt (design.md, "Classify"):
 *   2xx with a parsed JSON object -> ACCEPTED; 2xx with an unreadable body -> UNKNOWN;
 *   401 and 407 -> AUTH_REJECTED; 408, 409, 421, 425, 429 -> UNKNOWN;
 *   every other 4xx (400, 403, 404, 422, 405, 410, 413 ...) -> REFUSED;
 *   5xx, 1xx, 3xx, no answer, timeouts and transport errors -> UNKNOWN
 *   (a timeout or transport error wins over a status received before it).
 * http_status is 0 when no HTTP answer arrived. retry_after is the header value or
 * NULL; now_ms (unix ms) resolves an HTTP-date. */
void classify_answer(int http_status, bool transport_error, bool timed_out, bool body_parsed,
                     const char *retry_after, int64_t now_ms, struct classification *out);

/* Parses a Retry-After value: delta-seconds or an HTTP-date (IMF-fixdate, RFC 850 or
 * asctime form). Returns the delay in ms from now_ms, at least 0 and capped at one
 * hour, or -1 for NULL or garbage. */
int64_t classify_retry_after(const char *value, int64_t now_ms);

#endif
