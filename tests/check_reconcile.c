#include "autoconfig.h"

#include "outcome.h"
#include "reconcile.h"
#include "response.h"
#include "testutil.h"
#include "xmalloc.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Most rows, entries and expectations of one case. */
#define RC_MAX 6

/* A status answer with the given entries, each "ID|TYPE|STATUS|AMOUNT" (empty parts
 * left out of the entry). */
static char *status_body(const char *payment_status, const char *const *entries)
{
	char *out =
	    xasprintf("{\"paymentStatus\":\"%s\",\"transactionOverview\":"
	              "{\"transactionId\":\"T1\",\"amount\":50.00,\"currencyCode\":\"EUR\"},"
	              "\"modifications\":[",
	              payment_status);
	for (size_t i = 0; entries[i] != NULL; i++) {
		char part[4][80] = {{0}};
		const char *p = entries[i];
		for (int k = 0; k < 4; k++) {
			size_t n = strcspn(p, "|");
			snprintf(part[k], sizeof(part[k]), "%.*s", (int)n, p);
			p += n;
			if (*p == '|')
				p++;
		}
		char *data =
		    xasprintf("{%s%s%s%s%s%s}", part[0][0] ? "\"modificationId\":\"" : "", part[0],
		              part[0][0] ? "\"" : "",
		              part[1][0] ? (part[0][0] ? ",\"type\":\"" : "\"type\":\"") : "",
		              part[1], part[1][0] ? "\"" : "");
		char *amount = part[3][0]
		                   ? xasprintf(",\"modificationAmount\":{\"amount\":%s}", part[3])
		                   : xstrdup("");
		char *status = part[2][0] ? xasprintf(",\"status\":\"%s\"", part[2]) : xstrdup("");
		char *next = xasprintf("%s%s{\"modificationData\":%s%s%s}", out, i ? "," : "", data,
		                       amount, status);
		free(out);
		free(data);
		free(amount);
		free(status);
		out = next;
	}
	char *done = xasprintf("%s]}", out);
	free(out);
	return done;
}

struct rc_case {
	const char *name;
	const char *payment_status;
	const char *entries[RC_MAX];
	struct rc_row rows[RC_MAX];
	size_t nrows;
	bool order_open;
	/* expected settlements, one per pending/needs_attention row, in row order:
	 * "ROW:SETTLE[:resend][:STATUS]" */
	const char *settlements[RC_MAX];
	/* expected findings in order: "DRIFT:INDEX" (row for ledger_drift, entry for
	 * external_modification, 0 for authorization_ended) */
	const char *findings[RC_MAX];
};

#define ROW(k, id, st, amt)                                                                        \
	{                                                                                          \
		.kind = (k), .modification_id = (id), .state = (st), .amount_minor = (amt)         \
	}

