/* libFuzzer harness: one gateway answer through response parsing and classification
 * (outcome_decide), for every modification kind, with invariants on the outcome.
 *
 * Input: a header line, then the body (any bytes, NULs included).
 *   byte 0      kind: 'c' capture, 'x' cancel, 'o' cancelOrRefund, 'r' refund
 *               (any other byte: byte % 4)
 *   bytes 1..3  HTTP status digits ("000": no HTTP answer; other bytes: byte % 10)
 *   byte 4      flags, as byte - '0': bit 0 transport error, bit 1 timed out,
 *               bit 2 capture deadline soon, bit 3 capture deadline passed,
 *               bits 4..7 attempts already made
 *   then        our modificationId, up to a space or the end of the line
 *   then        the Retry-After value, up to the end of the line (empty: none)
 *   "\n"        then the body
 * e.g. "c2000cap-0001 7\n{...}". */
#include "autoconfig.h"

#include "classify.h"
#include "fuzz.h"
#include "outcome.h"
#include "xmalloc.h"

#include <stdbool.h>
#include <string.h>

#define NOW_MS INT64_C(1764581330000)
#define DAY_MS INT64_C(86400000)

/* The attempt as decoded from the input; strings are owned. */
struct fuzz_case {
	struct store_claim claim;
	struct outcome_answer answer;
	char *retry_after;
};

/* One header byte as a decimal digit. */
static int digit_of(uint8_t b)
{
	return b >= '0' && b <= '9' ? b - '0' : b % 10;
}

/* The modification kind a header byte names. */
static enum mod_kind kind_of(uint8_t b)
{
	switch (b) {
	case 'c':
		return MOD_CAPTURE;
	case 'x':
		return MOD_CANCEL;
	case 'o':
		return MOD_CANCEL_OR_REFUND;
	case 'r':
		return MOD_REFUND;
	default:
		return (enum mod_kind)(b % 4);
	}
}

/* FNV-1a of the input: the "random" draw of the backoff, reproducible per input. */
static uint64_t input_hash(const uint8_t *data, size_t size)
{
	uint64_t h = UINT64_C(14695981039346656037);
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * UINT64_C(1099511628211);
	return h;
}

/* Copies [p, end) up to the first NUL, or `fallback` when that is empty. */
static char *text_or(const uint8_t *p, const uint8_t *end, const char *fallback)
{
	char *s = xstrndup((const char *)p, (size_t)(end - p));
	if (*s == '\0' && fallback != NULL) {
		free(s);
		s = xstrdup(fallback);
	}
	return s;
}

/* Splits the input into a claim and an answer. */
static void decode(const uint8_t *data, size_t size, struct fuzz_case *fc)
{
	uint8_t head[5] = {'c', '2', '0', '0', '0'};
	memcpy(head, data, size < 5 ? size : 5);
	const uint8_t *end = data + size;
	const uint8_t *p = size < 5 ? end : data + 5;
	const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
	const uint8_t *line_end = nl ? nl : end;
	const uint8_t *sp = memchr(p, ' ', (size_t)(line_end - p));
	const uint8_t *id_end = sp ? sp : line_end;
	unsigned flags = (uint8_t)(head[4] - '0');

	memset(fc, 0, sizeof(*fc));
	struct store_claim *c = &fc->claim;
	c->modification_id = text_or(p, id_end, "mod-0001");
	c->order_id = xstrdup("42");
	c->transaction_id = xstrdup("tx-1");
	c->body = xstrdup("{}");
	c->kind = kind_of(head[0]);
	c->attempts = (int)(flags >> 4);
	c->generation = 7;
	c->deadline_ms = NOW_MS + 5 * DAY_MS;
	if (flags & 4)
		c->deadline_ms = NOW_MS + 90000;
	if (flags & 8) {
		c->deadline_ms = NOW_MS - 1;
		c->deadline_passed = true;
	}
	fc->retry_after = sp ? text_or(sp + 1, line_end, NULL) : NULL;
	if (fc->retry_after != NULL && *fc->retry_after == '\0') {
		free(fc->retry_after);
		fc->retry_after = NULL;
	}

	struct outcome_answer *a = &fc->answer;
	a->http_status = digit_of(head[1]) * 100 + digit_of(head[2]) * 10 + digit_of(head[3]);
	a->transport_error = flags & 1;
	a->timed_out = flags & 2;
	a->error = a->transport_error ? "Connection reset by peer" : NULL;
	a->body = nl ? (const char *)nl + 1 : "";
	a->body_len = nl ? (size_t)(end - nl - 1) : 0;
	a->retry_after = fc->retry_after;
}

/* Frees what decode allocated. */
static void fuzz_case_free(struct fuzz_case *fc)
{
	store_claim_clear(&fc->claim);
	free(fc->retry_after);
}

