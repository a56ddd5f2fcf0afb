/* End-to-end tests of smartpayd: the real daemon binary, a private PostgreSQL and the
 * real smartpay-sim. Each test asserts on what a user would see: rows in the ledger,
 * the simulator's effects and request counts, exit codes and log lines. */
#include "autoconfig.h"

#include "pgtest.h"
#include "testutil.h"
#include "world.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS 60000

/* Creates an authorized transaction at the simulator and the shop's order for it. */
static long add_order(struct world *w, const char *amount, const char *capture_amount,
                      const char *status)
{
	struct world_order o = {
	    .amount = amount, .capture_amount = capture_amount, .status = status};
	return world_add_order(w, &o, NULL);
}

/* The simulator performed `expected_effects` effects of `type`; each succeeded capture's
 * transaction has exactly one; every effect carries the modificationId of a succeeded
 * ledger row (the id committed before sending). */
static void assert_exactly_once(struct world *w, const char *type, int expected_effects)
{
	json_object *ledger = simproc_ledger(w->sim);
	ck_assert_ptr_nonnull(ledger);
	ck_assert_int_eq(simproc_ledger_count(ledger, NULL, type), expected_effects);
	PGresult *r = pgtest_query(w->db, "SELECT transaction_id FROM smartpay.modifications "
	                                  "WHERE state = 'succeeded' AND kind = 'capture'");
	for (int i = 0; i < PQntuples(r); i++)
		ck_assert_int_eq(simproc_ledger_count(ledger, PQgetvalue(r, i, 0), type), 1);
	PQclear(r);
	/* the effect carries the id the ledger committed before sending */
	json_object *effects = json_object_object_get(ledger, "effects");
	size_t n = json_object_array_length(effects);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(effects, i);
		const char *mid =
		    json_object_get_string(json_object_object_get(e, "modificationId"));
		const char *p[] = {mid};
		PGresult *q = PQexecParams(w->db,
		                           "SELECT count(*) FROM smartpay.modifications WHERE "
		                           "modification_id = $1::uuid AND state = 'succeeded'",
		                           1, NULL, p, NULL, NULL, 0);
		ck_assert_str_eq(PQgetvalue(q, 0, 0), "1");
		PQclear(q);
	}
	json_object_put(ledger);
}

START_TEST(ships_cancels_and_refuses_bad_rows)
{
	struct world w;
	world_up(&w, NULL);
	long full = add_order(&w, "35.99", NULL, "shipped");
	long partial = add_order(&w, "50.00", "20.00", "shipped");
	long cancelled = add_order(&w, "12.50", NULL, "cancelled");
	long later = add_order(&w, "99.00", NULL, "shipped");
	add_order(&w, "10.00", NULL, "authorized"); /* not shipped: left alone */
	pgtest_exec(w.db, "INSERT INTO public.orders (smartpay_transaction_id, amount, status) "
	                  "VALUES (NULL, 10.00, 'shipped')");
	pgtest_exec(w.db, "INSERT INTO public.orders (smartpay_transaction_id, amount, "
	                  "capture_amount, status) VALUES ('t-over', 10.00, 25.00, 'shipped')");
	pgtest_exec(w.db, "INSERT INTO public.orders (smartpay_transaction_id, amount, currency, "
	                  "status) VALUES ('t-cur', 10.00, 'XYZ', 'shipped')");
	pgtest_exec(w.db, "INSERT INTO public.orders (smartpay_transaction_id, amount, status) "
	                  "VALUES ('t-neg', -5.00, 'shipped')");

	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state <> 'pending'", 8);

	/* the shop cancels an order after its capture succeeded: cancelOrRefund */
	char sql[200];
	snprintf(sql, sizeof(sql), "UPDATE public.orders SET status = 'cancelled' WHERE id = %ld",
	         later);
	pgtest_exec(w.db, sql);
	world_await(&w,
	            "SELECT count(*) FROM smartpay.modifications WHERE kind = 'cancel_or_refund' "
	            "AND state = 'succeeded'",
	            1);
	ck_assert_int_eq(daemonproc_stop(&w.d), 0);

	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.modifications WHERE "
	                                 "kind = 'capture' AND state = 'succeeded'"),
	                 3);
	snprintf(sql, sizeof(sql),
	         "SELECT amount_minor FROM smartpay.modifications WHERE order_id = '%ld'", partial);
	ck_assert_int_eq(world_count(&w, sql), 2000);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE order_id = '%ld' AND "
	         "kind = 'cancel' AND state = 'succeeded'",
	         cancelled);
	ck_assert_int_eq(world_count(&w, sql), 1);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE order_id = '%ld' AND "
	         "request_body NOT LIKE '%%modifiedAmount%%'",
	         full);
	ck_assert_int_eq(world_count(&w, sql), 1);
	/* four bad rows: refused locally with a reason and an alert, never sent */
	ck_assert_int_eq(world_count(&w,
	                             "SELECT count(*) FROM smartpay.modifications WHERE state = "
	                             "'refused' AND request_body IS NULL AND reason IS NOT NULL"),
	                 4);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = "
	                                 "'order_refused'"),
	                 4);
	char *reason = pgtest_value(w.db, "SELECT reason FROM smartpay.modifications WHERE "
	                                  "transaction_id = 't-over'");
	ck_assert_str_eq(reason, "capture_amount above the authorized amount");
	free(reason);
	ck_assert(daemonproc_log_contains(&w.d, "event=order_refused"));

	json_object *ledger = simproc_ledger(w.sim);
	ck_assert_int_eq(simproc_ledger_count(ledger, NULL, "CAPTURE"), 3);
	ck_assert_int_eq(simproc_ledger_count(ledger, NULL, "CANCELLATION"), 1);
	ck_assert_int_eq(simproc_ledger_count(ledger, NULL, "REFUND"), 1);
	json_object_put(ledger);
	assert_exactly_once(&w, "CAPTURE", 3);
	world_down(&w);
}
END_TEST

