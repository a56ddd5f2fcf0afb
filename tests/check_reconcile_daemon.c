/* Reconciliation end to end: the real smartpayd and smartpayctl against a private
 * PostgreSQL and smartpay-sim, the simulator making changes behind the daemon's back
 * (its control API) and failing its status endpoint on demand. */
#include "autoconfig.h"

#include "daemonproc.h"
#include "world.h"
#include "pgtest.h"
#include "simproc.h"
#include "testutil.h"
#include "xmalloc.h"

#include <check.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An authorized order of 10.00 EUR on a fresh simulator transaction; returns the order
 * id (malloc'd) and the transaction id in *txn (malloc'd). */
static char *add_order(struct world *w, const char *status, char **txn)
{
	struct world_order o = {.status = status};
	return xasprintf("%ld", world_add_order(w, &o, txn));
}

/* Waits until `sql` counts at least `want`; prints the daemon's log when it does not. */
static void await(struct world *w, const char *sql, long long want)
{
	world_await_at_least(w, sql, want);
}

/* Everything the ledger holds, as one text (to prove that nothing changed). */
static char *ledger_snapshot(struct world *w)
{
	return pgtest_value(
	    w->db, "SELECT coalesce(string_agg(concat_ws('|', modification_id, kind, state, "
	           "amount_minor, settled_by, origin, attempts, updated_at), ',' ORDER BY "
	           "modification_id), '') || ';' || (SELECT count(*) FROM smartpay.alerts) "
	           "FROM smartpay.modifications");
}

/* A succeeded capture row for an order, as if the gateway had confirmed it. */
static void force_succeeded_capture(struct world *w, const char *order, const char *txn,
                                    const char *id)
{
	char sql[1024];
	snprintf(sql, sizeof(sql),
	         "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, "
	         "kind, amount_minor, currency, request_body, state, completed_at) VALUES ('%s', "
	         "'%s', '%s', 'capture', 1000, 'EUR', '{}', 'succeeded', now())",
	         id, order, txn);
	pgtest_exec(w->db, sql);
}

START_TEST(ledger_drift_found_by_ctl_and_by_the_pass)
{
	struct world w;
	world_up(&w, "[reconcile]\ninterval = 0s\n");
	char *txn, *order = add_order(&w, "shipped", &txn);
	char *txn2, *order2 = add_order(&w, "authorized", &txn2);
	/* agreeing: nothing to report */
	struct testutil_run r = WORLD_CTL(&w, 0, "reconcile");
	ck_assert_ptr_nonnull(strstr(r.out, "agree"));
	testutil_run_free(&r);
	/* a row forced to succeeded that the gateway never performed */
	force_succeeded_capture(&w, order, txn, "0d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f40");
	r = WORLD_CTL(&w, 3, "reconcile", "--json");
	struct json_object *doc = json_tokener_parse(r.out), *findings, *v;
	ck_assert_ptr_nonnull(doc);
	ck_assert(json_object_object_get_ex(doc, "findings", &findings));
	ck_assert_uint_eq(json_object_array_length(findings), 1);
	struct json_object *f = json_object_array_get_idx(findings, 0);
	ck_assert(json_object_object_get_ex(f, "kind", &v));
	ck_assert_str_eq(json_object_get_string(v), "ledger_drift");
	ck_assert(json_object_object_get_ex(f, "modification_id", &v));
	ck_assert_str_eq(json_object_get_string(v), "0d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f40");
	json_object_put(doc);
	testutil_run_free(&r);
	ck_assert_int_eq(
	    pgtest_int(w.db, "SELECT count(*) FROM smartpay.alerts WHERE kind = 'ledger_drift' "
	                     "AND severity = 'critical' AND modification_id = "
	                     "'0d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f40'"),
	    1);
	/* the same difference again: exit 3, no second alert */
	r = WORLD_CTL(&w, 3, "reconcile", "--order", order);
	ck_assert_ptr_nonnull(strstr(r.out, "ledger_drift"));
	testutil_run_free(&r);
	ck_assert_int_eq(pgtest_int(w.db, "SELECT count(*) FROM smartpay.alerts"), 1);
	/* another order alone agrees */
	r = WORLD_CTL(&w, 0, "reconcile", "--order", order2);
	testutil_run_free(&r);
	/* the daemon's pass finds a second one */
	force_succeeded_capture(&w, order2, txn2, "1d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f41");
	world_conf_replace(&w.d, "interval = 0s", "interval = 1s");
	daemonproc_start(&w.d, false);
	await(&w,
	      "SELECT count(*) FROM smartpay.alerts WHERE kind = 'ledger_drift' AND "
	      "modification_id = '1d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f41'",
	      1);
	/* logged once the statement's answer is back, a moment after its commit */
	for (int tries = 0; tries < 100 && !daemonproc_log_contains(&w.d, "kind=ledger_drift");
	     tries++)
		testutil_sleep_ms(100);
	ck_assert(daemonproc_log_contains(&w.d, "kind=ledger_drift"));
	/* usage errors */
	r = WORLD_CTL(&w, 2, "reconcile", "--order", order, "--since", "1h");
	testutil_run_free(&r);
	r = WORLD_CTL(&w, 2, "reconcile", "--since", "soon");
	testutil_run_free(&r);
	free(order), free(order2), free(txn), free(txn2);
	world_down(&w);
}
END_TEST

