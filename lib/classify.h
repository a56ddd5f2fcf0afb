/* Classifying a gateway answer: accepted (confirmed), refused, unknown, or credentials
 * rejected. Pure. */
#ifndef SP_CLASSIFY_H
#define SP_CLASSIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "modification.h"
#include "response.h"

enum verdict { VERDICT_ACCEPTED, VERDICT_REFUSED, VERDICT_UNKNOWN, VERDICT_AUTH_REJECTED };

/* "accepted", "refused", "unknown", "auth_rejected". */
const char *verdict_name(enum verdict o);

/* Longest Retry-After honoured: one hour. */
#define CLASSIFY_RETRY_AFTER_MAX_MS INT64_C(3600000)

struct classification {
	enum verdict verdict;
	/* static text: "http 200", "http 503", "timeout", "connection error",
	 * "refused: http 422", "credentials rejected: http 401" ... */
	const char *reason;
	/* a 2xx that did not confirm this modification: why, as static text (one of the
	 * CLASSIFY_UNCONFIRMED_* below); NULL otherwise */
	const char *unconfirmed;
	int64_t retry_after_ms; /* -1 none; else 0 .. CLASSIFY_RETRY_AFTER_MAX_MS */
};

/* Why a 2xx did not confirm the modification (README, "Decision table"). */
#define CLASSIFY_UNCONFIRMED_NOT_JSON "the body is not one JSON object"
#define CLASSIFY_UNCONFIRMED_ERROR "the answer carries an error"
#define CLASSIFY_UNCONFIRMED_NO_ENTRY "no modification entry names this modificationId"
#define CLASSIFY_UNCONFIRMED_DISAGREE "the entries naming this modificationId disagree"
#define CLASSIFY_UNCONFIRMED_WRONG_TYPE "its entry is a modification of another type"
#define CLASSIFY_UNCONFIRMED_NO_STATUS "its entry has no status"
#define CLASSIFY_UNCONFIRMED_STATUS "its entry's status does not confirm it"

/* Classifies one attempt of a modification of `kind` (README, "Decision table"):
 *   a timeout or transport error -> UNKNOWN (it wins over a status received before it);
 *   no HTTP status, or one outside 100..599 -> UNKNOWN;
 *   401 and 407 -> AUTH_REJECTED; 408, 409, 421, 425, 429 -> UNKNOWN;
 *   every other 4xx (400, 403, 404, 422, 405, 410, 413 ...) -> REFUSED;
 *   1xx, 3xx, 5xx -> UNKNOWN;
 *   2xx -> ACCEPTED only when the body confirms this modification: it is one JSON
 *   object (`body` is the parsed response, NULL when it was not one) without an
 *   `error`/`errorDetails` member, the entries naming our modificationId exist and
 *   agree, their type (if given) is one of this kind's and their status confirms it
 *   (classify_confirms); every other 2xx -> UNKNOWN with `unconfirmed` set.
 * http_status is 0 when no HTTP answer arrived. retry_after is the header value or
 * NULL; now_ms (unix ms) resolves an HTTP-date. */
void classify_answer(int http_status, bool transport_error, bool timed_out,
                     const struct gw_response *body, enum mod_kind kind, const char *retry_after,
                     int64_t now_ms, struct classification *out);

/* Whether an entry with modificationData.type `type` (NULL when absent) and `status`
 * confirms a modification of `kind`; compared ignoring ASCII case and spelling
 * (CANCELED/CANCELLED, CANCELATION/CANCELLATION). Returns NULL when it does, else the
 * CLASSIFY_UNCONFIRMED_* text saying why not. Confirming statuses: capture CAPTURED,
 * CAPTURE_PENDING, SETTLED; cancel CANCELLED, CANCELLATION_PENDING; refund REFUNDED,
 * REFUND_PENDING; cancelOrRefund those of cancel or refund. Types: CAPTURE,
 * CANCELLATION, REFUND (cancelOrRefund: CANCELLATION or REFUND); a status must belong
 * to the entry's type. */
const char *classify_confirms(enum mod_kind kind, const char *type, const char *status);

/* Parses a Retry-After value: delta-seconds or an HTTP-date (IMF-fixdate, RFC 850 or
 * asctime form). Returns the delay in ms from now_ms, at least 0 and capped at one
 * hour, or -1 for NULL or garbage. */
int64_t classify_retry_after(const char *value, int64_t now_ms);

#endif