static const struct rc_case cases[] = {
    {"pending capture confirmed",
     "CAPTURED",
     {"m1|CAPTURE|CAPTURED|50.00"},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_PENDING, 5000)},
     1,
     true,
     {"0:succeeded:CAPTURED"},
     {NULL}},
    {"pending capture, capture pending at the gateway",
     "CAPTURE_PENDING",
     {"m1|CAPTURE|CAPTURE_PENDING|50.00"},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_PENDING, 5000)},
     1,
     true,
     {"0:succeeded:CAPTURE_PENDING"},
     {NULL}},
    {"pending capture refused at the gateway",
     "AUTHORIZATION_COMPLETED",
     {"m1|CAPTURE|FAILED|50.00"},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_PENDING, 5000)},
     1,
     true,
     {"0:refused:FAILED"},
     {NULL}},
    {"pending capture absent, still capturable: resend",
     "AUTHORIZATION_COMPLETED",
     {NULL},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_PENDING, 5000)},
     1,
     true,
     {"0:absent:resend"},
     {NULL}},
    {"pending capture absent, captured by someone else",
     "CAPTURED",
     {"portal-1|CAPTURE|CAPTURED|50.00"},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_PENDING, 5000)},
     1,
     true,
     {"0:absent"},
     {"external_modification:0"}},
    {"entries naming our id disagree",
     "CAPTURED",
     {"m1|CAPTURE|CAPTURED|50.00", "m1|CAPTURE|FAILED|50.00"},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_PENDING, 5000)},
     1,
     true,
     {"0:undecided:CAPTURED"},
     {NULL}},
    {"our id on an entry of another type",
     "REFUNDED",
     {"m1|REFUND|REFUNDED|50.00"},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_PENDING, 5000)},
     1,
     true,
     {"0:undecided:REFUNDED"},
     {NULL}},
    {"a status that decides nothing",
     "CAPTURED",
     {"m1|CAPTURE|WEIRD_NEW_STATUS|50.00"},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_NEEDS_ATTENTION, 5000)},
     1,
     true,
     {"0:undecided:WEIRD_NEW_STATUS"},
     {NULL}},
    {"pending refund absent while captured: resend",
     "CAPTURED",
     {"c1|CAPTURE|CAPTURED|50.00"},
     {ROW(MOD_CAPTURE, "c1", RC_ROW_SUCCEEDED, 5000), ROW(MOD_REFUND, "r1", RC_ROW_PENDING, 1000)},
     2,
     false,
     {"1:absent:resend"},
     {NULL}},
    {"pending refund absent while fully refunded: no resend",
     "REFUNDED",
     {"c1|CAPTURE|CAPTURED|50.00", "r0|REFUND|REFUNDED|50.00"},
     {ROW(MOD_CAPTURE, "c1", RC_ROW_SUCCEEDED, 5000), ROW(MOD_REFUND, "r1", RC_ROW_PENDING, 1000)},
     2,
     false,
     {"1:absent"},
     {"external_modification:1"}},
    {"cancelOrRefund as a cancel, one-L spellings",
     "CANCELED",
     {"x1|CANCELATION|CANCELED"},
     {ROW(MOD_CANCEL_OR_REFUND, "x1", RC_ROW_PENDING, 0)},
     1,
     false,
     {"0:succeeded:CANCELLED"},
     {NULL}},
    {"needs_attention capture confirmed",
     "CAPTURED",
     {"m1|CAPTURE|CAPTURED|50.00"},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_NEEDS_ATTENTION, 5000)},
     1,
     true,
     {"0:succeeded:CAPTURED"},
     {NULL}},
    {"succeeded capture the gateway never performed",
     "AUTHORIZATION_COMPLETED",
     {NULL},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_SUCCEEDED, 5000)},
     1,
     false,
     {NULL},
     {"ledger_drift:0"}},
    {"succeeded capture of another amount",
     "CAPTURED",
     {"m1|CAPTURE|CAPTURED|50.00"},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_SUCCEEDED, 4000)},
     1,
     false,
     {NULL},
     {"ledger_drift:0"}},
    {"succeeded capture whose entry failed",
     "AUTHORIZATION_COMPLETED",
     {"m1|CAPTURE|FAILED|50.00"},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_SUCCEEDED, 5000)},
     1,
     false,
     {NULL},
     {"ledger_drift:0"}},
    {"ledger and gateway agree",
     "CAPTURED",
     {"m1|CAPTURE|CAPTURED|50.00", "r1|REFUND|REFUNDED|10.00"},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_SUCCEEDED, 5000),
      ROW(MOD_REFUND, "r1", RC_ROW_SUCCEEDED, 1000)},
     2,
     false,
     {NULL},
     {NULL}},
    {"a refused row the gateway performed",
     "CAPTURED",
     {"m1|CAPTURE|CAPTURED|50.00"},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_REFUSED, 5000)},
     1,
     false,
     {NULL},
     {"ledger_drift:0"}},
    {"a refused row the gateway refused too",
     "AUTHORIZATION_COMPLETED",
     {"m1|CAPTURE|FAILED|50.00"},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_REFUSED, 5000)},
     1,
     true,
     {NULL},
     {NULL}},
    {"a support refund after our capture",
     "CAPTURED",
     {"m1|CAPTURE|CAPTURED|50.00", "support-1|REFUND|REFUND_PENDING|5.00"},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_SUCCEEDED, 5000)},
     1,
     false,
     {NULL},
     {"external_modification:1"}},
    {"expired at the gateway while the order is open",
     "EXPIRED",
     {NULL},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_REFUSED, 5000)},
     1,
     true,
     {NULL},
     {"authorization_ended:0"}},
    {"expired at the gateway, the order is not open",
     "EXPIRED",
     {NULL},
     {{0}},
     0,
     false,
     {NULL},
     {NULL}},
    {"a support cancel while the order is open",
     "CANCELLED",
     {"s1|CANCELLATION|CANCELLED"},
     {{0}},
     0,
     true,
     {NULL},
     {"external_modification:0", "authorization_ended:0"}},
    {"our own cancel, still pending, while the order reads open: settled, not ended",
     "CANCELLED",
     {"c1|CANCELLATION|CANCELLED"},
     {ROW(MOD_CANCEL, "c1", RC_ROW_PENDING, 0)},
     1,
     true,
     {"0:succeeded:CANCELLED"},
     {NULL}},
    {"our own cancel, succeeded, while the order reads open: no finding",
     "CANCELLED",
     {"c1|CANCELLATION|CANCELLED"},
     {ROW(MOD_CANCEL, "c1", RC_ROW_SUCCEEDED, 0)},
     1,
     true,
     {NULL},
     {NULL}},
    {"history entries of other types are not effects",
     "SETTLED",
     {"m1|CAPTURE|SETTLED|50.00", "|SETTLEMENT|SETTLED|50.00", "|CHARGEBACK|CHARGEBACK|50.00"},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_SUCCEEDED, 5000)},
     1,
     false,
     {NULL},
     {NULL}},
    {"an entry without an id is external",
     "CAPTURED",
     {"|CAPTURE|CAPTURED|50.00"},
     {{0}},
     0,
     false,
     {NULL},
     {"external_modification:0"}},
    {"an id with a NUL inside is not ours",
     "CAPTURED",
     {"m1\\u0000x|CAPTURE|CAPTURED|50.00"},
     {ROW(MOD_CAPTURE, "m1", RC_ROW_PENDING, 5000)},
     1,
     true,
     {"0:absent"},
     {"external_modification:0"}},
    {"an external row recorded before agrees",
     "CAPTURED",
     {"portal-1|CAPTURE|CAPTURED|50.00"},
     {{.kind = MOD_CAPTURE,
       .modification_id = "portal-1",
       .state = RC_ROW_SUCCEEDED,
       .amount_minor = 5000,
       .external = true}},
     1,
     false,
     {NULL},
     {NULL}},
};

