/* Unit tests of the pure outcome decision (lib/outcome.c): what a gateway answer means
 * for a claimed modification (recorded, retried, refused, needs attention) and that what
 * is stored is storable. No database, no network. */
#include "autoconfig.h"

#include "outcome.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MID "7d2c9a10-3e4f-4b5a-8c7d-112233445566"
#define TXN "5b1f0c7e-2a41-4f0e-9d55-0c1a2b3c4d5e"

static const struct outcome_policy policy = {
    .retry_base_ms = 1000, .retry_max_ms = 60000, .max_attempts = 5};

static struct claim claim(enum mod_kind kind, int attempts, int64_t deadline_ms)
{
	struct claim c = {.modification_id = MID,
	                  .order_id = "42",
	                  .transaction_id = TXN,
	                  .kind = kind,
	                  .body = "{}",
	                  .attempts = attempts,
	                  .generation = 3,
	                  .deadline_ms = deadline_ms};
	return c;
}

static enum outcome_result decide(struct claim c, int status, const char *body,
                                  const char *retry_after, struct outcome *o)
{
	struct outcome_answer a = {.http_status = status,
	                           .transport_error = status == 0,
	                           .error = status == 0 ? "Connection refused" : NULL,
	                           .body = body,
	                           .body_len = body ? strlen(body) : 0,
	                           .retry_after = retry_after};
	return outcome_decide(&policy, &c, &a, 1000000, 123456789, o);
}

START_TEST(accepted_answers_record_the_gateway_ids)
{
	struct outcome o;
	const char *body =
	    "{\"extra\":1,\"paymentStatus\":\"CAPTURED\",\"modification\":{\"modificationData\":"
	    "{\"modificationId\":\"" MID "\",\"reconciliationReferenceId\":\"R1\"},"
	    "\"status\":\"CAPTURED\"}}";
	ck_assert_int_eq(decide(claim(MOD_CAPTURE, 0, 0), 200, body, NULL, &o), OUTCOME_SUCCEEDED);
	ck_assert_str_eq(o.state, "succeeded");
	ck_assert_str_eq(o.payment_status, "CAPTURED");
	ck_assert_str_eq(o.reconciliation_reference_id, "R1");
	ck_assert_str_eq(o.response_body, body);
	ck_assert_int_eq(o.generation, 3);
	ck_assert(o.counted);
	ck_assert_ptr_null(o.alert_kind);
	outcome_clear(&o);
}
END_TEST

START_TEST(garbled_success_is_retried_not_guessed)
{
	struct outcome o;
	ck_assert_int_eq(
	    decide(claim(MOD_CAPTURE, 0, 0), 200, "{\"paymentStatus\":\"CAPT", NULL, &o),
	    OUTCOME_RETRY);
	ck_assert_str_eq(o.state, "pending");
	ck_assert_int_ge(o.retry_delay_ms, 0);
	ck_assert_int_le(o.retry_delay_ms, 2000);
	outcome_clear(&o);
}
END_TEST

START_TEST(refusals_are_alerted_with_the_gateway_error)
{
	struct outcome o;
	ck_assert_int_eq(decide(claim(MOD_REFUND, 0, 0), 422,
	                        "{\"error\":\"amount_too_high\",\"errorDetails\":\"over\"}", NULL,
	                        &o),
	                 OUTCOME_REFUSED);
	ck_assert_str_eq(o.state, "refused");
	ck_assert_ptr_nonnull(strstr(o.reason, "amount_too_high"));
	ck_assert_str_eq(o.alert_kind, "modification_refused");
	outcome_clear(&o);
}
END_TEST

