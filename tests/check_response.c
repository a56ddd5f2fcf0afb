/* Unit tests of parsing the gateway's answers (lib/response.c): single objects, histories,
 * statuses, lenient and wrong types, unreadable and hostile bodies. */
#include "autoconfig.h"

#include "response.h"
#include "response_internal.h"
#include "testutil.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TXID "5b1f0c7e-2a41-4f0e-9d55-0c1a2b3c4d5e"
#define MODID "7d2c9a10-3e4f-4b5a-8c7d-112233445566"

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

/* Parses a body that must be accepted and checks the four fields the outcome depends on
 * (NULL: absent). */
static void expect_parsed(const char *body, const char *modid, const char *payment_status,
                          const char *reference, const char *modification_status,
                          const char *modification_type)
{
	struct gw_response r;
	parse_ok(body, modid, &r);
	expect_str(r.payment_status, payment_status);
	expect_str(r.reconciliation_reference_id, reference);
	expect_str(r.modification_status, modification_status);
	expect_str(r.modification_type, modification_type);
	response_free(&r);
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

	expect_parsed(cancel_or_refund_example, MODID, "CANCELLED", "MOD-1", "CANCELLED",
	              "CANCELLATION");
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

	expect_parsed(modifications_array, MODID, "CAPTURED", "REF-RR", "REFUND_PENDING", "REFUND");

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
	expect_parsed(modifications_array, "someone-else", "CAPTURED", "TOP-2", NULL, NULL);
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

	expect_parsed(reordered, MODID, "CAPTURE_PENDING", NULL, "CAPTURED", "CAPTURE");

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
	char *open = testutil_repeat("[", 5000), *close = testutil_repeat("]", 5000);
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

	expect_parsed(
	    "{\"paymentStatus\":\"CAPTURED\\u0000junk\",\"modification\":{"
	    "\"status\":\"CAPTURED\\u0000\",\"modificationData\":{\"modificationId\":\"" MODID
	    "\",\"type\":\"CAPTURE\\u0000X\",\"reconciliationReferenceId\":\"R\\u0000S\"}}}",
	    MODID, "CAPTURED\xEF\xBF\xBDjunk", "R\xEF\xBF\xBDS", "CAPTURED\xEF\xBF\xBD",
	    "CAPTURE\xEF\xBF\xBDX");

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
				copy[testutil_rng(&rng) % len] = (char)testutil_rng(&rng);
			if (response_parse(copy, len, MODID, &r))
				response_free(&r);
		}
		free(copy);
	}
}
END_TEST

/* A capture answer as the simulator writes it: every optional field, a history. */
static const char capture_answer[] =
    "{\"reconciliationReferenceId\":\"RR-0001\",\"description\":\"order 17\","
    "\"paymentStatus\":\"CAPTURE_PENDING\",\"creationDate\":\"2026-12-02T01:00:00.000Z\","
    "\"lastStatusDate\":\"2026-12-02T01:00:00.120Z\",\"transactionOverview\":{"
    "\"transactionId\":\"" TXID "\",\"paymentMethod\":\"CARDS\",\"amount\":-0.5,"
    "\"currencyCode\":\"EUR\",\"mit\":false},\"modification\":{\"modificationData\":{"
    "\"type\":\"CAPTURE\",\"modificationId\":\"" MODID "\",\"reconciliationReferenceId\":"
    "\"RR-0002\",\"simExtraCode\":7},\"modificationAmount\":{\"amount\":10.99,"
    "\"currencyCode\":\"EUR\",\"description\":\"caf\xc3\xa9 \\\"au\\\" lait\\\\\\/\\n\"},"
    "\"status\":\"CAPTURE_PENDING\",\"statusHistory\":[{\"status\":\"CAPTURE_PENDING\","
    "\"statusDate\":\"2026-12-02T01:00:00.120Z\"}]},\"ignoredProperties\":[],"
    "\"simExtra\":{\"nested\":[1,\"two\",null,true,{\"error\":{}}]},\"simExtraNull\":null}";

/* True when two parsed answers hold the same (possibly NULL) texts and flags. */
static bool same_response(const struct gw_response *a, const struct gw_response *b)
{
	const char *const x[] = {a->payment_status, a->reconciliation_reference_id,
	                         a->modification_status, a->modification_type, a->error};
	const char *const y[] = {b->payment_status, b->reconciliation_reference_id,
	                         b->modification_status, b->modification_type, b->error};
	for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++) {
		if ((x[i] == NULL) != (y[i] == NULL) || (x[i] != NULL && strcmp(x[i], y[i]) != 0))
			return false;
	}
	return a->has_error == b->has_error && a->modification_entries == b->modification_entries &&
	       a->entries_disagree == b->entries_disagree;
}