START_TEST(notification_wakes_the_daemon)
{
	struct world w;
	/* no polling to speak of: only the orders trigger's NOTIFY can start the capture */
	world_up(&w, "[daemon]\npoll_interval = 1h\n");
	long id = add_order(&w, "10.00", NULL, "authorized");
	daemonproc_start(&w.d, false);
	ck_assert(wait_for_count(w.db, "SELECT count(*) FROM smartpay.schema_migrations", 1,
	                         WAIT_MS) >= 1);
	usleep(300000); /* connected and listening */
	char sql[128];
	snprintf(sql, sizeof(sql), "UPDATE public.orders SET status = 'shipped' WHERE id = %ld",
	         id);
	pgtest_exec(w.db, sql);
	long long got = wait_for_count(w.db,
	                               "SELECT count(*) FROM smartpay.modifications "
	                               "WHERE state = 'succeeded'",
	                               1, 3000);
	if (got != 1)
		daemonproc_print_log(&w.d);
	ck_assert_int_eq(got, 1);
	world_down(&w);
}
END_TEST

START_TEST(once_mode_exit_codes)
{
	struct world w;
	world_up(&w, NULL);
	world_add_orders(&w, 20, &(struct world_order){.status = "shipped"});
	ck_assert_int_eq(daemonproc_run_once(&w.d), 0);
	ck_assert_int_eq(world_count(&w,
	                             "SELECT count(*) FROM smartpay.modifications WHERE state = "
	                             "'succeeded'"),
	                 20);
	/* nothing left: a second run is a no-op with exit 0 */
	ck_assert_int_eq(daemonproc_run_once(&w.d), 0);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "CAPTURE"), 20);

	/* the gateway fails every request: the intents stay pending and --once says so */
	ck_assert(simproc_set_faults(w.sim, "{\"fail_rate\": 1.0, \"status\": 503}"));
	world_add_orders(&w, 2, &(struct world_order){.status = "shipped"});
	ck_assert_int_eq(daemonproc_run_once(&w.d), 1);
	ck_assert_int_eq(world_count(&w,
	                             "SELECT count(*) FROM smartpay.modifications WHERE state = "
	                             "'pending'"),
	                 2);
	world_down(&w);
}
END_TEST

START_TEST(check_config_reports_file_and_line)
{
	struct world w;
	world_up(&w, "[daemon]\nmax_inflight = lots\n");
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "'%s/smartpayd' --check-config -c '%s' 2>'%s'",
	         getenv("SP_TOP_BUILDDIR") ? getenv("SP_TOP_BUILDDIR") : ".", w.d.conf, w.d.log);
	int st = system(cmd);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 2);
	char needle[400];
	snprintf(needle, sizeof(needle), "%s:", w.d.conf);
	ck_assert(daemonproc_log_contains(&w.d, needle));
	ck_assert(daemonproc_log_contains(&w.d, "max_inflight"));
	world_down(&w);
}
END_TEST

/* Intents committed, nothing reached the gateway (it was unreachable), then the daemon
 * dies: the next start sends the same ids and bodies. */