START_TEST(unknown_outcomes_back_off_and_give_up)
{
	struct outcome o;
	ck_assert_int_eq(decide(claim(MOD_CAPTURE, 0, 0), 503, "", "7", &o), OUTCOME_RETRY);
	ck_assert_int_eq(o.retry_delay_ms, 7000); /* Retry-After wins over the jitter */
	outcome_clear(&o);
	ck_assert_int_eq(decide(claim(MOD_CAPTURE, 2, 0), 0, NULL, NULL, &o), OUTCOME_RETRY);
	ck_assert_ptr_nonnull(strstr(o.reason, "Connection refused"));
	outcome_clear(&o);
	ck_assert_int_eq(decide(claim(MOD_CAPTURE, 4, 0), 500, "", NULL, &o),
	                 OUTCOME_NEEDS_ATTENTION);
	ck_assert_str_eq(o.state, "needs_attention");
	ck_assert_ptr_nonnull(strstr(o.reason, "retries exhausted after 5 attempts"));
	ck_assert_str_eq(o.alert_kind, "needs_attention");
	outcome_clear(&o);
	/* a capture whose authorization deadline passed is not retried */
	ck_assert_int_eq(decide(claim(MOD_CAPTURE, 0, 999000), 502, "", NULL, &o),
	                 OUTCOME_NEEDS_ATTENTION);
	ck_assert_ptr_nonnull(strstr(o.reason, "deadline"));
	outcome_clear(&o);
	/* the last retry is pulled in before the deadline */
	ck_assert_int_eq(decide(claim(MOD_CAPTURE, 0, 1000000 + 61000), 503, "", "3600", &o),
	                 OUTCOME_RETRY);
	ck_assert_int_le(o.retry_delay_ms, 1000);
	outcome_clear(&o);
}
END_TEST

START_TEST(credentials_rejected_are_not_the_orders_fault)
{
	struct outcome o;
	ck_assert_int_eq(decide(claim(MOD_CAPTURE, 3, 0), 401, "", NULL, &o),
	                 OUTCOME_AUTH_REJECTED);
	ck_assert_str_eq(o.state, "pending");
	ck_assert(!o.counted);
	ck_assert_int_eq(o.retry_delay_ms, 0);
	outcome_clear(&o);
	struct claim c = claim(MOD_CAPTURE, 0, 0);
	outcome_expired(&c, &o);
	ck_assert_str_eq(o.state, "needs_attention");
	outcome_clear(&o);
}
END_TEST

/* An answer with an explicit body length (the body may hold NULs). */
static enum outcome_result decide_bytes(struct claim c, int status, const char *body, size_t len,
                                        struct outcome *o)
{
	struct outcome_answer a = {.http_status = status, .body = body, .body_len = len};
	return outcome_decide(&policy, &c, &a, 1000000, 123456789, o);
}

/* One entry of our modification as smartpay-sim renders it (sim/render.c). */
#define SIM_ENTRY(type, status)                                                                    \
	"{\"modificationData\":{\"type\":\"" type "\",\"modificationId\":\"" MID                   \
	"\",\"reconciliationReferenceId\":\"SIMRR0001\"},\"modificationAmount\":{\"amount\":"      \
	"35.99,\"currencyCode\":\"EUR\"},\"status\":\"" status "\",\"statusHistory\":[]}"
#define SIM_TOP(pay)                                                                               \
	"{\"reconciliationReferenceId\":\"SIMRR0001\",\"paymentStatus\":\"" pay "\","              \
	"\"transactionOverview\":{\"transactionId\":\"" TXN "\",\"amount\":35.99,"                 \
	"\"currencyCode\":\"EUR\"},"