/* Parses a body both ways: when the scan takes it, json-c's tree must take it too and
 * read the same; returns whether the scan took it. */
static bool scan_agrees(const char *body, size_t len, const char *modid)
{
	struct gw_response scan, tree;
	bool by_scan = response_parse_scan(body, len, modid, &scan);
	bool by_tree = response_parse_tree(body, len, modid, &tree);
	if (by_scan) {
		ck_assert_msg(by_tree, "the scan took a body json-c refuses: %.*s", (int)len, body);
		ck_assert_msg(same_response(&scan, &tree), "the scan read otherwise: %.*s",
		              (int)len, body);
	} else {
		ck_assert_ptr_null(scan.payment_status);
		ck_assert_ptr_null(scan.modification_status);
		ck_assert_ptr_null(scan.error);
	}
	response_free(&scan);
	response_free(&tree);
	return by_scan;
}

/* Strict JSON answers, the gateway's usual ones, are read by the scan, as json-c
 * reads them. */
START_TEST(test_response_scan_takes_strict_answers)
{
	static const char *const bodies[] = {
	    capture_answer,
	    cancel_example,
	    cancel_or_refund_example,
	    modifications_array,
	    "{\"paymentStatus\":\"CAPTURED\",\"modifications\":[[{\"modificationData\":{"
	    "\"modificationId\":\"" MODID "\",\"type\":\"CAPTURE\"},\"status\":\"CAPTURED\"}],"
	    "[[{\"modificationData\":{\"modificationId\":\"" MODID "\",\"type\":\"CAPTURE\"},"
	    "\"status\":\"SETTLED\"}]]]}",
	    "{\"error\":\"payment_failed\",\"errorDetails\":\"card \\\"invalid\\\"\","
	    "\"message\":null}",
	    "{\"error\":null,\"errorDetails\":\"\",\"message\":\"transaction not found\"}",
	    "{\"modification\":{\"status\":7,\"modificationData\":{\"modificationId\":\"" MODID
	    "\",\"type\":[],\"reconciliationReferenceId\":{}}},\"reconciliationReferenceId\":"
	    "\"TOP\"}",
	    "{\"modifications\":[1,\"a\",null,true,[[]],{}],\"modification\":\"x\","
	    "\"paymentStatus\":42}",
	    "{\"paymentStatus\":\"caf\xe9\",\"reconciliationReferenceId\":\"\"}",
	    " \t\r\n{}\r\n ",
	};
	static const char *const ids[] = {MODID, "cap-1", "", NULL};
	struct gw_response r;

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		for (size_t k = 0; k < sizeof(ids) / sizeof(ids[0]); k++)
			ck_assert_msg(scan_agrees(bodies[i], strlen(bodies[i]), ids[k]),
			              "the scan left body %zu to json-c", i);
	}
	/* what the scan read, spelled out for the simulator's answer */
	ck_assert(response_parse_scan(capture_answer, strlen(capture_answer), MODID, &r));
	expect_str(r.payment_status, "CAPTURE_PENDING");
	expect_str(r.modification_status, "CAPTURE_PENDING");
	expect_str(r.modification_type, "CAPTURE");
	expect_str(r.reconciliation_reference_id, "RR-0002");
	ck_assert_uint_eq(r.modification_entries, 1);
	ck_assert(!r.has_error);
	response_free(&r);
	ck_assert(response_parse_scan(bodies[5], strlen(bodies[5]), MODID, &r));
	expect_str(r.error, "payment_failed; card \"invalid\"");
	ck_assert(r.has_error);
	response_free(&r);
}
END_TEST

/* What only json-c's lenient parser takes, or reads in its own way, is left to it, and
 * response_parse still reads it. */
