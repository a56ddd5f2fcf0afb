/* Unit tests of the pure intent decision (lib/intent.c): which modification an order row
 * or a shop request gives, its exact body, or the reason it is refused. No database, no
 * network. */
#include "autoconfig.h"

#include "intent.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MKEY "31928de9-5b5e-4a66-b8ab-8c1e4c9a1d00"
#define MID "7d2c9a10-3e4f-4b5a-8c7d-112233445566"
#define TXN "5b1f0c7e-2a41-4f0e-9d55-0c1a2b3c4d5e"

static struct candidate order(enum mod_kind kind, const char *txn, const char *amount,
                              const char *currency, const char *capture)
{
	struct candidate c = {.order_id = "42",
	                      .status = "shipped",
	                      .transaction_id = (char *)txn,
	                      .amount = (char *)amount,
	                      .currency = (char *)currency,
	                      .capture_amount = (char *)capture,
	                      .authorized_at = "2023-11-09 22:13:20+00",
	                      .has_deadline = true,
	                      .deadline_ms = 1700000000000,
	                      .kind = kind,
	                      .captured_minor = -1};
	return c;
}

/* Builds the intent and returns its body ("" when refused) and reason. */
static void build(struct candidate c, char **body, char **reason)
{
	struct intent in;
	char *buf;
	intent_from_order(MKEY, MID, &c, &in, &buf);
	*body = in.body ? in.body : strdup("");
	*reason = in.reason ? strdup(in.reason) : NULL;
	free(buf);
}

START_TEST(full_capture_omits_the_amount)
{
	char *body, *reason;
	build(order(MOD_CAPTURE, TXN, "35.99", "EUR", NULL), &body, &reason);
	ck_assert_ptr_null(reason);
	ck_assert_str_eq(body, "{\"transactionId\":\"" TXN "\",\"merchantKey\":\"" MKEY
	                       "\",\"modificationId\":\"" MID "\"}");
	free(body);
	/* a capture_amount equal to the authorization is a full capture too */
	build(order(MOD_CAPTURE, TXN, "35.99", "EUR", "35.99"), &body, &reason);
	ck_assert_ptr_null(strstr(body, "modifiedAmount"));
	free(body);
}
END_TEST

START_TEST(partial_capture_sends_exact_decimal)
{
	struct candidate c = order(MOD_CAPTURE, TXN, "50.00", "EUR", "20.10");
	struct intent in;
	char *buf;
	intent_from_order(MKEY, MID, &c, &in, &buf);
	ck_assert_ptr_null(in.reason);
	ck_assert_int_eq(in.amount_minor, 2010);
	ck_assert_ptr_nonnull(
	    strstr(in.body, "\"modifiedAmount\":{\"amount\":20.10,\"currencyCode\":\"EUR\"}"));
	ck_assert_int_eq(in.deadline_ms, 1700000000000);
	free(in.body);
	/* numeric(18,2) text of a zero-decimal currency */
	c = order(MOD_CAPTURE, TXN, "5000.00", "JPY", "1200.00");
	intent_from_order(MKEY, MID, &c, &in, &buf);
	ck_assert_ptr_nonnull(strstr(in.body, "\"amount\":1200,"));
	free(in.body);
}
END_TEST