START_TEST(simulator_answers_succeed)
{
	static const struct {
		enum mod_kind kind;
		const char *body;
	} cases[] = {
	    {MOD_CAPTURE,
	     SIM_TOP("CAPTURED") "\"modification\":" SIM_ENTRY("CAPTURE", "CAPTURED") "}"},
	    {MOD_CANCEL,
	     SIM_TOP("CANCELLED") "\"modification\":" SIM_ENTRY("CANCELLATION", "CANCELLED") "}"},
	    {MOD_CANCEL_OR_REFUND,
	     SIM_TOP("CANCELED") "\"modification\":" SIM_ENTRY("CANCELATION", "CANCELED") "}"},
	    {MOD_CANCEL_OR_REFUND,
	     SIM_TOP("REFUNDED") "\"modification\":" SIM_ENTRY("REFUND", "REFUNDED") "}"},
	    {MOD_REFUND,
	     SIM_TOP("CAPTURED") "\"modification\":" SIM_ENTRY("REFUND", "REFUNDED") "}"},
	    /* the array shape, with the earlier capture in the history */
	    {MOD_REFUND, SIM_TOP("REFUNDED") "\"modifications\":[{\"modificationData\":{\"type\":"
	                                     "\"CAPTURE\",\"modificationId\":\"cap\"},\"status\":"
	                                     "\"CAPTURED\"}," SIM_ENTRY("REFUND", "REFUNDED") "]}"},
	};
	struct outcome o;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum outcome_result r =
		    decide(claim(cases[i].kind, 0, 0), 200, cases[i].body, NULL, &o);
		ck_assert_msg(r == OUTCOME_SUCCEEDED, "case %zu: %s (%s)", i,
		              outcome_result_name(r), o.reason ? o.reason : "");
		ck_assert_str_eq(o.reconciliation_reference_id, "SIMRR0001");
		ck_assert_ptr_null(o.reason);
		outcome_clear(&o);
	}
}
END_TEST

/* A 2xx that does not confirm this modification: pending, counted, resent later with
 * the same id and bytes, its reason saying why; never succeeded. */
START_TEST(unconfirmed_answers_are_retried)
{
	static const struct {
		int status;
		const char *body;
		const char *reason;
	} cases[] = {
	    {200, "",
	     "retrying: gateway answered http 200 without confirming this modification: "
	     "the body is not one JSON object"},
	    {200, "{\"error\":\"internal\",\"errorDetails\":\"db down\"}",
	     "retrying: gateway answered http 200 without confirming this modification: the answer "
	     "carries an error (internal; db down)"},
	    {202, "{}",
	     "retrying: gateway answered http 202 without confirming this modification: "
	     "no modification entry names this modificationId"},
	    {200,
	     "{\"paymentStatus\":\"CAPTURED\",\"modification\":{\"status\":\"CAPTURED\","
	     "\"modificationData\":{\"modificationId\":\"0d2c9a10-3e4f-4b5a-8c7d-112233445566\"}}}",
	     "retrying: gateway answered http 200 without confirming this modification: no "
	     "modification entry names this modificationId"},
	    {200,
	     "{\"modification\":{\"status\":\"FAILED\",\"modificationData\":{\"modificationId\":"
	     "\"" MID "\",\"type\":\"CAPTURE\"}}}",
	     "retrying: gateway answered http 200 without confirming this modification: its "
	     "entry's "
	     "status does not confirm it (FAILED)"},
	    {200,
	     "{\"modification\":{\"status\":\"REFUNDED\",\"modificationData\":{\"modificationId\":"
	     "\"" MID "\",\"type\":\"REFUND\"}}}",
	     "retrying: gateway answered http 200 without confirming this modification: its entry "
	     "is "
	     "a modification of another type (REFUND)"},
	    {200,
	     "{\"modification\":{\"status\":\"CAPTURED\\u0000junk\",\"modificationData\":{"
	     "\"modificationId\":\"" MID "\"}}}",
	     "retrying: gateway answered http 200 without confirming this modification: its "
	     "entry's "
	     "status does not confirm it (CAPTURED\xEF\xBF\xBDjunk)"},
	};
	struct outcome o;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum outcome_result r =
		    decide(claim(MOD_CAPTURE, 1, 0), cases[i].status, cases[i].body, NULL, &o);
		ck_assert_msg(r == OUTCOME_RETRY, "case %zu: %s", i, outcome_result_name(r));
		ck_assert_str_eq(o.state, "pending");
		ck_assert(o.counted);
		ck_assert_str_eq(o.reason, cases[i].reason);
		ck_assert_int_ge(o.retry_delay_ms, 0);
		ck_assert_int_le(o.retry_delay_ms, 4000); /* full jitter of the second retry */
		ck_assert_ptr_null(o.payment_status);
		ck_assert_ptr_null(o.reconciliation_reference_id);
		ck_assert_ptr_null(o.alert_kind);
		ck_assert_int_eq(o.http_status, cases[i].status);
		outcome_clear(&o);
	}
}
END_TEST