/* Requests the simulator received for any modificationId. */
static long requests_received(struct world *w)
{
	struct json_object *ledger = simproc_ledger(w->sim), *requests;
	ck_assert_ptr_nonnull(ledger);
	ck_assert(json_object_object_get_ex(ledger, "requests", &requests));
	long n = 0;
	json_object_object_foreach(requests, key, val)
	{
		(void)key;
		n += (long)json_object_get_int64(val);
	}
	json_object_put(ledger);
	return n;
}

START_TEST(external_capture_recorded_and_refundable)
{
	struct world w;
	world_up(&w, "[reconcile]\ninterval = 1s\n");
	char *txn, *order = add_order(&w, "authorized", &txn);
	char *portal =
	    simproc_external(w.sim, txn, "{\"operation\":\"capture\",\"amount\":\"8.00\"}");
	ck_assert_ptr_nonnull(portal);
	daemonproc_start(&w.d, false);
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE origin = 'external' AND "
	         "kind = 'capture' AND state = 'succeeded' AND external_id = '%s' AND "
	         "amount_minor = 800 AND request_body IS NULL AND settled_by = 'status'",
	         portal);
	await(&w, sql, 1);
	await(&w,
	      "SELECT count(*) FROM smartpay.alerts WHERE kind = 'external_modification' AND "
	      "modification_id IS NOT NULL",
	      1);
	/* the order ships afterwards: no capture is sent */
	snprintf(sql, sizeof(sql), "UPDATE public.orders SET status = 'shipped' WHERE id = %s",
	         order);
	pgtest_exec(w.db, sql);
	testutil_sleep_ms(2500); /* several polls and passes */
	ck_assert_int_eq(requests_received(&w), 0);
	ck_assert_int_eq(simproc_count_effects(w.sim, txn, "CAPTURE"), 1);
	ck_assert_int_eq(
	    pgtest_int(w.db, "SELECT count(*) FROM smartpay.modifications WHERE origin = 'daemon'"),
	    0);
	/* the order's payment state shows the capture; the refund API works on it */
	snprintf(sql, sizeof(sql),
	         "SELECT captured_minor FROM smartpay.order_payments WHERE order_id = '%s'", order);
	ck_assert_int_eq(pgtest_int(w.db, sql), 800);
	snprintf(sql, sizeof(sql), "SELECT smartpay.request_refund('%s', 3.00, 'test')", order);
	pgtest_exec(w.db, sql);
	await(&w,
	      "SELECT count(*) FROM smartpay.modifications WHERE kind = 'refund' AND state = "
	      "'succeeded' AND amount_minor = 300",
	      1);
	ck_assert_int_eq(simproc_count_effects(w.sim, txn, "REFUND"), 1);
	/* the ledger and the gateway agree now */
	struct testutil_run r = WORLD_CTL(&w, 0, "reconcile");
	testutil_run_free(&r);
	ck_assert_int_eq(
	    pgtest_int(w.db,
	               "SELECT count(*) FROM smartpay.alerts WHERE kind = 'external_modification'"),
	    1);
	free(portal), free(order), free(txn);
	world_down(&w);
}
END_TEST

