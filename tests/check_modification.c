/* Unit tests of the SmartPay modification request bodies (lib/modification.c): kind names, the
 * capture, cancel and refund bodies, currencies, escaping, lengths and refusals. */
#include "autoconfig.h"

#include "modification.h"
#include "testutil.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TXID "5b1f0c7e-2a41-4f0e-9d55-0c1a2b3c4d5e"
#define MKEY "0f0e0d0c-1111-2222-3333-444455556666"
#define MODID "7d2c9a10-3e4f-4b5a-8c7d-112233445566"
#define HEAD                                                                                       \
	"{\"transactionId\":\"" TXID "\",\"merchantKey\":\"" MKEY "\",\"modificationId\":\"" MODID \
	"\""

/* A request with the common ids filled in. */
static struct mod_request base_request(enum mod_kind kind)
{
	struct mod_request r;

	memset(&r, 0, sizeof(r));
	r.kind = kind;
	r.transaction_id = TXID;
	r.merchant_key = MKEY;
	r.modification_id = MODID;
	return r;
}

/* Gives a request an amount of `minor` units of `currency`. */
static void set_amount(struct mod_request *r, int64_t minor, const char *currency)
{
	r->has_amount = true;
	r->amount_minor = minor;
	r->currency = currency;
}

/* Builds a body and checks it byte for byte. */
static void expect_body(const struct mod_request *r, const char *expected)
{
	const char *why = "unset";
	char *body = mod_request_body(r, &why);

	ck_assert_msg(body != NULL, "refused: %s", why);
	ck_assert_str_eq(body, expected);
	ck_assert_ptr_null(why);
	free(body);
}

/* Checks that a request is accepted (the body is not checked). */
static void expect_accepted(const struct mod_request *r)
{
	const char *why = NULL;
	char *body = mod_request_body(r, &why);

	ck_assert_msg(body != NULL, "refused: %s", why ? why : "(no reason)");
	free(body);
}

/* Checks that a request is refused with the given reason. */
static void expect_refusal(const struct mod_request *r, const char *reason)
{
	const char *why = NULL;
	char *body = mod_request_body(r, &why);

	ck_assert_msg(body == NULL, "accepted: %s", body ? body : "");
	ck_assert_ptr_nonnull(why);
	ck_assert_str_eq(why, reason);
}

START_TEST(test_kind_names)
{
	static const enum mod_kind kinds[] = {MOD_CAPTURE, MOD_CANCEL, MOD_CANCEL_OR_REFUND,
	                                      MOD_REFUND};
	static const char *const names[] = {"capture", "cancel", "cancel_or_refund", "refund"};
	static const char *const paths[] = {"/payment/capture", "/payment/cancel",
	                                    "/payment/cancelOrRefund", "/payment/refund"};
	enum mod_kind k;

	for (size_t i = 0; i < 4; i++) {
		ck_assert_str_eq(mod_kind_name(kinds[i]), names[i]);
		ck_assert_str_eq(mod_kind_path(kinds[i]), paths[i]);
		ck_assert(mod_kind_parse(names[i], &k));
		ck_assert_int_eq(k, kinds[i]);
	}
	ck_assert(!mod_kind_parse("Capture", &k));
	ck_assert(!mod_kind_parse("cancelOrRefund", &k));
	ck_assert(!mod_kind_parse("", &k));
	ck_assert(!mod_kind_parse(NULL, &k));
	ck_assert_ptr_null(mod_kind_path((enum mod_kind)42));
}
END_TEST

START_TEST(test_body_capture)
{
	struct mod_request r = base_request(MOD_CAPTURE);

	expect_body(&r, HEAD "}");
	/* a full capture has nowhere to put a description: it is left out */
	r.description = "ignored";
	expect_body(&r, HEAD "}");

	set_amount(&r, 4000, "EUR");
	r.description = "partial shipment 1";
	expect_body(&r, HEAD ",\"modifiedAmount\":{\"amount\":40.00,\"currencyCode\":\"EUR\","
	                     "\"description\":\"partial shipment 1\"}}");
	r.description = NULL;
	expect_body(&r, HEAD ",\"modifiedAmount\":{\"amount\":40.00,\"currencyCode\":\"EUR\"}}");
	r.description = "";
	expect_body(&r, HEAD ",\"modifiedAmount\":{\"amount\":40.00,\"currencyCode\":\"EUR\"}}");
	r.amount_minor = 5;
	expect_body(&r, HEAD ",\"modifiedAmount\":{\"amount\":0.05,\"currencyCode\":\"EUR\"}}");
	r.amount_minor = 1099;
	expect_body(&r, HEAD ",\"modifiedAmount\":{\"amount\":10.99,\"currencyCode\":\"EUR\"}}");
}
END_TEST