/* Repeated answers that confirm nothing end in needs_attention with an alert that says
 * so, after the normal number of attempts. */
START_TEST(unconfirmed_answers_end_in_needs_attention)
{
	struct outcome o;
	int attempts;

	for (attempts = 0; attempts < policy.max_attempts; attempts++) {
		enum outcome_result r = decide(claim(MOD_CANCEL, attempts, 0), 200, "{}", NULL, &o);
		if (attempts + 1 < policy.max_attempts) {
			ck_assert_int_eq(r, OUTCOME_RETRY);
			ck_assert_ptr_null(o.alert_kind);
		} else {
			ck_assert_int_eq(r, OUTCOME_NEEDS_ATTENTION);
		}
		ck_assert(o.counted);
		if (r == OUTCOME_NEEDS_ATTENTION)
			break;
		outcome_clear(&o);
	}
	ck_assert_int_eq(attempts, policy.max_attempts - 1);
	ck_assert_str_eq(o.state, "needs_attention");
	ck_assert_str_eq(o.alert_kind, "needs_attention");
	ck_assert_str_eq(o.alert_severity, "critical");
	ck_assert_str_eq(o.reason,
	                 "retries exhausted after 5 attempts; last: gateway answered http 200 "
	                 "without confirming this modification: no modification entry names this "
	                 "modificationId");
	outcome_clear(&o);
}
END_TEST