START_TEST(crash_after_intent_before_send)
{
	struct world w;
	world_up(&w, NULL);
	world_add_orders(&w, 10, &(struct world_order){.status = "shipped"});
	struct daemonproc dead;
	daemonproc_init(&dead, w.conninfo, "http://127.0.0.1:9", simproc_merchant_key(w.sim),
	                simproc_auth_key(w.sim), "[daemon]\nretry_base = 10s\nretry_max = 10s\n");
	daemonproc_start(&dead, false);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE attempts >= 1", 10);
	daemonproc_kill(&dead);
	daemonproc_cleanup(&dead);
	PGresult *before = pgtest_query(w.db, "SELECT modification_id, request_body FROM "
	                                      "smartpay.modifications ORDER BY 1");
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, NULL), 0);

	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'",
	            10);
	PGresult *after = pgtest_query(w.db, "SELECT modification_id, request_body FROM "
	                                     "smartpay.modifications ORDER BY 1");
	ck_assert_int_eq(PQntuples(after), 10);
	for (int i = 0; i < 10; i++) {
		ck_assert_str_eq(PQgetvalue(before, i, 0), PQgetvalue(after, i, 0));
		ck_assert_str_eq(PQgetvalue(before, i, 1), PQgetvalue(after, i, 1));
	}
	PQclear(before);
	PQclear(after);
	assert_exactly_once(&w, "CAPTURE", 10);
	world_down(&w);
}
END_TEST

/* Requests in flight and already processed by the gateway when the daemon is killed:
 * the restarted daemon resends the same ids and the gateway answers from its record. */
START_TEST(crash_with_requests_in_flight)
{
	struct world w;
	world_up(&w, NULL);
	ck_assert(simproc_set_faults(w.sim, "{\"latency_ms\": 30000}"));
	world_add_orders(&w, 20, &(struct world_order){.status = "shipped"});
	daemonproc_start(&w.d, false);
	/* the gateway has processed every capture; no answer has come back yet */
	world_await_effects(&w, "CAPTURE", 20);
	daemonproc_kill(&w.d);
	ck_assert_int_eq(world_count(&w,
	                             "SELECT count(*) FROM smartpay.modifications WHERE state = "
	                             "'pending'"),
	                 20);
	ck_assert(simproc_clear_faults(w.sim));

	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'",
	            20);
	assert_exactly_once(&w, "CAPTURE", 20);
	PGresult *r = pgtest_query(w.db, "SELECT modification_id FROM smartpay.modifications");
	for (int i = 0; i < PQntuples(r); i++)
		ck_assert_int_eq(simproc_request_count(w.sim, PQgetvalue(r, i, 0)), 2);
	PQclear(r);
	world_down(&w);
}
END_TEST

/* The gateway processes every request and drops the connection; the daemon is killed
 * while retrying: after the restart the stored answers complete every order once. */
START_TEST(crash_after_gateway_processed)
{
	struct world w;
	world_up(&w, NULL);
	ck_assert(simproc_set_faults(w.sim, "{\"drop_after_commit_rate\": 1.0}"));
	world_add_orders(&w, 10, &(struct world_order){.status = "shipped"});
	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE attempts >= 2", 10);
	daemonproc_kill(&w.d);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "CAPTURE"), 10);
	ck_assert(simproc_clear_faults(w.sim));
	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'",
	            10);
	assert_exactly_once(&w, "CAPTURE", 10);
	world_down(&w);
}
END_TEST

/* 1,000 orders against a gateway that drops 30% of answers after processing, fails 20%
 * (503, then 429) and adds latency: every order captured exactly once. */
START_TEST(thousand_orders_under_faults)
{
	struct world w;
	world_up(&w, "[daemon]\nmax_attempts = 100\n");
	ck_assert(simproc_set_faults(w.sim,
	                             "{\"seed\": 7, \"drop_after_commit_rate\": 0.3, "
	                             "\"fail_rate\": 0.2, \"status\": 503, \"retry_after\": 0, "
	                             "\"latency_ms\": 5, \"jitter_ms\": 5}"));
	world_add_orders(&w, 1000, &(struct world_order){.status = "authorized"});
	daemonproc_start(&w.d, false);
	pgtest_exec(w.db, "UPDATE public.orders SET status = 'shipped'");
	world_await(&w,
	            "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded' OR "
	            "attempts >= 2",
	            1000);
	ck_assert(simproc_set_faults(w.sim,
	                             "{\"seed\": 8, \"drop_after_commit_rate\": 0.3, "
	                             "\"fail_rate\": 0.2, \"status\": 429, \"retry_after\": 0, "
	                             "\"latency_ms\": 5, \"jitter_ms\": 5}"));
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'",
	            1000);
	ck_assert_int_eq(daemonproc_stop(&w.d), 0);
	assert_exactly_once(&w, "CAPTURE", 1000);
	ck_assert(world_count(&w, "SELECT sum(attempts) FROM smartpay.modifications") > 1200);
	world_down(&w);
}
END_TEST