START_TEST(test_body_cancel)
{
	struct mod_request r = base_request(MOD_CANCEL);

	expect_body(&r, HEAD "}");
	r.description = "Order 4711";
	expect_body(&r, HEAD ",\"description\":\"Order 4711\"}");

	r = base_request(MOD_CANCEL_OR_REFUND);
	expect_body(&r, HEAD "}");
	r.description = "customer withdrew";
	expect_body(&r, HEAD ",\"description\":\"customer withdrew\"}");
}
END_TEST

START_TEST(test_body_refund)
{
	struct mod_request r = base_request(MOD_REFUND);

	expect_body(&r, HEAD "}");
	set_amount(&r, 2500, "EUR");
	r.description = "damaged item";
	expect_body(&r, HEAD ",\"modifiedAmount\":{\"amount\":25.00,\"currencyCode\":\"EUR\","
	                     "\"description\":\"damaged item\"}}");
}
END_TEST

START_TEST(test_body_currencies)
{
	struct mod_request r = base_request(MOD_CAPTURE);

	set_amount(&r, 500, "JPY");
	expect_body(&r, HEAD ",\"modifiedAmount\":{\"amount\":500,\"currencyCode\":\"JPY\"}}");
	r.currency = "KWD";
	r.amount_minor = 1234;
	expect_body(&r, HEAD ",\"modifiedAmount\":{\"amount\":1.234,\"currencyCode\":\"KWD\"}}");
	r.amount_minor = 7;
	expect_body(&r, HEAD ",\"modifiedAmount\":{\"amount\":0.007,\"currencyCode\":\"KWD\"}}");
	r.currency = "EUR";
	r.amount_minor = INT64_C(999999999999999999);
	expect_body(&r, HEAD ",\"modifiedAmount\":{\"amount\":9999999999999999.99,"
	                     "\"currencyCode\":\"EUR\"}}");
}
END_TEST

START_TEST(test_body_escaping)
{
	struct mod_request r = base_request(MOD_CANCEL);

	r.description = "say \"hi\" \\ now\n\ttab\x01\x1f/slash \xc3\xa4\xe2\x82\xac";
	expect_body(&r, HEAD ",\"description\":\"say \\\"hi\\\" \\\\ now\\u000a\\u0009tab"
	                     "\\u0001\\u001f/slash \xc3\xa4\xe2\x82\xac\"}");
	r = base_request(MOD_CANCEL);
	r.modification_id = "id\"1";
	expect_body(&r, "{\"transactionId\":\"" TXID "\",\"merchantKey\":\"" MKEY
	                "\",\"modificationId\":\"id\\\"1\"}");
	r = base_request(MOD_REFUND);
	set_amount(&r, 100, "EUR");
	r.description = "\x7f";
	expect_body(&r, HEAD ",\"modifiedAmount\":{\"amount\":1.00,\"currencyCode\":\"EUR\","
	                     "\"description\":\"\x7f\"}}");
}
END_TEST

START_TEST(test_body_lengths)
{
	struct mod_request r = base_request(MOD_CANCEL);
	char *s127 = testutil_repeat("a", 127), *s128 = testutil_repeat("a", 128);
	char *u127 = testutil_repeat("\xc3\xa4", 127), *u128 = testutil_repeat("\xe2\x82\xac", 128);
	char *id64 = testutil_repeat("b", 64), *id65 = testutil_repeat("b", 65);
	char *id36 = testutil_repeat("c", 36), *id37 = testutil_repeat("c", 37);

	r.description = s127;
	expect_accepted(&r);
	/* the limit counts characters, not bytes */
	r.description = u127;
	expect_accepted(&r);
	r.description = s128;
	expect_refusal(&r, "description too long");
	r.description = u128;
	expect_refusal(&r, "description too long");

	r = base_request(MOD_CAPTURE);
	r.modification_id = id64;
	expect_accepted(&r);
	r.modification_id = id65;
	expect_refusal(&r, "modification id too long");

	r = base_request(MOD_REFUND);
	r.modification_id = id36;
	expect_accepted(&r);
	r.modification_id = id37;
	expect_refusal(&r, "modification id too long");

	r = base_request(MOD_CAPTURE);
	r.transaction_id = id37;
	expect_refusal(&r, "transaction id too long");
	r = base_request(MOD_CAPTURE);
	r.merchant_key = id37;
	expect_refusal(&r, "merchant key too long");

	free(s127);
	free(s128);
	free(u127);
	free(u128);
	free(id64);
	free(id65);
	free(id36);
	free(id37);
}
END_TEST