/* One settlement as the case's text form. */
static void settlement_text(const struct rc_settlement *s, char *out, size_t len)
{
	snprintf(out, len, "%zu:%s%s%s%s", s->row, reconcile_settle_name(s->settle),
	         s->resend ? ":resend" : "", s->gateway_status ? ":" : "",
	         s->gateway_status ? s->gateway_status : "");
}

START_TEST(compare_table)
{
	const struct rc_case *c = &cases[_i];
	const char *no_entries[] = {NULL};
	char *body = status_body(c->payment_status, c->entries[0] ? c->entries : no_entries);
	struct gw_history h;
	ck_assert_msg(response_parse_history(body, strlen(body), &h), "%s: %s", c->name, body);
	struct rc_report r;
	reconcile_compare(c->rows, c->nrows, &h, c->order_open, &r);
	size_t want = 0;
	while (want < RC_MAX && c->settlements[want] != NULL)
		want++;
	ck_assert_msg(r.nsettlements == want, "%s: %zu settlements, expected %zu", c->name,
	              r.nsettlements, want);
	for (size_t i = 0; i < want; i++) {
		char got[128];
		settlement_text(&r.settlements[i], got, sizeof(got));
		ck_assert_msg(strcmp(got, c->settlements[i]) == 0, "%s: settlement %s, expected %s",
		              c->name, got, c->settlements[i]);
	}
	want = 0;
	while (want < RC_MAX && c->findings[want] != NULL)
		want++;
	ck_assert_msg(r.nfindings == want, "%s: %zu findings, expected %zu", c->name, r.nfindings,
	              want);
	for (size_t i = 0; i < want; i++) {
		const struct rc_finding *f = &r.findings[i];
		char got[128];
		snprintf(got, sizeof(got), "%s:%zu", reconcile_drift_name(f->drift),
		         f->drift == RC_DRIFT_LEDGER ? f->row : f->entry);
		ck_assert_msg(strcmp(got, c->findings[i]) == 0, "%s: finding %s, expected %s",
		              c->name, got, c->findings[i]);
		ck_assert_ptr_nonnull(f->what);
	}
	reconcile_report_free(&r);
	response_history_free(&h);
	free(body);
}
END_TEST