START_TEST(postgres_restart_mid_run)
{
	struct world w;
	world_up(&w, NULL);
	ck_assert(simproc_set_faults(w.sim, "{\"latency_ms\": 20, \"jitter_ms\": 20}"));
	world_add_orders(&w, 300, &(struct world_order){.status = "authorized"});
	daemonproc_start(&w.d, false);
	pgtest_exec(w.db, "UPDATE public.orders SET status = 'shipped'");
	wait_for_count(w.db,
	               "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'", 50,
	               WAIT_MS);
	pgtest_restart(true);
	PQreset(w.db);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'",
	            300);
	ck_assert(daemonproc_log_contains(&w.d, "event=db_disconnected"));
	assert_exactly_once(&w, "CAPTURE", 300);
	world_down(&w);
}
END_TEST

/* Two daemons share one database: the work is split and no id is sent twice. */
START_TEST(two_daemons_no_duplicate_requests)
{
	struct world w;
	world_up(&w, "[daemon]\ninstance_name = a\nmax_inflight = 16\n");
	ck_assert(simproc_set_faults(w.sim, "{\"latency_ms\": 2, \"jitter_ms\": 2}"));
	struct daemonproc b;
	world_daemon_other(&w, &b, "[daemon]\ninstance_name = b\nmax_inflight = 16\n");
	world_add_orders(&w, 1000, &(struct world_order){.status = "authorized"});
	daemonproc_start(&w.d, false);
	daemonproc_start(&b, false);
	usleep(300000);
	pgtest_exec(w.db, "UPDATE public.orders SET status = 'shipped'");
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'",
	            1000);
	ck_assert_int_eq(daemonproc_stop(&b), 0);
	ck_assert(daemonproc_log_contains(&w.d, "event=modification_succeeded"));
	ck_assert(daemonproc_log_contains(&b, "event=modification_succeeded"));
	daemonproc_cleanup(&b);
	assert_exactly_once(&w, "CAPTURE", 1000);
	PGresult *r = pgtest_query(w.db, "SELECT modification_id FROM smartpay.modifications");
	ck_assert_int_eq(PQntuples(r), 1000);
	for (int i = 0; i < PQntuples(r); i++)
		ck_assert_int_eq(simproc_request_count(w.sim, PQgetvalue(r, i, 0)), 1);
	PQclear(r);
	world_down(&w);
}
END_TEST

START_TEST(same_instance_name_refused)
{
	struct world w;
	world_up(&w, NULL);
	daemonproc_start(&w.d, false);
	ck_assert(wait_for_count(w.db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
	                         1, WAIT_MS) >= 1);
	struct daemonproc twin;
	world_daemon_other(&w, &twin, NULL);
	ck_assert_int_eq(daemonproc_run_once(&twin), 1);
	ck_assert(daemonproc_log_contains(&twin, "instance_name test"));
	/* as a service the twin waits, and takes over once the first one is gone */
	daemonproc_start(&twin, false);
	usleep(700000);
	ck_assert_int_eq(daemonproc_stop(&w.d), 0);
	world_add_orders(&w, 2, &(struct world_order){.status = "shipped"});
	long long got = wait_for_count(w.db,
	                               "SELECT count(*) FROM smartpay.modifications WHERE state = "
	                               "'succeeded'",
	                               2, WAIT_MS);
	if (got != 2)
		daemonproc_print_log(&twin);
	ck_assert_int_eq(got, 2);
	ck_assert_int_eq(daemonproc_stop(&twin), 0);
	daemonproc_cleanup(&twin);
	world_down(&w);
}
END_TEST