START_TEST(test_body_refusals)
{
	struct mod_request r = base_request(MOD_CAPTURE);

	r.transaction_id = NULL;
	expect_refusal(&r, "missing transaction id");
	r.transaction_id = "";
	expect_refusal(&r, "missing transaction id");
	r = base_request(MOD_CAPTURE);
	r.merchant_key = NULL;
	expect_refusal(&r, "missing merchant key");
	r = base_request(MOD_REFUND);
	r.modification_id = "";
	expect_refusal(&r, "missing modification id");

	r = base_request(MOD_CAPTURE);
	set_amount(&r, 0, "EUR");
	expect_refusal(&r, "amount must be greater than zero");
	r.amount_minor = -100;
	expect_refusal(&r, "amount must be greater than zero");
	r.amount_minor = INT64_C(1000000000000000000);
	expect_refusal(&r, "amount too large");
	r.amount_minor = INT64_MAX;
	expect_refusal(&r, "amount too large");
	r.amount_minor = 100;
	r.currency = NULL;
	expect_refusal(&r, "missing currency");
	r.currency = "ABC";
	expect_refusal(&r, "unknown currency");
	r.currency = "eur";
	expect_refusal(&r, "unknown currency");
	r.currency = "EURO";
	expect_refusal(&r, "unknown currency");

	r = base_request(MOD_CANCEL);
	set_amount(&r, 100, "EUR");
	expect_refusal(&r, "amount on cancel");
	r.kind = MOD_CANCEL_OR_REFUND;
	expect_refusal(&r, "amount on cancelOrRefund");

	r = base_request(MOD_CANCEL);
	r.description = "bad \xc3 utf8";
	expect_refusal(&r, "description is not valid UTF-8");
	r.description = "overlong \xc0\xaf";
	expect_refusal(&r, "description is not valid UTF-8");
	r.description = "surrogate \xed\xa0\x80";
	expect_refusal(&r, "description is not valid UTF-8");
	r = base_request(MOD_CANCEL);
	r.transaction_id = "\xff";
	expect_refusal(&r, "transaction id is not valid UTF-8");

	r = base_request((enum mod_kind)17);
	expect_refusal(&r, "unknown modification kind");
	/* why may be NULL */
	r = base_request(MOD_CAPTURE);
	r.merchant_key = NULL;
	ck_assert_ptr_null(mod_request_body(&r, NULL));
	{
		const char *why = NULL;
		ck_assert_ptr_null(mod_request_body(NULL, &why));
		ck_assert_ptr_nonnull(why);
	}
}
END_TEST

/* Every SmartPay request's headers: JSON, en-US, Origin only when one is configured. */
START_TEST(test_headers)
{
	struct mod_headers h;
	mod_headers_init(&h, "https://shop.example");
	ck_assert_str_eq(h.lines[0], "Content-Type: application/json");
	ck_assert_str_eq(h.lines[1], "Accept-Language: en-US");
	ck_assert_str_eq(h.lines[2], "Origin: https://shop.example");
	ck_assert_ptr_null(h.lines[3]);
	mod_headers_free(&h);
	ck_assert_ptr_null(h.origin);
	const char *none[] = {NULL, ""};
	for (size_t i = 0; i < 2; i++) {
		mod_headers_init(&h, none[i]);
		ck_assert_str_eq(h.lines[0], "Content-Type: application/json");
		ck_assert_str_eq(h.lines[1], "Accept-Language: en-US");
		ck_assert_ptr_null(h.lines[2]);
		mod_headers_free(&h);
	}
}
END_TEST

/* Builds the suite. */
static Suite *modification_suite(void)
{
	Suite *s = suite_create("modification");
	testutil_tcase(s, "modification", 0,
	               (const TTest *const[]){test_kind_names, test_body_capture, test_body_cancel,
	                                      test_body_refund, test_body_currencies,
	                                      test_body_escaping, test_body_lengths,
	                                      test_body_refusals, test_headers, NULL});
	return s;
}

int main(void)
{
	return testutil_run_suite(modification_suite(), CK_NORMAL);
}