START_TEST(bad_rows_are_refused_with_a_reason)
{
	static const struct {
		const char *txn, *amount, *currency, *capture, *reason;
	} cases[] = {
	    {NULL, "10.00", "EUR", NULL, "missing smartpay_transaction_id"},
	    {"", "10.00", "EUR", NULL, "missing smartpay_transaction_id"},
	    {TXN, "10.00", "XYZ", NULL, "unknown currency 'XYZ'"},
	    {TXN, NULL, "EUR", NULL, "missing amount"},
	    {TXN, "0.00", "EUR", NULL, "amount must be greater than zero"},
	    {TXN, "10.00", "EUR", "25.00", "capture_amount above the authorized amount"},
	    {TXN, "10.00", "EUR", "0.00", "capture_amount must be greater than zero"},
	    {"0123456789012345678901234567890123456789", "10.00", "EUR", NULL, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *body, *reason;
		build(order(MOD_CAPTURE, cases[i].txn, cases[i].amount, cases[i].currency,
		            cases[i].capture),
		      &body, &reason);
		ck_assert_msg(reason != NULL, "case %zu was not refused", i);
		ck_assert_str_eq(body, "");
		if (cases[i].reason)
			ck_assert_str_eq(reason, cases[i].reason);
		free(body);
		free(reason);
	}
	char *body, *reason;
	build(order(MOD_CAPTURE, TXN, "-5.00", "EUR", NULL), &body, &reason);
	ck_assert_ptr_nonnull(strstr(reason, "invalid amount -5.00"));
	free(body);
	free(reason);
	build(order(MOD_CAPTURE, TXN, "10.00", "EUR", "1.005"), &body, &reason);
	ck_assert_ptr_nonnull(strstr(reason, "invalid capture_amount 1.005"));
	free(body);
	free(reason);
}
END_TEST

START_TEST(cancels_carry_no_amount)
{
	char *body, *reason;
	build(order(MOD_CANCEL, TXN, "10.00", "EUR", "5.00"), &body, &reason);
	ck_assert_ptr_null(reason);
	ck_assert_ptr_null(strstr(body, "modifiedAmount"));
	free(body);
	build(order(MOD_CANCEL_OR_REFUND, TXN, "10.00", "EUR", NULL), &body, &reason);
	ck_assert_ptr_null(reason);
	ck_assert_ptr_null(strstr(body, "modifiedAmount"));
	free(body);
}
END_TEST

START_TEST(requests_become_refunds)
{
	struct shop_request r = {.request_id = 9,
	                         .order_id = "42",
	                         .kind = MOD_REFUND,
	                         .amount_minor = 2500,
	                         .currency = "EUR",
	                         .transaction_id = TXN,
	                         .captured_minor = 3599,
	                         .capture_currency = "EUR"};
	struct intent in;
	char *buf;
	intent_from_request(MKEY, MID, &r, &in, &buf);
	ck_assert_ptr_null(in.reason);
	ck_assert_int_eq(in.request_id, 9);
	ck_assert_ptr_nonnull(strstr(in.body, "\"amount\":25.00"));
	free(in.body);
	r.transaction_id = NULL;
	r.captured_minor = -1;
	intent_from_request(MKEY, MID, &r, &in, &buf);
	ck_assert_ptr_null(in.body);
	ck_assert_str_eq(in.reason, "the order has no successful capture to refund");
	free(buf);
	struct shop_request cor = {.request_id = 10,
	                           .order_id = "42",
	                           .kind = MOD_CANCEL_OR_REFUND,
	                           .amount_minor = -1,
	                           .currency = "EUR",
	                           .transaction_id = TXN,
	                           .order_amount = "99.00",
	                           .captured_minor = -1};
	intent_from_request(MKEY, MID, &cor, &in, &buf);
	ck_assert_int_eq(in.amount_minor, 9900);
	ck_assert_ptr_null(strstr(in.body, "modifiedAmount"));
	free(in.body);
}
END_TEST

/* The intent of a candidate, its reason copied (NULL when sendable). */
static struct intent intent_of(const struct candidate *c, char **reason)
{
	struct intent in;
	char *buf;
	intent_from_order(MKEY, MID, c, &in, &buf);
	*reason = in.reason ? strdup(in.reason) : NULL;
	free(buf);
	return in;
}

START_TEST(hostile_rows_are_refused_each_with_its_own_reason)
{
	static const char long_amount[] =
	    "12345678901234567890123456789012345678901234567890123456789012345678901234567890";
	static const struct {
		const char *txn, *amount, *currency, *authorized_at, *expires_at;
		bool has_deadline;
		const char *reason; /* the reason starts with this */
	} cases[] = {
	    {TXN, "10.00", "EUR", "infinity", NULL, false,
	     "authorized_at 'infinity' is not a time"},
	    {TXN, "10.00", "EUR", "-infinity", NULL, false, "authorized_at '-infinity' is not"},
	    {TXN, "10.00", "EUR", NULL, NULL, false,
	     "authorized_at and authorization_expires_at are both null"},
	    {TXN, "10.00", "EUR", "2024-01-01", "next tuesday", false,
	     "authorization_expires_at 'next tuesday' is not a time"},
	    {TXN, "1000000000000000000000000000000", "EUR", "2024-01-01", NULL, true,
	     "invalid amount 1000000000000000000000000000000: more than 18 significant digits"},
	    {TXN, "-3.00", "EUR", "2024-01-01", NULL, true, "invalid amount -3.00: negative"},
	    {TXN, "abc", "EUR", "2024-01-01", NULL, true, "invalid amount abc: not a decimal"},
	    {TXN, "NaN", "EUR", "2024-01-01", NULL, true, "invalid amount NaN"},
	    {TXN, long_amount, "EUR", "2024-01-01", NULL, true,
	     "invalid amount 1234567890123456789012345678901234567890...: "},
	    {TXN, "10.00", "EURO", "2024-01-01", NULL, true, "unknown currency 'EURO'"},
	    {TXN, "10.00", "eu", "2024-01-01", NULL, true, "unknown currency 'eu'"},
	    {TXN, "10.00", "eur", "2024-01-01", NULL, true, "unknown currency 'eur'"},
	    {TXN, "10.00", NULL, "2024-01-01", NULL, true, "missing currency"},
	    {TXN, "10.00", "", "2024-01-01", NULL, true, "missing currency"},
	    {"", "10.00", "EUR", "2024-01-01", NULL, true, "missing smartpay_transaction_id"},
	    {TXN "x", "10.00", "EUR", "2024-01-01", NULL, true,
	     "smartpay_transaction_id '" TXN "x' is not a SmartPay transaction id"},
	    {"tx 1", "10.00", "EUR", "2024-01-01", NULL, true,
	     "smartpay_transaction_id 'tx 1' is not"},
	    {"tx\"\\\n\x01", "10.00", "EUR", "2024-01-01", NULL, true,
	     "smartpay_transaction_id 'tx\"\\?"
	     "?' is not"},
	    {"tx-\xc3\xa9\xe2\x82\xac", "10.00", "EUR", "2024-01-01", NULL, true,
	     "smartpay_transaction_id 'tx-????"
	     "?' is not"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct candidate c =
		    order(MOD_CAPTURE, cases[i].txn, cases[i].amount, cases[i].currency, NULL);
		c.authorized_at = (char *)cases[i].authorized_at;
		c.expires_at = (char *)cases[i].expires_at;
		c.has_deadline = cases[i].has_deadline;
		char *reason;
		struct intent in = intent_of(&c, &reason);
		ck_assert_msg(reason != NULL, "case %zu was not refused", i);
		ck_assert_msg(strncmp(reason, cases[i].reason, strlen(cases[i].reason)) == 0,
		              "case %zu: reason '%s'", i, reason);
		ck_assert_ptr_null(in.body);
		ck_assert_int_eq(in.amount_minor, -1);
		/* the ledger's currency column only ever gets a known code */
		if (in.currency)
			ck_assert_str_eq(in.currency, "EUR");
		/* short and printable, whatever the row held */
		ck_assert_uint_lt(strlen(reason), 200);
		for (const char *p = reason; *p; p++)
			ck_assert_msg(*p >= 0x20 && *p < 0x7f, "case %zu: byte %d", i, *p);
		free(reason);
	}
}
END_TEST

START_TEST(a_cancel_needs_no_deadline_but_bad_times_refuse_it)
{
	struct candidate c = order(MOD_CANCEL, TXN, "10.00", "EUR", NULL);
	c.authorized_at = NULL;
	c.has_deadline = false;
	char *reason;
	struct intent in = intent_of(&c, &reason);
	ck_assert_ptr_null(reason);
	ck_assert_int_eq(in.deadline_ms, 0);
	free(in.body);
	c.authorized_at = "infinity";
	in = intent_of(&c, &reason);
	ck_assert_ptr_nonnull(reason);
	ck_assert_ptr_null(in.body);
	free(reason);
}
END_TEST

START_TEST(no_capture_after_a_cancel)
{
	static const char *const states[] = {"succeeded", "pending", "needs_attention"};
	for (size_t i = 0; i < 3; i++) {
		struct candidate c = order(MOD_CAPTURE, TXN, "10.00", "EUR", NULL);
		c.cancel_state = (char *)states[i];
		c.cancel_id = MID;
		char *reason;
		struct intent in = intent_of(&c, &reason);
		ck_assert_ptr_nonnull(reason);
		ck_assert_ptr_nonnull(strstr(reason, "cancelled"));
		ck_assert_ptr_nonnull(strstr(reason, MID));
		ck_assert_ptr_null(in.body);
		free(reason);
	}
}
END_TEST

START_TEST(a_cancel_after_partial_refunds_refunds_the_rest)
{
	/* the candidate carries the capture's transaction, currency and amount */
	struct candidate c = order(MOD_REFUND, TXN, "99.00", "EUR", NULL);
	c.captured_minor = 5000;
	c.refunded_minor = 1500;
	char *reason;
	struct intent in = intent_of(&c, &reason);
	ck_assert_ptr_null(reason);
	ck_assert(in.settles_cancel);
	ck_assert_int_eq(in.kind, MOD_REFUND);
	ck_assert_int_eq(in.amount_minor, 3500);
	ck_assert_str_eq(in.transaction_id, TXN);
	ck_assert_ptr_nonnull(
	    strstr(in.body, "\"modifiedAmount\":{\"amount\":35.00,\"currencyCode\":\"EUR\"}"));
	free(in.body);
	/* nothing left: nothing is sent */
	c.refunded_minor = 5000;
	in = intent_of(&c, &reason);
	ck_assert_ptr_nonnull(reason);
	ck_assert_ptr_null(in.body);
	free(reason);
	/* no refunds: a cancelOrRefund of the capture's amount, whatever the row says */
	c = order(MOD_CANCEL_OR_REFUND, TXN, "abc", "EUR", NULL);
	c.captured_minor = 4200;
	in = intent_of(&c, &reason);
	ck_assert_ptr_null(reason);
	ck_assert_int_eq(in.amount_minor, 4200);
	ck_assert(!in.settles_cancel);
	free(in.body);
}
END_TEST

/* The intent of a request, its reason copied (NULL when sendable). */
static struct intent request_intent(const struct shop_request *r, char **reason)
{
	struct intent in;
	char *buf;
	intent_from_request(MKEY, MID, r, &in, &buf);
	*reason = in.reason ? strdup(in.reason) : NULL;
	free(buf);
	return in;
}

START_TEST(refund_requests_are_checked_against_the_ledger)
{
	static const struct {
		int64_t amount, captured, refunded;
		const char *currency, *capture_currency;
		bool cancelled;
		const char *reason; /* NULL: sent */
	} cases[] = {
	    {1599, 3599, 2000, "EUR", "EUR", false, NULL},
	    {1600, 3599, 2000, "EUR", "EUR", false,
	     "refund of 16.00 EUR exceeds what remains captured: 20.00 of 35.99"},
	    {3600, 3599, 0, "EUR", "EUR", false, "refund of 36.00 EUR exceeds"},
	    {100, -1, 0, "EUR", NULL, false, "the order has no successful capture"},
	    {100, 3599, 0, "USD", "EUR", false,
	     "refund currency 'USD' is not the captured currency EUR"},
	    {100, 3599, 0, "XYZ", "XYZ", false, "unknown currency 'XYZ'"},
	    {100, 3599, 0, "EUR", "EUR", true, "the order was cancelled"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct shop_request r = {.request_id = 7,
		                         .order_id = "42",
		                         .kind = MOD_REFUND,
		                         .amount_minor = cases[i].amount,
		                         .currency = (char *)cases[i].currency,
		                         .transaction_id = TXN,
		                         .order_cancelled = cases[i].cancelled,
		                         .captured_minor = cases[i].captured,
		                         .capture_currency = (char *)cases[i].capture_currency,
		                         .refunded_minor = cases[i].refunded};
		char *reason;
		struct intent in = request_intent(&r, &reason);
		if (cases[i].reason == NULL) {
			ck_assert_msg(reason == NULL, "case %zu refused: %s", i, reason);
			ck_assert_ptr_nonnull(in.body);
		} else {
			ck_assert_msg(reason != NULL, "case %zu was not refused", i);
			ck_assert_msg(strncmp(reason, cases[i].reason, strlen(cases[i].reason)) ==
			                  0,
			              "case %zu: reason '%s'", i, reason);
			ck_assert_ptr_null(in.body);
		}
		ck_assert_int_eq(in.request_id, 7);
		free(in.body);
		free(reason);
	}
}
END_TEST

START_TEST(cancel_or_refund_requests_after_partial_refunds_refund_the_rest)
{
	struct shop_request r = {.request_id = 8,
	                         .order_id = "42",
	                         .kind = MOD_CANCEL_OR_REFUND,
	                         .amount_minor = -1,
	                         .currency = "EUR",
	                         .transaction_id = TXN,
	                         .order_amount = "99.00",
	                         .captured_minor = 3599,
	                         .capture_currency = "EUR",
	                         .refunded_minor = 1000};
	char *reason;
	struct intent in = request_intent(&r, &reason);
	ck_assert_ptr_null(reason);
	ck_assert_int_eq(in.kind, MOD_REFUND);
	ck_assert(in.settles_cancel);
	ck_assert_int_eq(in.amount_minor, 2599);
	ck_assert_ptr_nonnull(strstr(in.body, "\"amount\":25.99"));
	free(in.body);
	r.refunded_minor = 3599;
	in = request_intent(&r, &reason);
	ck_assert_ptr_nonnull(reason);
	ck_assert_ptr_nonnull(strstr(reason, "nothing left to refund"));
	ck_assert_ptr_null(in.body);
	free(reason);
	/* without refunds it stays a cancelOrRefund, of the captured amount */
	r.refunded_minor = 0;
	in = request_intent(&r, &reason);
	ck_assert_ptr_null(reason);
	ck_assert_int_eq(in.kind, MOD_CANCEL_OR_REFUND);
	ck_assert_int_eq(in.amount_minor, 3599);
	ck_assert(!in.settles_cancel);
	free(in.body);
}
END_TEST

/* Builds the suite. */
static Suite *intent_suite(void)
{
	Suite *s = suite_create("intent");
	testutil_tcase(
	    s, "intent", 0,
	    (const TTest *const[]){
	        full_capture_omits_the_amount, partial_capture_sends_exact_decimal,
	        bad_rows_are_refused_with_a_reason, cancels_carry_no_amount,
	        requests_become_refunds, hostile_rows_are_refused_each_with_its_own_reason,
	        a_cancel_needs_no_deadline_but_bad_times_refuse_it, no_capture_after_a_cancel,
	        a_cancel_after_partial_refunds_refunds_the_rest,
	        refund_requests_are_checked_against_the_ledger,
	        cancel_or_refund_requests_after_partial_refunds_refund_the_rest, NULL});
	return s;
}

int main(void)
{
	return testutil_run_suite(intent_suite(), CK_NORMAL);
}