START_TEST(history_parse)
{
	static const char body[] =
	    "{\"paymentStatus\":\"CANCELED\",\"transactionOverview\":{\"transactionId\":\"T9\","
	    "\"currencyCode\":\"JPY\"},\"modification\":{\"modificationData\":{\"modificationId\":"
	    "\"a\",\"type\":\"CANCELATION\"},\"status\":\"CANCELATION_PENDING\"},\"modifications\":"
	    "[[{\"modificationData\":{\"modificationId\":\"b\",\"type\":\"CAPTURE\"},"
	    "\"modificationAmount\":{\"amount\":1000,\"currencyCode\":\"KWD\"},\"status\":"
	    "\"CAPTURED\"}],"
	    "{\"modificationData\":{\"modificationId\":\"c\"},\"modificationAmount\":{\"amount\":"
	    "1500}},{\"noData\":1},{\"modificationData\":{\"modificationId\":\"d\"},"
	    "\"modificationAmount\":{\"amount\":0.1}}]}";
	struct gw_history h;
	ck_assert(response_parse_history(body, strlen(body), &h));
	ck_assert_str_eq(h.payment_status, "CANCELLED");
	ck_assert_str_eq(h.transaction_id, "T9");
	ck_assert_uint_eq(h.nentries, 4);
	ck_assert_str_eq(h.entries[0].modification_id, "a");
	ck_assert_str_eq(h.entries[0].type, "CANCELLATION");
	ck_assert_str_eq(h.entries[0].status, "CANCELLATION_PENDING");
	ck_assert(!h.entries[0].has_amount);
	ck_assert_str_eq(h.entries[1].modification_id, "b");
	ck_assert_str_eq(h.entries[1].currency, "KWD");
	ck_assert(h.entries[1].has_amount);
	ck_assert_int_eq(h.entries[1].amount_minor, 1000000);
	ck_assert_str_eq(h.entries[2].currency, "JPY"); /* the transaction's */
	ck_assert_int_eq(h.entries[2].amount_minor, 1500);
	ck_assert_ptr_null(h.entries[2].type);
	ck_assert_ptr_null(h.entries[2].status);
	ck_assert(!h.entries[3].has_amount); /* 0.1 yen is not an amount */
	response_history_free(&h);
	ck_assert_ptr_null(h.entries);
	static const char *const bad[] = {"", "[]", "{\"a\":1} x", "{\"a\":", "<html>"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert(!response_parse_history(bad[i], strlen(bad[i]), &h));
		ck_assert_uint_eq(h.nentries, 0);
		ck_assert_ptr_null(h.payment_status);
	}
}
END_TEST

START_TEST(names_and_kinds)
{
	enum mod_kind k;
	ck_assert(reconcile_entry_kind("CAPTURE", &k) && k == MOD_CAPTURE);
	ck_assert(reconcile_entry_kind("cancelation", &k) && k == MOD_CANCEL);
	ck_assert(reconcile_entry_kind("CANCELLATION", &k) && k == MOD_CANCEL);
	ck_assert(reconcile_entry_kind("Refund", &k) && k == MOD_REFUND);
	ck_assert(!reconcile_entry_kind("SETTLEMENT", &k));
	ck_assert(!reconcile_entry_kind(NULL, &k));
	ck_assert(reconcile_status_refused("declined"));
	ck_assert(!reconcile_status_refused("CAPTURED"));
	ck_assert(!reconcile_status_refused(NULL));
	ck_assert_str_eq(reconcile_drift_name(RC_DRIFT_LEDGER), "ledger_drift");
	ck_assert_str_eq(reconcile_settle_name(RC_SETTLE_ABSENT), "absent");
}
END_TEST