START_TEST(test_response_scan_leaves_the_rest)
{
	static const struct {
		const char *body, *payment_status;
	} cases[] = {
	    {"{/* a comment */\"paymentStatus\":\"CAPTURED\"}", "CAPTURED"},
	    {"{\"paymentStatus\":'CAPTURED'}", "CAPTURED"},
	    {"{\"paymentStatus\":\"CAPTURED\",\"paymentStatus\":\"FAILED\"}", NULL},
	    {"{\"paymentStatus\":\"CAPT\\u0055RED\"}", "CAPTURED"},
	    {"{\"paymentStatus\":\"CAPTURED\",\"n\":1e3}", "CAPTURED"},
	    {"{\"paymentStatus\":\"CAPTURED\",\"n\":1234567890123456}", "CAPTURED"},
	    {"{\"paymentStatus\":\"CAPTURED\",\"b\":True}", "CAPTURED"},
	    {"{\"paymentStatus\":\"CAPTURED\",\"error\":{\"code\":4}}", "CAPTURED"},
	    {"{\"paymentStatus\":\"CAP\tTURED\"}", "CAP\tTURED"},
	    {"{\"modifications\":[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]],\"paymentStatus\":"
	     "\"CAPTURED\"}",
	     "CAPTURED"},
	    {"{\"modification\":{\"modificationData\":{\"modificationId\":\"" MODID
	     "\"},\"status\":\"A\",\"status\":\"B\"},\"paymentStatus\":\"CAPTURED\"}",
	     "CAPTURED"},
	};
	struct gw_response r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].body);
		ck_assert_msg(!scan_agrees(cases[i].body, len, MODID), "the scan took case %zu", i);
		ck_assert_msg(response_parse(cases[i].body, len, MODID, &r), "case %zu not parsed",
		              i);
		/* a repeated key: whichever json-c keeps, response_parse reads as json-c does */
		if (cases[i].payment_status != NULL)
			expect_str(r.payment_status, cases[i].payment_status);
		else
			ck_assert_ptr_nonnull(r.payment_status);
		response_free(&r);
	}
	/* the repeated modification status: read as json-c's tree reads it */
	struct gw_response tree;
	ck_assert(response_parse(cases[10].body, strlen(cases[10].body), MODID, &r));
	ck_assert(response_parse_tree(cases[10].body, strlen(cases[10].body), MODID, &tree));
	ck_assert(same_response(&r, &tree));
	ck_assert_ptr_nonnull(r.modification_status);
	response_free(&r);
	response_free(&tree);
}
END_TEST

/* Every body one edit away from a real answer (a byte deleted, doubled or replaced by
 * a character that matters to JSON) is read by the scan exactly as json-c reads it,
 * or left to json-c. */
START_TEST(test_response_scan_agrees_mutated)
{
	static const char *const seeds[] = {capture_answer, cancel_or_refund_example,
	                                    modifications_array,
	                                    "{\"error\":\"e\",\"errorDetails\":\"d\\\"\"}"};
	static const char swaps[] = {'"', '\\', '{', '}', '[', ']',  ',',    ':',   ' ',
	                             '0', '.',  'e', 'n', 'u', '\0', '\x01', '\xff'};
	size_t taken = 0, tried = 0;

	for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
		size_t len = strlen(seeds[s]);
		char *copy = malloc(len + 2);
		ck_assert_ptr_nonnull(copy);
		for (size_t at = 0; at < len; at++) {
			/* deleted */
			memcpy(copy, seeds[s], at);
			memcpy(copy + at, seeds[s] + at + 1, len - at - 1);
			taken += scan_agrees(copy, len - 1, MODID);
			/* doubled */
			memcpy(copy, seeds[s], at + 1);
			memcpy(copy + at + 1, seeds[s] + at, len - at);
			taken += scan_agrees(copy, len + 1, MODID);
			tried += 2;
			for (size_t k = 0; k < sizeof(swaps); k++) {
				memcpy(copy, seeds[s], len);
				copy[at] = swaps[k];
				taken += scan_agrees(copy, len, k % 2 == 0 ? MODID : "cap-1");
				tried++;
			}
		}
		free(copy);
	}
	/* the edits that keep the text strict JSON (inside strings, most of them) are the
	 * scan's: the comparison above is not between two refusals */
	ck_assert_msg(taken > tried / 10, "the scan took %zu of %zu", taken, tried);
}
END_TEST

/* Builds the suite. */
static Suite *response_suite(void)
{
	Suite *s = suite_create("response");
	testutil_tcase(
	    s, "response", 60,
	    (const TTest *const[]){
	        test_response_single_object, test_response_array, test_response_statuses,
	        test_response_lenient, test_response_wrong_types, test_response_unreadable,
	        test_response_deep_nesting, test_response_errors, test_response_nul_in_strings,
	        test_response_entries_agree, test_response_fuzz,
	        test_response_scan_takes_strict_answers, test_response_scan_leaves_the_rest,
	        test_response_scan_agrees_mutated, NULL});
	return s;
}

int main(void)
{
	return testutil_run_suite(response_suite(), CK_NORMAL);
}