START_TEST(ended_authorization_blocks_the_capture)
{
	struct world w;
	world_up(&w, "[reconcile]\ninterval = 1s\n");
	char *txn, *order = add_order(&w, "authorized", &txn);
	char *txn2, *order2 = add_order(&w, "authorized", &txn2);
	char *e = simproc_external(w.sim, txn, "{\"operation\":\"expire\"}");
	char *c = simproc_external(w.sim, txn2, "{\"operation\":\"cancel\"}");
	ck_assert_ptr_nonnull(e);
	ck_assert_ptr_nonnull(c);
	daemonproc_start(&w.d, false);
	await(&w,
	      "SELECT count(*) FROM smartpay.alerts WHERE kind = 'authorization_ended' AND "
	      "severity = 'critical'",
	      2);
	await(&w,
	      "SELECT count(*) FROM smartpay.modifications WHERE origin = 'external' AND kind = "
	      "'cancel'",
	      1);
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "UPDATE public.orders SET status = 'shipped' WHERE id IN (%s, %s)", order, order2);
	pgtest_exec(w.db, sql);
	testutil_sleep_ms(2500);
	ck_assert_int_eq(requests_received(&w), 0);
	free(e), free(c), free(order), free(order2), free(txn), free(txn2);
	world_down(&w);
}
END_TEST

