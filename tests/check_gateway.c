#include "autoconfig.h"

#include "backoff.h"
#include "classify.h"
#include "modification.h"
#include "response.h"
#include "text.h"
#include "testutil.h"
#include "uuid.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TXID "5b1f0c7e-2a41-4f0e-9d55-0c1a2b3c4d5e"
#define MKEY "0f0e0d0c-1111-2222-3333-444455556666"
#define MODID "7d2c9a10-3e4f-4b5a-8c7d-112233445566"
#define HEAD                                                                                       \
	"{\"transactionId\":\"" TXID "\",\"merchantKey\":\"" MKEY "\",\"modificationId\":\"" MODID \
	"\""

/* A small deterministic generator (xorshift64*) so failures reproduce. */
static uint64_t test_rng(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * UINT64_C(2685821657736338717);
}

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

/* Checks that a request is refused with the given reason. */
static void expect_refusal(const struct mod_request *r, const char *reason)
{
	const char *why = NULL;
	char *body = mod_request_body(r, &why);

	ck_assert_msg(body == NULL, "accepted: %s", body ? body : "");
	ck_assert_ptr_nonnull(why);
	ck_assert_str_eq(why, reason);
}

/* Returns a malloc'd string of n copies of unit. */
static char *repeat(const char *unit, size_t n)
{
	size_t len = strlen(unit);
	char *s = malloc(len * n + 1);

	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < n; i++)
		memcpy(s + i * len, unit, len);
	s[len * n] = '\0';
	return s;
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

	r.has_amount = true;
	r.amount_minor = 4000;
	r.currency = "EUR";
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
	r.has_amount = true;
	r.amount_minor = 2500;
	r.currency = "EUR";
	r.description = "damaged item";
	expect_body(&r, HEAD ",\"modifiedAmount\":{\"amount\":25.00,\"currencyCode\":\"EUR\","
	                     "\"description\":\"damaged item\"}}");
}
END_TEST

START_TEST(test_body_currencies)
{
	struct mod_request r = base_request(MOD_CAPTURE);

	r.has_amount = true;
	r.currency = "JPY";
	r.amount_minor = 500;
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
	r.has_amount = true;
	r.amount_minor = 100;
	r.currency = "EUR";
	r.description = "\x7f";
	expect_body(&r, HEAD ",\"modifiedAmount\":{\"amount\":1.00,\"currencyCode\":\"EUR\","
	                     "\"description\":\"\x7f\"}}");
}
END_TEST

START_TEST(test_body_lengths)
{
	struct mod_request r = base_request(MOD_CANCEL);
	char *s127 = repeat("a", 127), *s128 = repeat("a", 128);
	char *u127 = repeat("\xc3\xa4", 127), *u128 = repeat("\xe2\x82\xac", 128);
	char *id64 = repeat("b", 64), *id65 = repeat("b", 65);
	char *id36 = repeat("c", 36), *id37 = repeat("c", 37);
	char *body;
	const char *why;

	r.description = s127;
	body = mod_request_body(&r, &why);
	ck_assert_ptr_nonnull(body);
	free(body);
	/* the limit counts characters, not bytes */
	r.description = u127;
	body = mod_request_body(&r, &why);
	ck_assert_ptr_nonnull(body);
	free(body);
	r.description = s128;
	expect_refusal(&r, "description too long");
	r.description = u128;
	expect_refusal(&r, "description too long");

	r = base_request(MOD_CAPTURE);
	r.modification_id = id64;
	body = mod_request_body(&r, &why);
	ck_assert_ptr_nonnull(body);
	free(body);
	r.modification_id = id65;
	expect_refusal(&r, "modification id too long");

	r = base_request(MOD_REFUND);
	r.modification_id = id36;
	body = mod_request_body(&r, &why);
	ck_assert_ptr_nonnull(body);
	free(body);
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
	r.has_amount = true;
	r.currency = "EUR";
	r.amount_minor = 0;
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
	r.has_amount = true;
	r.amount_minor = 100;
	r.currency = "EUR";
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

/* The cancel example of smartpay-api.md, section 3.2. */
static const char cancel_example[] =
    "{ \"reconciliationReferenceId\": \"AbC123xYz\", \"description\": \"Order 4711\",\n"
    "  \"paymentStatus\": \"CANCELLED\",\n"
    "  \"creationDate\": \"2024-03-01T10:00:00.000Z\", \"lastStatusDate\": "
    "\"2024-03-01T10:05:00.000Z\",\n"
    "  \"transactionOverview\": { \"transactionId\": \"" TXID "\", \"paymentMethod\": "
    "\"CARDS\",\n"
    "                           \"amount\": 10.99, \"currencyCode\": \"EUR\", \"mit\": false },\n"
    "  \"modification\": { \"modificationData\": { \"type\": \"CANCELLATION\", "
    "\"modificationId\": \"" MODID "\",\n"
    "                                          \"reconciliationReferenceId\": \"AbC123xYz\" },\n"
    "                    \"modificationAmount\": { \"amount\": 10.99, \"currencyCode\": \"EUR\" "
    "}, \"status\": \"CANCELLED\" } }\n";

/* A cancelOrRefund answer in the vendor's one-L spelling, with history. */
static const char cancel_or_refund_example[] =
    "{\"reconciliationReferenceId\":\"TOP-1\",\"paymentStatus\":\"CANCELED\","
    "\"transactionOverview\":{\"transactionId\":\"" TXID "\",\"paymentMethod\":\"IDEAL\","
    "\"amount\":35.99,\"currencyCode\":\"EUR\"},"
    "\"modification\":{\"modificationData\":{\"type\":\"CANCELATION\",\"modificationId\":\"" MODID
    "\",\"reconciliationReferenceId\":\"MOD-1\"},"
    "\"modificationAmount\":{\"description\":\"x\",\"amount\":35.99,\"currencyCode\":\"EUR\"},"
    "\"status\":\"CANCELED\",\"statusHistory\":[{\"status\":\"CANCELATION_PENDING\","
    "\"statusDate\":\"2024-03-01T10:00:00.000Z\"},{\"status\":\"CANCELED\","
    "\"statusDate\":\"2024-03-01T10:01:00.000Z\"}]}}";

/* A status-style answer with a `modifications` array: an earlier capture and our refund. */
static const char modifications_array[] =
    "{\"paymentStatus\":\"CAPTURED\",\"reconciliationReferenceId\":\"TOP-2\","
    "\"modifications\":["
    "{\"modificationData\":{\"type\":\"CAPTURE\",\"modificationId\":\"cap-1\","
    "\"reconciliationReferenceId\":\"CAP-RR\"},\"status\":\"CAPTURED\"},"
    "{\"status\":\"REFUND_PENDING\",\"modificationAmount\":{\"amount\":25.00,\"currencyCode\":"
    "\"EUR\"},\"modificationData\":{\"reconciliationReferenceId\":\"REF-RR\",\"modificationId\":"
    "\"" MODID "\",\"type\":\"REFUND\"}}]}";

/* Parses a body that must be accepted. */
static void parse_ok(const char *body, const char *modid, struct gw_response *r)
{
	ck_assert_msg(response_parse(body, strlen(body), modid, r), "not parsed: %s", body);
}

/* Compares a possibly-NULL string. */
static void expect_str(const char *got, const char *want)
{
	if (want == NULL)
		ck_assert_msg(got == NULL, "expected NULL, got \"%s\"", got);
	else
		ck_assert_msg(got != NULL && strcmp(got, want) == 0, "expected \"%s\", got \"%s\"",
		              want, got ? got : "(null)");
}

START_TEST(test_response_single_object)
{
	struct gw_response r;

	parse_ok(cancel_example, MODID, &r);
	expect_str(r.payment_status, "CANCELLED");
	expect_str(r.reconciliation_reference_id, "AbC123xYz");
	expect_str(r.modification_status, "CANCELLED");
	expect_str(r.modification_type, "CANCELLATION");
	expect_str(r.error, NULL);
	response_free(&r);
	ck_assert_ptr_null(r.payment_status);
	response_free(&r);

	parse_ok(cancel_or_refund_example, MODID, &r);
	expect_str(r.payment_status, "CANCELLED");
	expect_str(r.reconciliation_reference_id, "MOD-1");
	expect_str(r.modification_status, "CANCELLED");
	expect_str(r.modification_type, "CANCELLATION");
	response_free(&r);
}
END_TEST

START_TEST(test_response_array)
{
	struct gw_response r;
	static const char nested[] =
	    "{\"paymentStatus\":\"CAPTURED\",\"modifications\":[[{\"modificationData\":{"
	    "\"modificationId\":\"other\",\"type\":\"CAPTURE\"},\"status\":\"CAPTURED\"}],"
	    "[[{\"modificationData\":{\"modificationId\":\"" MODID
	    "\",\"type\":\"CANCELATION\",\"reconciliationReferenceId\":\"N-RR\"},"
	    "\"status\":\"CANCELATION_PENDING\"}]]]}";

	parse_ok(modifications_array, MODID, &r);
	expect_str(r.payment_status, "CAPTURED");
	expect_str(r.reconciliation_reference_id, "REF-RR");
	expect_str(r.modification_status, "REFUND_PENDING");
	expect_str(r.modification_type, "REFUND");
	response_free(&r);

	/* the earlier capture is found by its own id */
	parse_ok(modifications_array, "cap-1", &r);
	expect_str(r.reconciliation_reference_id, "CAP-RR");
	expect_str(r.modification_type, "CAPTURE");
	response_free(&r);

	/* ids compare exactly: another case, a prefix or a longer id is not ours */
	parse_ok(modifications_array, "7D2C9A10-3E4F-4B5A-8C7D-112233445566", &r);
	expect_str(r.modification_type, NULL);
	ck_assert_uint_eq(r.modification_entries, 0);
	response_free(&r);
	parse_ok(modifications_array, "7d2c9a10-3e4f-4b5a-8c7d-11223344556", &r);
	ck_assert_uint_eq(r.modification_entries, 0);
	response_free(&r);
	parse_ok(modifications_array, MODID "0", &r);
	ck_assert_uint_eq(r.modification_entries, 0);
	response_free(&r);
	parse_ok(modifications_array, MODID, &r);
	ck_assert_uint_eq(r.modification_entries, 1);
	ck_assert(!r.entries_disagree);
	response_free(&r);

	/* not ours: the top-level reference, no modification fields */
	parse_ok(modifications_array, "someone-else", &r);
	expect_str(r.payment_status, "CAPTURED");
	expect_str(r.reconciliation_reference_id, "TOP-2");
	expect_str(r.modification_status, NULL);
	expect_str(r.modification_type, NULL);
	response_free(&r);
	parse_ok(modifications_array, NULL, &r);
	expect_str(r.modification_type, NULL);
	response_free(&r);

	parse_ok(nested, MODID, &r);
	expect_str(r.modification_status, "CANCELLATION_PENDING");
	expect_str(r.modification_type, "CANCELLATION");
	expect_str(r.reconciliation_reference_id, "N-RR");
	response_free(&r);
}
END_TEST

START_TEST(test_response_statuses)
{
	static const struct {
		const char *wire, *normal;
	} cases[] = {
	    {"CANCELED", "CANCELLED"},
	    {"CANCELLED", "CANCELLED"},
	    {"AUTORIZATION_INITIALIZED", "AUTHORIZATION_INITIALIZED"},
	    {"AUTHORIZATION_INITIALIZED", "AUTHORIZATION_INITIALIZED"},
	    {"AUTHORIZATION_COMPLETED", "AUTHORIZATION_COMPLETED"},
	    {"CAPTURE_PENDING", "CAPTURE_PENDING"},
	    {"SETTLED", "SETTLED"},
	    {"REFUNDED", "REFUNDED"},
	    {"PARTIALLY_CANCELED", "PARTIALLY_CANCELLED"},
	    {"SOMETHING_NEW", "SOMETHING_NEW"},
	    {"canceled", "canceled"},
	    {"", ""},
	    {"_", "_"},
	    {"CANCELED_", "CANCELLED_"},
	};
	char body[256];
	struct gw_response r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(body, sizeof(body), "{\"paymentStatus\":\"%s\"}", cases[i].wire);
		parse_ok(body, MODID, &r);
		expect_str(r.payment_status, cases[i].normal);
		response_free(&r);
	}
}
END_TEST