/* What outcome_settle makes of an unknown answer (a 503) for a capture `mid` given the
 * status body. */
static enum outcome_result settle_case(const char *body, int attempts, struct outcome *o,
                                       enum outcome_result *unknown)
{
	struct outcome_policy pol = {
	    .retry_base_ms = 100, .retry_max_ms = 60000, .max_attempts = 3};
	struct claim c = {.modification_id = "m1",
	                  .order_id = "o1",
	                  .transaction_id = "T1",
	                  .kind = MOD_CAPTURE,
	                  .attempts = attempts,
	                  .generation = 1};
	struct outcome_answer a = {.http_status = 503, .body = "", .body_len = 0};
	*unknown = outcome_decide(&pol, &c, &a, 1000000, 7, o);
	struct gw_history h;
	ck_assert(response_parse_history(body, strlen(body), &h));
	enum outcome_result r = outcome_settle(&pol, &c, &h, *unknown, o);
	response_history_free(&h);
	return r;
}

START_TEST(settle_unknown_outcomes)
{
	struct outcome o;
	enum outcome_result unknown;
	/* confirmed in the history */
	char *b = status_body("CAPTURED", (const char *const[]){"m1|CAPTURE|CAPTURED|10.00", NULL});
	ck_assert_int_eq(settle_case(b, 0, &o, &unknown), OUTCOME_SUCCEEDED);
	ck_assert_int_eq(unknown, OUTCOME_RETRY);
	ck_assert_str_eq(o.state, "succeeded");
	ck_assert_str_eq(o.settled_by, "status");
	ck_assert_str_eq(o.payment_status, "CAPTURED");
	ck_assert_ptr_null(o.alert_kind);
	ck_assert_ptr_nonnull(strstr(o.reason, "status history"));
	outcome_clear(&o);
	/* retries ran out: settled before needs_attention */
	ck_assert_int_eq(settle_case(b, 2, &o, &unknown), OUTCOME_SUCCEEDED);
	ck_assert_int_eq(unknown, OUTCOME_NEEDS_ATTENTION);
	ck_assert_str_eq(o.state, "succeeded");
	ck_assert_ptr_null(o.alert_kind);
	outcome_clear(&o);
	free(b);
	/* refused at the gateway */
	b = status_body("AUTHORIZATION_COMPLETED",
	                (const char *const[]){"m1|CAPTURE|DECLINED|10.00", NULL});
	ck_assert_int_eq(settle_case(b, 0, &o, &unknown), OUTCOME_REFUSED);
	ck_assert_str_eq(o.state, "refused");
	ck_assert_str_eq(o.settled_by, "status");
	ck_assert_str_eq(o.alert_kind, "modification_refused");
	ck_assert_ptr_nonnull(strstr(o.reason, "DECLINED"));
	outcome_clear(&o);
	free(b);
	/* not there, still capturable: resent (after retry_max once retries ran out) */
	b = status_body("AUTHORIZATION_COMPLETED", (const char *const[]){NULL});
	ck_assert_int_eq(settle_case(b, 0, &o, &unknown), OUTCOME_RETRY);
	ck_assert_str_eq(o.state, "pending");
	ck_assert_ptr_null(o.settled_by);
	ck_assert_int_le(o.retry_delay_ms, 100);
	outcome_clear(&o);
	ck_assert_int_eq(settle_case(b, 2, &o, &unknown), OUTCOME_RETRY);
	ck_assert_str_eq(o.state, "pending");
	ck_assert_int_eq(o.retry_delay_ms, 60000);
	ck_assert_ptr_null(o.alert_kind);
	ck_assert_ptr_nonnull(strstr(o.reason, "resending"));
	outcome_clear(&o);
	/* ... but not past twice max_attempts: then it needs attention */
	ck_assert_int_eq(settle_case(b, 5, &o, &unknown), OUTCOME_NEEDS_ATTENTION);
	ck_assert_str_eq(o.state, "needs_attention");
	ck_assert_str_eq(o.alert_kind, "needs_attention");
	ck_assert_ptr_nonnull(strstr(o.reason, "absent"));
	outcome_clear(&o);
	ck_assert_int_eq(settle_case(b, 4, &o, &unknown), OUTCOME_RETRY);
	outcome_clear(&o);
	free(b);
	/* not there, captured by someone else: nothing decided, needs_attention stays */
	b = status_body("CAPTURED", (const char *const[]){"portal|CAPTURE|CAPTURED|10.00", NULL});
	ck_assert_int_eq(settle_case(b, 2, &o, &unknown), OUTCOME_NEEDS_ATTENTION);
	ck_assert_str_eq(o.state, "needs_attention");
	ck_assert_str_eq(o.alert_kind, "needs_attention");
	ck_assert_ptr_null(o.settled_by);
	ck_assert_ptr_nonnull(strstr(o.reason, "absent"));
	outcome_clear(&o);
	ck_assert_int_eq(settle_case(b, 0, &o, &unknown), OUTCOME_RETRY);
	ck_assert_str_eq(o.state, "pending");
	outcome_clear(&o);
	free(b);
	/* a status that decides nothing */
	b = status_body("CAPTURED", (const char *const[]){"m1|CAPTURE|ON_HOLD|10.00", NULL});
	ck_assert_int_eq(settle_case(b, 0, &o, &unknown), OUTCOME_RETRY);
	ck_assert_ptr_null(o.settled_by);
	ck_assert_ptr_nonnull(strstr(o.reason, "undecided"));
	outcome_clear(&o);
	free(b);
}
END_TEST