START_TEST(status_calls_obey_the_rate_cap)
{
	struct world w;
	int port = testutil_free_port();
	ck_assert_int_gt(port, 0);
	char extra[160];
	snprintf(extra, sizeof(extra),
	         "[reconcile]\ninterval = 1s\nrequests_per_second = 3\n[metrics]\nlisten = "
	         "127.0.0.1:%d\n",
	         port);
	world_up(&w, extra);
	enum { N = 12 };
	char *orders[N], *txns[N];
	for (int i = 0; i < N; i++)
		orders[i] = add_order(&w, "authorized", &txns[i]);
	daemonproc_start(&w.d, false);
	await(&w, "SELECT count(*) FROM smartpay.reconciliations", N);
	/* the metrics: status calls by result, drift by kind, the last complete pass */
	char url[64], *body = NULL;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	for (int tries = 0; tries < 100; tries++) {
		free(body);
		body = NULL;
		if (world_http("GET", url, 5000, &body) == 200 && body != NULL &&
		    strstr(body, "smartpayd_reconcile_passes_total 0") == NULL)
			break;
		testutil_sleep_ms(100);
	}
	ck_assert_ptr_nonnull(body);
	ck_assert_ptr_nonnull(strstr(body, "smartpayd_status_calls_total{result=\"ok\"} "));
	ck_assert_ptr_null(strstr(body, "smartpayd_status_calls_total{result=\"ok\"} 0\n"));
	ck_assert_ptr_nonnull(
	    strstr(body, "smartpayd_reconcile_drift_total{kind=\"ledger_drift\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(body, "smartpayd_reconcile_last_pass_timestamp_seconds "));
	ck_assert_ptr_null(strstr(body, "smartpayd_reconcile_last_pass_timestamp_seconds 0.000\n"));
	free(body);
	ck_assert_int_eq(daemonproc_stop(&w.d), 0);
	struct json_object *ledger = simproc_ledger(w.sim), *v;
	ck_assert(json_object_object_get_ex(ledger, "statusCallsMaxPerSecond", &v));
	long max = (long)json_object_get_int64(v);
	ck_assert(json_object_object_get_ex(ledger, "statusCallsTotal", &v));
	long total = (long)json_object_get_int64(v);
	json_object_put(ledger);
	fprintf(stderr, "status calls: %ld in total, at most %ld within one second\n", total, max);
	ck_assert_int_ge(total, N);
	ck_assert_int_le(max, 3);
	/* smartpayctl reconcile keeps the same cap */
	world_conf_replace(&w.d, "requests_per_second = 3", "requests_per_second = 2");
	struct testutil_run r = WORLD_CTL(&w, 0, "reconcile");
	testutil_run_free(&r);
	ledger = simproc_ledger(w.sim);
	ck_assert(json_object_object_get_ex(ledger, "statusCallsTotal", &v));
	ck_assert_int_ge(json_object_get_int64(v), total + N);
	json_object_put(ledger);
	for (int i = 0; i < N; i++) {
		free(orders[i]);
		free(txns[i]);
	}
	world_down(&w);
}
END_TEST

START_TEST(failing_status_endpoint_changes_nothing)
{
	static const char *const faults[] = {
	    "{\"status_call\":{\"fail_rate\":1,\"status\":500}}",
	    "{\"status_call\":{\"fail_rate\":1,\"status\":503}}",
	    "{\"status_call\":{\"garble_rate\":1}}",
	    "{\"status_call\":{\"hang_rate\":1,\"hang_ms\":8000}}",
	};
	struct world w;
	world_up(&w, "[smartpay]\ntimeout = 2s\n[reconcile]\ninterval = 1s\n");
	char *txn, *order = add_order(&w, "authorized", &txn);
	char *txn2, *order2 = add_order(&w, "shipped", &txn2);
	/* both would be found by a working status call */
	char *portal = simproc_external(w.sim, txn, "{\"operation\":\"capture\"}");
	ck_assert_ptr_nonnull(portal);
	force_succeeded_capture(&w, order2, txn2, "2d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f42");
	char *before = ledger_snapshot(&w);
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		ck_assert(simproc_set_faults(w.sim, faults[i]));
		struct testutil_run r = WORLD_CTL(&w, 1, "reconcile");
		ck_assert_ptr_nonnull(strstr(r.err, "nothing decided"));
		testutil_run_free(&r);
		char *now = ledger_snapshot(&w);
		ck_assert_str_eq(now, before);
		free(now);
	}
	/* the daemon's passes under the same faults */
	ck_assert(simproc_set_faults(w.sim, faults[0]));
	daemonproc_start(&w.d, false);
	long calls = simproc_status_calls(w.sim, NULL);
	for (int tries = 0; tries < 300 && simproc_status_calls(w.sim, NULL) < calls + 6; tries++)
		testutil_sleep_ms(100);
	ck_assert_int_ge(simproc_status_calls(w.sim, NULL), calls + 6);
	char *now = ledger_snapshot(&w);
	ck_assert_str_eq(now, before);
	free(now);
	/* once it answers again, both are found */
	ck_assert(simproc_clear_faults(w.sim));
	await(&w,
	      "SELECT count(*) FROM smartpay.alerts WHERE kind IN ('external_modification', "
	      "'ledger_drift')",
	      2);
	free(before), free(portal), free(order), free(order2), free(txn), free(txn2);
	world_down(&w);
}
END_TEST

/* A needs_attention capture row with its exact request body. */
static void add_needs_attention(struct world *w, const char *order, const char *txn, const char *id,
                                const char *body)
{
	const char *p[] = {id, order, txn, body};
	PGresult *res = PQexecParams(
	    w->db,
	    "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, kind, "
	    "amount_minor, currency, request_body, state, attempts, reason, completed_at) VALUES "
	    "($1, $2, $3, 'capture', 1000, 'EUR', $4, 'needs_attention', 5, 'retries ran out', "
	    "now())",
	    4, NULL, p, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(w->db));
	PQclear(res);
}

START_TEST(needs_attention_settled_from_history)
{
	struct world w;
	world_up(&w, "[reconcile]\ninterval = 0s\n");
	char *txn, *order = add_order(&w, "shipped", &txn);
	char *txn2, *order2 = add_order(&w, "shipped", &txn2);
	static const char m1[] = "3d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f43";
	static const char m2[] = "4d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f44";
	char *b1 = xasprintf("{\"transactionId\":\"%s\",\"merchantKey\":\"%s\","
	                     "\"modificationId\":\"%s\"}",
	                     txn, SIMPROC_MERCHANT_KEY, m1);
	char *b2 = xasprintf("{\"transactionId\":\"%s\",\"merchantKey\":\"%s\","
	                     "\"modificationId\":\"%s\"}",
	                     txn2, SIMPROC_MERCHANT_KEY, m2);
	/* the first was performed, its answers lost; the second never reached the gateway */
	struct simproc_reply r0;
	ck_assert(simproc_payment(w.sim, "capture", b1, &r0));
	ck_assert_int_eq(r0.status, 200);
	simproc_reply_free(&r0);
	add_needs_attention(&w, order, txn, m1, b1);
	add_needs_attention(&w, order2, txn2, m2, b2);
	/* one that already made twice max_attempts (2 * 50) attempts is left to an operator */
	char *txn3, *order3 = add_order(&w, "shipped", &txn3);
	static const char m3[] = "5d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f45";
	char *b3 = xasprintf("{\"transactionId\":\"%s\",\"merchantKey\":\"%s\","
	                     "\"modificationId\":\"%s\"}",
	                     txn3, SIMPROC_MERCHANT_KEY, m3);
	add_needs_attention(&w, order3, txn3, m3, b3);
	pgtest_exec(w.db, "UPDATE smartpay.modifications SET attempts = 100 WHERE modification_id "
	                  "= '5d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f45'");
	struct testutil_run r = WORLD_CTL(&w, 0, "reconcile");
	testutil_run_free(&r);
	ck_assert_int_eq(pgtest_int(w.db,
	                            "SELECT count(*) FROM smartpay.modifications WHERE "
	                            "modification_id = '3d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f43' "
	                            "AND state = 'succeeded' AND settled_by = 'status' AND "
	                            "payment_status = 'CAPTURED'"),
	                 1);
	ck_assert_int_eq(pgtest_int(w.db,
	                            "SELECT count(*) FROM smartpay.modifications WHERE "
	                            "modification_id = '4d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f44' "
	                            "AND state = 'pending' AND reason LIKE 'resending%'"),
	                 1);
	ck_assert_int_eq(pgtest_int(w.db,
	                            "SELECT count(*) FROM smartpay.modifications WHERE "
	                            "modification_id = '5d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f45' "
	                            "AND state = 'needs_attention'"),
	                 1);
	/* smartpayctl show says where the outcome came from */
	r = WORLD_CTL(&w, 0, "show", m1);
	ck_assert_ptr_nonnull(strstr(r.out, "settled_by"));
	ck_assert_ptr_nonnull(strstr(r.out, "status"));
	testutil_run_free(&r);
	/* the daemon resends the second with the same id and bytes */
	daemonproc_start(&w.d, false);
	await(&w,
	      "SELECT count(*) FROM smartpay.modifications WHERE modification_id = "
	      "'4d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f44' AND state = 'succeeded'",
	      1);
	ck_assert_int_eq(simproc_count_effects(w.sim, txn, "CAPTURE"), 1);
	ck_assert_int_eq(simproc_count_effects(w.sim, txn2, "CAPTURE"), 1);
	ck_assert_int_eq(simproc_count_effects(w.sim, txn3, "CAPTURE"), 0);
	ck_assert_int_eq(simproc_request_count(w.sim, m1), 1);
	struct json_object *ledger = simproc_ledger(w.sim);
	ck_assert_int_eq(simproc_ledger_per_id(ledger, "otherBodies", m2), 0);
	json_object_put(ledger);
	ck_assert_int_eq(pgtest_int(w.db, "SELECT count(*) FROM smartpay.alerts"), 0);
	free(b1), free(b2), free(b3), free(order), free(order2), free(order3), free(txn),
	    free(txn2), free(txn3);
	world_down(&w);
}
END_TEST

/* The id of the order's capture, malloc'd (waits until there is one). */
static char *capture_id(struct world *w, const char *order)
{
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE order_id = '%s' AND kind = "
	         "'capture'",
	         order);
	await(w, sql, 1);
	snprintf(sql, sizeof(sql),
	         "SELECT modification_id::text FROM smartpay.modifications WHERE order_id = '%s' "
	         "AND kind = 'capture'",
	         order);
	return pgtest_value(w->db, sql);
}