START_TEST(tls_with_private_ca)
{
	struct world w;
	struct simproc_opts opts = {.tls = true};
	world_up_with(&w, &(struct world_opts){.sim = &opts}, NULL);
	char extra[600];
	snprintf(extra, sizeof(extra), "[smartpay]\nca_file = %s\n", simproc_ca_file(w.sim));
	world_daemon(&w, w.conninfo, extra);
	world_add_orders(&w, 3, &(struct world_order){.status = "shipped"});
	ck_assert_int_eq(daemonproc_run_once(&w.d), 0);
	assert_exactly_once(&w, "CAPTURE", 3);

	/* a CA that did not sign the gateway's certificate: nothing is sent */
	ck_assert(simproc_make_tls(simproc_dir(w.sim), "other"));
	struct daemonproc wrong;
	snprintf(extra, sizeof(extra), "[smartpay]\nca_file = %s/other-ca.pem\n",
	         simproc_dir(w.sim));
	world_daemon_other(&w, &wrong, extra);
	world_add_orders(&w, 1, &(struct world_order){.status = "shipped"});
	ck_assert_int_eq(daemonproc_run_once(&wrong), 1);
	bool clear = daemonproc_log_contains(&wrong, "certificate");
	if (!clear)
		daemonproc_print_log(&wrong);
	ck_assert(clear);
	daemonproc_cleanup(&wrong);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "CAPTURE"), 3);
	char *mid = pgtest_value(w.db, "SELECT modification_id FROM smartpay.modifications WHERE "
	                               "state = 'pending'");
	ck_assert_int_eq(simproc_request_count(w.sim, mid), 0);
	free(mid);
	world_down(&w);
}
END_TEST

START_TEST(sigterm_drains_in_flight_requests)
{
	struct world w;
	world_up(&w, NULL);
	ck_assert(simproc_set_faults(w.sim, "{\"latency_ms\": 1500}"));
	world_add_orders(&w, 10, &(struct world_order){.status = "shipped"});
	daemonproc_start(&w.d, false);
	world_await_effects(&w, "CAPTURE", 10);
	ck_assert_int_eq(daemonproc_stop(&w.d), 0);
	/* the answers arrived and were recorded before the exit */
	ck_assert_int_eq(world_count(&w,
	                             "SELECT count(*) FROM smartpay.modifications WHERE state = "
	                             "'succeeded'"),
	                 10);
	ck_assert(daemonproc_log_contains(&w.d, "event=draining"));
	world_down(&w);
}
END_TEST

START_TEST(credentials_rejected_pause_and_reload)
{
	struct world w;
	world_up_with(&w, &(struct world_opts){.daemon_auth_key = "wrong-key"}, NULL);
	world_add_orders(&w, 20, &(struct world_order){.status = "shipped"});
	daemonproc_start(&w.d, false);
	world_await(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = 'credentials_rejected'",
	            1);
	usleep(500000);
	/* paused for everyone: no flood of retries, no order marked as failed */
	json_object *ledger = simproc_ledger(w.sim);
	json_object *requests = json_object_object_get(ledger, "requests");
	long total = 0;
	json_object_object_foreach(requests, k, v)
	{
		(void)k;
		total += json_object_get_int64(v);
	}
	json_object_put(ledger);
	ck_assert_int_le(total, 20);
	ck_assert_int_eq(world_count(&w,
	                             "SELECT count(*) FROM smartpay.modifications WHERE state = "
	                             "'pending' AND attempts = 0"),
	                 20);
	/* the operator fixes the key file and reloads */
	char key[400];
	snprintf(key, sizeof(key), "%s/authentication-key", w.d.dir);
	FILE *f = fopen(key, "w");
	fprintf(f, "%s\n", simproc_auth_key(w.sim));
	fclose(f);
	daemonproc_signal(&w.d, SIGHUP);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'",
	            20);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = "
	                                 "'credentials_rejected'"),
	                 1);
	world_down(&w);
}
END_TEST

START_TEST(reload_keeps_running_config_when_new_one_is_bad)
{
	struct world w;
	world_up(&w, NULL);
	daemonproc_start(&w.d, false);
	usleep(300000);
	FILE *f = fopen(w.d.conf, "a");
	fprintf(f, "[daemon]\nbogus_key = 1\n");
	fclose(f);
	daemonproc_signal(&w.d, SIGHUP);
	usleep(300000);
	world_add_orders(&w, 2, &(struct world_order){.status = "shipped"});
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'", 2);
	ck_assert(daemonproc_log_contains(&w.d, "event=reload_failed"));
	ck_assert(daemonproc_log_contains(&w.d, "bogus_key"));
	world_down(&w);
}
END_TEST

