/* Unit tests of classifying an answer (lib/classify.c): the decision table row by row, confirming
 * statuses, transport failures, Retry-After. */
#include "autoconfig.h"

#include "classify.h"
#include "response.h"
#include "testutil.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODID "7d2c9a10-3e4f-4b5a-8c7d-112233445566"

/* What design.md says each status means, written out independently of classify.c. */
static enum verdict expected_outcome(int status)
{
	if (status >= 200 && status <= 299)
		return VERDICT_ACCEPTED;
	if (status == 401 || status == 407)
		return VERDICT_AUTH_REJECTED;
	if (status == 408 || status == 409 || status == 421 || status == 425 || status == 429)
		return VERDICT_UNKNOWN;
	if (status >= 400 && status <= 499)
		return VERDICT_REFUSED;
	return VERDICT_UNKNOWN;
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
	enum verdict verdict;
	const char *unconfirmed; /* NULL: not a 2xx that failed to confirm */
} decision_table[] = {
    /* 2xx confirming our entry */
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED"), VERDICT_ACCEPTED, NULL},
    {201, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURE_PENDING"), VERDICT_ACCEPTED, NULL},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "SETTLED"), VERDICT_ACCEPTED, NULL},
    {200, false, MOD_CAPTURE, SINGLE("capture", "captured"), VERDICT_ACCEPTED, NULL},
    {200, false, MOD_CAPTURE,
     "{\"modification\":{\"status\":\"CAPTURED\",\"modificationData\":{\"modificationId\":\"" MODID
     "\"}}}",
     VERDICT_ACCEPTED, NULL},
    {200, false, MOD_CAPTURE,
     "{\"modifications\":[" ENTRY("other", "CAPTURE", "FAILED") "," ENTRY(MODID, "CAPTURE",
                                                                          "CAPTURED") "]}",
     VERDICT_ACCEPTED, NULL},
    {200, false, MOD_CAPTURE,
     "{\"modification\":" ENTRY(MODID, "CAPTURE", "CAPTURED") ",\"modifications\":[" ENTRY(
         MODID, "CAPTURE", "CAPTURED") "]}",
     VERDICT_ACCEPTED, NULL},
    {200, false, MOD_CANCEL, SINGLE("CANCELLATION", "CANCELLED"), VERDICT_ACCEPTED, NULL},
    {200, false, MOD_CANCEL, SINGLE("CANCELATION", "CANCELED"), VERDICT_ACCEPTED, NULL},
    {200, false, MOD_CANCEL, SINGLE("CANCELLATION", "CANCELATION_PENDING"), VERDICT_ACCEPTED, NULL},
    {200, false, MOD_CANCEL, SINGLE("Cancellation", "Canceled"), VERDICT_ACCEPTED, NULL},
    {200, false, MOD_REFUND, SINGLE("REFUND", "REFUNDED"), VERDICT_ACCEPTED, NULL},
    {200, false, MOD_REFUND, SINGLE("REFUND", "REFUND_PENDING"), VERDICT_ACCEPTED, NULL},
    {200, false, MOD_CANCEL_OR_REFUND, SINGLE("CANCELATION", "CANCELED"), VERDICT_ACCEPTED, NULL},
    {200, false, MOD_CANCEL_OR_REFUND, SINGLE("CANCELLATION", "CANCELLATION_PENDING"),
     VERDICT_ACCEPTED, NULL},
    {200, false, MOD_CANCEL_OR_REFUND, SINGLE("REFUND", "REFUNDED"), VERDICT_ACCEPTED, NULL},
    {200, false, MOD_CANCEL_OR_REFUND, SINGLE("REFUND", "REFUND_PENDING"), VERDICT_ACCEPTED, NULL},
    /* 2xx whose body is not one JSON object */
    {200, false, MOD_CAPTURE, "", VERDICT_UNKNOWN, CLASSIFY_UNCONFIRMED_NOT_JSON},
    {204, false, MOD_CAPTURE, "", VERDICT_UNKNOWN, CLASSIFY_UNCONFIRMED_NOT_JSON},
    {200, false, MOD_CAPTURE, "<html>OK</html>", VERDICT_UNKNOWN, CLASSIFY_UNCONFIRMED_NOT_JSON},
    {200, false, MOD_CAPTURE, "[" SINGLE("CAPTURE", "CAPTURED") "]", VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_NOT_JSON},
    {200, false, MOD_CAPTURE, "{\"modification\":{\"status\":\"CAPTURED\"", VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_NOT_JSON},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED") "x", VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_NOT_JSON},
    /* 2xx carrying an error, even beside a confirming entry */
    {200, false, MOD_CAPTURE, "{\"error\":\"payment_failed\",\"errorDetails\":\"x\"}",
     VERDICT_UNKNOWN, CLASSIFY_UNCONFIRMED_ERROR},
    {200, false, MOD_CAPTURE,
     "{\"error\":{\"code\":1},\"modification\":" ENTRY(MODID, "CAPTURE", "CAPTURED") "}",
     VERDICT_UNKNOWN, CLASSIFY_UNCONFIRMED_ERROR},
    {200, false, MOD_CAPTURE,
     "{\"errorDetails\":\"late\",\"modification\":" ENTRY(MODID, "CAPTURE", "CAPTURED") "}",
     VERDICT_UNKNOWN, CLASSIFY_UNCONFIRMED_ERROR},
    {200, false, MOD_CAPTURE,
     "{\"error\":\"\",\"modification\":" ENTRY(MODID, "CAPTURE", "CAPTURED") "}", VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_ERROR},
    /* 2xx with no entry naming exactly our id */
    {202, false, MOD_CAPTURE, "{}", VERDICT_UNKNOWN, CLASSIFY_UNCONFIRMED_NO_ENTRY},
    {200, false, MOD_CAPTURE, "{\"paymentStatus\":\"CAPTURED\"}", VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_NO_ENTRY},
    {200, false, MOD_CAPTURE, "{\"modification\":" ENTRY("other-id", "CAPTURE", "CAPTURED") "}",
     VERDICT_UNKNOWN, CLASSIFY_UNCONFIRMED_NO_ENTRY},
    {200, false, MOD_CAPTURE,
     "{\"modification\":" ENTRY("7D2C9A10-3E4F-4B5A-8C7D-112233445566", "CAPTURE", "CAPTURED") "}",
     VERDICT_UNKNOWN, CLASSIFY_UNCONFIRMED_NO_ENTRY},
    {200, false, MOD_CAPTURE,
     "{\"modification\":" ENTRY("7d2c9a10-3e4f-4b5a-8c7d-11223344556", "CAPTURE", "CAPTURED") "}",
     VERDICT_UNKNOWN, CLASSIFY_UNCONFIRMED_NO_ENTRY},
    {200, false, MOD_CAPTURE, "{\"modification\":" ENTRY(MODID "7", "CAPTURE", "CAPTURED") "}",
     VERDICT_UNKNOWN, CLASSIFY_UNCONFIRMED_NO_ENTRY},
    {200, false, MOD_CAPTURE,
     "{\"modification\":" ENTRY(MODID "\\u0000other", "CAPTURE", "CAPTURED") "}", VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_NO_ENTRY},
    {200, false, MOD_CAPTURE,
     "{\"modification\":{\"modificationId\":\"" MODID "\",\"status\":\"CAPTURED\"}}",
     VERDICT_UNKNOWN, CLASSIFY_UNCONFIRMED_NO_ENTRY},
    {200, false, MOD_CAPTURE,
     "{\"simExtra\":{\"modification\":" ENTRY(MODID, "CAPTURE", "CAPTURED") "}}", VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_NO_ENTRY},
    /* 2xx whose entries naming our id disagree */
    {200, false, MOD_CAPTURE,
     "{\"modification\":" ENTRY(MODID, "CAPTURE", "CAPTURED") ",\"modifications\":[" ENTRY(
         MODID, "CAPTURE", "FAILED") "]}",
     VERDICT_UNKNOWN, CLASSIFY_UNCONFIRMED_DISAGREE},
    /* 2xx whose entry is of another type */
    {200, false, MOD_CAPTURE, SINGLE("REFUND", "REFUNDED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_WRONG_TYPE},
    {200, false, MOD_CAPTURE, SINGLE("SETTLEMENT", "SETTLED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_WRONG_TYPE},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE\\u0000", "CAPTURED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_WRONG_TYPE},
    {200, false, MOD_CANCEL, SINGLE("REFUND", "REFUNDED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_WRONG_TYPE},
    {200, false, MOD_REFUND, SINGLE("CANCELLATION", "CANCELLED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_WRONG_TYPE},
    {200, false, MOD_CANCEL_OR_REFUND, SINGLE("CAPTURE", "CAPTURED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_WRONG_TYPE},
    /* 2xx whose entry has no status */
    {200, false, MOD_CAPTURE,
     "{\"modification\":{\"modificationData\":{\"modificationId\":\"" MODID
     "\",\"type\":\"CAPTURE\"}}}",
     VERDICT_UNKNOWN, CLASSIFY_UNCONFIRMED_NO_STATUS},
    {200, false, MOD_CAPTURE,
     "{\"modification\":{\"status\":7,\"modificationData\":{\"modificationId\":\"" MODID "\"}}}",
     VERDICT_UNKNOWN, CLASSIFY_UNCONFIRMED_NO_STATUS},
    /* 2xx whose entry's status does not confirm this kind */
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "FAILED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "REFUSED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "DECLINED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURE_FAILED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "AUTHORIZATION_COMPLETED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED\\u0000junk"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED\\u0000"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", " CAPTURED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", ""), VERDICT_UNKNOWN, CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE, SINGLE("CAPTURE", "CANCELLED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CAPTURE,
     "{\"modification\":{\"status\":\"REFUNDED\",\"modificationData\":{\"modificationId\":\"" MODID
     "\"}}}",
     VERDICT_UNKNOWN, CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CANCEL, SINGLE("CANCELLATION", "CAPTURED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CANCEL, SINGLE("CANCELLATION", "CANCELLATION_FAILED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_REFUND, SINGLE("REFUND", "REFUND_DECLINED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CANCEL_OR_REFUND, SINGLE("CANCELLATION", "REFUNDED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    {200, false, MOD_CANCEL_OR_REFUND, SINGLE("REFUND", "CANCELED"), VERDICT_UNKNOWN,
     CLASSIFY_UNCONFIRMED_STATUS},
    /* not 2xx: the body does not matter */
    {422, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED"), VERDICT_REFUSED, NULL},
    {404, false, MOD_REFUND, "", VERDICT_REFUSED, NULL},
    {503, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED"), VERDICT_UNKNOWN, NULL},
    {409, false, MOD_CANCEL, SINGLE("CANCELLATION", "CANCELLED"), VERDICT_UNKNOWN, NULL},
    {302, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED"), VERDICT_UNKNOWN, NULL},
    {401, false, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED"), VERDICT_AUTH_REJECTED, NULL},
    {407, false, MOD_REFUND, "", VERDICT_AUTH_REJECTED, NULL},
    /* a timeout after a confirming 200 was seen */
    {200, true, MOD_CAPTURE, SINGLE("CAPTURE", "CAPTURED"), VERDICT_UNKNOWN, NULL},
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
		ck_assert_msg(c.verdict == row->verdict, "row %zu (%d %s): %s, want %s", i,
		              row->status, row->body, verdict_name(c.verdict),
		              verdict_name(row->verdict));
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
	/* spellings of every length around the size compared without an allocation: a
	 * confirming status with its words repeated never confirms, the status itself does */
	char status[300], type[300];
	for (size_t len = 50; len < sizeof(status) - 1; len += 7) {
		for (size_t k = 0; k < len; k++) {
			status[k] = "CANCELED_"[k % 9];
			type[k] = "CANCELATION_"[k % 12];
		}
		status[len] = type[len] = '\0';
		ck_assert_str_eq(classify_confirms(MOD_CANCEL, type, "CANCELED"),
		                 CLASSIFY_UNCONFIRMED_WRONG_TYPE);
		ck_assert_str_eq(classify_confirms(MOD_CANCEL, NULL, status),
		                 CLASSIFY_UNCONFIRMED_STATUS);
	}
	ck_assert_ptr_null(classify_confirms(MOD_CANCEL, "cancelation", "canceled"));
}
END_TEST

START_TEST(test_classify_table)
{
	static const struct {
		int status;
		enum verdict verdict;
		const char *reason;
	} cases[] = {
	    {200, VERDICT_ACCEPTED, "http 200"},
	    {201, VERDICT_ACCEPTED, "http 201"},
	    {202, VERDICT_ACCEPTED, "http 202"},
	    {400, VERDICT_REFUSED, "refused: http 400"},
	    {403, VERDICT_REFUSED, "refused: http 403"},
	    {404, VERDICT_REFUSED, "refused: http 404"},
	    {405, VERDICT_REFUSED, "refused: http 405"},
	    {410, VERDICT_REFUSED, "refused: http 410"},
	    {413, VERDICT_REFUSED, "refused: http 413"},
	    {422, VERDICT_REFUSED, "refused: http 422"},
	    {401, VERDICT_AUTH_REJECTED, "credentials rejected: http 401"},
	    {407, VERDICT_AUTH_REJECTED, "credentials rejected: http 407"},
	    {408, VERDICT_UNKNOWN, "http 408"},
	    {409, VERDICT_UNKNOWN, "http 409"},
	    {421, VERDICT_UNKNOWN, "http 421"},
	    {425, VERDICT_UNKNOWN, "http 425"},
	    {429, VERDICT_UNKNOWN, "http 429"},
	    {500, VERDICT_UNKNOWN, "http 500"},
	    {502, VERDICT_UNKNOWN, "http 502"},
	    {503, VERDICT_UNKNOWN, "http 503"},
	    {504, VERDICT_UNKNOWN, "http 504"},
	    {599, VERDICT_UNKNOWN, "http 599"},
	    {100, VERDICT_UNKNOWN, "http 100"},
	    {101, VERDICT_UNKNOWN, "http 101"},
	    {301, VERDICT_UNKNOWN, "http 301"},
	    {302, VERDICT_UNKNOWN, "http 302"},
	    {304, VERDICT_UNKNOWN, "http 304"},
	    {0, VERDICT_UNKNOWN, "no answer"},
	    {99, VERDICT_UNKNOWN, "invalid http status"},
	    {600, VERDICT_UNKNOWN, "invalid http status"},
	    {-1, VERDICT_UNKNOWN, "invalid http status"},
	};
	struct classification c;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		classify_answer(cases[i].status, false, false, &capture_ok, MOD_CAPTURE, NULL, 0,
		                &c);
		ck_assert_msg(c.verdict == cases[i].verdict, "status %d: %s", cases[i].status,
		              verdict_name(c.verdict));
		ck_assert_str_eq(c.reason, cases[i].reason);
		ck_assert_int_eq(c.retry_after_ms, -1);
	}
	/* every status in range, against the independent statement of the rules */
	for (int s = 100; s <= 599; s++) {
		char want[48];
		classify_answer(s, false, false, &capture_ok, MOD_CAPTURE, NULL, 0, &c);
		ck_assert_msg(c.verdict == expected_outcome(s), "status %d", s);
		if (c.verdict == VERDICT_REFUSED)
			snprintf(want, sizeof(want), "refused: http %d", s);
		else if (c.verdict == VERDICT_AUTH_REJECTED)
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
	ck_assert_int_eq(c.verdict, VERDICT_UNKNOWN);
	ck_assert_str_eq(c.reason, "http 200");
	ck_assert_str_eq(c.unconfirmed, CLASSIFY_UNCONFIRMED_NOT_JSON);
	classify_answer(204, false, false, NULL, MOD_CAPTURE, NULL, 0, &c);
	ck_assert_int_eq(c.verdict, VERDICT_UNKNOWN);
	/* an unreadable body does not hide a refusal */
	classify_answer(422, false, false, NULL, MOD_CAPTURE, NULL, 0, &c);
	ck_assert_int_eq(c.verdict, VERDICT_REFUSED);

	classify_answer(0, false, true, NULL, MOD_CAPTURE, NULL, 0, &c);
	ck_assert_int_eq(c.verdict, VERDICT_UNKNOWN);
	ck_assert_str_eq(c.reason, "timeout");
	classify_answer(0, true, false, NULL, MOD_CAPTURE, NULL, 0, &c);
	ck_assert_int_eq(c.verdict, VERDICT_UNKNOWN);
	ck_assert_str_eq(c.reason, "connection error");
	/* a status seen before the transfer broke is not trusted */
	classify_answer(200, false, true, &capture_ok, MOD_CAPTURE, NULL, 0, &c);
	ck_assert_int_eq(c.verdict, VERDICT_UNKNOWN);
	ck_assert_str_eq(c.reason, "timeout");
	classify_answer(422, true, false, &capture_ok, MOD_CAPTURE, NULL, 0, &c);
	ck_assert_int_eq(c.verdict, VERDICT_UNKNOWN);
	ck_assert_str_eq(c.reason, "connection error");
	classify_answer(0, true, true, NULL, MOD_CAPTURE, NULL, 0, &c);
	ck_assert_str_eq(c.reason, "timeout");

	ck_assert_str_eq(verdict_name(VERDICT_ACCEPTED), "accepted");
	ck_assert_str_eq(verdict_name(VERDICT_REFUSED), "refused");
	ck_assert_str_eq(verdict_name(VERDICT_UNKNOWN), "unknown");
	ck_assert_str_eq(verdict_name(VERDICT_AUTH_REJECTED), "auth_rejected");
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
	ck_assert_int_eq(c.verdict, VERDICT_UNKNOWN);
	ck_assert_str_eq(c.reason, "http 503");
	ck_assert_int_eq(c.retry_after_ms, 7000);
	classify_answer(429, false, false, &capture_ok, MOD_CAPTURE,
	                "Sun, 06 Nov 1994 08:49:37 GMT", t - 4000, &c);
	ck_assert_int_eq(c.retry_after_ms, 4000);
	classify_answer(503, false, false, NULL, MOD_CAPTURE, "whenever", 0, &c);
	ck_assert_int_eq(c.retry_after_ms, -1);
}
END_TEST

/* Builds the suite. */
static Suite *classify_suite(void)
{
	Suite *s = suite_create("classify");
	testutil_tcase(s, "classify", 0,
	               (const TTest *const[]){test_classify_table, test_decision_table,
	                                      test_classify_confirms, test_classify_transport,
	                                      test_retry_after, NULL});
	return s;
}

int main(void)
{
	return testutil_run_suite(classify_suite(), CK_NORMAL);
}