START_TEST(lost_answers_settled_from_status_history)
{
	struct world w;
	world_up(&w,
	         "[reconcile]\ninterval = 0s\nunknown_answers = 2\n[daemon]\nmax_attempts = 4\n");
	/* every modification answer is lost after processing, retries' answers too; the
	 * status call works */
	ck_assert(simproc_set_faults(w.sim, "{\"drop_after_commit_rate\":1,\"status_call\":{}}"));
	char *txn, *order = add_order(&w, "shipped", &txn);
	daemonproc_start(&w.d, false);
	char *id = capture_id(&w, order);
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE modification_id = '%s' AND "
	         "state = 'succeeded' AND settled_by = 'status' AND payment_status = 'CAPTURED'",
	         id);
	await(&w, sql, 1);
	ck_assert_int_eq(simproc_count_effects(w.sim, txn, "CAPTURE"), 1);
	long sent = simproc_request_count(w.sim, id);
	ck_assert_int_eq(sent, 2); /* unknown_answers: the status is asked after the second */
	ck_assert_int_ge(simproc_status_calls(w.sim, txn), 1);
	ck_assert_int_eq(pgtest_int(w.db, "SELECT count(*) FROM smartpay.alerts"), 0);
	struct testutil_run r = WORLD_CTL(&w, 0, "show", id);
	ck_assert_ptr_nonnull(strstr(r.out, "settled_by"));
	ck_assert_ptr_nonnull(strstr(r.out, "status history"));
	testutil_run_free(&r);
	ck_assert(daemonproc_log_contains(&w.d, "event=status_checked"));
	free(id), free(order), free(txn);
	world_down(&w);
}
END_TEST

