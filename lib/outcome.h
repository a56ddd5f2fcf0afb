/* What one gateway answer means for a modification (design.md, "Classify"): the next
 * ledger state, the reason, the alert, the retry time. Pure: no I/O. */
#ifndef SP_OUTCOME_H
#define SP_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "records.h"

/* What happened to one attempt (or, for OUTCOME_REFUSED_LOCALLY, to one order row). */
enum outcome_result {
	OUTCOME_SUCCEEDED,
	OUTCOME_REFUSED,
	OUTCOME_RETRY,
	OUTCOME_NEEDS_ATTENTION,
	OUTCOME_AUTH_REJECTED,
	OUTCOME_REFUSED_LOCALLY,
	OUTCOME_RESULT_COUNT
};
/* "succeeded", "refused", "retry", "needs_attention", "auth_rejected", "refused_locally". */
const char *outcome_result_name(enum outcome_result r);

/* Longest gateway answer kept in the ledger, in bytes of well-formed UTF-8. */
#define OUTCOME_MAX_STORED_RESPONSE 65536
/* Longest reason kept (it quotes the gateway's error text), in bytes. */
#define OUTCOME_MAX_STORED_REASON 2048
/* Longest paymentStatus or reconciliationReferenceId kept, in bytes. */
#define OUTCOME_MAX_STORED_FIELD 256
/* Margin before the authorization deadline that the last retry must respect. */
#define OUTCOME_DEADLINE_MARGIN_MS 60000

/* One attempt as the transport saw it. */
struct outcome_answer {
	int http_status; /* 0: no HTTP answer */
	bool transport_error;
	bool timed_out;
	const char *error; /* the transport's message, or NULL */
	const char *body;
	size_t body_len;
	const char *retry_after; /* header value or NULL */
};

struct outcome_policy {
	int64_t retry_base_ms;
	int64_t retry_max_ms;
	int max_attempts;
};

/* Decides the outcome of attempt number c->attempts + 1 of claim `c` (classify_answer's
 * decision table): fills *o (owned strings; outcome_clear frees them) and returns
 * the result. Only an answer that confirms this modification succeeds; it records
 * paymentStatus and reconciliationReferenceId. Refusals record the gateway's error;
 * unknown outcomes (a 2xx that confirms nothing among them, its reason saying why) a
 * retry delay (full jitter from `random`, Retry-After honoured, pulled in before a
 * capture's deadline) or, when retries are exhausted or the deadline passed,
 * needs_attention; a credentials rejection leaves the row pending, uncounted and due at
 * once. Alerts are set for refusals and needs_attention; the caller adds the one
 * credentials alert per episode. Every string stored is well-formed UTF-8 without NUL
 * bytes and bounded (OUTCOME_MAX_STORED_*), whatever the gateway or transport sent. */
enum outcome_result outcome_decide(const struct outcome_policy *p, const struct claim *c,
                                   const struct outcome_answer *a, int64_t now_ms, uint64_t random,
                                   struct outcome *o);

struct gw_history;

/* Settles an unknown outcome from the transaction's status history (GET /payment/status,
 * answered and readable). `o` and `unknown` are what outcome_decide gave for the attempt
 * (OUTCOME_RETRY or OUTCOME_NEEDS_ATTENTION); *o is rewritten when the history decides:
 *  - an entry with this modificationId confirms it: succeeded (OUTCOME_SUCCEEDED), the
 *    payment status recorded, settled_by "status";
 *  - it reports a refusal (FAILED, REFUSED, DECLINED ...): refused with the gateway's
 *    status, a modification_refused alert (OUTCOME_REFUSED), settled_by "status";
 *  - no entry has it and the payment status shows the modification can still be made:
 *    pending, resent with the same id and body (OUTCOME_RETRY): after the backoff's delay, or
 *    after retry_max when retries had run out, until 2 * max_attempts attempts were made
 *    (a gateway that answers without ever performing it is then left to an operator);
 *  - anything else (entries that disagree, a status that decides nothing, absent while
 *    it can no longer be made): *o is left as it was, its reason saying what the history
 *    showed.
 * Returns the result for the attempt. Pure. */
enum outcome_result outcome_settle(const struct outcome_policy *p, const struct claim *c,
                                   const struct gw_history *h, enum outcome_result unknown,
                                   struct outcome *o);

/* The outcome of a capture whose authorization deadline passed while it was pending. */
void outcome_expired(const struct claim *c, struct outcome *o);

#endif