/* True when two optional strings are equal (both NULL counts). */
static bool same_text(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Checks that the state, alert and counting agree with the result. */
static void check_result_fields(enum engine_result r, const struct store_outcome *o)
{
	static const char *const states[ER_COUNT] = {"succeeded",       "refused", "pending",
	                                             "needs_attention", "pending", NULL};
	FUZZ_CHECK((unsigned)r < ER_COUNT && r != ER_REFUSED_LOCALLY);
	FUZZ_CHECK(o->state != NULL && strcmp(o->state, states[r]) == 0);
	FUZZ_CHECK(o->counted == (r != ER_AUTH_REJECTED));
	bool alerted = r == ER_REFUSED || r == ER_NEEDS_ATTENTION;
	FUZZ_CHECK((o->alert_kind != NULL) == alerted);
	FUZZ_CHECK((o->alert_severity != NULL) == alerted);
	FUZZ_CHECK(r == ER_SUCCEEDED || o->reason != NULL);
}

/* Checks the result against what the transport saw. */
static void check_result_cause(enum engine_result r, const struct fuzz_case *fc,
                               const struct outcome_policy *pol, const struct store_outcome *o)
{
	const struct outcome_answer *a = &fc->answer;
	bool clean = !a->transport_error && !a->timed_out;
	if (r == ER_SUCCEEDED)
		FUZZ_CHECK(clean && a->http_status >= 200 && a->http_status <= 299 &&
		           a->body_len > 0);
	if (r == ER_REFUSED)
		FUZZ_CHECK(clean && a->http_status >= 400 && a->http_status <= 499);
	if (r == ER_AUTH_REJECTED)
		FUZZ_CHECK(clean && (a->http_status == 401 || a->http_status == 407));
	bool has_deadline = fc->claim.kind == MOD_CAPTURE;
	if (r == ER_NEEDS_ATTENTION)
		FUZZ_CHECK(fc->claim.attempts + 1 >= pol->max_attempts ||
		           (has_deadline && fc->claim.deadline_ms <= NOW_MS));
	if (r == ER_RETRY) {
		int64_t cap = pol->retry_max_ms > CLASSIFY_RETRY_AFTER_MAX_MS
		                  ? pol->retry_max_ms
		                  : CLASSIFY_RETRY_AFTER_MAX_MS;
		FUZZ_CHECK(o->retry_delay_ms >= 0 && o->retry_delay_ms <= cap);
		int64_t latest = fc->claim.deadline_ms - OUTCOME_DEADLINE_MARGIN_MS - NOW_MS;
		if (has_deadline)
			FUZZ_CHECK(o->retry_delay_ms <= (latest > 0 ? latest : 0));
	}
	if (r != ER_RETRY)
		FUZZ_CHECK(o->retry_delay_ms == 0);
}

/* Checks what the outcome stores: the claim's identity and the kept answer. */
static void check_stored(const struct fuzz_case *fc, const struct store_outcome *o)
{
	const struct store_claim *c = &fc->claim;
	const struct outcome_answer *a = &fc->answer;
	FUZZ_CHECK(strcmp(o->modification_id, c->modification_id) == 0);
	FUZZ_CHECK(strcmp(o->order_id, c->order_id) == 0);
	FUZZ_CHECK(o->kind == c->kind && o->generation == c->generation);
	FUZZ_CHECK(o->http_status == a->http_status);
	if (a->http_status == 0 || a->body_len == 0)
		FUZZ_CHECK(o->response_body == NULL);
	if (o->response_body != NULL)
		FUZZ_CHECK(strlen(o->response_body) <= OUTCOME_MAX_STORED_RESPONSE);
}

/* Checks that deciding the same answer again gives the same outcome. */
static void check_repeatable(const struct outcome_policy *pol, const struct fuzz_case *fc,
                             uint64_t random, enum engine_result r, const struct store_outcome *o)
{
	struct store_outcome again;
	enum engine_result r2 =
	    outcome_decide(pol, &fc->claim, &fc->answer, NOW_MS, random, &again);
	FUZZ_CHECK(r2 == r && strcmp(again.state, o->state) == 0);
	FUZZ_CHECK(same_text(again.reason, o->reason));
	FUZZ_CHECK(same_text(again.response_body, o->response_body));
	FUZZ_CHECK(same_text(again.payment_status, o->payment_status));
	FUZZ_CHECK(same_text(again.reconciliation_reference_id, o->reconciliation_reference_id));
	FUZZ_CHECK(again.retry_delay_ms == o->retry_delay_ms && again.counted == o->counted);
	store_outcome_clear(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct outcome_policy pol = {
	    .retry_base_ms = 1000, .retry_max_ms = 600000, .max_attempts = 10};
	struct fuzz_case fc;
	decode(data, size, &fc);
	uint64_t random = input_hash(data, size);

	struct store_outcome o;
	enum engine_result r = outcome_decide(&pol, &fc.claim, &fc.answer, NOW_MS, random, &o);
	check_result_fields(r, &o);
	check_result_cause(r, &fc, &pol, &o);
	check_stored(&fc, &o);
	check_repeatable(&pol, &fc, random, r, &o);

	store_outcome_clear(&o);
	fuzz_case_free(&fc);
	return 0;
}