START_TEST(failing_status_call_decides_nothing_in_the_engine)
{
	struct world w;
	world_up(&w,
	         "[reconcile]\ninterval = 0s\nunknown_answers = 1\n[daemon]\nmax_attempts = 3\n");
	ck_assert(simproc_set_faults(
	    w.sim,
	    "{\"drop_after_commit_rate\":1,\"status_call\":{\"fail_rate\":1,\"status\":500}}"));
	char *txn, *order = add_order(&w, "shipped", &txn);
	daemonproc_start(&w.d, false);
	char *id = capture_id(&w, order);
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE modification_id = '%s' AND "
	         "state = 'needs_attention' AND settled_by = 'answer'",
	         id);
	await(&w, sql, 1);
	ck_assert_int_ge(simproc_status_calls(w.sim, txn), 3);
	ck_assert_int_eq(simproc_request_count(w.sim, id), 3);
	ck_assert(daemonproc_log_contains(&w.d, "event=status_call_failed"));
	ck_assert_int_eq(daemonproc_stop(&w.d), 0);
	/* once the status call works, smartpayctl reconcile settles it */
	ck_assert(simproc_set_faults(w.sim, "{\"drop_after_commit_rate\":1,\"status_call\":{}}"));
	struct testutil_run r = WORLD_CTL(&w, 0, "reconcile", "--order", order);
	testutil_run_free(&r);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE modification_id = '%s' AND "
	         "state = 'succeeded' AND settled_by = 'status'",
	         id);
	ck_assert_int_eq(pgtest_int(w.db, sql), 1);
	ck_assert_int_eq(simproc_count_effects(w.sim, txn, "CAPTURE"), 1);
	free(id), free(order), free(txn);
	world_down(&w);
}
END_TEST

START_TEST(absent_from_history_is_resent_not_given_up)
{
	struct world w;
	world_up(&w, "[reconcile]\ninterval = 0s\nunknown_answers = 1\n[daemon]\nmax_attempts = 2\n"
	             "retry_max = 2s\n");
	/* nothing reaches the gateway's books: 503 without processing */
	ck_assert(
	    simproc_set_faults(w.sim, "{\"fail_rate\":1,\"retry_after\":0,\"status_call\":{}}"));
	char *txn, *order = add_order(&w, "shipped", &txn);
	daemonproc_start(&w.d, false);
	char *id = capture_id(&w, order);
	/* retries ran out, yet it is pending again: the history lacks it and the
	 * authorization can still be captured */
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE modification_id = '%s' AND "
	         "state = 'pending' AND attempts = 2 AND reason LIKE 'resending%%'",
	         id);
	await(&w, sql, 1);
	ck_assert(simproc_clear_faults(w.sim));
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE modification_id = '%s' AND "
	         "state = 'succeeded' AND settled_by = 'answer'",
	         id);
	await(&w, sql, 1);
	ck_assert_int_eq(simproc_count_effects(w.sim, txn, "CAPTURE"), 1);
	ck_assert_int_eq(simproc_request_count(w.sim, id), 3);
	ck_assert_int_eq(pgtest_int(w.db, "SELECT count(*) FROM smartpay.alerts"), 0);
	struct json_object *ledger = simproc_ledger(w.sim);
	ck_assert_int_eq(simproc_ledger_per_id(ledger, "otherBodies", id), 0);
	json_object_put(ledger);
	free(id), free(order), free(txn);
	world_down(&w);
}
END_TEST

/* A pending capture row with its exact request body, its deadline and next attempt
 * (SQL expressions), no lease. */