START_TEST(test_response_lenient)
{
	struct gw_response r;
	/* reordered, with fields SmartPay may add at any time */
	static const char reordered[] =
	    "{\"modification\":{\"status\":\"CAPTURED\",\"futureField\":[1,2,{\"x\":null}],"
	    "\"modificationData\":{\"modificationId\":\"" MODID "\",\"type\":\"CAPTURE\","
	    "\"extra\":true}},\"ignoredProperties\":[\"customReferences\"],"
	    "\"paymentLinkId\":\"pl-1\",\"paymentStatus\":\"CAPTURE_PENDING\",\"newThing\":{}}";

	parse_ok(reordered, MODID, &r);
	expect_str(r.payment_status, "CAPTURE_PENDING");
	expect_str(r.modification_status, "CAPTURED");
	expect_str(r.modification_type, "CAPTURE");
	expect_str(r.reconciliation_reference_id, NULL);
	response_free(&r);

	parse_ok("{}", MODID, &r);
	expect_str(r.payment_status, NULL);
	expect_str(r.reconciliation_reference_id, NULL);
	expect_str(r.modification_status, NULL);
	expect_str(r.modification_type, NULL);
	expect_str(r.error, NULL);
	response_free(&r);

	parse_ok("  {\"paymentStatus\":\"CAPTURED\"}\r\n", MODID, &r);
	expect_str(r.payment_status, "CAPTURED");
	response_free(&r);

	/* our modification without a status or reference: what is there is used */
	parse_ok("{\"reconciliationReferenceId\":\"T\",\"modification\":{\"modificationData\":"
	         "{\"modificationId\":\"" MODID "\",\"reconciliationReferenceId\":\"\"}}}",
	         MODID, &r);
	expect_str(r.modification_status, NULL);
	expect_str(r.modification_type, NULL);
	expect_str(r.reconciliation_reference_id, "T");
	response_free(&r);
}
END_TEST

START_TEST(test_response_wrong_types)
{
	static const char *const bodies[] = {
	    "{\"paymentStatus\":42}",
	    "{\"paymentStatus\":null}",
	    "{\"paymentStatus\":{\"a\":1}}",
	    "{\"modification\":\"" MODID "\"}",
	    "{\"modification\":42}",
	    "{\"modifications\":\"x\"}",
	    "{\"modifications\":[1,\"a\",null,true,[[]],{}]}",
	    "{\"modifications\":{\"modificationData\":\"x\"}}",
	    "{\"modification\":{\"modificationData\":{\"modificationId\":42}}}",
	    "{\"modification\":{\"modificationData\":[\"" MODID "\"]}}",
	    "{\"modification\":null,\"modifications\":null,\"reconciliationReferenceId\":[]}",
	};
	struct gw_response r;

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		parse_ok(bodies[i], MODID, &r);
		expect_str(r.payment_status, NULL);
		expect_str(r.modification_status, NULL);
		expect_str(r.modification_type, NULL);
		expect_str(r.reconciliation_reference_id, NULL);
		response_free(&r);
	}
	/* our entry found, but its fields have the wrong types */
	parse_ok("{\"modification\":{\"status\":7,\"modificationData\":{\"modificationId\":\"" MODID
	         "\",\"type\":[],\"reconciliationReferenceId\":{}}},\"reconciliationReferenceId\":"
	         "\"TOP\"}",
	         MODID, &r);
	expect_str(r.modification_status, NULL);
	expect_str(r.modification_type, NULL);
	expect_str(r.reconciliation_reference_id, "TOP");
	response_free(&r);
}
END_TEST

START_TEST(test_response_unreadable)
{
	static const char *const bodies[] = {
	    "",
	    "   \n",
	    "{",
	    "{\"paymentStatus\":\"CAPT",
	    "{\"paymentStatus\":\"CAPTURED\"",
	    "[]",
	    "[{\"paymentStatus\":\"CAPTURED\"}]",
	    "\"CAPTURED\"",
	    "42",
	    "null",
	    "true",
	    "{}x",
	    "{} {}",
	    "<html><body>502 Bad Gateway</body></html>",
	    "{\"a\":1,}}",
	};
	struct gw_response r;

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		ck_assert_msg(!response_parse(bodies[i], strlen(bodies[i]), MODID, &r),
		              "parsed: %s", bodies[i]);
		ck_assert_ptr_null(r.payment_status);
		ck_assert_ptr_null(r.error);
		response_free(&r);
	}
	ck_assert(!response_parse(NULL, 0, MODID, &r));
	/* an embedded NUL is not whitespace */
	ck_assert(!response_parse("{}\0{}", 5, MODID, &r));
	/* a length shorter than the text: truncated */
	ck_assert(!response_parse(cancel_example, 40, MODID, &r));
}
END_TEST

START_TEST(test_response_deep_nesting)
{
	char *open = repeat("[", 5000), *close = repeat("]", 5000);
	char *body;
	struct gw_response r;
	size_t len;

	len = (size_t)asprintf(&body, "{\"modifications\":%s%s}", open, close);
	ck_assert(!response_parse(body, len, MODID, &r));
	free(body);
	/* nesting within the limit is fine */
	parse_ok("{\"modifications\":[[[[[[[[{\"modificationData\":{\"modificationId\":\"" MODID
	         "\",\"type\":\"REFUND\"}}]]]]]]]]}",
	         MODID, &r);
	expect_str(r.modification_type, "REFUND");
	response_free(&r);
	free(open);
	free(close);
}
END_TEST