START_TEST(retries_exhausted_need_attention)
{
	struct world w;
	world_up(&w, "[daemon]\nmax_attempts = 3\n");
	ck_assert(simproc_set_faults(w.sim, "{\"fail_rate\": 1.0, \"status\": 502}"));
	world_add_orders(&w, 2, &(struct world_order){.status = "shipped"});
	daemonproc_start(&w.d, false);
	world_await(
	    &w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'needs_attention'", 2);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = "
	                                 "'needs_attention'"),
	                 2);
	ck_assert_int_eq(world_count(&w, "SELECT min(attempts) FROM smartpay.modifications"), 3);
	char *reason = pgtest_value(w.db, "SELECT reason FROM smartpay.modifications LIMIT 1");
	ck_assert_ptr_nonnull(strstr(reason, "retries exhausted"));
	free(reason);
	world_down(&w);
}
END_TEST

START_TEST(gateway_refusal_is_recorded_and_alerted)
{
	struct world w;
	world_up(&w, NULL);
	/* an authorization that expired at the gateway: the capture is refused */
	char *txn =
	    simproc_create_txn_json(w.sim, "{\"amount\": \"10.00\", \"currencyCode\": \"EUR\", "
	                                   "\"authorizedAt\": \"2020-01-01T00:00:00.000Z\", "
	                                   "\"expiresAt\": \"2020-01-06T00:00:00.000Z\"}");
	ck_assert_ptr_nonnull(txn);
	const char *p[] = {txn};
	PGresult *r =
	    PQexecParams(w.db,
	                 "INSERT INTO public.orders (smartpay_transaction_id, amount, status, "
	                 "authorization_expires_at) VALUES ($1, 10.00, 'shipped', "
	                 "now() + interval '1 day')",
	                 1, NULL, p, NULL, NULL, 0);
	ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	free(txn);
	ck_assert_int_eq(daemonproc_run_once(&w.d), 0);
	ck_assert_int_eq(
	    world_count(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = "
	                    "'refused' AND http_status = 422 AND response_body IS NOT NULL"),
	    1);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.alerts WHERE kind = "
	                                 "'modification_refused'"),
	                 1);
	world_down(&w);
}
END_TEST

/* Runs SQL that must fail with the given SQLSTATE. */
static void sql_fails(struct world *w, const char *sql, const char *sqlstate)
{
	pgtest_exec_fails(w->db, sql, sqlstate);
}

START_TEST(refunds_partial_partial_rest_one_at_a_time)
{
	struct world w;
	world_up(&w, NULL);
	long id = add_order(&w, "100.00", NULL, "shipped");
	ck_assert_int_eq(daemonproc_run_once(&w.d), 0);
	daemonproc_start(&w.d, false);
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "SELECT smartpay.request_refund('%ld', 30.00, 'first'), "
	         "smartpay.request_refund('%ld', 30.50, 'second'), "
	         "smartpay.request_refund('%ld', 39.50, 'the rest')",
	         id, id, id);
	pgtest_exec(w.db, sql);
	/* nothing is left to refund: refused by the SQL function, nothing recorded */
	snprintf(sql, sizeof(sql), "SELECT smartpay.request_refund('%ld', 0.01)", id);
	sql_fails(&w, sql, "SP006");
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.requests"), 3);
	world_await(&w,
	            "SELECT count(*) FROM smartpay.modifications WHERE kind = 'refund' AND state = "
	            "'succeeded'",
	            3);
	/* one at a time: each refund was created after the previous one finished */
	ck_assert_int_eq(
	    world_count(&w, "SELECT count(*) FROM (SELECT created_at, lag(completed_at) "
	                    "OVER (ORDER BY created_at) AS prev FROM smartpay.modifications "
	                    "WHERE kind = 'refund') r WHERE prev IS NOT NULL AND "
	                    "created_at < prev"),
	    0);
	ck_assert_int_eq(world_count(&w, "SELECT count(DISTINCT modification_id) FROM "
	                                 "smartpay.requests"),
	                 3);
	json_object *ledger = simproc_ledger(w.sim);
	ck_assert_int_eq(simproc_ledger_count(ledger, NULL, "REFUND"), 3);
	json_object *effects = json_object_object_get(ledger, "effects");
	long refunded = 0;
	for (size_t i = 0; i < json_object_array_length(effects); i++) {
		json_object *e = json_object_array_get_idx(effects, i);
		const char *type = json_object_get_string(json_object_object_get(e, "type"));
		const char *amount = json_object_get_string(json_object_object_get(e, "amount"));
		if (strcmp(type, "REFUND") == 0) {
			long major = 0, minor = 0;
			ck_assert_int_eq(sscanf(amount, "%ld.%ld", &major, &minor), 2);
			refunded += major * 100 + minor;
		}
	}
	json_object_put(ledger);
	ck_assert_int_eq(refunded, 10000);
	snprintf(sql, sizeof(sql),
	         "SELECT refundable_minor FROM smartpay.order_payments WHERE order_id = '%ld'", id);
	ck_assert_int_eq(world_count(&w, sql), 0);
	world_down(&w);
}
END_TEST