static void add_pending_capture(struct world *w, const char *order, const char *txn, const char *id,
                                const char *body, const char *deadline, const char *next)
{
	char *sql = xasprintf(
	    "INSERT INTO smartpay.modifications (modification_id, order_id, transaction_id, kind, "
	    "amount_minor, currency, request_body, state, attempts, deadline, next_attempt_at) "
	    "VALUES ($1, $2, $3, 'capture', 1000, 'EUR', $4, 'pending', 1, %s, %s)",
	    deadline, next);
	const char *p[] = {id, order, txn, body};
	PGresult *res = PQexecParams(w->db, sql, 4, NULL, p, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(w->db));
	PQclear(res);
	free(sql);
}

/* The capture request body of modification `id` on transaction `txn`, malloc'd. */
static char *capture_body(const char *txn, const char *id)
{
	return xasprintf(
	    "{\"transactionId\":\"%s\",\"merchantKey\":\"%s\",\"modificationId\":\"%s\"}", txn,
	    SIMPROC_MERCHANT_KEY, id);
}

/* Performs a capture at the simulator as if our request had gone out and its answer
 * had been lost. */
static void perform_capture(struct world *w, const char *body)
{
	struct simproc_reply r;
	ck_assert(simproc_payment(w->sim, "capture", body, &r));
	ck_assert_int_eq(r.status, 200);
	simproc_reply_free(&r);
}

/* Counts the rows of modification `id` matching `cond` (SQL). */
static long long mod_count(struct world *w, const char *id, const char *cond)
{
	char *sql = xasprintf(
	    "SELECT count(*) FROM smartpay.modifications WHERE modification_id = '%s' AND %s", id,
	    cond);
	long long n = pgtest_int(w->db, sql);
	free(sql);
	return n;
}

/* Waits until modification `id` matches `cond` (SQL). */
static void await_mod(struct world *w, const char *id, const char *cond)
{
	char *sql = xasprintf(
	    "SELECT count(*) FROM smartpay.modifications WHERE modification_id = '%s' AND %s", id,
	    cond);
	await(w, sql, 1);
	free(sql);
}

START_TEST(deadline_passing_while_pending_settled_from_history)
{
	struct world w;
	/* no status call after unknown answers, retries far apart: only the deadline passing
	 * can end it */
	world_up(&w, "[reconcile]\ninterval = 0s\nunknown_answers = 100\n[daemon]\n"
	             "max_attempts = 50\nretry_base = 1h\nretry_max = 1h\n");
	ck_assert(simproc_set_faults(w.sim, "{\"drop_after_commit_rate\":1,\"status_call\":{}}"));
	char *txn, *order = add_order(&w, "shipped", &txn);
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "UPDATE public.orders SET authorization_expires_at = now() + interval '4s' "
	         "WHERE id = %s",
	         order);
	pgtest_exec(w.db, sql);
	daemonproc_start(&w.d, false);
	char *id = capture_id(&w, order);
	await_mod(&w, id, "state = 'succeeded' AND settled_by = 'status'");
	ck_assert_int_eq(simproc_count_effects(w.sim, txn, "CAPTURE"), 1);
	ck_assert_int_ge(simproc_request_count(w.sim, id), 1);
	ck_assert_int_ge(simproc_status_calls(w.sim, txn), 1);
	ck_assert_int_eq(
	    pgtest_int(w.db, "SELECT count(*) FROM smartpay.alerts WHERE kind = 'needs_attention'"),
	    0);
	free(id), free(order), free(txn);
	world_down(&w);
}
END_TEST