START_TEST(test_response_errors)
{
	struct gw_response r;

	parse_ok("{\"error\":\"payment_failed\",\"errorDetails\":\"payment_provider_card_invalid\","
	         "\"ignoredProperties\":[\"foo\"]}",
	         MODID, &r);
	expect_str(r.error, "payment_failed; payment_provider_card_invalid");
	expect_str(r.payment_status, NULL);
	response_free(&r);

	parse_ok("{\"message\":\"transaction not found\"}", MODID, &r);
	expect_str(r.error, "transaction not found");
	response_free(&r);

	parse_ok("{\"errorDetails\":[\"a\",\"b/c\"],\"error\":{\"code\":4}}", MODID, &r);
	expect_str(r.error, "{\"code\":4}; [\"a\",\"b/c\"]");
	response_free(&r);

	parse_ok("{\"error\":null,\"message\":\"\"}", MODID, &r);
	expect_str(r.error, NULL);
	response_free(&r);
}
END_TEST

/* json-c decodes \u0000 inside strings: nothing may read such a string as the C
 * string before the NUL. */
START_TEST(test_response_nul_in_strings)
{
	struct gw_response r;

	parse_ok("{\"paymentStatus\":\"CAPTURED\\u0000junk\",\"modification\":{"
	         "\"status\":\"CAPTURED\\u0000\",\"modificationData\":{\"modificationId\":\"" MODID
	         "\",\"type\":\"CAPTURE\\u0000X\",\"reconciliationReferenceId\":\"R\\u0000S\"}}}",
	         MODID, &r);
	expect_str(r.payment_status, "CAPTURED\xEF\xBF\xBDjunk");
	expect_str(r.modification_status, "CAPTURED\xEF\xBF\xBD");
	expect_str(r.modification_type, "CAPTURE\xEF\xBF\xBDX");
	expect_str(r.reconciliation_reference_id, "R\xEF\xBF\xBDS");
	response_free(&r);

	/* "<ours>\u0000other" is not ours; "<ours>" beside it is */
	parse_ok("{\"modifications\":[{\"status\":\"CAPTURED\",\"modificationData\":{"
	         "\"modificationId\":\"" MODID "\\u0000other\"}}]}",
	         MODID, &r);
	ck_assert_uint_eq(r.modification_entries, 0);
	expect_str(r.modification_status, NULL);
	response_free(&r);
	parse_ok("{\"modifications\":[{\"status\":\"CAPTURED\",\"modificationData\":{"
	         "\"modificationId\":\"" MODID "\\u0000other\"}},{\"status\":\"FAILED\","
	         "\"modificationData\":{\"modificationId\":\"" MODID "\"}}]}",
	         MODID, &r);
	ck_assert_uint_eq(r.modification_entries, 1);
	expect_str(r.modification_status, "FAILED");
	response_free(&r);

	/* ill-formed UTF-8 inside the JSON strings comes out well-formed */
	parse_ok("{\"paymentStatus\":\"caf\xe9\",\"error\":\"\xc0\xaf\\u0000\"}", MODID, &r);
	expect_str(r.payment_status, "caf\xEF\xBF\xBD");
	expect_str(r.error, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
	ck_assert(r.has_error);
	response_free(&r);
}
END_TEST

/* Entries naming our id in both `modification` and `modifications` must agree. */
START_TEST(test_response_entries_agree)
{
	struct gw_response r;

	parse_ok("{\"modification\":{\"status\":\"CANCELED\",\"modificationData\":{"
	         "\"modificationId\":\"" MODID "\",\"type\":\"CANCELATION\"}},\"modifications\":[{"
	         "\"status\":\"cancelled\",\"modificationData\":{\"modificationId\":\"" MODID
	         "\",\"type\":\"CANCELLATION\"}}]}",
	         MODID, &r);
	ck_assert_uint_eq(r.modification_entries, 2);
	ck_assert(!r.entries_disagree);
	expect_str(r.modification_status, "CANCELLED");
	response_free(&r);

	parse_ok("{\"modification\":{\"status\":\"CAPTURED\",\"modificationData\":{"
	         "\"modificationId\":\"" MODID "\"}},\"modifications\":[{\"status\":\"FAILED\","
	         "\"modificationData\":{\"modificationId\":\"" MODID "\"}}]}",
	         MODID, &r);
	ck_assert_uint_eq(r.modification_entries, 2);
	ck_assert(r.entries_disagree);
	response_free(&r);

	/* one gives a type, the other none: they disagree */
	parse_ok("{\"modifications\":[{\"status\":\"CAPTURED\",\"modificationData\":{"
	         "\"modificationId\":\"" MODID "\",\"type\":\"CAPTURE\"}},{\"status\":\"CAPTURED\","
	         "\"modificationData\":{\"modificationId\":\"" MODID "\"}}]}",
	         MODID, &r);
	ck_assert(r.entries_disagree);
	response_free(&r);

	/* an error member is noted even when it is empty or not a string */
	parse_ok("{\"error\":\"\"}", MODID, &r);
	ck_assert(r.has_error);
	expect_str(r.error, NULL);
	response_free(&r);
	parse_ok("{\"errorDetails\":{}}", MODID, &r);
	ck_assert(r.has_error);
	response_free(&r);
	parse_ok("{\"error\":null,\"message\":\"fine\"}", MODID, &r);
	ck_assert(!r.has_error);
	expect_str(r.error, "fine");
	response_free(&r);
}
END_TEST

/* Truncations and byte mutations of real answers must never crash and only the
 * complete text may parse. */
START_TEST(test_response_fuzz)
{
	static const char *const seeds[] = {cancel_example, cancel_or_refund_example,
	                                    modifications_array};
	uint64_t rng = 0x9e3779b97f4a7c15u;
	struct gw_response r;

	for (size_t s = 0; s < 3; s++) {
		size_t len = strlen(seeds[s]);
		char *copy = malloc(len + 1);
		size_t last = len;
		ck_assert_ptr_nonnull(copy);
		/* trailing whitespace may be dropped without changing the meaning */
		while (last > 0 && seeds[s][last - 1] == '\n')
			last--;
		for (size_t cut = 0; cut < last; cut++) {
			memcpy(copy, seeds[s], cut);
			if (response_parse(copy, cut, MODID, &r))
				ck_abort_msg("seed %zu parsed when cut at %zu", s, cut);
		}
		for (int round = 0; round < 3000; round++) {
			memcpy(copy, seeds[s], len + 1);
			for (int m = 0; m < 1 + round % 4; m++)
				copy[test_rng(&rng) % len] = (char)test_rng(&rng);
			if (response_parse(copy, len, MODID, &r))
				response_free(&r);
		}
		free(copy);
	}
}
END_TEST

/* What design.md says each status means, written out independently of classify.c. */
static enum outcome expected_outcome(int status)
{
	if (status >= 200 && status <= 299)
		return OUTCOME_ACCEPTED;
	if (status == 401 || status == 407)
		return OUTCOME_AUTH_REJECTED;
	if (status == 408 || status == 409 || status == 421 || status == 425 || status == 429)
		return OUTCOME_UNKNOWN;
	if (status >= 400 && status <= 499)
		return OUTCOME_REFUSED;
	return OUTCOME_UNKNOWN;
}

/* A parsed answer that confirms a capture, for the status-only rows. */
static const struct gw_response capture_ok = {.modification_status = (char *)"CAPTURED",
                                              .modification_type = (char *)"CAPTURE",
                                              .modification_entries = 1};

/* One entry of the modification history: our id, a type and a status. */
#define ENTRY(id, type, status)                                                                    \
	"{\"modificationData\":{\"modificationId\":\"" id "\",\"type\":\"" type                    \
	"\",\"reconciliationReferenceId\":\"RR\"},\"status\":\"" status "\"}"
/* An answer whose `modification` is that entry. */
#define SINGLE(type, status)                                                                       \
	"{\"paymentStatus\":\"X\",\"modification\":" ENTRY(MODID, type, status) "}"

/* The decision table of README.md ("Decision table"), row by row: the HTTP status, the
 * body as received, the kind of modification, and what it means. */
static const struct decision_row {
	int status;
	bool timed_out;
	enum mod_kind kind;
	const char *body;
	enum outcome outcome;
	const char *unconfirmed; /* NULL: not a 2xx that failed to confirm */
} decision_table[] = {
    /* 2xx confirming our entry */
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED"), OUTCOME_ACCEPTED, NULL},
    {201, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURE_PENDING"), OUTCOME_ACCEPTED, NULL},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "SETTLED"), OUTCOME_ACCEPTED, NULL},
    {200, false, MOD_CAPTURE, SINGLE("capture", "captured"), OUTCOME_ACCEPTED, NULL},
    {200, false, MOD_CAPTURE,
     "{\"modification\":{\"status\":\"CAPTURED\",\"modificationData\":{\"modificationId\":\"" MODID
     "\"}}}",
     OUTCOME_ACCEPTED, NULL},
    {200, false, MOD_CAPTURE,
     "{\"modifications\":[" ENTRY("other", "CAPTURE", "FAILED") "," ENTRY(MODID, "CAPTURE",
                                                                          "CAPTURED") "]}",
     OUTCOME_ACCEPTED, NULL},
    {200, false, MOD_CAPTURE,
     "{\"modification\":" ENTRY(MODID, "CAPTURE", "CAPTURED") ",\"modifications\":[" ENTRY(
         MODID, "CAPTURE", "CAPTURED") "]}",
     OUTCOME_ACCEPTED, NULL},
    {200, false, MOD_CANCEL, SINGLE("CANCELLATION", "CANCELLED"), OUTCOME_ACCEPTED, NULL},
    {200, false, MOD_CANCEL, SINGLE("CANCELATION", "CANCELED"), OUTCOME_ACCEPTED, NULL},
    {200, false, MOD_CANCEL, SINGLE("CANCELLATION", "CANCELATION_PENDING"), OUTCOME_ACCEPTED, NULL},
    {200, false, MOD_CANCEL, SINGLE("Cancellation", "Canceled"), OUTCOME_ACCEPTED, NULL},
    {200, false, MOD_REFUND, SINGLE("REFUND", "REFUNDED"), OUTCOME_ACCEPTED, NULL},
    {200, false, MOD_REFUND, SINGLE("REFUND", "REFUND_PENDING"), OUTCOME_ACCEPTED, NULL},
    {200, false, MOD_CANCEL_OR_REFUND, SINGLE("CANCELATION", "CANCELED"), OUTCOME_ACCEPTED, NULL},
    {200, false, MOD_CANCEL_OR_REFUND, SINGLE("CANCELLATION", "CANCELLATION_PENDING"),
     OUTCOME_ACCEPTED, NULL},
    {200, false, MOD_CANCEL_OR_REFUND, SINGLE("REFUND", "REFUNDED"), OUTCOME_ACCEPTED, NULL},
    {200, false, MOD_CANCEL_OR_REFUND, SINGLE("REFUND", "REFUND_PENDING"), OUTCOME_ACCEPTED, NULL},
    /* 2xx whose body is not one JSON object */
    {200, false, MOD_CAPTURE, "", OUTCOME_UNKNOWN, CLASSIFY_UNCONFIRMED_NOT_JSON},
    {204, false, MOD_CAPTURE, "", OUTCOME_UNKNOWN, CLASSIFY_UNCONFIRMED_NOT_JSON},
    {200, false, MOD_CAPTURE, "<html>OK</html>", OUTCOME_UNKNOWN, CLASSIFY_UNCONFIRMED_NOT_JSON},
    {200, false, MOD_CAPTURE, "[" SINGLE("CAPTURE", "CAPTURED") "]", OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_NOT_JSON},
    {200, false, MOD_CAPTURE, "{\"modification\":{\"status\":\"CAPTURED\"", OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_NOT_JSON},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED") "x", OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_NOT_JSON},
    /* 2xx carrying an error, even beside a confirming entry */
    {200, false, MOD_CAPTURE, "{\"error\":\"payment_failed\",\"errorDetails\":\"x\"}",
     OUTCOME_UNKNOWN, CLASSIFY_UNCONFIRMED_ERROR},
    {200, false, MOD_CAPTURE,
     "{\"error\":{\"code\":1},\"modification\":" ENTRY(MODID, "CAPTURE", "CAPTURED") "}",
     OUTCOME_UNKNOWN, CLASSIFY_UNCONFIRMED_ERROR},
    {200, false, MOD_CAPTURE,
     "{\"errorDetails\":\"late\",\"modification\":" ENTRY(MODID, "CAPTURE", "CAPTURED") "}",
     OUTCOME_UNKNOWN, CLASSIFY_UNCONFIRMED_ERROR},
    {200, false, MOD_CAPTURE,
     "{\"error\":\"\",\"modification\":" ENTRY(MODID, "CAPTURE", "CAPTURED") "}", OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_ERROR},
    /* 2xx with no entry naming exactly our id */
    {202, false, MOD_CAPTURE, "{}", OUTCOME_UNKNOWN, CLASSIFY_UNCONFIRMED_NO_ENTRY},
    {200, false, MOD_CAPTURE, "{\"paymentStatus\":\"CAPTURED\"}", OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_NO_ENTRY},
    {200, false, MOD_CAPTURE, "{\"modification\":" ENTRY("other-id", "CAPTURE", "CAPTURED") "}",
     OUTCOME_UNKNOWN, CLASSIFY_UNCONFIRMED_NO_ENTRY},
    {200, false, MOD_CAPTURE,
     "{\"modification\":" ENTRY("7D2C9A10-3E4F-4B5A-8C7D-112233445566", "CAPTURE", "CAPTURED") "}",
     OUTCOME_UNKNOWN, CLASSIFY_UNCONFIRMED_NO_ENTRY},
    {200, false, MOD_CAPTURE,
     "{\"modification\":" ENTRY("7d2c9a10-3e4f-4b5a-8c7d-11223344556", "CAPTURE", "CAPTURED") "}",
     OUTCOME_UNKNOWN, CLASSIFY_UNCONFIRMED_NO_ENTRY},
    {200, false, MOD_CAPTURE, "{\"modification\":" ENTRY(MODID "7", "CAPTURE", "CAPTURED") "}",
     OUTCOME_UNKNOWN, CLASSIFY_UNCONFIRMED_NO_ENTRY},
    {200, false, MOD_CAPTURE,
     "{\"modification\":" ENTRY(MODID "\\u0000other", "CAPTURE", "CAPTURED") "}", OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_NO_ENTRY},
    {200, false, MOD_CAPTURE,
     "{\"modification\":{\"modificationId\":\"" MODID "\",\"status\":\"CAPTURED\"}}",
     OUTCOME_UNKNOWN, CLASSIFY_UNCONFIRMED_NO_ENTRY},
    {200, false, MOD_CAPTURE,
     "{\"simExtra\":{\"modification\":" ENTRY(MODID, "CAPTURE", "CAPTURED") "}}", OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_NO_ENTRY},
    /* 2xx whose entries naming our id disagree */
    {200, false, MOD_CAPTURE,
     "{\"modification\":" ENTRY(MODID, "CAPTURE", "CAPTURED") ",\"modifications\":[" ENTRY(
         MODID, "CAPTURE", "FAILED") "]}",
     OUTCOME_UNKNOWN, CLASSIFY_UNCONFIRMED_DISAGREE},
    /* 2xx whose entry is of another type */
    {200, false, MOD_CAPTURE, SINGLE("REFUND", "REFUNDED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_WRONG_TYPE},
    {200, false, MOD_CAPTURE, SINGLE("SETTLEMENT", "SETTLED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_WRONG_TYPE},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE\\u0000", "CAPTURED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_WRONG_TYPE},
    {200, false, MOD_CANCEL, SINGLE("REFUND", "REFUNDED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_WRONG_TYPE},
    {200, false, MOD_REFUND, SINGLE("CANCELLATION", "CANCELLED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_WRONG_TYPE},
    {200, false, MOD_CANCEL_OR_REFUND, SINGLE("CAPTURE", "CAPTURED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_WRONG_TYPE},
    /* 2xx whose entry has no status */
    {200, false, MOD_CAPTURE,
     "{\"modification\":{\"modificationData\":{\"modificationId\":\"" MODID
     "\",\"type\":\"CAPTURE\"}}}",
     OUTCOME_UNKNOWN, CLASSIFY_UNCONFIRMED_NO_STATUS},
    {200, false, MOD_CAPTURE,
     "{\"modification\":{\"status\":7,\"modificationData\":{\"modificationId\":\"" MODID "\"}}}",
     OUTCOME_UNKNOWN, CLASSIFY_UNCONFIRMED_NO_STATUS},
    /* 2xx whose entry's status does not confirm this kind */
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "FAILED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "REFUSED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "DECLINED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURE_FAILED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "AUTHORIZATION_COMPLETED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED\\u0000junk"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED\\u0000"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", " CAPTURED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", ""), OUTCOME_UNKNOWN, CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "CANCELLED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE,
     "{\"modification\":{\"status\":\"REFUNDED\",\"modificationData\":{\"modificationId\":\"" MODID
     "\"}}}",
     OUTCOME_UNKNOWN, CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CANCEL, SINGLE("CANCELLATION", "CAPTURED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CANCEL, SINGLE("CANCELLATION", "CANCELLATION_FAILED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_REFUND, SINGLE("REFUND", "REFUND_DECLINED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CANCEL_OR_REFUND, SINGLE("CANCELLATION", "REFUNDED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CANCEL_OR_REFUND, SINGLE("REFUND", "CANCELED"), OUTCOME_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    /* not 2xx: the body does not matter */
    {422, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED"), OUTCOME_REFUSED, NULL},
    {404, false, MOD_REFUND, "", OUTCOME_REFUSED, NULL},
    {503, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED"), OUTCOME_UNKNOWN, NULL},
    {409, false, MOD_CANCEL, SINGLE("CANCELLATION", "CANCELLED"), OUTCOME_UNKNOWN, NULL},
    {302, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED"), OUTCOME_UNKNOWN, NULL},
    {401, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED"), OUTCOME_AUTH_REJECTED, NULL},
    {407, false, MOD_REFUND, "", OUTCOME_AUTH_REJECTED, NULL},
    /* a timeout after a confirming 200 was seen */
    {200, true, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED"), OUTCOME_UNKNOWN, NULL},
};

START_TEST(test_decision_table)
{
	for (size_t i = 0; i < sizeof(decision_table) / sizeof(decision_table[0]); i++) {
		const struct decision_row *row = &decision_table[i];
		struct gw_response r;
		struct classification c;
		bool parsed = response_parse(row->body, strlen(row->body), MODID, &r);

		classify_answer(row->status, false, row->timed_out, parsed ? &r : NULL, row->kind,
		                NULL, 0, &c);
		ck_assert_msg(c.outcome == row->outcome, "row %zu (%d %s): %s, want %s", i,
		              row->status, row->body, outcome_name(c.outcome),
		              outcome_name(row->outcome));
		if (row->unconfirmed == NULL)
			ck_assert_msg(c.unconfirmed == NULL, "row %zu: unconfirmed \"%s\"", i,
			              c.unconfirmed);
		else
			ck_assert_msg(c.unconfirmed != NULL &&
			                  strcmp(c.unconfirmed, row->unconfirmed) == 0,
			              "row %zu (%s): \"%s\", want \"%s\"", i, row->body,
			              c.unconfirmed ? c.unconfirmed : "(null)", row->unconfirmed);
		response_free(&r);
	}
}
END_TEST

/* The statuses that confirm each kind, and spellings that must not. */
START_TEST(test_classify_confirms)
{
	static const struct {
		enum mod_kind kind;
		const char *type, *status;
		bool confirms;
	} cases[] = {
	    {MOD_CAPTURE, NULL, "CAPTURED", true},
	    {MOD_CAPTURE, NULL, "capture_pending", true},
	    {MOD_CAPTURE, "CAPTURE", "Settled", true},
	    {MOD_CAPTURE, NULL, "CAPTURE", false},
	    {MOD_CAPTURE, NULL, "CAPTURED_", false},
	    {MOD_CAPTURE, NULL, "CAPTUREDD", false},
	    {MOD_CAPTURE, NULL, "CAPTURE-PENDING", false},
	    {MOD_CAPTURE, NULL, "PARTIALLY_CAPTURED", false},
	    {MOD_CAPTURE, NULL, NULL, false},
	    {MOD_CAPTURE, "", "CAPTURED", false},
	    {MOD_CANCEL, NULL, "CANCELLED", true},
	    {MOD_CANCEL, NULL, "CANCELED", true},
	    {MOD_CANCEL, "CANCELATION", "cancelation_pending", true},
	    {MOD_CANCEL, NULL, "CANCELLATION_PENDING", true},
	    {MOD_CANCEL, NULL, "CANCEL", false},
	    {MOD_CANCEL, NULL, "REFUNDED", false},
	    {MOD_REFUND, NULL, "REFUNDED", true},
	    {MOD_REFUND, "REFUND", "REFUND_PENDING", true},
	    {MOD_REFUND, NULL, "REFUND", false},
	    {MOD_REFUND, NULL, "PARTIALLY_REFUNDED", false},
	    {MOD_REFUND, NULL, "CAPTURED", false},
	    {MOD_CANCEL_OR_REFUND, NULL, "CANCELED", true},
	    {MOD_CANCEL_OR_REFUND, NULL, "REFUNDED", true},
	    {MOD_CANCEL_OR_REFUND, "REFUND", "REFUNDED", true},
	    {MOD_CANCEL_OR_REFUND, "CANCELATION", "CANCELED", true},
	    {MOD_CANCEL_OR_REFUND, "REFUND", "CANCELLED", false},
	    {MOD_CANCEL_OR_REFUND, NULL, "CAPTURED", false},
	    {(enum mod_kind)17, NULL, "CAPTURED", false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *why = classify_confirms(cases[i].kind, cases[i].type, cases[i].status);
		ck_assert_msg((why == NULL) == cases[i].confirms, "case %zu (%s %s): %s", i,
		              cases[i].type ? cases[i].type : "-",
		              cases[i].status ? cases[i].status : "-", why ? why : "confirms");
	}
}
END_TEST

START_TEST(test_classify_table)
{
	static const struct {
		int status;
		enum outcome outcome;
		const char *reason;
	} cases[] = {
	    {200, OUTCOME_ACCEPTED, "http 200"},
	    {201, OUTCOME_ACCEPTED, "http 201"},
	    {202, OUTCOME_ACCEPTED, "http 202"},
	    {400, OUTCOME_REFUSED, "refused: http 400"},
	    {403, OUTCOME_REFUSED, "refused: http 403"},
	    {404, OUTCOME_REFUSED, "refused: http 404"},
	    {405, OUTCOME_REFUSED, "refused: http 405"},
	    {410, OUTCOME_REFUSED, "refused: http 410"},
	    {413, OUTCOME_REFUSED, "refused: http 413"},
	    {422, OUTCOME_REFUSED, "refused: http 422"},
	    {401, OUTCOME_AUTH_REJECTED, "credentials rejected: http 401"},
	    {407, OUTCOME_AUTH_REJECTED, "credentials rejected: http 407"},
	    {408, OUTCOME_UNKNOWN, "http 408"},
	    {409, OUTCOME_UNKNOWN, "http 409"},
	    {421, OUTCOME_UNKNOWN, "http 421"},
	    {425, OUTCOME_UNKNOWN, "http 425"},
	    {429, OUTCOME_UNKNOWN, "http 429"},
	    {500, OUTCOME_UNKNOWN, "http 500"},
	    {502, OUTCOME_UNKNOWN, "http 502"},
	    {503, OUTCOME_UNKNOWN, "http 503"},
	    {504, OUTCOME_UNKNOWN, "http 504"},
	    {599, OUTCOME_UNKNOWN, "http 599"},
	    {100, OUTCOME_UNKNOWN, "http 100"},
	    {101, OUTCOME_UNKNOWN, "http 101"},
	    {301, OUTCOME_UNKNOWN, "http 301"},
	    {302, OUTCOME_UNKNOWN, "http 302"},
	    {304, OUTCOME_UNKNOWN, "http 304"},
	    {0, OUTCOME_UNKNOWN, "no answer"},
	    {99, OUTCOME_UNKNOWN, "invalid http status"},
	    {600, OUTCOME_UNKNOWN, "invalid http status"},
	    {-1, OUTCOME_UNKNOWN, "invalid http status"},
	};
	struct classification c;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		classify_answer(cases[i].status, false, false, &capture_ok, MOD_CAPTURE, NULL, 0,
		                &c);
		ck_assert_msg(c.outcome == cases[i].outcome, "status %d: %s", cases[i].status,
		              outcome_name(c.outcome));
		ck_assert_str_eq(c.reason, cases[i].reason);
		ck_assert_int_eq(c.retry_after_ms, -1);
	}
	/* every status in range, against the independent statement of the rules */
	for (int s = 100; s <= 599; s++) {
		char want[32];
		classify_answer(s, false, false, &capture_ok, MOD_CAPTURE, NULL, 0, &c);
		ck_assert_msg(c.outcome == expected_outcome(s), "status %d", s);
		if (c.outcome == OUTCOME_REFUSED)
			snprintf(want, sizeof(want), "refused: http %d", s);
		else if (c.outcome == OUTCOME_AUTH_REJECTED)
			snprintf(want, sizeof(want), "credentials rejected: http %d", s);
		else
			snprintf(want, sizeof(want), "http %d", s);
		ck_assert_str_eq(c.reason, want);
	}
}
END_TEST

START_TEST(test_classify_transport)
{
	struct classification c;

	/* 2xx needs a readable body */
	classify_answer(200, false, false, NULL, MOD_CAPTURE, NULL, 0, &c);
	ck_assert_int_eq(c.outcome, OUTCOME_UNKNOWN);
	ck_assert_str_eq(c.reason, "http 200");
	ck_assert_str_eq(c.unconfirmed, CLASSIFY_UNCONFIRMED_NOT_JSON);
	classify_answer(204, false, false, NULL, MOD_CAPTURE, NULL, 0, &c);
	ck_assert_int_eq(c.outcome, OUTCOME_UNKNOWN);
	/* an unreadable body does not hide a refusal */
	classify_answer(422, false, false, NULL, MOD_CAPTURE, NULL, 0, &c);
	ck_assert_int_eq(c.outcome, OUTCOME_REFUSED);

	classify_answer(0, false, true, NULL, MOD_CAPTURE, NULL, 0, &c);
	ck_assert_int_eq(c.outcome, OUTCOME_UNKNOWN);
	ck_assert_str_eq(c.reason, "timeout");
	classify_answer(0, true, false, NULL, MOD_CAPTURE, NULL, 0, &c);
	ck_assert_int_eq(c.outcome, OUTCOME_UNKNOWN);
	ck_assert_str_eq(c.reason, "connection error");
	/* a status seen before the transfer broke is not trusted */
	classify_answer(200, false, true, &capture_ok, MOD_CAPTURE, NULL, 0, &c);
	ck_assert_int_eq(c.outcome, OUTCOME_UNKNOWN);
	ck_assert_str_eq(c.reason, "timeout");
	classify_answer(422, true, false, &capture_ok, MOD_CAPTURE, NULL, 0, &c);
	ck_assert_int_eq(c.outcome, OUTCOME_UNKNOWN);
	ck_assert_str_eq(c.reason, "connection error");
	classify_answer(0, true, true, NULL, MOD_CAPTURE, NULL, 0, &c);
	ck_assert_str_eq(c.reason, "timeout");

	ck_assert_str_eq(outcome_name(OUTCOME_ACCEPTED), "accepted");
	ck_assert_str_eq(outcome_name(OUTCOME_REFUSED), "refused");
	ck_assert_str_eq(outcome_name(OUTCOME_UNKNOWN), "unknown");
	ck_assert_str_eq(outcome_name(OUTCOME_AUTH_REJECTED), "auth_rejected");
}
END_TEST

START_TEST(test_retry_after)
{
	/* Sun, 06 Nov 1994 08:49:37 GMT */
	const int64_t t = INT64_C(784111777) * 1000;
	struct classification c;

	ck_assert_int_eq(classify_retry_after("7", 0), 7000);
	ck_assert_int_eq(classify_retry_after(" 7 \r\n", 0), 7000);
	ck_assert_int_eq(classify_retry_after("0", 0), 0);
	ck_assert_int_eq(classify_retry_after("3600", 0), 3600000);
	ck_assert_int_eq(classify_retry_after("3601", 0), 3600000);
	ck_assert_int_eq(classify_retry_after("99999999999999999999999", 0), 3600000);

	ck_assert_int_eq(classify_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t - 30000), 30000);
	ck_assert_int_eq(classify_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", t - 1500), 1500);
	ck_assert_int_eq(classify_retry_after("Sun Nov  6 08:49:37 1994", t - 2000), 2000);
	/* RFC 850 two-digit years below 70 are this century */
	ck_assert_int_eq(classify_retry_after("Monday, 01-Mar-49 00:00:00 GMT",
	                                      INT64_C(2498169600) * 1000 - 5000),
	                 5000);
	ck_assert_int_eq(classify_retry_after("Sun Nov 16 08:49:37 1994", t), 3600000);
	ck_assert_int_eq(classify_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t + 5000), 0);
	ck_assert_int_eq(classify_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t - 7200000),
	                 3600000);
	ck_assert_int_eq(classify_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", 0), 10000);
	ck_assert_int_eq(classify_retry_after("Wed, 29 Feb 2040 12:00:00 GMT",
	                                      INT64_C(2214129600) * 1000 - 60000),
	                 60000);

	static const char *const garbage[] = {
	    "",
	    "   ",
	    "soon",
	    "-5",
	    "+5",
	    "7.5",
	    "7s",
	    "0x10",
	    "Sun, 06 Nov 1994 25:49:37 GMT",
	    "Sun, 06 Nov 1994 08:49:37 UTC",
	    "Sun, 6 Nov 1994 08:49:37 GMT",
	    "Sun, 06 Foo 1994 08:49:37 GMT",
	    "Sun, 32 Nov 1994 08:49:37 GMT",
	    "Sun, 06 Nov 1994 08:49:37 GMT trailing",
	    "Sunday, 06 Nov 1994 08:49:37 GMT",
	    "Nov 06 1994",
	};
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
		ck_assert_msg(classify_retry_after(garbage[i], t) == -1, "accepted \"%s\"",
		              garbage[i]);
	ck_assert_int_eq(classify_retry_after(NULL, t), -1);

	classify_answer(503, false, false, NULL, MOD_CAPTURE, "7", 0, &c);
	ck_assert_int_eq(c.outcome, OUTCOME_UNKNOWN);
	ck_assert_str_eq(c.reason, "http 503");
	ck_assert_int_eq(c.retry_after_ms, 7000);
	classify_answer(429, false, false, &capture_ok, MOD_CAPTURE,
	                "Sun, 06 Nov 1994 08:49:37 GMT", t - 4000, &c);
	ck_assert_int_eq(c.retry_after_ms, 4000);
	classify_answer(503, false, false, NULL, MOD_CAPTURE, "whenever", 0, &c);
	ck_assert_int_eq(c.retry_after_ms, -1);
}
END_TEST

static const struct backoff_policy policy = {
    .base_ms = 1000, .max_ms = 60000, .max_attempts = 8, .deadline_margin_ms = 600000};

START_TEST(test_backoff_jitter_bounds)
{
	uint64_t rng = 12345;
	const int64_t now = INT64_C(1700000000000);
	int64_t ceiling = 1000;

	for (int attempts = 0; attempts < 8; attempts++) {
		int64_t lo = INT64_MAX, hi = -1;
		int bad = 0;
		for (int i = 0; i < 20000; i++) {
			int64_t next = -1;
			const char *why = NULL;
			/* counted rather than asserted one by one: Check's asserts are slow */
			if (backoff_next(&policy, attempts, now, 0, -1, test_rng(&rng), &next,
			                 &why) != BACKOFF_RETRY ||
			    why == NULL || strcmp(why, "backoff") != 0)
				bad++;
			if (next - now < lo)
				lo = next - now;
			if (next - now > hi)
				hi = next - now;
		}
		ck_assert_int_eq(bad, 0);
		ck_assert_int_ge(lo, 0);
		ck_assert_int_le(hi, ceiling);
		/* the whole window is used: full jitter, not "equal jitter" */
		ck_assert_int_lt(lo, ceiling / 20 + 1);
		ck_assert_int_gt(hi, ceiling - ceiling / 20 - 1);
		ceiling = ceiling * 2 > 60000 ? 60000 : ceiling * 2;
	}
}
END_TEST

START_TEST(test_backoff_growth_and_cap)
{
	static const struct {
		int attempts;
		int64_t ceiling;
	} cases[] = {{0, 1000},
	             {1, 2000},
	             {2, 4000},
	             {3, 8000},
	             {4, 16000},
	             {5, 32000},
	             {6, 60000},
	             {7, 60000},
	             {62, 60000},
	             {63, 60000},
	             {64, 60000},
	             {1000, 60000},
	             {INT32_MAX - 1, 60000}};
	struct backoff_policy p = policy;
	int64_t next;

	p.max_attempts = INT32_MAX;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* random == ceiling gives the top of the window, ceiling + 1 wraps to 0 */
		ck_assert_int_eq(backoff_next(&p, cases[i].attempts, 0, 0, -1,
		                              (uint64_t)cases[i].ceiling, &next, NULL),
		                 BACKOFF_RETRY);
		ck_assert_int_eq(next, cases[i].ceiling);
		ck_assert_int_eq(backoff_next(&p, cases[i].attempts, 0, 0, -1,
		                              (uint64_t)cases[i].ceiling + 1, &next, NULL),
		                 BACKOFF_RETRY);
		ck_assert_int_eq(next, 0);
		ck_assert_int_eq(
		    backoff_next(&p, cases[i].attempts, 0, 0, -1, UINT64_MAX, &next, NULL),
		    BACKOFF_RETRY);
		ck_assert_int_le(next, cases[i].ceiling);
	}
	/* huge base and max do not overflow */
	p.base_ms = INT64_MAX / 3;
	p.max_ms = INT64_MAX;
	ck_assert_int_eq(backoff_next(&p, 5, 0, 0, -1, UINT64_MAX, &next, NULL), BACKOFF_RETRY);
	ck_assert_int_ge(next, 0);
	ck_assert_int_eq(
	    backoff_next(&p, 5, INT64_C(1700000000000), 0, -1, (uint64_t)INT64_MAX, &next, NULL),
	    BACKOFF_RETRY);
	ck_assert_int_eq(next, INT64_MAX);
}
END_TEST

START_TEST(test_backoff_attempts)
{
	int64_t next = 0;
	const char *why = NULL;

	ck_assert_int_eq(backoff_next(&policy, 7, 1000, 0, -1, 5, &next, &why), BACKOFF_RETRY);
	ck_assert_int_eq(next, 1005);
	ck_assert_int_eq(backoff_next(&policy, 8, 1000, 0, -1, 5, &next, &why), BACKOFF_GIVE_UP);
	ck_assert_str_eq(why, "retries exhausted");
	ck_assert_int_eq(next, -1);
	ck_assert_int_eq(backoff_next(&policy, 9, 1000, 0, 7000, 5, &next, &why), BACKOFF_GIVE_UP);
	ck_assert_str_eq(why, "retries exhausted");
}
END_TEST

START_TEST(test_backoff_deadline)
{
	const int64_t now = INT64_C(1700000000000);
	const int64_t deadline = now + 700000; /* margin 600 s: latest attempt now + 100 s */
	int64_t next;
	const char *why;

	/* well before the deadline: untouched */
	ck_assert_int_eq(backoff_next(&policy, 6, now, deadline, -1, 59999, &next, &why),
	                 BACKOFF_RETRY);
	ck_assert_int_eq(next, now + 59999);
	ck_assert_str_eq(why, "backoff");
	/* would land past deadline - margin: pulled in */
	ck_assert_int_eq(backoff_next(&policy, 6, now + 90000, deadline, -1, 59999, &next, &why),
	                 BACKOFF_RETRY);
	ck_assert_int_eq(next, now + 100000);
	ck_assert_str_eq(why, "deadline pull-in");
	/* already inside the margin: try at once */
	ck_assert_int_eq(backoff_next(&policy, 6, now + 650000, deadline, -1, 59999, &next, &why),
	                 BACKOFF_RETRY);
	ck_assert_int_eq(next, now + 650000);
	ck_assert_str_eq(why, "deadline pull-in");
	/* a Retry-After beyond the deadline is pulled in too */
	ck_assert_int_eq(backoff_next(&policy, 0, now, deadline, 3600000, 0, &next, &why),
	                 BACKOFF_RETRY);
	ck_assert_int_eq(next, now + 100000);
	/* at or past the deadline: give up */
	ck_assert_int_eq(backoff_next(&policy, 1, deadline, deadline, -1, 0, &next, &why),
	                 BACKOFF_GIVE_UP);
	ck_assert_str_eq(why, "authorization deadline passed");
	ck_assert_int_eq(backoff_next(&policy, 1, deadline + 1, deadline, -1, 0, &next, &why),
	                 BACKOFF_GIVE_UP);
	/* no deadline: no pull-in */
	ck_assert_int_eq(backoff_next(&policy, 6, now + 650000, 0, -1, 59999, &next, &why),
	                 BACKOFF_RETRY);
	ck_assert_int_eq(next, now + 650000 + 59999);
}
END_TEST

START_TEST(test_backoff_retry_after)
{
	int64_t next;
	const char *why;

	/* Retry-After raises a short jitter */
	ck_assert_int_eq(backoff_next(&policy, 0, 1000, 0, 7000, 10, &next, &why), BACKOFF_RETRY);
	ck_assert_int_eq(next, 8000);
	ck_assert_str_eq(why, "retry-after");
	/* and is honoured beyond max_ms, up to one hour */
	ck_assert_int_eq(backoff_next(&policy, 0, 1000, 0, 600000, 10, &next, &why), BACKOFF_RETRY);
	ck_assert_int_eq(next, 601000);
	ck_assert_int_eq(backoff_next(&policy, 0, 1000, 0, 86400000, 10, &next, &why),
	                 BACKOFF_RETRY);
	ck_assert_int_eq(next, 1000 + 3600000);
	/* a longer jitter wins over a short Retry-After */
	ck_assert_int_eq(backoff_next(&policy, 5, 1000, 0, 100, 30000, &next, &why), BACKOFF_RETRY);
	ck_assert_int_eq(next, 31000);
	ck_assert_str_eq(why, "backoff");
	/* Retry-After: 0 means no minimum */
	ck_assert_int_eq(backoff_next(&policy, 0, 1000, 0, 0, 0, &next, &why), BACKOFF_RETRY);
	ck_assert_int_eq(next, 1000);
}
END_TEST

START_TEST(test_backoff_random_source)
{
	uint64_t sum_low = 0;
	const int n = 20000;
	uint64_t a = backoff_random(), b = backoff_random();

	ck_assert(a != b);
	/* uniform enough: the mean of a 0..1000 window is near 500 */
	for (int i = 0; i < n; i++) {
		int64_t next = 0;
		if (backoff_next(&policy, 0, 0, 0, -1, backoff_random(), &next, NULL) !=
		        BACKOFF_RETRY ||
		    next < 0 || next > 1000)
			ck_abort_msg("out of the window: %lld", (long long)next);
		sum_low += (uint64_t)next;
	}
	ck_assert_int_gt(sum_low / (uint64_t)n, 450);
	ck_assert_int_lt(sum_low / (uint64_t)n, 550);
}
END_TEST

/* Orders UUID strings for the uniqueness check. */
static int cmp_uuid(const void *a, const void *b)
{
	return strcmp(a, b);
}

START_TEST(test_uuid)
{
	enum { N = 20000 };
	char(*ids)[37] = malloc(sizeof(*ids) * N);

	ck_assert_ptr_nonnull(ids);
	for (int i = 0; i < N; i++) {
		bool ok;
		uuid_v4(ids[i]);
		ok = strlen(ids[i]) == 36 && uuid_valid(ids[i]) && ids[i][14] == '4' &&
		     strchr("89ab", ids[i][19]) != NULL;
		for (int j = 0; j < 36 && ok; j++) {
			char ch = ids[i][j];
			if (j == 8 || j == 13 || j == 18 || j == 23)
				ok = ch == '-';
			else
				ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
		}
		if (!ok)
			ck_abort_msg("bad uuid %s", ids[i]);
	}
	qsort(ids, N, sizeof(*ids), cmp_uuid);
	for (int i = 1; i < N; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0)
			ck_abort_msg("duplicate uuid %s", ids[i]);
	free(ids);

	ck_assert(uuid_valid("7D2C9A10-3E4F-4B5A-8C7D-112233445566"));
	ck_assert(uuid_valid("00000000-0000-0000-0000-000000000000"));
	ck_assert(!uuid_valid(NULL));
	ck_assert(!uuid_valid(""));
	ck_assert(!uuid_valid("7d2c9a10-3e4f-4b5a-8c7d-11223344556"));
	ck_assert(!uuid_valid("7d2c9a10-3e4f-4b5a-8c7d-1122334455667"));
	ck_assert(!uuid_valid("7d2c9a10+3e4f-4b5a-8c7d-112233445566"));
	ck_assert(!uuid_valid("7d2c9a103e4f-4b5a-8c7d-1122334455667"));
	ck_assert(!uuid_valid("7d2c9a10-3e4f-4b5a-8c7d-11223344556g"));
	ck_assert(!uuid_valid("{7d2c9a10-3e4f-4b5a-8c7d-112233445566}"));
}
END_TEST

/* text_storable of a byte string with explicit length (it may hold NULs). */
static void expect_storable(const char *in, size_t len, size_t max, enum text_nul nul,
                            const char *want)
{
	char *got = text_storable(in, len, max, nul);

	ck_assert_msg(strcmp(got, want) == 0,
	              "input of %zu bytes, max %zu: got \"%s\", want \"%s\"", len, max, got, want);
	ck_assert(testutil_utf8_valid(got));
	ck_assert_uint_le(strlen(got), max);
	free(got);
}

#define FFFD "\xEF\xBF\xBD"
/* A literal with its length (NULs included). */
#define LIT(s) s, sizeof(s) - 1

START_TEST(test_text_ill_formed)
{
	static const struct {
		const char *in;
		size_t len;
		const char *want;
	} cases[] = {
	    {LIT("plain ASCII"), "plain ASCII"},
	    {LIT("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"),
	     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"},
	    /* Latin-1 */
	    {LIT("caf\xe9"), "caf" FFFD},
	    {LIT("\xe9t\xe9 \xa0\xff"), FFFD "t" FFFD " " FFFD FFFD},
	    {LIT("<p>Fehler: Zahlung abgelehnt f\xfcr \xc4nderung</p>"),
	     "<p>Fehler: Zahlung abgelehnt f" FFFD "r " FFFD "nderung</p>"},
	    /* overlong forms */
	    {LIT("\xc0\xaf"), FFFD FFFD},
	    {LIT("\xc1\xbf"), FFFD FFFD},
	    {LIT("\xe0\x80\xaf"), FFFD FFFD FFFD},
	    {LIT("\xe0\x9f\xbf"), FFFD FFFD FFFD},
	    {LIT("\xf0\x80\x80\xaf"), FFFD FFFD FFFD FFFD},
	    {LIT("\xf0\x8f\xbf\xbf"), FFFD FFFD FFFD FFFD},
	    /* surrogates, also as a CESU-8 pair */
	    {LIT("\xed\xa0\x80"), FFFD FFFD FFFD},
	    {LIT("\xed\xbf\xbf"), FFFD FFFD FFFD},
	    {LIT("\xed\xa0\xbd\xed\xb8\x80"), FFFD FFFD FFFD FFFD FFFD FFFD},
	    {LIT("\xed\x9f\xbf"), "\xed\x9f\xbf"},
	    /* beyond U+10FFFF, bytes that never occur */
	    {LIT("\xf4\x90\x80\x80"), FFFD FFFD FFFD FFFD},
	    {LIT("\xf5\x80\x80\x80"), FFFD FFFD FFFD FFFD},
	    {LIT("\xfe\xff"), FFFD FFFD},
	    /* sequences cut short: one U+FFFD per maximal subpart */
	    {LIT("\xe2\x82"), FFFD},
	    {LIT("\xe2\x82x"), FFFD "x"},
	    {LIT("\xf0\x9f\x98"), FFFD},
	    {LIT("\xf0\x9f\x98\xf0\x9f\x98\x80"), FFFD "\xf0\x9f\x98\x80"},
	    {LIT("\xc3"), FFFD},
	    {LIT("a\x80\x80z"), "a" FFFD FFFD "z"},
	    /* NUL bytes are dropped */
	    {LIT("a\0b\0\0c"), "abc"},
	    {LIT("\0"), ""},
	    {LIT("\xc3\0\xa9"), FFFD FFFD},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_storable(cases[i].in, cases[i].len, TEXT_UNLIMITED, TEXT_NUL_DROP,
		                cases[i].want);
	/* or replaced, where the text is compared afterwards */
	expect_storable(LIT("CAPTURED\0junk"), TEXT_UNLIMITED, TEXT_NUL_REPLACE,
	                "CAPTURED" FFFD "junk");
	expect_storable(LIT("\0"), TEXT_UNLIMITED, TEXT_NUL_REPLACE, FFFD);
	expect_storable(NULL, 0, 10, TEXT_NUL_DROP, "");
	ck_assert_ptr_null(text_storable_str(NULL, 10));
	{
		char *s = text_storable_str("x\xffy", 10);
		ck_assert_str_eq(s, "x" FFFD "y");
		free(s);
	}
}
END_TEST

START_TEST(test_text_truncation)
{
	char *body, *got;
	size_t n = 65536;

	/* at a character boundary, never inside one */
	expect_storable(LIT("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"), 9, TEXT_NUL_DROP,
	                "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac");
	expect_storable(LIT("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"), 8, TEXT_NUL_DROP,
	                "\xe2\x82\xac\xe2\x82\xac");
	expect_storable(LIT("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"), 6, TEXT_NUL_DROP,
	                "\xe2\x82\xac\xe2\x82\xac");
	expect_storable(LIT("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"), 5, TEXT_NUL_DROP,
	                "\xe2\x82\xac");
	expect_storable(LIT("\xf0\x9f\x98\x80"), 3, TEXT_NUL_DROP, "");
	expect_storable(LIT("abc"), 0, TEXT_NUL_DROP, "");
	/* a replacement that does not fit is left out whole */
	expect_storable(LIT("aa\xff"), 4, TEXT_NUL_DROP, "aa");
	expect_storable(LIT("aa\xff"), 5, TEXT_NUL_DROP, "aa" FFFD);
	/* dropped NULs take no room */
	expect_storable(LIT("\0\0\0abc"), 3, TEXT_NUL_DROP, "abc");

	/* a 64 KiB body cut by the transport in the middle of a character */
	body = malloc(n + 3);
	ck_assert_ptr_nonnull(body);
	memset(body, 'a', n - 1);
	memcpy(body + n - 1, "\xe2\x82\xac", 3);
	got = text_storable(body, n + 1, n, TEXT_NUL_DROP); /* ends in E2 82 */
	ck_assert_uint_eq(strlen(got), n - 1);
	ck_assert(testutil_utf8_valid(got));
	free(got);
	got = text_storable(body, n + 2, n, TEXT_NUL_DROP); /* the whole euro does not fit */
	ck_assert_uint_eq(strlen(got), n - 1);
	free(got);
	got = text_storable(body, n + 2, n + 2, TEXT_NUL_DROP);
	ck_assert_uint_eq(strlen(got), n + 2);
	ck_assert(memcmp(got + n - 1, "\xe2\x82\xac", 3) == 0);
	free(got);
	got = text_storable(body, n + 1, TEXT_UNLIMITED, TEXT_NUL_DROP);
	ck_assert_uint_eq(strlen(got), n - 1 + 3);
	ck_assert_str_eq(got + n - 1, FFFD);
	free(got);
	free(body);
}
END_TEST

/* Whatever the bytes: well-formed, no NUL, within the limit, and stable when applied
 * twice; well-formed input comes back unchanged. */
START_TEST(test_text_random)
{
	uint64_t rng = 0x243f6a8885a308d3u;
	unsigned char in[64];

	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(test_rng(&rng) % sizeof(in));
		size_t max = (size_t)(test_rng(&rng) % 100);
		for (size_t i = 0; i < len; i++) {
			uint64_t r = test_rng(&rng);
			/* mostly bytes that start or continue sequences */
			in[i] = (unsigned char)(r % 3 == 0 ? (r >> 8) : 0x80 | ((r >> 8) & 0x7f));
		}
		char *once = text_storable((const char *)in, len, max, TEXT_NUL_DROP);
		ck_assert(testutil_utf8_valid(once));
		ck_assert_uint_le(strlen(once), max);
		ck_assert_ptr_null(memchr(once, '\0', strlen(once)));
		char *twice = text_storable(once, strlen(once), max, TEXT_NUL_DROP);
		ck_assert_str_eq(once, twice);
		free(twice);
		free(once);
	}
}
END_TEST

/* Builds the suite: one test case per module. */
static Suite *gateway_suite(void)
{
	Suite *s = suite_create("gateway");
	TCase *tc;

	tc = tcase_create("modification");
	tcase_add_test(tc, test_kind_names);
	tcase_add_test(tc, test_body_capture);
	tcase_add_test(tc, test_body_cancel);
	tcase_add_test(tc, test_body_refund);
	tcase_add_test(tc, test_body_currencies);
	tcase_add_test(tc, test_body_escaping);
	tcase_add_test(tc, test_body_lengths);
	tcase_add_test(tc, test_body_refusals);
	suite_add_tcase(s, tc);

	tc = tcase_create("response");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_response_single_object);
	tcase_add_test(tc, test_response_array);
	tcase_add_test(tc, test_response_statuses);
	tcase_add_test(tc, test_response_lenient);
	tcase_add_test(tc, test_response_wrong_types);
	tcase_add_test(tc, test_response_unreadable);
	tcase_add_test(tc, test_response_deep_nesting);
	tcase_add_test(tc, test_response_errors);
	tcase_add_test(tc, test_response_nul_in_strings);
	tcase_add_test(tc, test_response_entries_agree);
	tcase_add_test(tc, test_response_fuzz);
	suite_add_tcase(s, tc);

	tc = tcase_create("classify");
	tcase_add_test(tc, test_classify_table);
	tcase_add_test(tc, test_decision_table);
	tcase_add_test(tc, test_classify_confirms);
	tcase_add_test(tc, test_classify_transport);
	tcase_add_test(tc, test_retry_after);
	suite_add_tcase(s, tc);

	tc = tcase_create("text");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_text_ill_formed);
	tcase_add_test(tc, test_text_truncation);
	tcase_add_test(tc, test_text_random);
	suite_add_tcase(s, tc);

	tc = tcase_create("backoff");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_backoff_jitter_bounds);
	tcase_add_test(tc, test_backoff_growth_and_cap);
	tcase_add_test(tc, test_backoff_attempts);
	tcase_add_test(tc, test_backoff_deadline);
	tcase_add_test(tc, test_backoff_retry_after);
	tcase_add_test(tc, test_backoff_random_source);
	suite_add_tcase(s, tc);

	tc = tcase_create("uuid");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_uuid);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run_suite(gateway_suite(), CK_NORMAL);
}