/* Everything the outcome stores is well-formed UTF-8 without NULs, within its limit. */
START_TEST(what_is_stored_is_storable)
{
	struct outcome o;
	static const char latin1[] = "<html><body><h1>503 Dienst nicht verf\xfcgbar</h1>Gr\xfc\xdf"
	                             "e</body></html>";
	size_t n = OUTCOME_MAX_STORED_RESPONSE + 100;
	char *big = malloc(n + 1);

	ck_assert_ptr_nonnull(big);
	ck_assert_int_eq(decide(claim(MOD_CAPTURE, 0, 0), 503, latin1, NULL, &o), OUTCOME_RETRY);
	ck_assert(testutil_utf8_valid(o.response_body));
	ck_assert_str_eq(o.response_body,
	                 "<html><body><h1>503 Dienst nicht verf\xEF\xBF\xBDgbar</h1>"
	                 "Gr\xEF\xBF\xBD\xEF\xBF\xBD"
	                 "e</body></html>");
	ck_assert_str_eq(o.reason, "retrying: http 503");
	outcome_clear(&o);

	/* NUL bytes in a body are dropped */
	ck_assert_int_eq(decide_bytes(claim(MOD_CAPTURE, 0, 0), 502, "a\0b\0", 4, &o),
	                 OUTCOME_RETRY);
	ck_assert_str_eq(o.response_body, "ab");
	outcome_clear(&o);

	/* a body longer than the limit, cut where a character straddles it */
	memset(big, 'x', n);
	memcpy(big + OUTCOME_MAX_STORED_RESPONSE - 1, "\xe2\x82\xac", 3);
	ck_assert_int_eq(decide_bytes(claim(MOD_CAPTURE, 0, 0), 500, big, n, &o), OUTCOME_RETRY);
	ck_assert_uint_eq(strlen(o.response_body), OUTCOME_MAX_STORED_RESPONSE - 1);
	ck_assert(testutil_utf8_valid(o.response_body));
	outcome_clear(&o);

	/* a refusal quoting a long error in Latin-1, with a \u0000 in it */
	memset(big, 0xe9, n);
	memcpy(big, "{\"error\":\"", 10);
	memcpy(big + n - 10, "\\u0000x\"}  ", 10);
	ck_assert_int_eq(decide_bytes(claim(MOD_REFUND, 0, 0), 422, big, n, &o), OUTCOME_REFUSED);
	ck_assert(testutil_utf8_valid(o.reason));
	ck_assert_uint_le(strlen(o.reason), OUTCOME_MAX_STORED_REASON);
	ck_assert_uint_ge(strlen(o.reason), OUTCOME_MAX_STORED_REASON - 2);
	ck_assert(strncmp(o.reason, "refused: http 422: \xEF\xBF\xBD", 22) == 0);
	ck_assert(testutil_utf8_valid(o.response_body));
	outcome_clear(&o);

	/* the transport's message */
	{
		struct claim c = claim(MOD_CAPTURE, 0, 0);
		struct outcome_answer a = {.transport_error = true,
		                           .error = "Verbindung zur\xfc"
		                                    "ckgewiesen \xc0\xaf"};
		ck_assert_int_eq(outcome_decide(&policy, &c, &a, 1000000, 1, &o), OUTCOME_RETRY);
		ck_assert_str_eq(o.reason, "retrying: Verbindung zur\xEF\xBF\xBD"
		                           "ckgewiesen \xEF\xBF\xBD\xEF\xBF\xBD");
		outcome_clear(&o);
	}

	/* a confirmed answer's paymentStatus and reconciliation id */
	{
		static const char body[] =
		    "{\"paymentStatus\":\"CAPTURED\\u0000junk\",\"modification\":{\"status\":"
		    "\"CAPTURED\",\"modificationData\":{\"modificationId\":\"" MID
		    "\",\"reconciliationReferenceId\":\"R\xff\\u0000\"}}}";
		ck_assert_int_eq(decide(claim(MOD_CAPTURE, 0, 0), 200, body, NULL, &o),
		                 OUTCOME_SUCCEEDED);
		ck_assert_str_eq(o.payment_status, "CAPTURED\xEF\xBF\xBDjunk");
		ck_assert_str_eq(o.reconciliation_reference_id, "R\xEF\xBF\xBD\xEF\xBF\xBD");
		outcome_clear(&o);
	}
	{
		char *body;
		memset(big, 'Z', 1000);
		big[1000] = '\0';
		ck_assert_int_ge(asprintf(&body,
		                          "{\"paymentStatus\":\"%s\",\"modification\":{\"status\":"
		                          "\"CAPTURED\",\"modificationData\":{\"modificationId\":"
		                          "\"" MID "\",\"reconciliationReferenceId\":\"%s\"}}}",
		                          big, big),
		                 0);
		ck_assert_int_eq(decide(claim(MOD_CAPTURE, 0, 0), 200, body, NULL, &o),
		                 OUTCOME_SUCCEEDED);
		ck_assert_uint_eq(strlen(o.payment_status), OUTCOME_MAX_STORED_FIELD);
		ck_assert_uint_eq(strlen(o.reconciliation_reference_id), OUTCOME_MAX_STORED_FIELD);
		outcome_clear(&o);
		free(body);
	}
	free(big);
}
END_TEST

/* Builds the suite. */
static Suite *outcome_suite(void)
{
	Suite *s = suite_create("outcome");
	testutil_tcase(
	    s, "outcome", 0,
	    (const TTest *const[]){
	        accepted_answers_record_the_gateway_ids, garbled_success_is_retried_not_guessed,
	        refusals_are_alerted_with_the_gateway_error, unknown_outcomes_back_off_and_give_up,
	        credentials_rejected_are_not_the_orders_fault, simulator_answers_succeed,
	        unconfirmed_answers_are_retried, unconfirmed_answers_end_in_needs_attention,
	        what_is_stored_is_storable, NULL});
	return s;
}

int main(void)
{
	return testutil_run_suite(outcome_suite(), CK_NORMAL);
}