START_TEST(expired_captures_ask_the_status_first)
{
	struct world w;
	world_up(&w, "[reconcile]\ninterval = 0s\n");
	static const char p1[] = "6d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f46";
	static const char p2[] = "7d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f47";
	static const char u1[] = "8d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f48";
	static const char u2[] = "9d6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f49";
	const char *ids[] = {p1, p2, u1, u2};
	/* due now (the engine claims it past its deadline), or due tomorrow (only the expiry
	 * sweep finds it); performed at the gateway or not */
	const char *next[] = {"now()", "now() + interval '1 day'", "now()",
	                      "now() + interval '1 day'"};
	char *orders[4], *txns[4];
	for (int i = 0; i < 4; i++) {
		orders[i] = add_order(&w, "shipped", &txns[i]);
		char *body = capture_body(txns[i], ids[i]);
		if (i < 2)
			perform_capture(&w, body);
		add_pending_capture(&w, orders[i], txns[i], ids[i], body,
		                    "now() - interval '1 minute'", next[i]);
		free(body);
	}
	daemonproc_start(&w.d, false);
	for (int i = 0; i < 2; i++)
		await_mod(&w, ids[i],
		          "state = 'succeeded' AND settled_by = 'status' AND payment_status = "
		          "'CAPTURED'");
	for (int i = 2; i < 4; i++)
		await_mod(
		    &w, ids[i],
		    "state = 'needs_attention' AND reason LIKE 'authorization deadline passed%' "
		    "AND completed_at IS NOT NULL");
	for (int i = 0; i < 4; i++) {
		ck_assert_int_ge(simproc_status_calls(w.sim, txns[i]), 1);
		/* a deadline passed: nothing is sent, performed or not */
		ck_assert_int_eq(simproc_request_count(w.sim, ids[i]), i < 2 ? 1 : 0);
		ck_assert_int_eq(simproc_count_effects(w.sim, txns[i], "CAPTURE"), i < 2 ? 1 : 0);
	}
	char sql[256];
	for (int i = 0; i < 4; i++) {
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) FROM smartpay.alerts WHERE kind = 'needs_attention' AND "
		         "modification_id = '%s'",
		         ids[i]);
		await(&w, sql, i < 2 ? 0 : 1);
		ck_assert_int_eq(pgtest_int(w.db, sql), i < 2 ? 0 : 1);
	}
	for (int i = 0; i < 4; i++)
		free(orders[i]), free(txns[i]);
	world_down(&w);
}
END_TEST

START_TEST(expired_capture_with_failing_status_needs_attention)
{
	struct world w;
	world_up(&w, "[reconcile]\ninterval = 0s\n");
	ck_assert(simproc_set_faults(w.sim, "{\"status_call\":{\"fail_rate\":1,\"status\":500}}"));
	static const char p1[] = "ad6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f4a";
	static const char p2[] = "bd6c1c49-5a1b-4c3e-9f43-0c7a1d2e3f4b";
	const char *ids[] = {p1, p2};
	const char *next[] = {"now()", "now() + interval '1 day'"};
	char *orders[2], *txns[2];
	for (int i = 0; i < 2; i++) {
		orders[i] = add_order(&w, "shipped", &txns[i]);
		char *body = capture_body(txns[i], ids[i]);
		perform_capture(&w, body);
		add_pending_capture(&w, orders[i], txns[i], ids[i], body,
		                    "now() - interval '1 minute'", next[i]);
		free(body);
	}
	daemonproc_start(&w.d, false);
	for (int i = 0; i < 2; i++) {
		await_mod(&w, ids[i], "state = 'needs_attention'");
		ck_assert_int_eq(mod_count(&w, ids[i], "settled_by = 'status'"), 0);
		ck_assert_int_ge(simproc_status_calls(w.sim, txns[i]), 1);
		ck_assert_int_eq(simproc_request_count(w.sim, ids[i]), 1);
	}
	ck_assert(daemonproc_log_contains(&w.d, "event=status_call_failed"));
	await(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = 'needs_attention'", 2);
	ck_assert_int_eq(
	    pgtest_int(w.db,
	               "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'"),
	    0);
	for (int i = 0; i < 2; i++)
		free(orders[i]), free(txns[i]);
	world_down(&w);
}
END_TEST

static Suite *reconcile_daemon_suite(void)
{
	Suite *s = suite_create("reconcile_daemon");
	testutil_tcase(
	    s, "daemon", 180,
	    (const TTest *const[]){
	        ledger_drift_found_by_ctl_and_by_the_pass, external_capture_recorded_and_refundable,
	        ended_authorization_blocks_the_capture, status_calls_obey_the_rate_cap,
	        failing_status_endpoint_changes_nothing, needs_attention_settled_from_history,
	        lost_answers_settled_from_status_history,
	        failing_status_call_decides_nothing_in_the_engine,
	        absent_from_history_is_resent_not_given_up,
	        deadline_passing_while_pending_settled_from_history,
	        expired_captures_ask_the_status_first,
	        expired_capture_with_failing_status_needs_attention, NULL});
	return s;
}

int main(void)
{
	pgtest_start();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int status = testutil_run_suite(reconcile_daemon_suite(), CK_NORMAL);
	curl_global_cleanup();
	pgtest_stop();
	return status;
}