START_TEST(cancel_or_refund_requests_before_and_after_capture)
{
	struct world w;
	world_up(&w, NULL);
	long before = add_order(&w, "20.00", NULL, "authorized");
	long after = add_order(&w, "30.00", NULL, "shipped");
	long cancelled = add_order(&w, "40.00", NULL, "cancelled");
	ck_assert_int_eq(daemonproc_run_once(&w.d), 0);
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "SELECT smartpay.request_cancel_or_refund('%ld', 'customer withdrew'), "
	         "smartpay.request_cancel_or_refund('%ld', 'returned')",
	         before, after);
	pgtest_exec(w.db, sql);
	/* a cancelled order has nothing to refund */
	snprintf(sql, sizeof(sql), "SELECT smartpay.request_refund('%ld', 1.00)", cancelled);
	PGresult *r = PQexec(w.db, sql);
	ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
	PQclear(r);
	ck_assert_int_eq(daemonproc_run_once(&w.d), 0);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.modifications WHERE kind = "
	                                 "'cancel_or_refund' AND state = 'succeeded'"),
	                 2);
	json_object *ledger = simproc_ledger(w.sim);
	ck_assert_int_eq(simproc_ledger_count(ledger, NULL, "CAPTURE"), 1);
	ck_assert_int_eq(simproc_ledger_count(ledger, NULL, "CANCELLATION"), 2);
	ck_assert_int_eq(simproc_ledger_count(ledger, NULL, "REFUND"), 1);
	json_object_put(ledger);
	world_down(&w);
}
END_TEST

/* With room for one request at a time, the orders shipped together are captured in the
 * order of their authorization deadlines. */
START_TEST(earliest_deadline_first_when_capacity_is_short)
{
	struct world w;
	world_up(&w, "[daemon]\nmax_inflight = 1\nbatch_size = 1\n");
	ck_assert(simproc_set_faults(w.sim, "{\"latency_ms\": 30}"));
	static const int hours[] = {90, 5, 60, 2, 30, 10, 100, 1};
	for (size_t i = 0; i < sizeof(hours) / sizeof(hours[0]); i++) {
		long id = add_order(&w, "10.00", NULL, "authorized");
		char sql[200];
		snprintf(sql, sizeof(sql),
		         "UPDATE public.orders SET authorization_expires_at = now() + interval "
		         "'%d hours' WHERE id = %ld",
		         hours[i], id);
		pgtest_exec(w.db, sql);
	}
	daemonproc_start(&w.d, false);
	usleep(500000);
	pgtest_exec(w.db, "UPDATE public.orders SET status = 'shipped'");
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'", 8);
	/* no capture was recorded before one with an earlier deadline */
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.modifications a JOIN "
	                                 "smartpay.modifications b ON a.deadline < b.deadline "
	                                 "WHERE a.created_at > b.created_at"),
	                 0);
	world_down(&w);
}
END_TEST

/* The opt-in policy: an order still "packed" is captured when its authorization is
 * within the margin of expiring; one further away is left alone. */
START_TEST(early_capture_policy_before_expiry)
{
	struct world w;
	world_up(&w, "[capture]\nearly_statuses = packed\nearly_margin = 6h\n");
	long close = add_order(&w, "10.00", NULL, "packed");
	long far = add_order(&w, "10.00", NULL, "packed");
	char sql[200];
	snprintf(sql, sizeof(sql),
	         "UPDATE public.orders SET authorization_expires_at = now() + interval '2 hours' "
	         "WHERE id = %ld",
	         close);
	pgtest_exec(w.db, sql);
	snprintf(sql, sizeof(sql),
	         "UPDATE public.orders SET authorization_expires_at = now() + interval '3 days' "
	         "WHERE id = %ld",
	         far);
	pgtest_exec(w.db, sql);
	ck_assert_int_eq(daemonproc_run_once(&w.d), 0);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM smartpay.modifications WHERE order_id = '%ld' AND kind = "
	         "'capture' AND state = 'succeeded'",
	         close);
	ck_assert_int_eq(world_count(&w, sql), 1);
	ck_assert_int_eq(world_count(&w, "SELECT count(*) FROM smartpay.modifications"), 1);
	ck_assert_int_eq(simproc_count_effects(w.sim, NULL, "CAPTURE"), 1);
	world_down(&w);
}
END_TEST