/* A capture claimed past its authorization deadline: settled from the history when it
 * is there, never resent when it is not. */
START_TEST(settle_expired_capture)
{
	struct outcome_policy pol = {
	    .retry_base_ms = 100, .retry_max_ms = 60000, .max_attempts = 3};
	struct claim c = {.modification_id = "m1",
	                  .order_id = "o1",
	                  .transaction_id = "T1",
	                  .kind = MOD_CAPTURE,
	                  .attempts = 0,
	                  .generation = 1,
	                  .deadline_passed = true};
	struct outcome o;
	outcome_expired(&c, &o);
	ck_assert(!o.counted); /* nothing was sent */
	char *b = status_body("AUTHORIZATION_COMPLETED", (const char *const[]){NULL});
	struct gw_history h;
	ck_assert(response_parse_history(b, strlen(b), &h));
	ck_assert_int_eq(outcome_settle(&pol, &c, &h, OUTCOME_NEEDS_ATTENTION, &o),
	                 OUTCOME_NEEDS_ATTENTION);
	ck_assert_str_eq(o.state, "needs_attention");
	ck_assert_str_eq(o.alert_kind, "needs_attention");
	ck_assert_ptr_nonnull(strstr(o.reason, "authorization deadline passed"));
	response_history_free(&h);
	outcome_clear(&o);
	free(b);
	outcome_expired(&c, &o);
	b = status_body("CAPTURED", (const char *const[]){"m1|CAPTURE|CAPTURED|10.00", NULL});
	ck_assert(response_parse_history(b, strlen(b), &h));
	ck_assert_int_eq(outcome_settle(&pol, &c, &h, OUTCOME_NEEDS_ATTENTION, &o),
	                 OUTCOME_SUCCEEDED);
	ck_assert_str_eq(o.state, "succeeded");
	ck_assert_str_eq(o.settled_by, "status");
	ck_assert_ptr_null(o.alert_kind);
	response_history_free(&h);
	outcome_clear(&o);
	free(b);
}
END_TEST

static Suite *reconcile_suite(void)
{
	Suite *s = suite_create("reconcile");
	TCase *tc = testutil_tcase(s, "pure", 0,
	                           (const TTest *const[]){history_parse, names_and_kinds,
	                                                  settle_unknown_outcomes,
	                                                  settle_expired_capture, NULL});
	tcase_add_loop_test(tc, compare_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	return s;
}

int main(void)
{
	return testutil_run_suite(reconcile_suite(), CK_NORMAL);
}