/* A bad order row is refused locally; the shop corrects it and the operator dismisses the
 * refusal: the daemon creates a new capture (a new id) and it goes through. */
START_TEST(dismissed_refusal_gets_a_new_modification)
{
	struct world w;
	world_up(&w, NULL);
	long id = add_order(&w, "10.00", "25.00", "shipped");
	ck_assert_int_eq(daemonproc_run_once(&w.d), 0);
	char *refused = pgtest_value(w.db, "SELECT modification_id FROM smartpay.modifications "
	                                   "WHERE state = 'refused'");
	ck_assert_ptr_nonnull(refused);
	/* retry is for needs_attention only; a refusal is final for its id */
	const char *retry[] = {"-c", w.d.conf, "retry", refused, NULL};
	struct testutil_run r = testutil_run_built("smartpayctl", retry, w.d.dir);
	ck_assert_int_eq(r.status, 1);
	ck_assert_ptr_nonnull(strstr(r.err, "dismiss"));
	testutil_run_free(&r);

	char sql[160];
	snprintf(sql, sizeof(sql), "UPDATE public.orders SET capture_amount = 5.00 WHERE id = %ld",
	         id);
	pgtest_exec(w.db, sql);
	daemonproc_start(&w.d, false);
	usleep(300000);
	const char *dismiss[] = {"-c", w.d.conf, "dismiss", refused, NULL};
	r = testutil_run_built("smartpayctl", dismiss, w.d.dir);
	ck_assert_msg(r.status == 0, "%s", r.err);
	testutil_run_free(&r);
	world_await(&w, "SELECT count(*) FROM smartpay.modifications WHERE state = 'succeeded'", 1);
	ck_assert_int_eq(
	    world_count(&w, "SELECT amount_minor FROM smartpay.modifications WHERE state = "
	                    "'succeeded'"),
	    500);
	/* dismissing twice is refused */
	r = testutil_run_built("smartpayctl", dismiss, w.d.dir);
	ck_assert_int_eq(r.status, 1);
	testutil_run_free(&r);
	free(refused);
	assert_exactly_once(&w, "CAPTURE", 1);
	world_down(&w);
}
END_TEST

static Suite *daemon_suite(void)
{
	Suite *s = suite_create("daemon");
	TCase *flow = tcase_create("flow");
	tcase_set_timeout(flow, 120);
	tcase_add_test(flow, ships_cancels_and_refuses_bad_rows);
	tcase_add_test(flow, notification_wakes_the_daemon);
	tcase_add_test(flow, once_mode_exit_codes);
	tcase_add_test(flow, check_config_reports_file_and_line);
	tcase_add_test(flow, gateway_refusal_is_recorded_and_alerted);
	tcase_add_test(flow, retries_exhausted_need_attention);
	tcase_add_test(flow, tls_with_private_ca);
	tcase_add_test(flow, earliest_deadline_first_when_capacity_is_short);
	tcase_add_test(flow, early_capture_policy_before_expiry);
	suite_add_tcase(s, flow);
	TCase *crash = tcase_create("crash");
	tcase_set_timeout(crash, 180);
	tcase_add_test(crash, crash_after_intent_before_send);
	tcase_add_test(crash, crash_with_requests_in_flight);
	tcase_add_test(crash, crash_after_gateway_processed);
	tcase_add_test(crash, postgres_restart_mid_run);
	tcase_add_test(crash, thousand_orders_under_faults);
	tcase_add_test(crash, two_daemons_no_duplicate_requests);
	tcase_add_test(crash, same_instance_name_refused);
	suite_add_tcase(s, crash);
	TCase *ops = tcase_create("operations");
	tcase_set_timeout(ops, 120);
	tcase_add_test(ops, sigterm_drains_in_flight_requests);
	tcase_add_test(ops, credentials_rejected_pause_and_reload);
	tcase_add_test(ops, reload_keeps_running_config_when_new_one_is_bad);
	tcase_add_test(ops, refunds_partial_partial_rest_one_at_a_time);
	tcase_add_test(ops, cancel_or_refund_requests_before_and_after_capture);
	tcase_add_test(ops, dismissed_refusal_gets_a_new_modification);
	suite_add_tcase(s, ops);
	return s;
}

int main(void)
{
	pgtest_start();
	int status = testutil_run_suite(daemon_suite(), CK_NORMAL);
	pgtest_stop();
	return status;
}
